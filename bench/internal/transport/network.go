package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
)

// Network is where transports listen and dial: the host's sockets
// ([Sockets]) or a simulated link ([SimNet]).
type Network interface {
	// ListenPacket returns the server's UDP socket at addr.
	ListenPacket(addr string) (net.PacketConn, error)
	// DialPacket returns a client UDP socket and the server's address.
	DialPacket(addr string) (net.PacketConn, net.Addr, error)
	// Listen returns a TCP listener at addr.
	Listen(addr string) (net.Listener, error)
	// Dial connects to the TCP listener at addr.
	Dial(ctx context.Context, addr string) (net.Conn, error)
	// tuneQUIC adapts a quic-go configuration to the network.
	tuneQUIC(c *quic.Config)
}

// ErrNoTCP is returned by the TCP methods of a network that models UDP
// only: quic-go's simnet has no TCP, so the TCP multiplexers cannot run
// over a simulated lossy link.
var ErrNoTCP = errors.New("transport: this network carries UDP only")

// Sockets is the host's network: UDP and TCP sockets.
var Sockets Network = sockets{}

type sockets struct{}

func (sockets) ListenPacket(addr string) (net.PacketConn, error) {
	return net.ListenPacket("udp", addr)
}

// DialPacket binds the client socket to the loopback address when the
// server's is one (so loopback runs stay on loopback), and to every
// interface otherwise.
func (sockets) DialPacket(addr string) (net.PacketConn, net.Addr, error) {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, err
	}
	la := &net.UDPAddr{}
	if ra.IP.IsLoopback() {
		la.IP = ra.IP
	}
	pc, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, nil, err
	}
	return pc, ra, nil
}

func (sockets) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

func (sockets) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (sockets) tuneQUIC(*quic.Config) {}

// SimNet is a simulated link between one client and one server (quic-go's
// simnet): a fixed round-trip time and, once [SimNet.StartLoss] is
// called, random packet loss in both directions from a seeded RNG.
// Outside a testing/synctest bubble it runs in real time. It carries UDP
// only. Create it with [NewSimNet]; one server and one client use it.
type SimNet struct {
	net            *simnet.Simnet
	router         *lossRouter
	client, server *simnet.SimConn
	// taken records which endpoints were handed out. Owner: mu.
	mu                  sync.Mutex
	tookServer, tookCli bool
	close               func() error
}

// SimServerAddr is the address the server of a [SimNet] listens on; pass
// it to Listen and Dial.
const SimServerAddr = "10.0.0.2:9002"

// NewSimNet starts a simulated link with round-trip time rtt that, once
// StartLoss is called, drops each packet with probability loss.
func NewSimNet(rtt time.Duration, loss float64, seed uint64) (*SimNet, error) {
	r := &lossRouter{p: loss, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	n := &simnet.Simnet{Router: r}
	settings := simnet.NodeBiDiLinkSettings{Latency: rtt / 2}
	s := &SimNet{
		net:    n,
		router: r,
		client: n.NewEndpoint(&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9001}, settings),
		server: n.NewEndpoint(mustUDPAddr(SimServerAddr), settings),
	}
	s.close = sync.OnceValue(func() error {
		_ = s.client.Close()
		_ = s.server.Close()
		return s.net.Close()
	})
	if err := n.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func mustUDPAddr(s string) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		panic(err)
	}
	return a
}

// StartLoss enables packet loss; the handshakes before it are not part
// of the experiment.
func (s *SimNet) StartLoss() { s.router.on.Store(true) }

// LossRate returns the share of packets dropped since StartLoss.
func (s *SimNet) LossRate() float64 { return s.router.lossRate() }

// Close stops the simulation. It is idempotent.
func (s *SimNet) Close() error { return s.close() }

// ListenPacket returns the server's endpoint; addr must be SimServerAddr.
func (s *SimNet) ListenPacket(addr string) (net.PacketConn, error) {
	if addr != SimServerAddr {
		return nil, fmt.Errorf("transport: simnet server address is %s, not %s", SimServerAddr, addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tookServer {
		return nil, errors.New("transport: simnet server endpoint in use")
	}
	s.tookServer = true
	return s.server, nil
}

// DialPacket returns the client's endpoint.
func (s *SimNet) DialPacket(addr string) (net.PacketConn, net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tookCli {
		return nil, nil, errors.New("transport: simnet client endpoint in use")
	}
	s.tookCli = true
	return s.client, mustUDPAddr(addr), nil
}

// Listen fails: simnet carries UDP only.
func (s *SimNet) Listen(string) (net.Listener, error) { return nil, ErrNoTCP }

// Dial fails: simnet carries UDP only.
func (s *SimNet) Dial(context.Context, string) (net.Conn, error) { return nil, ErrNoTCP }

// tuneQUIC switches path MTU discovery off: simnet packets have no MTU to
// discover.
func (s *SimNet) tuneQUIC(c *quic.Config) { c.DisablePathMTUDiscovery = true }

// lossRouter is a simnet router that, once on, drops each packet (in
// either direction) with probability p, drawn from a seeded RNG.
type lossRouter struct {
	simnet.PerfectRouter
	p  float64
	on atomic.Bool

	mu  sync.Mutex // guards rng
	rng *rand.Rand

	seen, dropped atomic.Uint64
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

func (r *lossRouter) lossRate() float64 {
	if s := r.seen.Load(); s > 0 {
		return float64(r.dropped.Load()) / float64(s)
	}
	return 0
}
