package quicrecord

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// peerProfile is a peer of a given protocol generation. An old peer is
// this library configured down (v1), a current one this library (v2); a
// future one (v3) is played by a raw peer over a real quic-go stream (see
// futurePeer): it announces a version and feature bits this library does
// not know and an unknown HELLO extension, and sends unknown frame types
// between batches.
type peerProfile struct {
	name     string
	cfg      func() *Config // nil for the future peer
	maxVer   uint64
	features Features // what it announces and knows
}

func (p peerProfile) future() bool { return p.cfg == nil }

var profiles = []peerProfile{
	{name: "v1", maxVer: 1, cfg: func() *Config { return &Config{MaxProtocolVersion: 1} }},
	// A v2 build from before window-update (and compression, and
	// early-records).
	{name: "v2-prewindow", maxVer: 2, features: FeaturePiggybackAck | FeatureHalfClose, cfg: func() *Config {
		return &Config{DisableFeatures: FeatureWindowUpdate | FeatureCompression | FeatureEarlyRecords}
	}},
	// A v2 build from before compression (and early-records).
	{name: "v2-precompress", maxVer: 2, features: FeaturePiggybackAck | FeatureWindowUpdate | FeatureHalfClose, cfg: func() *Config {
		return &Config{DisableFeatures: FeatureCompression | FeatureEarlyRecords}
	}},
	// A v2 build from before early-records, compressing what it sends.
	{name: "v2-preearly", maxVer: 2, features: FeaturePiggybackAck | FeatureWindowUpdate | FeatureHalfClose | FeatureCompression, cfg: func() *Config {
		return &Config{DisableFeatures: FeatureEarlyRecords, Stream: compressingStream()}
	}},
	// The current build, compressing what it sends (as much as its peer
	// accepts).
	{name: "v2", maxVer: 2, features: FeaturePiggybackAck | FeatureWindowUpdate | FeatureHalfClose | FeatureCompression | FeatureEarlyRecords, cfg: func() *Config {
		return &Config{Stream: compressingStream()}
	}},
	{name: "v3", maxVer: 3, features: FeaturePiggybackAck},
}

// compressingStream is the stream settings of the matrix's compressing
// profiles: compressing what they send, in batches that linger 500µs so
// that they are large enough to compress, with acks held as long as
// allowed for a batch to ride in.
func compressingStream() StreamConfig {
	return StreamConfig{Compression: CompressionAuto, FlushDelay: 500 * time.Microsecond, AckDelay: MaxAckDelay}
}

// TestNegotiationMatrix runs every pairing of peer generations, each
// way round, with traffic in one or both directions: both sides agree on
// the version and the features, unknown bits, extensions and frame types
// are ignored (and unknown frames counted), acks ride in batches exactly
// when both sides have the feature, and every record arrives. A pairing
// of two future peers has no library end and is not run.
func TestNegotiationMatrix(t *testing.T) {
	t.Parallel()
	for _, op := range profiles {
		for _, ac := range profiles {
			if op.future() && ac.future() {
				continue
			}
			for _, both := range []bool{false, true} {
				name := fmt.Sprintf("opener=%s/acceptor=%s/bothWays=%v", op.name, ac.name, both)
				t.Run(name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						if op.future() || ac.future() {
							runFutureCell(t, op, ac, both)
						} else {
							runNegotiationCell(t, op, ac, both)
						}
					})
				})
			}
		}
	}
}

const matrixRecords = 10_000

// negotiationWant is what a pairing must negotiate.
func negotiationWant(op, ac peerProfile) (uint64, Features) {
	v := min(op.maxVer, ac.maxVer)
	if v < 2 {
		return v, 0
	}
	return v, op.features & ac.features & (FeaturePiggybackAck | FeatureWindowUpdate | FeatureHalfClose | FeatureCompression)
}

// earlyWant says whether an optimistic open of op's to ac goes without
// waiting for the reply (and negotiates early-records).
func earlyWant(op, ac peerProfile) bool {
	return min(op.maxVer, ac.maxVer) >= 2 && (op.features & ac.features).Has(FeatureEarlyRecords)
}

