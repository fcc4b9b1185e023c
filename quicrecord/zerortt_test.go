package quicrecord

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
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

const zeroRTT = 50 * time.Millisecond

// zeroRTTQUIC is the QUIC configuration of both ends: a short idle
// timeout, so that both sides give a lost connection up quickly, and
// 0-RTT allowed on the server.
func zeroRTTQUIC() *quic.Config {
	q := DefaultQUICConfig()
	q.MaxIdleTimeout = time.Second
	q.KeepAlivePeriod = 300 * time.Millisecond
	q.Allow0RTT = true
	return q
}

// applyLog is the server's applied records: when each sequence number was
// applied, and how often.
type applyLog struct {
	mu    sync.Mutex
	at    map[uint64]time.Time
	twice atomic.Uint64
	// early counts the streams accepted before their connection's
	// handshake completed (their HELLO came in 0-RTT), plain and
	// resumable; late those accepted after. optimistic counts the
	// optimistic resumes (FeatureResumeEarly effective).
	early, late map[bool]int
	optimistic  int
	// refused are the acceptor's refusals: code, and whether the stream
	// was an optimistic resume.
	refused []refusedStream
}

type refusedStream struct {
	code       ErrorCode
	optimistic bool
}

func (l *applyLog) applied(seq uint64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.at[seq]
	return t, ok
}

// reconnectNet is a resumable stream's client and an acceptor with a
// resume store over a router that can cut the path, at RTT zeroRTT.
type reconnectNet struct {
	router   *simtest.Router
	cut      atomic.Bool // the path is cut: dialing fails at once, as with a network down
	ln       *Listener
	log      *applyLog
	dialAt   atomic.Int64 // unix nanos of the last dial attempt that had a path
	dial     func(ctx context.Context) (*Conn, error)
	serverMu sync.Mutex
	servers  []*Conn
	stls     *tls.Config // the acceptor's: SetSessionTicketKeys makes it forget the tickets it issued
	// clientDisable are the features the opener's Config disables, and
	// clientStream its stream settings; set before the first dial.
	clientDisable Features
	clientStream  StreamConfig
}

func newReconnectNet(t *testing.T, early bool, wrap func(*simtest.Router) simnet.Router) *reconnectNet {
	t.Helper()
	stls, ctls := tlsPair(t)
	// The client presents no certificate: resumption is for anonymous
	// peers too here, as on a collector that pins only its own key.
	return newReconnectNetTLS(t, early, wrap, stls, ctls, ResumeStoreConfig{AllowAnonymous: true}, 0)
}

// newReplayNet is newReconnectNet with 0-RTT over a router that can
// replay the client's first flight (replayRouter).
func newReplayNet(t *testing.T) (*reconnectNet, *replayRouter) {
	var rr *replayRouter
	m := newReconnectNet(t, true, func(r *simtest.Router) simnet.Router {
		rr = &replayRouter{Router: r}
		return rr
	})
	return m, rr
}

