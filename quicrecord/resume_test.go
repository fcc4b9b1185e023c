package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
	"github.com/recordmux/recordmux/internal/tlsutil"
)

// blackoutRouter drops every packet while dark is set.
type blackoutRouter struct {
	simnet.PerfectRouter
	dark atomic.Bool
}

func (r *blackoutRouter) SendPacket(p simnet.Packet) error {
	if r.dark.Load() {
		return nil
	}
	return r.PerfectRouter.SendPacket(p)
}

// resumeRig is a simnet link with a listener on one end that applies every
// record of every resumable stream, checking global order, and a dialer on
// the other end.
type resumeRig struct {
	t      *testing.T
	router *blackoutRouter
	ln     *Listener
	ctr    *quic.Transport
	ctls   *tls.Config
	ccfg   *Config
	store  *ResumeStore

	mu       sync.Mutex
	applied  map[string]uint64 // key -> last applied seq
	dups     int
	gaps     int
	streams  int
	onRecord func(key string, r Record)
}

func resumeQUIC() *quic.Config {
	q := DefaultQUICConfig()
	q.MaxIdleTimeout = 2 * time.Second
	q.KeepAlivePeriod = 500 * time.Millisecond
	q.DisablePathMTUDiscovery = true
	return q
}

func newResumeRig(t *testing.T, storeCfg ResumeStoreConfig, serverTLS, clientTLS *tls.Config) *resumeRig {
	return newResumeRigAcceptor(t, storeCfg, serverTLS, clientTLS, nil)
}

// newResumeRigAcceptor is newResumeRig whose acceptor chooses each
// stream's settings with handler; tweaks, if any, change the acceptor's
// and the dialer's Config.
func newResumeRigAcceptor(t *testing.T, storeCfg ResumeStoreConfig, serverTLS, clientTLS *tls.Config,
	handler func(context.Context, *AcceptInfo) (*StreamConfig, error), tweaks ...func(server, client *Config)) *resumeRig {
	rig := &resumeRig{t: t, router: &blackoutRouter{}, applied: map[string]uint64{}}
	n := simtest.NewNet(t, rig.router, simtest.Latency(10*time.Millisecond))
	cconn, sconn := n.Endpoint(simClientAddr), n.Endpoint(simServerAddr)
	n.Start()
	if serverTLS == nil {
		// No client certificates: the clients resume anonymously.
		serverTLS, clientTLS = tlsPair(t)
		storeCfg.AllowAnonymous = true
	}
	serverTLS.NextProtos, clientTLS.NextProtos = []string{ALPN}, []string{ALPN}
	rig.ctls = clientTLS
	rig.store = NewResumeStore(storeCfg)
	scfg := &Config{QUIC: resumeQUIC(), ResumeStore: rig.store, AcceptHandler: handler}
	rig.ccfg = &Config{QUIC: resumeQUIC()}
	for _, tw := range tweaks {
		tw(scfg, rig.ccfg)
	}
	rig.ctr = simtest.Transport(t, cconn)
	rig.ln = newTestListener(t, simtest.Listen(t, sconn, serverTLS, scfg.quicConfig()), scfg)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() { rig.serve(ctx, &wg) })
	t.Cleanup(func() {
		cancel()
		_ = rig.ln.Close()
		wg.Wait()
	})
	return rig
}

func (rig *resumeRig) serve(ctx context.Context, wg *sync.WaitGroup) {
	for {
		c, err := rig.ln.Accept(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				s, err := c.AcceptRecordStream(ctx)
				if err != nil {
					return
				}
				rig.mu.Lock()
				rig.streams++
				rig.mu.Unlock()
				wg.Go(func() {
					defer s.Close(context.Background())
					key := string(s.ResumeKey())
					_ = s.Apply(ctx, func(r Record) error {
						rig.mu.Lock()
						defer rig.mu.Unlock()
						last := rig.applied[key]
						switch {
						case r.Seq <= last:
							rig.dups++
						case r.Seq > last+1:
							rig.gaps++
						}
						rig.applied[key] = max(last, r.Seq)
						if rig.onRecord != nil {
							rig.onRecord(key, r)
						}
						return nil
					})
				})
			}
		})
	}
}

