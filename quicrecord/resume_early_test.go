package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/simtest"
)

// Optimistic resumes (resume_early.go, docs/PROTOCOL.md §6.5), over the
// 0-RTT reconnection rig of zerortt_test.go.

// waitApplied waits, in virtual time, until the acceptor applied seq.
func (m *reconnectNet) waitApplied(t *testing.T, seq uint64) {
	t.Helper()
	for range 100 {
		if _, ok := m.log.applied(seq); ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("record %d not applied within a second", seq)
}

// sendN sends n one-byte records.
func sendN(t *testing.T, rs *ResumableStream, n int) {
	t.Helper()
	for i := range n {
		_, err := rs.Send(context.Background(), []byte{byte(i)})
		require.NoError(t, err)
	}
}

// TestResumeEarlyDuplicates: the acceptor applied 40 records whose acks
// never reached the opener (more than the early window), then the path
// was cut. The optimistic resume sends them again from the opener's
// acked position; the acceptor drops and acknowledges them, and applies
// the records after them once each. Without the feature the opener drops
// them on the reply instead: the outcome is the same.
func TestResumeEarlyDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name       string
		disable    Features
		optimistic int
	}{
		{name: "optimistic", optimistic: 1},
		{name: "acceptor without resume-early", disable: FeatureResumeEarly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stls, ctls := tlsPair(t)
				m := newReconnectNetTLS(t, true, nil, stls, ctls, ResumeStoreConfig{AllowAnonymous: true}, tc.disable)
				// A fixed window: the 40 records sent while acks are lost
				// must all go out, and the adaptive window after 100
				// one-byte records can be anywhere from its floor of 16
				// (then record 140 is never sent) to a couple of hundred.
				m.clientStream = StreamConfig{Window: WindowFixed}
				ctx := context.Background()
				rs, err := NewResumableStream(ctx, m.dial, &Config{QUIC: zeroRTTQUIC()}, ResumeOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
				require.NoError(t, err)
				defer rs.Close(ctx)
				sendN(t, rs, 100)
				require.NoError(t, rs.Barrier(ctx))
				time.Sleep(zeroRTT) // the session ticket arrives after the handshake

				m.router.SetLossTo(simClientAddr, 1) // acks (and everything else) to the opener are lost
				sendN(t, rs, 40)
				m.waitApplied(t, 140)
				m.router.Cut()
				m.cut.Store(true)
				m.router.SetLossTo(simClientAddr, 0)
				sendN(t, rs, 5)
				require.Equal(t, uint64(100), rs.Snapshot().AckedSeq, "the acks of 101-140 were lost")
				time.Sleep(3 * time.Second)
				m.cut.Store(false)
				m.router.Restore()
				require.NoError(t, rs.Barrier(ctx))

				require.Zero(t, m.log.twice.Load(), "nothing applied twice")
				_, ok := m.log.applied(145)
				require.True(t, ok)
				snap := rs.Snapshot()
				require.Equal(t, uint64(145), snap.AckedSeq)
				require.Zero(t, snap.Retained)
				require.Equal(t, uint64(1), snap.Stats.Resumes)
				require.Equal(t, uint64(40), snap.Stats.DuplicatesDropped, "101-140 were applied before the reconnection")
				require.NotNil(t, snap.Stream)
				require.Equal(t, uint64(145), snap.Stream.Out.AckedSeq)
				require.Zero(t, snap.Stream.Out.InFlightRecords, "every record sent on the resumed stream was acknowledged")
				require.Zero(t, snap.Stream.Out.InFlightBytes)
				require.Zero(t, snap.Stream.Errors.ProtocolViolations)
				rs.mu.Lock()
				cur := rs.cur
				rs.mu.Unlock()
				require.Equal(t, int64(minBatchBytes), cur.batchLimit.Load(), "the resumed stream's batches start small, and a few one-byte records give no rate to lift them")
				m.log.mu.Lock()
				defer m.log.mu.Unlock()
				require.Equal(t, tc.optimistic, m.log.optimistic)
				require.Empty(t, m.log.refused)
			})
		})
	}
}

