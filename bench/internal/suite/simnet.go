package suite

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
)

// lossRouter is a simnet router that, once enabled, drops each packet (in
// either direction) with probability p, drawn from a seeded RNG.
type lossRouter struct {
	simnet.PerfectRouter
	p  float64
	on atomic.Bool

	mu  sync.Mutex
	rng *rand.Rand

	seen, dropped atomic.Uint64
}

func newLossRouter(p float64, seed uint64) *lossRouter {
	return &lossRouter{p: p, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

// SendPacket forwards p unless it is chosen to be lost.
func (r *lossRouter) SendPacket(p simnet.Packet) error {
	if r.on.Load() {
		r.seen.Add(1)
		r.mu.Lock()
		drop := r.rng.Float64() < r.p
		r.mu.Unlock()
		if drop {
			r.dropped.Add(1)
			return nil
		}
	}
	return r.PerfectRouter.SendPacket(p)
}

// lossRate returns the share of packets dropped since the router was
// enabled.
func (r *lossRouter) lossRate() float64 {
	if s := r.seen.Load(); s > 0 {
		return float64(r.dropped.Load()) / float64(s)
	}
	return 0
}

// simAddr returns the address of simulated endpoint i (1: client, 2:
// server).
func simAddr(i byte) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4(10, 0, 0, i), Port: 9000 + int(i)}
}

// dialSim connects a raw quic-go pair over a simulated link with the given
// round-trip time through router. Loss is off until the caller enables
// the router, so the handshake is not part of the experiment. Outside a
// testing/synctest bubble the link runs in real time.
func (e *Env) dialSim(ctx context.Context, router *lossRouter, rtt time.Duration, qconf *quic.Config) (*quicPair, error) {
	n := &simnet.Simnet{Router: router}
	settings := simnet.NodeBiDiLinkSettings{Latency: rtt / 2}
	cc := n.NewEndpoint(simAddr(1), settings)
	sc := n.NewEndpoint(simAddr(2), settings)
	if err := n.Start(); err != nil {
		return nil, err
	}
	p := &quicPair{}
	srv, cli := &quic.Transport{Conn: sc}, &quic.Transport{Conn: cc}
	p.closers = append(p.closers, func() {
		_ = cli.Close()
		_ = srv.Close()
		_ = cc.Close()
		_ = sc.Close()
		_ = n.Close()
	})
	qconf.DisablePathMTUDiscovery = true
	return e.dialOver(ctx, p, srv, cli, qconf)
}