func (rig *resumeRig) dial(ctx context.Context) (*Conn, error) {
	qc, err := rig.ctr.Dial(ctx, simServerAddr, rig.ctls, rig.ccfg.quicConfig())
	if err != nil {
		return nil, err
	}
	return NewConn(qc, rig.ccfg)
}

func (rig *resumeRig) open(opts ResumeOptions) (*ResumableStream, error) {
	return NewResumableStream(context.Background(), rig.dial, rig.ccfg, opts)
}

// kill ends rs as a killed process would: without closing, so that its
// key's state stays with the acceptor. The path goes dark until the
// connection died on both ends (longer than the idle timeout).
func (rig *resumeRig) kill(rs *ResumableStream) {
	rig.router.dark.Store(true)
	time.Sleep(3 * time.Second)
	rig.router.dark.Store(false)
	rs.cancel(errors.New("process killed"))
	<-rs.done
}

// TestResumeAcrossBlackouts: five blackouts longer than the idle timeout,
// so the connection really dies each time, during a transfer of 100,000
// records; every record is applied exactly once and in order.
func TestResumeAcrossBlackouts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rig := newResumeRig(t, ResumeStoreConfig{}, nil, nil)
		var events []ResumeEventKind
		var emu sync.Mutex
		connected := make(chan struct{}, 10)
		rs, err := rig.open(ResumeOptions{Stream: StreamOptions{Scope: "agent"}, OnEvent: func(e ResumeEvent) {
			t.Logf("%v %v acked=%d err=%v", time.Now().Format("15:04:05.000"), e.Kind, e.Acked, e.Err)
			emu.Lock()
			events = append(events, e.Kind)
			emu.Unlock()
			if e.Kind == ResumeConnected {
				connected <- struct{}{}
			}
		}})
		require.NoError(t, err)
		<-connected
		// The reliability suite's checker sees every send and every
		// applied record: applied must be an ordered prefix of sent with
		// no duplicate, across all the streams the key used.
		checker := simtest.NewChecker(0)
		rig.mu.Lock()
		rig.onRecord = func(_ string, r Record) {
			_ = checker.Delivered(r.Seq, r.Data)
			checker.Applied(r.Seq)
		}
		rig.mu.Unlock()
		const n = 100_000
		ctx := context.Background()
		for i := 1; i <= n; i++ {
			checker.Sending(uint64(i))
			seq, err := rs.Send(ctx, simtest.Payload(0, uint64(i), 40))
			require.NoError(t, err)
			checker.Sent(seq)
			require.Equal(t, uint64(i), seq)
			if i%20_000 == 10_000 {
				t.Logf("%v dark at %d", time.Now().Format("15:04:05.000"), i)
				rig.router.dark.Store(true)
				time.Sleep(3 * time.Second) // > MaxIdleTimeout (2 s)
				rig.router.dark.Store(false)
				<-connected // the next blackout hits a live connection
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		require.NoError(t, rs.Barrier(ctx))
		checker.BarrierOK(n)
		require.NoError(t, checker.Verify(true))
		snap := rs.Snapshot()
		require.NoError(t, rs.Close(context.Background()))
		rig.mu.Lock()
		defer rig.mu.Unlock()
		require.Equal(t, uint64(n), rig.applied[string(rs.Key())])
		require.Zero(t, rig.dups, "no record applied twice")
		require.Zero(t, rig.gaps, "no record skipped")
		emu.Lock()
		t.Logf("events: %v", events)
		emu.Unlock()
		require.Equal(t, uint64(5), snap.Stats.Resumes)
		require.Equal(t, uint64(6), snap.Stats.Connects)
		// Each outage counts from the idle timeout's detection (2 s into
		// the 3 s blackout, plus the last packets in flight) until the
		// stream reopened.
		require.Positive(t, snap.Stats.Disconnected)
		require.Less(t, snap.Stats.Disconnected, 5*3*time.Second)
		t.Logf("resume stats: %+v", snap.Stats)
		emu.Lock()
		require.Equal(t, 6, countKind(events, ResumeConnected))
		require.Equal(t, 5, countKind(events, ResumeDisconnected))
		emu.Unlock()
		time.Sleep(100 * time.Millisecond) // the FIN reaches the acceptor
		synctest.Wait()
		require.Zero(t, rig.store.Len(), "a gracefully closed stream's key is forgotten")
	})
}