// TestResumeEarlyLostState: the acceptor lost the key and restores it
// from a durable store that is behind what it acknowledged (50 of 100).
// The optimistic resume's records start at 101, beyond 51: the acceptor
// replies with 50 and refuses the stream with RESUME_UNKNOWN, applying
// nothing, and the opener reports 51-100 in doubt, as it does without
// the feature.
func TestResumeEarlyLostState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		disable Features
		refused []refusedStream
	}{
		{name: "optimistic", refused: []refusedStream{{code: CodeResumeUnknown, optimistic: true}}},
		{name: "acceptor without resume-early", disable: FeatureResumeEarly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stls, ctls := tlsPair(t)
				store := ResumeStoreConfig{AllowAnonymous: true, TTL: time.Second,
					LoadApplied: func(context.Context, ResumeKeyInfo) (uint64, bool, error) { return 50, true, nil }}
				m := newReconnectNetTLS(t, true, nil, stls, ctls, store, tc.disable)
				ctx := context.Background()
				rs, err := NewResumableStream(ctx, m.dial, &Config{QUIC: zeroRTTQUIC()}, ResumeOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
				require.NoError(t, err)
				sendN(t, rs, 100)
				require.NoError(t, rs.Barrier(ctx))
				time.Sleep(zeroRTT)
				m.router.Cut()
				m.cut.Store(true)
				sendN(t, rs, 10)
				time.Sleep(3 * time.Second) // the key expires after its stream ended
				m.cut.Store(false)
				m.router.Restore()
				<-rs.Context().Done()

				var re *ResumeError
				require.ErrorAs(t, rs.Err(), &re)
				require.ErrorIs(t, re, ErrResumeUnknown)
				require.Equal(t, [2]uint64{51, 100}, [2]uint64{re.FirstUnknown, re.LastUnknown}, "the records the acceptor acknowledged and lost are in doubt")
				_, ok := m.log.applied(101)
				require.False(t, ok, "nothing applied after the acceptor's position")
				require.Zero(t, m.log.twice.Load())
				require.Equal(t, uint64(2), rs.Snapshot().Stats.Connects)
				m.log.mu.Lock()
				defer m.log.mu.Unlock()
				require.Equal(t, tc.refused, m.log.refused)
				require.Error(t, rs.Close(ctx))
			})
		})
	}
}

// TestResumeEarlyReplayDetached: the first flight of an optimistic
// resume in 0-RTT (resume HELLO and records 101-110) is replayed from
// another address while the key has no live stream. The acceptor takes
// the key for the replay (nothing proves it is one; §6.4 allows it),
// drops every record of it as applied already, and applies nothing
// twice; the opener, once back, takes its key over after its handshake
// completes and goes on.
func TestResumeEarlyReplayDetached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rr := newReplayNet(t)
		rs := m.loseAndResume(t, rr.arm)
		ctx := context.Background()
		defer rs.Close(ctx)
		sendN(t, rs, 10)
		require.NoError(t, rs.Barrier(ctx))
		m.log.mu.Lock()
		require.Equal(t, 1, m.log.optimistic, "the captured flight carried records behind the resume HELLO")
		m.log.mu.Unlock()

		// The opener's connection ends (its dials fail for now): the
		// acceptor keeps the key, detached.
		m.cut.Store(true)
		rs.mu.Lock()
		conn := rs.curConn
		rs.mu.Unlock()
		require.NoError(t, conn.QUIC().CloseWithError(0, "gone"))
		time.Sleep(2 * time.Second) // the acceptor forgets the closed connection's IDs
		require.Positive(t, rr.replay(attackerAddr))
		time.Sleep(time.Second)
		m.serverMu.Lock()
		replayed := m.servers[len(m.servers)-1]
		m.serverMu.Unlock()
		require.Equal(t, attackerAddr.String(), replayed.RemoteAddr().String())
		require.Zero(t, replayed.ZeroRTTHeld(), "no live stream held the key: the replay took it at once")
		m.log.mu.Lock()
		require.Equal(t, 2, m.log.early[true], "the replayed resume HELLO was accepted in 0-RTT")
		require.Equal(t, 2, m.log.optimistic, "the replay resumed the detached key")
		m.log.mu.Unlock()
		require.Zero(t, m.log.twice.Load(), "the replayed records were dropped")

		m.cut.Store(false)
		sendN(t, rs, 10)
		require.NoError(t, rs.Barrier(ctx))
		require.Zero(t, m.log.twice.Load(), "nothing applied twice")
		_, ok := m.log.applied(130)
		require.True(t, ok)
		require.Equal(t, uint64(2), rs.Snapshot().Stats.Resumes)
	})
}