func runNegotiationCell(t *testing.T, op, ac peerProfile, both bool) {
	infoCh := make(chan AcceptInfo, 1)
	acfg := ac.cfg()
	acfg.AcceptHandler = func(_ context.Context, i *AcceptInfo) (*StreamConfig, error) { infoCh <- *i; return nil, nil }
	p := newSimPair(t, op.cfg(), acfg, nil, 2*time.Millisecond)
	o, a := p.openPair(t, false, StreamOptions{Scope: "matrix"})
	info := <-infoCh

	wantVer, wantFeat := negotiationWant(op, ac)
	for _, s := range []*RecordStream{o, a} {
		requireNegotiated(t, s, wantVer, wantFeat)
	}
	require.Equal(t, wantVer, info.Negotiated.Version)
	require.Equal(t, wantFeat, info.Negotiated.Features)
	require.Equal(t, op.features&^FeatureEarlyRecords, info.Negotiated.PeerFeatures, "a plain open does not announce early-records")

	// Traffic: o → a always, a → o too when both; paced so that both
	// directions are busy at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	counts := map[*RecordStream]*uint64{o: new(uint64), a: new(uint64)}
	for _, s := range []*RecordStream{o, a} {
		wg.Go(func() { *counts[s] = applyChecked(t, ctx, s) })
	}
	senders := []*RecordStream{o}
	if both {
		senders = append(senders, a)
	}
	var swg sync.WaitGroup
	for _, s := range senders {
		swg.Go(func() { sendPaced(t, ctx, s) })
	}
	swg.Wait()
	cancel()
	wg.Wait()
	require.Equal(t, uint64(matrixRecords), *counts[a], "every record reached the acceptor")
	if both {
		require.Equal(t, uint64(matrixRecords), *counts[o], "every record reached the opener")
	}

	// A frame written just before the snapshot may still be on the
	// simulated wire (a standalone ack for the last applied records, for
	// example): let the connection go quiet before comparing what one side
	// sent with what the other received.
	time.Sleep(50 * time.Millisecond)
	synctest.Wait()
	so, sa := o.Snapshot(), a.Snapshot()
	for _, pair := range [][2]RecordSnapshot{{so, sa}, {sa, so}} {
		tx, rx := pair[0], pair[1]
		require.Equal(t, tx.Acks.PiggybackedOut, rx.Acks.PiggybackedIn)
		require.Equal(t, tx.Acks.StandaloneOut, rx.Acks.StandaloneIn)
		require.Equal(t, tx.FramesOut.Batch, rx.FramesIn.Batch)
		require.Equal(t, tx.FramesOut.Unknown, rx.FramesIn.Unknown)
		require.Equal(t, tx.Compression.Out.Compressed, rx.Compression.In.Compressed)
		require.Equal(t, tx.Compression.Out.BytesBefore, rx.Compression.In.BytesBefore)
		require.Equal(t, tx.Compression.Out.BytesAfter, rx.Compression.In.BytesAfter)
	}
	// Batches go compressed exactly when both sides have the feature
	// (a v1 or pre-compression peer gets plain ones), and the peer's
	// codecs are known exactly then.
	if wantFeat.Has(FeatureCompression) {
		require.ElementsMatch(t, []Compression{CompressionS2, CompressionZstd}, o.Negotiated().PeerCodecs)
		require.Positive(t, so.Compression.Out.Compressed, "the opener compresses what it sends")
		if both {
			require.Positive(t, sa.Compression.Out.Compressed)
		}
	} else {
		require.Empty(t, o.Negotiated().PeerCodecs)
		require.Empty(t, a.Negotiated().PeerCodecs)
		require.Zero(t, so.Compression.Out.Compressed+sa.Compression.Out.Compressed)
	}
	if wantFeat.Has(FeaturePiggybackAck) && both {
		require.Positive(t, sa.Acks.PiggybackedOut, "acks ride in batches when both directions are busy")
		require.Positive(t, so.Acks.PiggybackedOut)
	} else {
		require.Zero(t, sa.Acks.PiggybackedOut, "no piggyback without the feature on both sides, or without reverse traffic")
		require.Zero(t, so.Acks.PiggybackedOut)
		require.Positive(t, sa.Acks.StandaloneOut)
	}
	// Neither side of this library sends unknown frames.
	require.Zero(t, so.FramesIn.Unknown)
	require.Zero(t, sa.FramesIn.Unknown)
	require.Zero(t, so.Errors.ProtocolViolations)
	require.Zero(t, sa.Errors.ProtocolViolations)
	require.NoError(t, o.Close(context.Background()))
	require.NoError(t, a.Close(context.Background()))
	requireOptimisticGate(t, p, earlyWant(op, ac))
}