func countKind(ev []ResumeEventKind, k ResumeEventKind) int {
	n := 0
	for _, e := range ev {
		if e == k {
			n++
		}
	}
	return n
}

// TestResumeTTLExpiry: a stream disconnected for longer than the store's
// TTL cannot resume; the sender is told which records are in doubt.
func TestResumeTTLExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newResumeRig(t, ResumeStoreConfig{TTL: 5 * time.Second}, nil, nil)
		rs, err := rig.open(ResumeOptions{MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second})
		require.NoError(t, err)
		ctx := context.Background()
		for i := 1; i <= 10; i++ {
			_, err := rs.Send(ctx, []byte{byte(i)})
			require.NoError(t, err)
		}
		require.NoError(t, rs.Barrier(ctx))
		rig.router.dark.Store(true)
		for i := 11; i <= 15; i++ {
			_, err := rs.Send(ctx, []byte{byte(i)})
			require.NoError(t, err)
		}
		time.Sleep(3 * time.Second) // the connection dies on both ends
		rig.router.dark.Store(false)
		<-rs.Context().Done()
		var re *ResumeError
		require.ErrorAs(t, rs.Err(), &re)
		require.ErrorIs(t, re, ErrResumeUnknown)
		require.Equal(t, uint64(11), re.FirstUnknown)
		require.Equal(t, uint64(15), re.LastUnknown, "records handed to the lost connection are in doubt")
		_, err = rs.Send(ctx, []byte("x"))
		require.ErrorAs(t, err, &re)
		require.Error(t, rs.Close(context.Background()))
	})
}

// TestResumeDurableHook: after the acceptor restarts (a fresh store), the
// application's durable state lets the stream resume.
func TestResumeDurableHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newResumeRig(t, ResumeStoreConfig{TTL: time.Second}, nil, nil)
		var loads atomic.Int32
		rig.store.load = func(_ context.Context, info ResumeKeyInfo) (uint64, bool, error) {
			loads.Add(1)
			rig.mu.Lock()
			defer rig.mu.Unlock()
			a, ok := rig.applied[string(info.Key)]
			return a, ok, nil
		}
		rs, err := rig.open(ResumeOptions{})
		require.NoError(t, err)
		ctx := context.Background()
		for i := 1; i <= 1000; i++ {
			_, err := rs.Send(ctx, []byte{byte(i)})
			require.NoError(t, err)
			if i == 500 {
				// Dark for longer than the TTL: the in-memory state expires.
				rig.router.dark.Store(true)
				time.Sleep(4 * time.Second)
				rig.router.dark.Store(false)
			}
		}
		require.NoError(t, rs.Barrier(ctx))
		require.NoError(t, rs.Close(context.Background()))
		require.Equal(t, int32(2), loads.Load(), "asked at the first open and after the expiry")
		rig.mu.Lock()
		defer rig.mu.Unlock()
		require.Equal(t, uint64(1000), rig.applied[string(rs.Key())])
		require.Zero(t, rig.dups)
		require.Zero(t, rig.gaps)
	})
}

// TestResumeUnavailable: an acceptor without a store, or whose store does
// not allow anonymous resumption on a connection without a client
// identity, gives a plain stream; the application is told, and losing the
// connection ends the stream with the records in doubt.
func TestResumeUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func() *Config
	}{
		{"no store", func() *Config { return nil }},
		{"anonymous peer", func() *Config { return &Config{ResumeStore: NewResumeStore(ResumeStoreConfig{})} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runResumeUnavailable(t, tc.cfg()) })
		})
	}
}