// fleetNet is a client and two acceptors that share one ResumeStore (a
// fleet), each listening on its own address; the client dials the one
// target names.
type fleetNet struct {
	router  *simtest.Router
	cut     atomic.Bool
	target  atomic.Int32
	dial    func(ctx context.Context) (*Conn, error)
	log     *applyLog
	servers []*reconnectNet
}

var fleetAddrs = []*net.UDPAddr{simServerAddr, simClient2Addr}

// newFleetNet starts the fleet; acceptor i disables disable[i].
func newFleetNet(t *testing.T, disable [2]Features) *fleetNet {
	t.Helper()
	stls, ctls := tlsPair(t)
	f := &fleetNet{router: simtest.NewRouter(simtest.Seed(t, 20), 0), log: &applyLog{at: map[uint64]time.Time{}, early: map[bool]int{}, late: map[bool]int{}}}
	n := simtest.NewNet(t, f.router, simtest.Latency(zeroRTT/2))
	cconn := n.Endpoint(simClientAddr)
	sconns := []*simnet.SimConn{n.Endpoint(fleetAddrs[0]), n.Endpoint(fleetAddrs[1])}
	n.Start()
	store := NewResumeStore(ResumeStoreConfig{AllowAnonymous: true})
	stls = withALPN(stls) // one config: the acceptors share their session ticket keys
	for i, sc := range sconns {
		eln, err := simtest.Transport(t, sc).ListenEarly(stls, zeroRTTQUIC())
		require.NoError(t, err)
		ln, err := NewEarlyListener(eln, &Config{ResumeStore: store, QUIC: zeroRTTQUIC(), DisableFeatures: disable[i]})
		require.NoError(t, err)
		m := &reconnectNet{ln: ln, log: f.log}
		m.serve(t)
		f.servers = append(f.servers, m)
	}
	ctr := simtest.Transport(t, cconn)
	ctls = withALPN(ctls)
	ctls.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	f.dial = func(ctx context.Context) (*Conn, error) {
		if f.cut.Load() {
			return nil, errors.New("network unreachable")
		}
		qc, err := ctr.DialEarly(ctx, fleetAddrs[f.target.Load()], ctls, zeroRTTQUIC())
		if err != nil {
			return nil, err
		}
		return NewConn(qc, &Config{QUIC: zeroRTTQUIC()})
	}
	return f
}