// requireOptimisticGate opens a second stream with OptimisticOpen on a
// connection whose first stream was negotiated: it opens without waiting
// for the reply exactly when the acceptor announced early-records, and
// its records arrive either way.
func requireOptimisticGate(t *testing.T, p *pair, early bool) {
	ctx := context.Background()
	start := time.Now()
	o, err := p.client.OpenRecordStream(ctx, StreamOptions{Scope: "optimistic", OptimisticOpen: true})
	require.NoError(t, err)
	require.Equal(t, early, time.Since(start) == 0, "an optimistic open skips the wait for the reply only with early-records")
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	accepted := make(chan *RecordStream, 1)
	applied := make(chan uint64, 1)
	go func() {
		a, err := p.server.AcceptRecordStream(actx)
		accepted <- a
		if err == nil {
			applied <- applyChecked(t, actx, a)
		}
	}()
	for seq := uint64(1); seq <= 2*EarlyWindowRecords; seq++ {
		_, err := o.Send(ctx, payloadFor(seq))
		require.NoError(t, err)
	}
	require.NoError(t, o.Barrier(ctx))
	a := <-accepted
	cancel()
	require.Equal(t, uint64(2*EarlyWindowRecords), <-applied)
	require.Zero(t, a.Snapshot().Errors.ProtocolViolations)
	require.Equal(t, early, a.Negotiated().Features.Has(FeatureEarlyRecords))
	require.Equal(t, early, o.Negotiated().Features.Has(FeatureEarlyRecords))
}

