package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// The reliability suite (reliability_*_test.go) runs in the default
// `go test` within a couple of minutes. Heavier variants run when
// RECORDMUX_LONG=1 is set: more seeds, longer churn. RECORDMUX_SEED=n
// replays one seed (see simtest.Seed).
const longEnv = "RECORDMUX_LONG"

// longRun reports whether the heavy variants were asked for.
func longRun() bool {
	v, _ := strconv.ParseBool(os.Getenv(longEnv))
	return v
}

// seedList returns the seeds a matrix test runs: the one in
// RECORDMUX_SEED when set, else defaults.
func seedList(t testing.TB, defaults []uint64) []uint64 {
	t.Helper()
	v := os.Getenv(simtest.SeedEnv)
	if v == "" {
		return defaults
	}
	s, err := strconv.ParseUint(v, 0, 64)
	require.NoError(t, err, "%s", simtest.SeedEnv)
	return []uint64{s}
}

// linkOpts describe the simulated path between client and server.
type linkOpts struct {
	seed    uint64
	loss    float64       // per direction
	latency time.Duration // one-way delay
	jitter  time.Duration // each packet's delay is uniform in latency ± jitter
}

func (o linkOpts) settings(name string) simnet.NodeBiDiLinkSettings {
	s := simnet.NodeBiDiLinkSettings{Latency: o.latency}
	if o.jitter > 0 {
		s.LatencyFunc = simtest.Jitter(o.seed, name, o.latency, o.jitter)
	}
	return s
}

// relNet is a simulated network whose Router can lose, black out and cut.
type relNet struct {
	*simtest.Net
	router *simtest.Router
}

func newRelNet(t testing.TB, o linkOpts) *relNet {
	r := simtest.NewRouter(o.seed, o.loss)
	settings := func(addr *net.UDPAddr) simnet.NodeBiDiLinkSettings { return o.settings(addr.String()) }
	return &relNet{Net: simtest.NewNet(t, r, settings), router: r}
}

// simQUICConfig is the quic.Config the reliability tests use over simnet.
func simQUICConfig(c *Config) *quic.Config {
	q := c.quicConfig()
	q.DisablePathMTUDiscovery = true
	return q
}

// newRelSimQUIC connects two quic-go connections over a relNet built from
// o. It must run inside a synctest bubble.
func newRelSimQUIC(t testing.TB, clientCfg, serverCfg *Config, o linkOpts) (client, server *quic.Conn, n *relNet) {
	t.Helper()
	n = newRelNet(t, o)
	cconn := n.Endpoint(simClientAddr)
	sconn := n.Endpoint(simServerAddr)
	n.Start()
	client, server = dialSimQUIC(t, cconn, sconn, clientCfg, serverCfg, time.Minute)
	return client, server, n
}

// newRelSimPair is newSimPair over a relNet.
func newRelSimPair(t testing.TB, clientCfg, serverCfg *Config, o linkOpts) (*pair, *relNet) {
	t.Helper()
	qc, qs, n := newRelSimQUIC(t, clientCfg, serverCfg, o)
	client, err := NewConn(qc, clientCfg)
	require.NoError(t, err)
	server, err := NewConn(qs, serverCfg)
	require.NoError(t, err)
	p := &pair{client: client, server: server}
	t.Cleanup(p.close)
	return p, n
}

// simServer is a recordmux Listener on a simnet endpoint, for tests with
// several client connections or special TLS.
type simServer struct {
	ln   *Listener
	addr *net.UDPAddr
}

// listenSim starts a Listener on conn with tlsConf (ALPN set when empty).
func listenSim(t testing.TB, conn *simnet.SimConn, tlsConf *tls.Config, cfg *Config) *simServer {
	t.Helper()
	ln := newTestListener(t, simtest.Listen(t, conn, withALPN(tlsConf), simQUICConfig(cfg)), cfg)
	t.Cleanup(func() { _ = ln.Close() })
	return &simServer{ln: ln, addr: conn.LocalAddr().(*net.UDPAddr)}
}

// dialSim dials a simServer from conn and wraps the connection; it
// returns quic-go's error as it is.
func dialSim(ctx context.Context, t testing.TB, conn *simnet.SimConn, to *net.UDPAddr, tlsConf *tls.Config, cfg *Config) (*Conn, error) {
	t.Helper()
	qc, err := simtest.Transport(t, conn).Dial(ctx, to, withALPN(tlsConf), simQUICConfig(cfg))
	if err != nil {
		return nil, err
	}
	c, err := NewConn(qc, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// checkedTransfer sends n records of simtest.Payload from tx (sizes drawn
// from 16..maxLen with a generator seeded by seed) and applies them on rx,
// reporting everything to chk; then it waits on Barrier. It returns the
// first failure and the time the transfer took. It does not touch t, so
// that it can run on other goroutines.
type transferOpts struct {
	n      int
	maxLen int
	seed   uint64
	// onApply, if set, runs for every record the receiver applies.
	onApply func(seq uint64)
	// timeout bounds the whole transfer; 0 means 30 minutes (virtual
	// under synctest).
	timeout time.Duration
}

func checkedTransfer(tx, rx *RecordStream, chk *simtest.Checker, o transferOpts) (time.Duration, error) {
	start := time.Now()
	if o.timeout == 0 {
		o.timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	actx, acancel := context.WithCancel(ctx)
	applied := make(chan error, 1)
	go func() {
		applied <- rx.Apply(actx, func(r Record) error {
			if err := chk.Delivered(r.Seq, r.Data); err != nil {
				acancel()
				return nil
			}
			chk.Applied(r.Seq)
			if o.onApply != nil {
				o.onApply(r.Seq)
			}
			return nil
		})
	}()
	fail := func(err error) (time.Duration, error) {
		acancel()
		<-applied
		return time.Since(start), err
	}
	rng := rand.New(rand.NewPCG(o.seed, 7))
	for seq := uint64(1); seq <= uint64(o.n); seq++ {
		chk.Sending(seq)
		got, err := tx.Send(ctx, simtest.Payload(tx.DataID(), seq, 16+rng.IntN(o.maxLen-16+1)))
		if err != nil {
			chk.SendFailed(seq)
			return fail(fmt.Errorf("send %d: %w", seq, err))
		}
		chk.Sent(got)
		if seq%1024 == 0 {
			chk.Acked(tx.Snapshot().Out.AckedSeq)
		}
	}
	if err := tx.Barrier(ctx); err != nil {
		var be *BarrierError
		if errors.As(err, &be) {
			chk.Acked(be.Acked)
		}
		return fail(fmt.Errorf("barrier: %w (%v)", err, chk.Verify(false)))
	}
	chk.BarrierOK(uint64(o.n))
	chk.Acked(tx.Snapshot().Out.AckedSeq)
	acancel()
	if err := <-applied; !errors.Is(err, context.Canceled) {
		return time.Since(start), fmt.Errorf("apply: %w", err)
	}
	if err := chk.Verify(true); err != nil {
		return time.Since(start), err
	}
	if got := rx.Snapshot().In.Records; got != uint64(o.n) {
		return time.Since(start), fmt.Errorf("receiver counted %d records in, want %d (duplicates inside the library?)", got, o.n)
	}
	return time.Since(start), nil
}