// newReconnectNetTLS is newReconnectNet with the given TLS configs,
// resume store settings, and features the acceptor disables.
func newReconnectNetTLS(t *testing.T, early bool, wrap func(*simtest.Router) simnet.Router, stls, ctls *tls.Config, store ResumeStoreConfig, disable Features) *reconnectNet {
	t.Helper()
	m := &reconnectNet{router: simtest.NewRouter(simtest.Seed(t, 20), 0), log: &applyLog{at: map[uint64]time.Time{}, early: map[bool]int{}, late: map[bool]int{}}}
	var router simnet.Router = m.router
	if wrap != nil {
		router = wrap(m.router)
	}
	n := simtest.NewNet(t, router, simtest.Latency(zeroRTT/2))
	cconn, sconn := n.Endpoint(simClientAddr), n.Endpoint(simServerAddr)
	n.Start()
	m.stls = withALPN(stls)
	eln, err := simtest.Transport(t, sconn).ListenEarly(m.stls, zeroRTTQUIC())
	require.NoError(t, err)
	scfg := &Config{ResumeStore: NewResumeStore(store), QUIC: zeroRTTQUIC(), DisableFeatures: disable,
		OnStreamRefused: func(info *AcceptInfo, err *StreamError) {
			m.log.mu.Lock()
			m.log.refused = append(m.log.refused, refusedStream{code: err.Code, optimistic: info.Negotiated.Features.Has(FeatureResumeEarly)})
			m.log.mu.Unlock()
		}}
	m.ln, err = NewEarlyListener(eln, scfg)
	require.NoError(t, err)
	m.serve(t)

	ctr := simtest.Transport(t, cconn)
	ctls = withALPN(ctls)
	ctls.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	m.dial = func(ctx context.Context) (*Conn, error) {
		if m.cut.Load() {
			return nil, errors.New("network unreachable")
		}
		m.dialAt.Store(time.Now().UnixNano())
		d := ctr.Dial
		if early {
			d = ctr.DialEarly
		}
		qc, err := d(ctx, simServerAddr, ctls, zeroRTTQUIC())
		if err != nil {
			return nil, err
		}
		return NewConn(qc, &Config{QUIC: zeroRTTQUIC(), DisableFeatures: m.clientDisable, Stream: m.clientStream})
	}
	return m
}

// serve accepts connections and streams and applies every record,
// logging when and failing the test on a record applied twice.
func (m *reconnectNet) serve(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = m.ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := m.ln.Accept(ctx)
			if err != nil {
				return
			}
			m.serverMu.Lock()
			m.servers = append(m.servers, conn)
			m.serverMu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				for {
					s, err := conn.AcceptRecordStream(ctx)
					if err != nil {
						return
					}
					m.log.mu.Lock()
					if s.Negotiated().Features.Has(FeatureResumeEarly) {
						m.log.optimistic++
					}
					select {
					case <-conn.QUIC().HandshakeComplete():
						m.log.late[s.ResumeKey() != nil]++
					default:
						m.log.early[s.ResumeKey() != nil]++
					}
					m.log.mu.Unlock()
					wg.Go(func() {
						_ = s.Apply(ctx, func(r Record) error {
							m.log.mu.Lock()
							if _, dup := m.log.at[r.Seq]; dup {
								m.log.twice.Add(1)
							}
							m.log.at[r.Seq] = time.Now()
							m.log.mu.Unlock()
							return nil
						})
					})
				}
			})
		}
	})
}

// reconnectTime sends 100 records, loses the connection (the path is cut
// for 3 s, longer than both sides' idle timeout), sends 10 more, restores
// the path and returns how long after the first dial attempt with a path
// the first record sent while cut (101) was applied. The acceptor
// disables the features disable.
func reconnectTime(t *testing.T, early bool, disable Features) (time.Duration, *reconnectNet) {
	stls, ctls := tlsPair(t)
	m := newReconnectNetTLS(t, early, nil, stls, ctls, ResumeStoreConfig{AllowAnonymous: true}, disable)
	rs := m.loseAndResume(t, nil)
	defer rs.Close(context.Background())
	applied, ok := m.log.applied(101)
	require.True(t, ok)
	require.Zero(t, m.log.twice.Load(), "nothing applied twice")
	require.Equal(t, uint64(1), rs.Snapshot().Stats.Resumes)
	return applied.Sub(time.Unix(0, m.dialAt.Load())), m
}