// runFutureCell pairs this library with a future peer, in either role.
// The library end must negotiate what the shared versions define, ignore
// what it does not know (and count the unknown frames), and exchange
// every record; the future peer's own counts must mirror the library's.
func runFutureCell(t *testing.T, op, ac peerProfile, both bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	lib := ac
	if ac.future() {
		lib = op
	}
	libOpens := ac.future()
	var s *RecordStream
	var fp *futurePeer
	if libOpens {
		qc, rawConn := newSimQUIC(t, lib.cfg(), nil, nil, 2*time.Millisecond)
		conn, err := NewConn(qc, lib.cfg())
		require.NoError(t, err)
		defer conn.Close()
		opened := make(chan error, 1)
		go func() {
			var err error
			s, err = conn.OpenRecordStream(ctx, StreamOptions{Scope: "matrix"})
			opened <- err
		}()
		str, err := rawConn.AcceptStream(ctx)
		require.NoError(t, err)
		fp = newFuturePeer(t, str)
		fp.accept()
		require.NoError(t, <-opened)
		require.Equal(t, "matrix", fp.peerHello.Scope)
	} else {
		rawConn, qs := newSimQUIC(t, nil, lib.cfg(), nil, 2*time.Millisecond)
		infoCh := make(chan AcceptInfo, 1)
		cfg := lib.cfg()
		cfg.AcceptHandler = func(_ context.Context, i *AcceptInfo) (*StreamConfig, error) { infoCh <- *i; return nil, nil }
		conn, err := NewConn(qs, cfg)
		require.NoError(t, err)
		defer conn.Close()
		str, err := rawConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		fp = newFuturePeer(t, str)
		fp.open("matrix")
		s, err = conn.AcceptRecordStream(ctx)
		require.NoError(t, err)
		info := <-infoCh
		require.Equal(t, "matrix", info.Scope)
		require.Equal(t, s.Negotiated(), info.Negotiated)
	}

	wantVer, wantFeat := negotiationWant(op, ac)
	requireNegotiated(t, s, wantVer, wantFeat)
	require.Equal(t, futureFeatures, s.Negotiated().PeerFeatures, "the peer's unknown bits are reported, never effective")
	require.Equal(t, VersionRange{1, 3}, s.Negotiated().Peer)
	require.Equal(t, wantFeat.Has(FeaturePiggybackAck), fp.piggy, "both ends agree on piggybacked acks")

	// Traffic: opener → acceptor always, the other way too when both.
	libSends, peerSends := libOpens || both, !libOpens || both
	actx, stopApply := context.WithCancel(ctx)
	applied := make(chan uint64, 1)
	go func() { applied <- applyChecked(t, actx, s) }()
	var wg sync.WaitGroup
	if libSends {
		wg.Go(func() { sendPaced(t, ctx, s) })
	}
	if peerSends {
		wg.Go(func() {
			if err := fp.sendAll(ctx, matrixRecords); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if peerSends {
		// The library acked every record: it applied them all.
		require.Equal(t, uint64(matrixRecords), s.Snapshot().In.AppliedSeq)
	}
	stopApply()
	got := <-applied
	require.NoError(t, s.Close(context.Background()))
	fp.finish()
	if libSends {
		require.Equal(t, uint64(matrixRecords), fp.received, "every record reached the future peer")
	}
	if peerSends {
		require.Equal(t, uint64(matrixRecords), got, "every record of the future peer was applied")
	}

	// Each side's frames out are the other's frames in.
	snap := s.Snapshot()
	fp.wmu.Lock()
	out := fp.out
	fp.wmu.Unlock()
	require.Equal(t, snap.FramesOut.Batch, fp.in.batches)
	require.Equal(t, snap.Acks.PiggybackedOut, fp.in.piggyAcks)
	require.Equal(t, snap.Acks.StandaloneOut, fp.in.soloAcks)
	require.Equal(t, snap.FramesOut.Unknown, fp.in.unknown)
	require.Zero(t, fp.in.errors, "the library sent no ERROR")
	require.Equal(t, out.batches, snap.FramesIn.Batch)
	require.Equal(t, out.piggyAcks, snap.Acks.PiggybackedIn)
	require.Equal(t, out.soloAcks, snap.Acks.StandaloneIn)
	require.Equal(t, out.unknown, snap.FramesIn.Unknown, "the peer's unknown frames are skipped and counted")
	if peerSends {
		require.Positive(t, snap.FramesIn.Unknown)
	}
	if wantFeat.Has(FeaturePiggybackAck) && both {
		require.Positive(t, snap.Acks.PiggybackedOut, "acks ride in batches when both directions are busy")
		require.Positive(t, snap.Acks.PiggybackedIn)
	} else {
		require.Zero(t, snap.Acks.PiggybackedOut, "no piggyback without the feature on both sides, or without reverse traffic")
		require.Zero(t, snap.Acks.PiggybackedIn)
		require.Positive(t, snap.Acks.StandaloneOut+out.soloAcks)
	}
	require.Zero(t, snap.Errors.ProtocolViolations)
}

// requireNegotiated checks a stream's negotiated version and features,
// and that its snapshot reports the same.
func requireNegotiated(t *testing.T, s *RecordStream, ver uint64, feat Features) {
	t.Helper()
	neg := s.Negotiated()
	require.Equal(t, ver, neg.Version)
	require.Equal(t, feat, neg.Features, "unknown bits never become effective")
	require.Equal(t, ver, s.Snapshot().Identity.Version)
	require.Equal(t, feat, s.Snapshot().Identity.Features)
}

// applyChecked applies s's records until ctx ends, checking their order
// and payloads, and returns the last sequence number applied.
func applyChecked(t *testing.T, ctx context.Context, s *RecordStream) uint64 {
	var last uint64
	_ = s.Apply(ctx, func(r Record) error {
		if r.Seq != last+1 {
			t.Errorf("seq %d, want %d", r.Seq, last+1)
		}
		if !bytes.Equal(r.Data, payloadFor(r.Seq)) {
			t.Errorf("record %d: wrong payload", r.Seq)
		}
		last = r.Seq
		return nil
	})
	return last
}

// sendPaced sends matrixRecords records, pausing 50µs every 20 so that
// the other direction is busy at the same time, then waits on Barrier.
func sendPaced(t *testing.T, ctx context.Context, s *RecordStream) {
	for seq := uint64(1); seq <= matrixRecords; seq++ {
		if _, err := s.Send(ctx, payloadFor(seq)); err != nil {
			t.Error(err)
			return
		}
		if seq%20 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if err := s.Barrier(ctx); err != nil {
		t.Error(err)
	}
}

// payloadFor is a deterministic record for seq, in the format checkPayload
// verifies.
func payloadFor(seq uint64) []byte {
	b := make([]byte, 8+int(seq%50))
	for i := range b {
		b[i] = byte(seq) ^ byte(i)
	}
	binary.BigEndian.PutUint64(b, seq)
	return b
}

// TestVersionMismatch: peers whose ranges do not overlap refuse the stream
// with a typed error on both sides that names both ranges, and leave no
// stream behind.
func TestVersionMismatch(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opener, accept *Config
		wantReason     string
	}{
		{"old opener", &Config{MaxProtocolVersion: 1}, &Config{MinProtocolVersion: 2},
			"no common protocol version: opener speaks [1,1], acceptor speaks [2,2]"},
		{"old acceptor", &Config{MinProtocolVersion: 2}, &Config{MaxProtocolVersion: 1},
			"no common protocol version: opener speaks [2,2], acceptor speaks [1,1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				refusedCh := make(chan *StreamError, 1)
				tc.accept.OnStreamRefused = func(_ *AcceptInfo, err *StreamError) { refusedCh <- err }
				var handlerCalled atomic.Bool
				tc.accept.AcceptHandler = func(context.Context, *AcceptInfo) (*StreamConfig, error) {
					handlerCalled.Store(true)
					return nil, nil
				}
				p := newSimPair(t, tc.opener, tc.accept, nil, simRTT/2)
				_, err := p.client.OpenRecordStream(context.Background(), StreamOptions{})
				require.ErrorIs(t, err, ErrVersionMismatch)
				var se *StreamError
				require.ErrorAs(t, err, &se)
				require.True(t, se.Remote)
				require.Equal(t, tc.wantReason, se.Reason)
				refused := <-refusedCh
				require.ErrorIs(t, refused, ErrVersionMismatch)
				require.False(t, refused.Remote)
				require.Equal(t, tc.wantReason, refused.Reason)
				require.False(t, handlerCalled.Load(), "the application never sees a refused pairing")
				require.Empty(t, p.client.Snapshots())
				require.Empty(t, p.server.Snapshots())
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err = p.server.AcceptRecordStream(ctx)
				require.ErrorIs(t, err, context.DeadlineExceeded)
			})
		})
	}
}