// TestResumeEarlyOfferWithdrawn: the stream's first acceptor offered
// optimistic resumes; after the connection is lost it reconnects to
// another acceptor of the fleet (same resume state), an older build that
// does not offer them (with or without early-records). The optimistic
// resume's reply lacks resume-early: the opener ends that stream and
// opens it again on the same connection the ordinary way, and every
// record is applied once. The reconnection after that is ordinary too.
func TestResumeEarlyOfferWithdrawn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		disable Features
	}{
		{name: "with early-records", disable: FeatureResumeEarly},
		{name: "without early-records", disable: FeatureResumeEarly | FeatureEarlyRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFleetNet(t, [2]Features{0, tc.disable})
				ctx := context.Background()
				rs, err := NewResumableStream(ctx, f.dial, &Config{QUIC: zeroRTTQUIC()}, ResumeOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
				require.NoError(t, err)
				defer rs.Close(ctx)
				sendN(t, rs, 100)
				require.NoError(t, rs.Barrier(ctx))
				for lost := range 2 {
					f.router.Cut()
					f.cut.Store(true)
					sendN(t, rs, 10)
					time.Sleep(3 * time.Second)
					f.target.Store(1)
					f.cut.Store(false)
					f.router.Restore()
					require.NoError(t, rs.Barrier(ctx))
					require.Zero(t, f.log.twice.Load(), "nothing applied twice")
					_, ok := f.log.applied(uint64(110 + 10*lost))
					require.True(t, ok)
				}
				snap := rs.Snapshot()
				require.Equal(t, uint64(2), snap.Stats.Resumes)
				require.Equal(t, uint64(3), snap.Stats.Connects, "the withdrawn offer was followed on the same connection")
				f.log.mu.Lock()
				defer f.log.mu.Unlock()
				require.Zero(t, f.log.optimistic, "the second acceptor took no optimistic resume")
				require.Equal(t, 4, f.log.early[true]+f.log.late[true], "streams accepted: the first, the optimistic resume ended after its reply, its ordinary reopening, the next reconnection")
			})
		})
	}
}

// earlyHello is a raw opener's resume HELLO for key at position, with
// the features features on top of resume and early-records.
func earlyHello(key []byte, position uint64, features Features) *frames.Hello {
	h := rawHello()
	h.Features |= FeatureResume | FeatureEarlyRecords | features
	h.Extensions = []frames.Extension{
		{ID: frames.ExtResumeKey, Value: key},
		{ID: frames.ExtResumePosition, Value: quicvarint.Append(nil, position)},
	}
	return h
}

// seqBatch is a BATCH of records first to last, each its seq in decimal.
func seqBatch(first, last uint64) []byte {
	var recs []string
	for seq := first; seq <= last; seq++ {
		recs = append(recs, strconv.FormatUint(seq, 10))
	}
	return batch(first, recs...)
}

// TestResumeEarlyAcceptorRules: a raw opener resumes a key whose
// acceptor applied records 1-10, sending its records right behind the
// resume HELLO. The acceptor (PROTOCOL.md §6.5) takes the opener's
// numbering from its position, drops and acknowledges every record up to
// 10 and delivers the rest once; a first BATCH elsewhere than the
// position is a SEQUENCE_GAP; a position beyond 11 is refused with
// RESUME_UNKNOWN after the reply, delivering nothing; without
// resume-early the records must start at 11, as for any resumed stream.
func TestResumeEarlyAcceptorRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		features  Features
		position  uint64
		batches   [][2]uint64
		delivered []uint64 // nil with a refusal
		ack       uint64   // the last ack the opener reads
		refusal   ErrorCode
	}{
		{name: "straddling", features: FeatureResumeEarly, position: 4, batches: [][2]uint64{{4, 12}}, delivered: []uint64{11, 12}, ack: 12},
		{name: "duplicates then new", features: FeatureResumeEarly, position: 4, batches: [][2]uint64{{4, 6}, {7, 10}, {11, 11}}, delivered: []uint64{11}, ack: 11},
		{name: "only duplicates", features: FeatureResumeEarly, position: 4, batches: [][2]uint64{{4, 10}}, ack: 10},
		{name: "at the acceptor's position", features: FeatureResumeEarly, position: 11, batches: [][2]uint64{{11, 13}}, delivered: []uint64{11, 12, 13}, ack: 13},
		{name: "first batch off the position", features: FeatureResumeEarly, position: 4, batches: [][2]uint64{{5, 12}}, refusal: CodeSequenceGap},
		{name: "acceptor behind the position", features: FeatureResumeEarly, position: 13, batches: [][2]uint64{{13, 14}}, refusal: CodeResumeUnknown},
		{name: "without resume-early", position: 4, batches: [][2]uint64{{4, 12}}, refusal: CodeSequenceGap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				runAcceptorRule(t, tc.features, tc.position, tc.batches, tc.delivered, tc.ack, tc.refusal)
			})
		})
	}
}