// loseAndResume opens a resumable stream, sends 100 records, cuts the
// path for 3 s (longer than both sides' idle timeout) while it sends 10
// more, calls beforeRestore, restores the path and waits until all 110
// were applied.
func (m *reconnectNet) loseAndResume(t *testing.T, beforeRestore func()) *ResumableStream {
	ctx := context.Background()
	rs, err := NewResumableStream(ctx, m.dial, &Config{QUIC: zeroRTTQUIC(), DisableFeatures: m.clientDisable}, ResumeOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	require.NoError(t, err)
	for i := range 100 {
		_, err := rs.Send(ctx, []byte{byte(i)})
		require.NoError(t, err)
	}
	require.NoError(t, rs.Barrier(ctx))
	time.Sleep(zeroRTT) // the session ticket arrives after the handshake
	m.router.Cut()
	m.cut.Store(true)
	for i := range 10 {
		_, err := rs.Send(ctx, []byte{byte(i)})
		require.NoError(t, err)
	}
	time.Sleep(3 * time.Second)
	require.False(t, rs.Snapshot().Connected)
	if beforeRestore != nil {
		beforeRestore()
	}
	m.cut.Store(false)
	m.router.Restore()
	require.NoError(t, rs.Barrier(ctx))
	return rs
}

// TestResumable0RTTReconnect: at RTT 50 ms, how long after the path is
// back a resumable stream whose connection was lost applies its first
// replayed record. Without optimistic resumes (an acceptor that does not
// offer FeatureResumeEarly, as before it): 2.5 RTT with a full handshake
// (TLS round trip, HELLO round trip, half a round trip for the record),
// 1.5 RTT with 0-RTT, where the resume HELLO travels in the first
// flight. With them the held records follow the resume HELLO in the
// same flight: 1.5 RTT with a full handshake, 0.5 RTT with 0-RTT.
func TestResumable0RTTReconnect(t *testing.T) {
	cases := []struct {
		name      string
		zeroRTT   bool
		disable   Features
		atLeast   time.Duration
		atMost    time.Duration
		taken     time.Duration
		optimized bool
	}{
		{name: "full handshake", disable: FeatureResumeEarly, atLeast: 2*zeroRTT + zeroRTT/2, atMost: 2*zeroRTT + zeroRTT/2 + zeroRTT/10},
		{name: "full handshake, optimistic resume", atLeast: zeroRTT + zeroRTT/2, atMost: zeroRTT + zeroRTT/2 + zeroRTT/10, optimized: true},
		{name: "0-RTT", zeroRTT: true, disable: FeatureResumeEarly, atLeast: zeroRTT + zeroRTT/2, atMost: zeroRTT + zeroRTT/2 + zeroRTT/10},
		{name: "0-RTT, optimistic resume", zeroRTT: true, atLeast: zeroRTT / 2, atMost: zeroRTT + zeroRTT/5, optimized: true},
	}
	for i := range cases {
		c := &cases[i]
		synctest.Test(t, func(t *testing.T) {
			var m *reconnectNet
			c.taken, m = reconnectTime(t, c.zeroRTT, c.disable)
			m.serverMu.Lock()
			last := m.servers[len(m.servers)-1]
			m.serverMu.Unlock()
			require.Equal(t, c.zeroRTT, last.QUIC().ConnectionState().Used0RTT, "%s: the reconnection used 0-RTT", c.name)
			m.log.mu.Lock()
			defer m.log.mu.Unlock()
			if c.zeroRTT {
				require.Equal(t, 1, m.log.early[true], "%s: the resume HELLO came in 0-RTT", c.name)
			}
			want := 0
			if c.optimized {
				want = 1
			}
			require.Equal(t, want, m.log.optimistic, "%s: optimistic resumes", c.name)
		})
	}
	t.Logf("first replayed record applied after the path is back (RTT %v): full handshake %v, 0-RTT %v (acceptor without resume-early); full handshake %v, 0-RTT %v (optimistic resume: the replay in the resume HELLO's flight)",
		zeroRTT, cases[0].taken, cases[2].taken, cases[1].taken, cases[3].taken)
	for _, c := range cases {
		require.GreaterOrEqual(t, c.taken, c.atLeast, c.name)
		require.LessOrEqual(t, c.taken, c.atMost, c.name)
	}
	require.LessOrEqual(t, cases[3].taken, zeroRTT+zeroRTT/5, "0-RTT with an optimistic resume: within 1.2 RTT")
}

// TestResumable0RTTClientCertificate: with client certificates and no
// anonymous resumption, the key belongs to the certificate's identity,
// which the acceptor learns only when the handshake completes: a resume
// HELLO that came in 0-RTT waits for it, then continues the key, and
// nothing is applied twice.
func TestResumable0RTTClientCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca, err := tlsutil.NewCA("test CA")
		require.NoError(t, err)
		serverCert, err := ca.IssueServer("localhost")
		require.NoError(t, err)
		alice, err := ca.IssueClient("alice")
		require.NoError(t, err)
		stls := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
		ctls := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{alice}}
		m := newReconnectNetTLS(t, true, nil, stls, ctls, ResumeStoreConfig{}, 0)
		rs := m.loseAndResume(t, nil)
		defer rs.Close(context.Background())
		_, ok := m.log.applied(110)
		require.True(t, ok, "the records sent while cut were applied after the 0-RTT reconnect")
		require.Zero(t, m.log.twice.Load(), "nothing applied twice")
		require.Equal(t, uint64(1), rs.Snapshot().Stats.Resumes)
		m.serverMu.Lock()
		last := m.servers[len(m.servers)-1]
		m.serverMu.Unlock()
		require.True(t, last.QUIC().ConnectionState().Used0RTT, "the reconnection used 0-RTT")
		require.NotEmpty(t, last.peerIdentity(), "the key was continued under the client's identity")
	})
}