// TestMixedVersionsOneConn: one connection carries a v1 and a v2 stream at
// once, each following what it negotiated.
func TestMixedVersionsOneConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, time.Millisecond)
		v1o, v1a := p.openPair(t, false, StreamOptions{Scope: "old", MaxProtocolVersion: 1})
		v2o, v2a := p.openPair(t, false, StreamOptions{Scope: "new"})
		require.Equal(t, uint64(1), v1o.Negotiated().Version)
		require.Equal(t, uint64(1), v1a.Negotiated().Version)
		require.False(t, v1a.Negotiated().PiggybackAcks())
		require.Equal(t, uint64(2), v2o.Negotiated().Version)
		require.True(t, v2a.Negotiated().PiggybackAcks())

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range []*RecordStream{v1o, v1a, v2o, v2a} {
			wg.Go(func() { _ = s.Apply(ctx, func(Record) error { return nil }) })
		}
		var swg sync.WaitGroup
		for _, s := range []*RecordStream{v1o, v1a, v2o, v2a} {
			swg.Go(func() {
				for i := range 2000 {
					if _, err := s.Send(ctx, []byte{byte(i)}); err != nil {
						t.Error(err)
						return
					}
					if i%10 == 9 {
						time.Sleep(50 * time.Microsecond)
					}
				}
				if err := s.Barrier(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		swg.Wait()
		cancel()
		wg.Wait()
		for _, s := range []*RecordStream{v1o, v1a} {
			snap := s.Snapshot()
			require.Zero(t, snap.Acks.PiggybackedOut)
			require.Zero(t, snap.Acks.PiggybackedIn)
			require.Positive(t, snap.Acks.StandaloneOut)
		}
		for _, s := range []*RecordStream{v2o, v2a} {
			require.Positive(t, s.Snapshot().Acks.PiggybackedOut)
		}
	})
}

// TestResumeEpochMatrix: resume-epoch is negotiated like every feature,
// and a peer without it keeps the earlier takeover: a newer stream of a
// key always takes it over, and the stream it replaces ends with
// CANCELLED. SUPERSEDED is sent only on streams that negotiated epochs.
func TestResumeEpochMatrix(t *testing.T) {
	for _, opener := range []bool{false, true} {
		for _, acceptor := range []bool{false, true} {
			t.Run(fmt.Sprintf("opener=%v/acceptor=%v", opener, acceptor), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { runEpochCell(t, opener, acceptor) })
			})
		}
	}
}