func runResumeUnavailable(t *testing.T, serverCfg *Config) {
	qc, qs := newSimQUIC(t, nil, serverCfg, nil, 10*time.Millisecond)
	server, err := NewConn(qs, serverCfg)
	require.NoError(t, err)
	defer server.Close()
	dialed := false
	events := make(chan ResumeEvent, 10)
	rs, err := NewResumableStream(context.Background(), func(context.Context) (*Conn, error) {
		if dialed {
			return nil, errors.New("no second connection in this test")
		}
		dialed = true
		return NewConn(qc, nil)
	}, nil, ResumeOptions{OnEvent: func(e ResumeEvent) { events <- e }})
	require.NoError(t, err)
	require.Equal(t, ResumeConnected, (<-events).Kind)
	require.Equal(t, ResumeUnavailable, (<-events).Kind)
	require.False(t, rs.Snapshot().ResumeAvailable)
	a, err := server.AcceptRecordStream(context.Background())
	require.NoError(t, err)
	require.Nil(t, a.ResumeKey())
	require.False(t, a.Negotiated().Features.Has(FeatureResume))
	go func() { _ = a.Apply(context.Background(), func(Record) error { return nil }) }()
	_, err = rs.Send(context.Background(), []byte("works"))
	require.NoError(t, err)
	require.NoError(t, rs.Barrier(context.Background()))
	require.NoError(t, rs.Close(context.Background()))
}

// TestResumeHijack: resume state is bound to the identity of the client
// certificate that created it. Another client that knows the key cannot
// continue the stream, and its refusal is the one for a key that never
// existed (RESUME_UNKNOWN, same reason), so it cannot even tell that the
// key is in use. The owner's stream is untouched.
func TestResumeHijack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, err := tlsutil.NewCA("test CA")
		require.NoError(t, err)
		serverCert, err := ca.IssueServer("localhost")
		require.NoError(t, err)
		alice, err := ca.IssueClient("alice")
		require.NoError(t, err)
		mallory, err := ca.IssueClient("mallory")
		require.NoError(t, err)
		stls := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
		ctls := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{alice}}
		rig := newResumeRig(t, ResumeStoreConfig{}, stls, ctls)
		rs, err := rig.open(ResumeOptions{Key: []byte("alice-stream")})
		require.NoError(t, err)
		for i := range 10 {
			_, err := rs.Send(context.Background(), []byte{byte(i)})
			require.NoError(t, err)
		}
		require.NoError(t, rs.Barrier(context.Background()))

		rig.ctls = ctls.Clone()
		rig.ctls.Certificates = []tls.Certificate{mallory}
		refusal := func(key string) *StreamError {
			_, err := rig.open(ResumeOptions{Key: []byte(key), FirstSeq: 11})
			var re *ResumeError
			require.ErrorAs(t, err, &re)
			require.ErrorIs(t, err, ErrResumeUnknown)
			var se *StreamError
			require.ErrorAs(t, err, &se)
			return se
		}
		taken, unused := refusal("alice-stream"), refusal("never-used")
		require.Equal(t, unused.Code, taken.Code, "the refusal does not reveal that the key exists")
		require.Equal(t, unused.Reason, taken.Reason)

		// Alice's stream is untouched.
		_, err = rs.Send(context.Background(), []byte("still alice"))
		require.NoError(t, err)
		require.NoError(t, rs.Barrier(context.Background()))
		require.NoError(t, rs.Close(context.Background()))
		rig.mu.Lock()
		require.Equal(t, uint64(11), rig.applied["alice-stream"])
		rig.mu.Unlock()
	})
}