// TestResumable0RTTRejected: the acceptor forgot the session tickets it
// issued (a restarted process has new ticket keys), so it rejects the
// 0-RTT the client tries with its old ticket and quic-go discards the
// resume HELLO sent in it, with the records behind it (an optimistic
// resume). The resumable stream reconnects over the completed handshake
// of that same connection, at once, and nothing is applied twice.
func TestResumable0RTTRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newReconnectNet(t, true, nil)
		var restored time.Time
		rs := m.loseAndResume(t, func() {
			m.stls.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
			restored = time.Now()
		})
		defer rs.Close(context.Background())
		applied, ok := m.log.applied(101)
		require.True(t, ok)
		require.Zero(t, m.log.twice.Load(), "nothing applied twice")
		m.serverMu.Lock()
		last := m.servers[len(m.servers)-1]
		m.serverMu.Unlock()
		require.False(t, last.QUIC().ConnectionState().Used0RTT, "the acceptor rejected 0-RTT")
		require.Equal(t, uint64(1), rs.Snapshot().Stats.Resumes, "one reconnection")
		m.log.mu.Lock()
		require.Zero(t, m.log.optimistic, "the optimistic resume in the rejected 0-RTT is opened again as an ordinary one")
		require.Empty(t, m.log.refused)
		m.log.mu.Unlock()
		// The next dial comes within the maximum backoff with jitter
		// (300 ms); then the handshake, the HELLO round trip and half a
		// round trip for the record.
		took := applied.Sub(restored)
		t.Logf("first replayed record applied %v after the path is back", took)
		require.LessOrEqual(t, took, 300*time.Millisecond+3*zeroRTT)
	})
}

// replayRouter is a simtest.Router that, once armed, captures the
// client's first flight (every packet it sends within a millisecond of
// the first), delivers each of those packets twice, and can replay them
// later from another address, as an attacker who recorded them would.
type replayRouter struct {
	*simtest.Router
	mu       sync.Mutex
	armed    bool
	firstAt  time.Time
	captured []simnet.Packet
}

func (r *replayRouter) SendPacket(p simnet.Packet) error {
	r.mu.Lock()
	dup := false
	if r.armed && p.From.String() == simClientAddr.String() {
		if r.firstAt.IsZero() {
			r.firstAt = time.Now()
		}
		if time.Since(r.firstAt) <= time.Millisecond {
			r.captured = append(r.captured, simnet.Packet{To: p.To, From: p.From, Data: bytes.Clone(p.Data)})
			dup = true
		}
	}
	r.mu.Unlock()
	if dup {
		_ = r.Router.SendPacket(simnet.Packet{To: p.To, From: p.From, Data: bytes.Clone(p.Data)})
	}
	return r.Router.SendPacket(p)
}

func (r *replayRouter) arm() {
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
}

// replay sends the captured flight again from addr.
func (r *replayRouter) replay(from net.Addr) int {
	r.mu.Lock()
	pkts := r.captured
	r.mu.Unlock()
	for _, p := range pkts {
		_ = r.Router.SendPacket(simnet.Packet{To: p.To, From: from, Data: bytes.Clone(p.Data)})
	}
	return len(pkts)
}