func runEpochCell(t *testing.T, opener, acceptor bool) {
	ctx := context.Background()
	off := func(on bool) Features {
		if on {
			return 0
		}
		return FeatureResumeEpoch
	}
	rig := newResumeRigAcceptor(t, ResumeStoreConfig{}, nil, nil, nil, func(server, client *Config) {
		server.DisableFeatures, client.DisableFeatures = off(acceptor), off(opener)
	})
	both := opener && acceptor
	want := FeatureResume
	if both {
		want |= FeatureResumeEpoch
	}
	ended := make(chan error, 1)
	first, err := rig.open(ResumeOptions{Key: []byte("k"), Epoch: 1, OnEvent: func(e ResumeEvent) {
		if e.Kind == ResumeDisconnected {
			select {
			case ended <- e.Err:
			default:
			}
		}
	}})
	require.NoError(t, err)
	sendSeqs(t, first, 1, 10)
	require.NoError(t, first.Barrier(ctx))
	require.Equal(t, want, first.Snapshot().Stream.Identity.Features&(FeatureResume|FeatureResumeEpoch))

	second, err := rig.open(ResumeOptions{Key: []byte("k"), Epoch: 2, FirstSeq: 11})
	require.NoError(t, err)
	code := CodeOf(<-ended)
	if !both {
		// The earlier takeover: the first opener's stream ends with
		// CANCELLED and it reconnects, taking the key back (the
		// flapping epochs end). Stop both.
		require.Equal(t, CodeCancelled, code, "no SUPERSEDED without epochs on both sides")
		_ = first.Close(ctx)
		_ = second.Close(ctx)
		return
	}
	require.Equal(t, CodeSuperseded, code)
	<-first.Context().Done()
	require.ErrorIs(t, first.Err(), ErrSuperseded)
	sendSeqs(t, second, 11, 20)
	require.NoError(t, second.Barrier(ctx))
	require.NoError(t, second.Close(ctx))
	rig.mu.Lock()
	defer rig.mu.Unlock()
	require.Zero(t, rig.dups)
}