// TestResumeIdentityRenewal: the identity is the client's public key, not
// its certificate: a client whose certificate was renewed for the same
// key continues its stream after a restart, exactly once.
func TestResumeIdentityRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ca, err := tlsutil.NewCA("test CA")
		require.NoError(t, err)
		serverCert, err := ca.IssueServer("localhost")
		require.NoError(t, err)
		agent, err := ca.IssueClient("agent")
		require.NoError(t, err)
		stls := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
		ctls := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{agent}}
		rig := newResumeRig(t, ResumeStoreConfig{}, stls, ctls)
		first, err := rig.open(ResumeOptions{Key: []byte("agent")})
		require.NoError(t, err)
		for i := 1; i <= 100; i++ {
			_, err := first.Send(ctx, payloadFor(uint64(i)))
			require.NoError(t, err)
		}
		require.NoError(t, first.Barrier(ctx))
		rig.kill(first)

		renewed, err := ca.Renew(agent)
		require.NoError(t, err)
		require.NotEqual(t, agent.Leaf.Raw, renewed.Leaf.Raw, "a new certificate")
		rig.ctls = ctls.Clone()
		rig.ctls.Certificates = []tls.Certificate{renewed}
		second, err := rig.open(ResumeOptions{Key: []byte("agent"), FirstSeq: 101})
		require.NoError(t, err, "the renewed certificate continues the key")
		for i := 101; i <= 150; i++ {
			_, err := second.Send(ctx, payloadFor(uint64(i)))
			require.NoError(t, err)
		}
		require.NoError(t, second.Barrier(ctx))
		require.NoError(t, second.Close(ctx))
		rig.mu.Lock()
		defer rig.mu.Unlock()
		require.Equal(t, uint64(150), rig.applied["agent"])
		require.Zero(t, rig.dups)
		require.Zero(t, rig.gaps)
	})
}

// TestResumeKeysUnguessable: generated keys are 16 random bytes.
func TestResumeKeysUnguessable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newResumeRig(t, ResumeStoreConfig{}, nil, nil)
		seen := map[string]bool{}
		for range 5 {
			rs, err := rig.open(ResumeOptions{})
			require.NoError(t, err)
			require.Len(t, rs.Key(), 16)
			require.False(t, seen[string(rs.Key())])
			seen[string(rs.Key())] = true
			require.NoError(t, rs.Close(context.Background()))
		}
	})
}

// TestResumeRestartedOpenerBehind: an opener restarted from an older saved
// position (it was killed with records in flight) continues its key; the
// records the acceptor already applied are dropped as they are sent again.
func TestResumeRestartedOpenerBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newResumeRig(t, ResumeStoreConfig{}, nil, nil)
		ctx := context.Background()
		first, err := rig.open(ResumeOptions{Key: []byte("agent-1")})
		require.NoError(t, err)
		for i := 1; i <= 150; i++ {
			_, err := first.Send(ctx, payloadFor(uint64(i)))
			require.NoError(t, err)
		}
		require.NoError(t, first.Barrier(ctx))
		rig.kill(first)

		// The restarted process saved position 101 and regenerates from it.
		second, err := rig.open(ResumeOptions{Key: []byte("agent-1"), FirstSeq: 101})
		require.NoError(t, err)
		for i := 101; i <= 200; i++ {
			seq, err := second.Send(ctx, payloadFor(uint64(i)))
			require.NoError(t, err)
			require.Equal(t, uint64(i), seq)
		}
		require.NoError(t, second.Barrier(ctx))
		snap := second.Snapshot()
		require.Equal(t, uint64(50), snap.Stats.DuplicatesDropped, "records 101..150 were applied before the restart")
		require.NoError(t, second.Close(context.Background()))
		rig.mu.Lock()
		defer rig.mu.Unlock()
		require.Equal(t, uint64(200), rig.applied["agent-1"])
		require.Zero(t, rig.dups)
		require.Zero(t, rig.gaps)
	})
}