func runAcceptorRule(t *testing.T, features Features, position uint64, batches [][2]uint64, delivered []uint64, ack uint64, refusal ErrorCode) {
	ctx := context.Background()
	var refused []ErrorCode
	var mu sync.Mutex
	scfg := &Config{ResumeStore: NewResumeStore(ResumeStoreConfig{AllowAnonymous: true}),
		OnStreamRefused: func(_ *AcceptInfo, err *StreamError) { mu.Lock(); refused = append(refused, err.Code); mu.Unlock() }}
	rawConn, qs := newSimQUIC(t, nil, scfg, nil, simRTT/2)
	conn, err := NewConn(qs, scfg)
	require.NoError(t, err)
	defer conn.Close()
	key := []byte("raw-resume-key")

	// The key applies 1-10, then its stream is reset: the key is kept.
	str, err := rawConn.OpenStreamSync(ctx)
	require.NoError(t, err)
	first := newRawPeer(t, str)
	s := first.handshake(ctx, conn, earlyHello(key, 1, 0))
	first.write(seqBatch(1, 10))
	for range 10 {
		_, err := s.Recv(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, s.Ack(10))
	require.NoError(t, s.Barrier(ctx))
	time.Sleep(simRTT) // the ack reaches the raw opener
	resetStream(str, CodeCancelled)
	<-s.Context().Done()

	str, err = rawConn.OpenStreamSync(ctx)
	require.NoError(t, err)
	raw := newRawPeer(t, str)
	raw.write(earlyHello(key, position, features).Append(nil))
	for _, b := range batches {
		raw.write(seqBatch(b[0], b[1]))
	}
	typ, payload, err := raw.next()
	require.NoError(t, err)
	require.Equal(t, frames.TypeHello, typ)
	reply, _, err := frames.ParseHello(payload)
	require.NoError(t, err)
	pos, ok := reply.Extension(frames.ExtResumePosition)
	require.True(t, ok)
	require.Equal(t, quicvarint.Append(nil, 10), pos, "the reply carries the key's position")
	require.True(t, reply.Features.Has(FeatureResumeEarly|FeatureEarlyRecords), "the acceptor offers resume-early in every reply")

	if refusal != 0 {
		raw.expectRefusal(refusal)
		if refusal == CodeSequenceGap {
			// Accepted, then ended before delivering anything.
			s, err := conn.AcceptRecordStream(ctx)
			require.NoError(t, err)
			_, err = s.Recv(ctx)
			require.ErrorIs(t, err, ErrSequenceGap)
		} else {
			mu.Lock()
			require.Equal(t, []ErrorCode{refusal}, refused)
			mu.Unlock()
		}
		return
	}
	s, err = conn.AcceptRecordStream(ctx)
	require.NoError(t, err)
	var got []uint64
	for range delivered {
		r, err := s.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, strconv.FormatUint(r.Seq, 10), string(r.Data))
		got = append(got, r.Seq)
		require.NoError(t, s.Ack(r.Seq))
	}
	require.Equal(t, delivered, got, "only the records after 10, once each")
	last := uint64(0)
	for last < ack {
		typ, payload, err := raw.next()
		require.NoError(t, err)
		if typ != frames.TypeAck {
			continue
		}
		a, _, err := frames.ParseAck(payload)
		require.NoError(t, err)
		require.Greater(t, a, last, "acks grow")
		require.LessOrEqual(t, a, batches[len(batches)-1][1], "an ack never exceeds what was sent")
		last = a
	}
	require.Equal(t, ack, last)
	require.Empty(t, refused)
}