// attackerAddr is where the replayed flight comes from.
var attackerAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.66"), Port: 6666}

// TestResumable0RTTReplay: the client's first flight of a 0-RTT
// reconnection (resume HELLO in 0-RTT, and behind it, as an optimistic
// resume, records 101-110) is delivered twice, and replayed later from
// another address while the resumed stream is live. Nothing is applied
// twice, the replayed resume HELLO does not take the key from the live
// stream (it waits for a handshake the replay cannot complete, and is
// refused, so its records are never read), and the live stream goes on
// without a reconnection. TestResumeEarlyReplayDetached replays such a
// flight while the key has no live stream.
func TestResumable0RTTReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rr := newReplayNet(t)
		rs := m.loseAndResume(t, rr.arm)
		defer rs.Close(context.Background())
		ctx := context.Background()
		resumes := rs.Snapshot().Stats.Resumes
		require.Equal(t, uint64(1), resumes)
		m.serverMu.Lock()
		live := m.servers[len(m.servers)-1]
		m.serverMu.Unlock()
		require.True(t, live.QUIC().ConnectionState().Used0RTT)
		m.log.mu.Lock()
		require.Equal(t, 1, m.log.optimistic, "the flight carried records behind the resume HELLO")
		m.log.mu.Unlock()

		time.Sleep(500 * time.Millisecond)
		require.Positive(t, rr.replay(attackerAddr))
		time.Sleep(DefaultHelloTimeout + time.Second)
		for i := range 10 {
			_, err := rs.Send(ctx, []byte{byte(i)})
			require.NoError(t, err)
		}
		require.NoError(t, rs.Barrier(ctx))

		require.Zero(t, m.log.twice.Load(), "nothing applied twice")
		_, ok := m.log.applied(120)
		require.True(t, ok)
		snap := rs.Snapshot()
		require.True(t, snap.Connected)
		require.Equal(t, resumes, snap.Stats.Resumes, "the live stream kept its key and its connection")
		m.serverMu.Lock()
		replayed := m.servers[len(m.servers)-1]
		m.serverMu.Unlock()
		require.NotSame(t, live, replayed, "the replay made a connection of its own")
		require.Equal(t, attackerAddr.String(), replayed.RemoteAddr().String())
		require.Equal(t, uint64(1), replayed.ZeroRTTHeld(), "the replayed resume HELLO waited for the handshake")
		require.Equal(t, uint64(1), replayed.RefusedStreams(), "and was refused")
		m.log.mu.Lock()
		defer m.log.mu.Unlock()
		require.Equal(t, []refusedStream{{code: CodeRefused, optimistic: true}}, m.log.refused, "the replayed optimistic resume was refused before its records were read")
	})
}

// TestPlainStreamNot0RTT: on a connection dialed with 0-RTT, a plain
// stream's HELLO (and so its records) waits for the handshake, while a
// resumable stream's HELLO travels in 0-RTT.
func TestPlainStreamNot0RTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newReconnectNet(t, true, nil)
		ctx := context.Background()
		first, err := m.dial(ctx) // a full handshake: the session ticket
		require.NoError(t, err)
		time.Sleep(2 * zeroRTT) // the ticket follows the handshake
		require.NoError(t, first.Close())
		conn, err := m.dial(ctx)
		require.NoError(t, err)
		defer conn.Close()
		s, err := conn.OpenRecordStream(ctx, StreamOptions{Scope: "plain"})
		require.NoError(t, err)
		_, err = s.Send(ctx, []byte("x"))
		require.NoError(t, err)
		require.NoError(t, s.Barrier(ctx))
		require.True(t, conn.QUIC().ConnectionState().Used0RTT)
		m.log.mu.Lock()
		defer m.log.mu.Unlock()
		require.Zero(t, m.log.early[false], "no plain stream in 0-RTT")
		require.Equal(t, 1, m.log.late[false])
	})
}