// TestResumableRecordSizeAgreed: a resumable stream's Send checks the
// record limit agreed with the acceptor, not only its own: a record
// above the acceptor's limit fails Send at once, the stream goes on and
// never redials; and a record held across a reconnection that lands on
// an acceptor with a smaller limit ends the stream with a *ResumeError
// instead of redialing forever.
func TestResumableRecordSizeAgreed(t *testing.T) {
	t.Run("Send", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			rig := newResumeRigAcceptor(t, ResumeStoreConfig{}, nil, nil, func(context.Context, *AcceptInfo) (*StreamConfig, error) {
				return &StreamConfig{MaxRecordSize: 100}, nil
			})
			var events atomic.Int32
			rs, err := rig.open(ResumeOptions{OnEvent: func(ResumeEvent) { events.Add(1) }})
			require.NoError(t, err)
			require.Equal(t, 100, rs.MaxRecordSize(), "the acceptor's limit")
			_, err = rs.Send(ctx, make([]byte, 101))
			require.ErrorIs(t, err, ErrRecordTooLarge)
			require.EqualError(t, err, "quicrecord: Send: record of 101 bytes exceeds the stream's limit of 100")
			seq, err := rs.Send(ctx, make([]byte, 100))
			require.NoError(t, err)
			require.Equal(t, uint64(1), seq, "the refused record took no sequence number")
			require.NoError(t, rs.Barrier(ctx))
			time.Sleep(10 * time.Second) // a redial, had there been one, would have happened
			snap := rs.Snapshot()
			require.Equal(t, uint64(1), snap.Stats.Connects, "no redial")
			require.Zero(t, snap.Stats.Resumes)
			require.Equal(t, int32(1), events.Load(), "one event: the first connection")
			require.NoError(t, rs.Err())
			require.NoError(t, rs.Close(ctx))
		})
	})
	t.Run("reconnection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			var streams atomic.Int32
			rig := newResumeRigAcceptor(t, ResumeStoreConfig{}, nil, nil, func(context.Context, *AcceptInfo) (*StreamConfig, error) {
				if streams.Add(1) == 1 {
					return &StreamConfig{MaxRecordSize: 64 << 10}, nil
				}
				// An optimistic resume raises the acceptor's limits
				// to the early profile (16 KiB records): the held
				// record is above that.
				return &StreamConfig{MaxRecordSize: 100}, nil
			})
			rs, err := rig.open(ResumeOptions{})
			require.NoError(t, err)
			_, err = rs.Send(ctx, make([]byte, 10))
			require.NoError(t, err)
			require.NoError(t, rs.Barrier(ctx))
			rig.router.dark.Store(true)
			_, err = rs.Send(ctx, make([]byte, 20<<10)) // held: it cannot be acked in the dark
			require.NoError(t, err)
			time.Sleep(3 * time.Second) // > MaxIdleTimeout: the connection dies
			rig.router.dark.Store(false)
			<-rs.Context().Done()
			var re *ResumeError
			require.ErrorAs(t, rs.Err(), &re)
			require.Equal(t, [2]uint64{2, 2}, [2]uint64{re.FirstUnknown, re.LastUnknown}, "record 2 is in doubt")
			require.ErrorIs(t, re, ErrRecordTooLarge)
			require.Equal(t, int32(2), streams.Load(), "one reconnection, then no more")
			time.Sleep(30 * time.Second)
			require.Equal(t, int32(2), streams.Load(), "no redial after the failure")
			_ = rs.Close(ctx)
		})
	})
}

// TestResumableCloseBounded: Close waits for the acceptor to apply what
// was sent, bounded by its context; with the acceptor out of reach it
// returns when ctx ends, with a *BarrierError, and the stream is over.
func TestResumableCloseBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rig := newResumeRig(t, ResumeStoreConfig{}, nil, nil)
		rs, err := rig.open(ResumeOptions{})
		require.NoError(t, err)
		rig.router.dark.Store(true)
		_, err = rs.Send(ctx, []byte("unacked"))
		require.NoError(t, err)
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = rs.Close(cctx)
		require.Equal(t, 500*time.Millisecond, time.Since(start))
		var be *BarrierError
		require.ErrorAs(t, err, &be)
		require.Equal(t, uint64(1), be.Target)
		require.Zero(t, be.Acked)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Error(t, rs.Context().Err(), "the stream is over")
		require.NoError(t, rs.Close(ctx), "Close after Close does nothing")
		rig.router.dark.Store(false)
	})
}