// TestResumeEarlyMatrix: openers and acceptors of three generations (the
// current build; one before resume-early; one before early-records too),
// each pairing over a 0-RTT reconnection. Only current with current
// resumes optimistically; every pairing resumes once and applies every
// record once.
func TestResumeEarlyMatrix(t *testing.T) {
	generations := []struct {
		name    string
		disable Features
	}{
		{name: "current"},
		{name: "pre-resume-early", disable: FeatureResumeEarly},
		{name: "pre-early-records", disable: FeatureResumeEarly | FeatureEarlyRecords},
	}
	for _, op := range generations {
		for _, ac := range generations {
			t.Run("opener="+op.name+"/acceptor="+ac.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					stls, ctls := tlsPair(t)
					m := newReconnectNetTLS(t, true, nil, stls, ctls, ResumeStoreConfig{AllowAnonymous: true}, ac.disable)
					m.clientDisable = op.disable
					rs := m.loseAndResume(t, nil)
					defer rs.Close(context.Background())
					require.Zero(t, m.log.twice.Load(), "nothing applied twice")
					_, ok := m.log.applied(110)
					require.True(t, ok)
					require.Equal(t, uint64(1), rs.Snapshot().Stats.Resumes)
					want := 0
					if op.disable == 0 && ac.disable == 0 {
						want = 1
					}
					m.log.mu.Lock()
					defer m.log.mu.Unlock()
					require.Equal(t, want, m.log.optimistic)
					require.Empty(t, m.log.refused)
				})
			})
		}
	}
}

// TestResumeEarlySuperseded: while an opener (epoch 1) is away, a newer
// opener of its key (epoch 2) takes the key over. The older one's
// optimistic resume is refused with SUPERSEDED in place of the reply:
// none of its records is applied, and it fails for good with the records
// it held in doubt, without redialing.
func TestResumeEarlySuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newReconnectNet(t, true, nil)
		ctx := context.Background()
		var dials atomic.Int32
		dial := func(ctx context.Context) (*Conn, error) { dials.Add(1); return m.dial(ctx) }
		key := []byte("clone")
		older, err := NewResumableStream(ctx, dial, &Config{QUIC: zeroRTTQUIC()}, ResumeOptions{Key: key, Epoch: 1, MinBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second})
		require.NoError(t, err)
		sendN(t, older, 100)
		require.NoError(t, older.Barrier(ctx))
		time.Sleep(zeroRTT)
		m.router.Cut()
		m.cut.Store(true)
		sendN(t, older, 10)
		time.Sleep(3 * time.Second)
		m.cut.Store(false)
		m.router.Restore()

		newer, err := NewResumableStream(ctx, m.dial, &Config{QUIC: zeroRTTQUIC()}, ResumeOptions{Key: key, Epoch: 2, FirstSeq: 101})
		require.NoError(t, err)
		sendN(t, newer, 5)
		require.NoError(t, newer.Barrier(ctx))
		<-older.Context().Done()

		var re *ResumeError
		require.ErrorAs(t, older.Err(), &re)
		require.ErrorIs(t, re, ErrSuperseded)
		require.Equal(t, [2]uint64{101, 110}, [2]uint64{re.FirstUnknown, re.LastUnknown})
		redials := dials.Load()
		time.Sleep(time.Minute)
		require.Equal(t, redials, dials.Load(), "a superseded opener does not redial")
		require.Zero(t, m.log.twice.Load(), "none of the older opener's records 101-110 was applied")
		_, ok := m.log.applied(106)
		require.False(t, ok)
		require.NoError(t, newer.Close(ctx))
		m.log.mu.Lock()
		defer m.log.mu.Unlock()
		require.Equal(t, []refusedStream{{code: CodeSuperseded, optimistic: true}}, m.log.refused)
	})
}
