package quicrecord

import (
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

// peerProfile builds a peer of a given protocol generation from the same
// library: an old peer is configured down, a future one announces a
// version and feature bits this library does not know and sends unknown
// frame types between batches.
type peerProfile struct {
	name     string
	cfg      func() *Config
	maxVer   uint64
	features Features // what it announces and knows
}

const unknownFeatureBits = Features(1<<40 | 1<<7)

var profiles = []peerProfile{
	{name: "v1", maxVer: 1, cfg: func() *Config { return &Config{MaxProtocolVersion: 1} }},
	{name: "v2", maxVer: 2, features: FeaturePiggybackAck, cfg: func() *Config { return &Config{} }},
	{name: "v3", maxVer: 3, features: FeaturePiggybackAck, cfg: func() *Config {
		return &Config{testHooks: &testHooks{maxVersion: 3, extraFeatures: unknownFeatureBits, unknownFrames: true, helloExtension: true}}
	}},
}

func TestNegotiationMatrix(t *testing.T) {
	for _, op := range profiles {
		for _, ac := range profiles {
			for _, both := range []bool{false, true} {
				name := fmt.Sprintf("opener=%s/acceptor=%s/bothWays=%v", op.name, ac.name, both)
				t.Run(name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { runNegotiationCell(t, op, ac, both) })
				})
			}
		}
	}
}

func runNegotiationCell(t *testing.T, op, ac peerProfile, both bool) {
	const n = 10_000
	p := newSimPair(t, op.cfg(), ac.cfg(), nil, 2*time.Millisecond)
	infoCh := make(chan RecordAcceptInfo, 1)
	p.server.SetAcceptHandler(func(i RecordAcceptInfo) error { infoCh <- i; return nil })
	o, a := p.openPair(t, false, StreamOptions{Scope: "matrix"})
	info := <-infoCh

	wantVer := min(op.maxVer, ac.maxVer)
	wantFeat := Features(0)
	if wantVer >= 2 {
		wantFeat = op.features & ac.features & FeaturePiggybackAck
	}
	for _, s := range []*RecordStream{o, a} {
		neg := s.Negotiated()
		require.Equal(t, wantVer, neg.Version)
		require.Equal(t, wantFeat, neg.Features, "unknown bits never become effective")
		require.Equal(t, wantVer, s.Snapshot().Identity.Version)
		require.Equal(t, wantFeat, s.Snapshot().Identity.Features)
	}
	require.Equal(t, wantVer, info.Negotiated.Version)
	require.Equal(t, wantFeat, info.Negotiated.Features)
	require.Equal(t, op.features|extraBits(op), info.Negotiated.PeerFeatures)

	// Traffic: o → a always, a → o too when both; paced so that both
	// directions are busy at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	counts := map[*RecordStream]*uint64{o: new(uint64), a: new(uint64)}
	for _, s := range []*RecordStream{o, a} {
		wg.Go(func() {
			var next uint64 = 1
			_ = s.Apply(ctx, func(r Record) error {
				if r.Seq != next {
					t.Errorf("seq %d, want %d", r.Seq, next)
				}
				checkPayload(t, r.Seq, r.Data)
				next++
				*counts[s] = r.Seq
				return nil
			})
		})
	}
	senders := []*RecordStream{o}
	if both {
		senders = append(senders, a)
	}
	var swg sync.WaitGroup
	for _, s := range senders {
		swg.Go(func() {
			for seq := uint64(1); seq <= n; seq++ {
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
		})
	}
	swg.Wait()
	cancel()
	wg.Wait()
	require.Equal(t, uint64(n), *counts[a], "every record reached the acceptor")
	if both {
		require.Equal(t, uint64(n), *counts[o], "every record reached the opener")
	}

	so, sa := o.Snapshot(), a.Snapshot()
	for _, pair := range [][2]RecordSnapshot{{so, sa}, {sa, so}} {
		tx, rx := pair[0], pair[1]
		require.Equal(t, tx.Acks.PiggybackedOut, rx.Acks.PiggybackedIn)
		require.Equal(t, tx.Acks.StandaloneOut, rx.Acks.StandaloneIn)
		require.Equal(t, tx.FramesOut.Batch, rx.FramesIn.Batch)
		require.Equal(t, tx.FramesOut.Unknown, rx.FramesIn.Unknown)
	}
	if wantFeat.Has(FeaturePiggybackAck) && both {
		require.Positive(t, sa.Acks.PiggybackedOut, "acks ride in batches when both directions are busy")
		require.Positive(t, so.Acks.PiggybackedOut)
	} else {
		require.Zero(t, sa.Acks.PiggybackedOut, "no piggyback without the feature on both sides, or without reverse traffic")
		require.Zero(t, so.Acks.PiggybackedOut)
		require.Positive(t, sa.Acks.StandaloneOut)
	}
	// Future peers put unknown frames between batches; they are skipped
	// and counted.
	for _, c := range []struct {
		prof peerProfile
		rx   RecordSnapshot
		tx   *RecordStream
	}{{op, sa, o}, {ac, so, a}} {
		if c.prof.name == "v3" && (c.tx == o || both) {
			require.Positive(t, c.rx.FramesIn.Unknown)
		} else {
			require.Zero(t, c.rx.FramesIn.Unknown)
		}
	}
	require.Zero(t, so.Errors.ProtocolViolations)
	require.Zero(t, sa.Errors.ProtocolViolations)
	require.NoError(t, o.Close())
	require.NoError(t, a.Close())
}

func extraBits(p peerProfile) Features {
	if p.name == "v3" {
		return unknownFeatureBits
	}
	return 0
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
				tc.accept.OnStreamRefused = func(_ RecordAcceptInfo, err *StreamError) { refusedCh <- err }
				var handlerCalled atomic.Bool
				p := newSimPair(t, tc.opener, tc.accept, nil, simRTT/2)
				p.server.SetAcceptHandler(func(RecordAcceptInfo) error { handlerCalled.Store(true); return nil })
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
