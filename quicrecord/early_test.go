package quicrecord

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// earlyRTT is the round trip of the optimistic-open figures.
const earlyRTT = 20 * time.Millisecond

// firstRecordTime opens a stream on p's client, sends one record and
// waits until the acceptor applied it; it returns how long that took in
// virtual time. The server applies every stream it accepts.
func firstRecordTime(t *testing.T, p *pair, opts StreamOptions) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	s, err := p.client.OpenRecordStream(ctx, opts)
	require.NoError(t, err)
	seq, err := s.Send(ctx, []byte("first"))
	require.NoError(t, err)
	require.NoError(t, s.WaitAcked(ctx, seq))
	took := time.Since(start)
	require.NoError(t, s.Close(ctx))
	return took
}

// serveApply accepts p's server streams and applies their records until
// the test ends.
func serveApply(t *testing.T, p *pair) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			s, err := p.server.AcceptRecordStream(ctx)
			if err != nil {
				return
			}
			go func() { _ = s.Apply(ctx, func(Record) error { return nil }) }()
		}
	}()
}

// TestOptimisticOpenFirstRecord: at an RTT of 20 ms, Open + Send +
// WaitAcked of a stream's first record takes two round trips when the
// open waits for the reply, and one (plus the acceptor's ack delay) when
// the record travels behind the HELLO. The connection's first stream
// teaches the opener that the acceptor takes early records.
func TestOptimisticOpenFirstRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, earlyRTT/2)
		serveApply(t, p)
		first := firstRecordTime(t, p, StreamOptions{OptimisticOpen: true})
		waiting := firstRecordTime(t, p, StreamOptions{})
		optimistic := firstRecordTime(t, p, StreamOptions{OptimisticOpen: true})
		t.Logf("first record applied after: %v waiting for the reply, %v optimistic (RTT %v; the connection's first stream: %v)",
			waiting, optimistic, earlyRTT, first)
		require.GreaterOrEqual(t, first, 2*earlyRTT, "the connection's first stream cannot know the acceptor yet")
		require.GreaterOrEqual(t, waiting, 2*earlyRTT)
		require.LessOrEqual(t, optimistic, earlyRTT+earlyRTT/10)
		require.GreaterOrEqual(t, optimistic, earlyRTT)
	})
}

// TestOptimisticOpenRefused: an acceptor that refuses an optimistic
// stream applies none of its early records, and the opener's Send,
// Flush and Barrier fail with the refusal.
func TestOptimisticOpenRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := make(chan *StreamError, 1)
		scfg := &Config{
			AcceptHandler: func(_ context.Context, i *AcceptInfo) (*StreamConfig, error) {
				if i.Scope == "no" {
					return nil, &ApplicationError{Code: CodeRefused, Reason: "not this one"}
				}
				return nil, nil
			},
			OnStreamRefused: func(_ *AcceptInfo, se *StreamError) { refused <- se },
		}
		p := newSimPair(t, nil, scfg, nil, earlyRTT/2)
		ctx := context.Background()
		_, a := p.openPair(t, false, StreamOptions{Scope: "yes"}) // learns early-records
		s, err := p.client.OpenRecordStream(ctx, StreamOptions{Scope: "no", OptimisticOpen: true})
		require.NoError(t, err, "an optimistic open returns before the acceptor decides")
		for i := range EarlyWindowRecords {
			_, err := s.Send(ctx, []byte{byte(i)})
			require.NoError(t, err)
		}
		err = s.Barrier(ctx)
		require.ErrorIs(t, err, ErrRefused)
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Remote)
		require.Equal(t, "not this one", se.Reason)
		require.ErrorIs(t, s.Flush(ctx), ErrRefused)
		_, err = s.Send(ctx, []byte("late"))
		require.ErrorIs(t, err, ErrRefused)
		require.ErrorIs(t, (<-refused), ErrRefused)

		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = p.server.AcceptRecordStream(actx)
		require.ErrorIs(t, err, context.DeadlineExceeded, "the refused stream never reaches the application")
		snaps := p.server.Snapshots()
		require.Len(t, snaps, 1, "only the accepted stream exists on the acceptor")
		require.Equal(t, "yes", snaps[0].Identity.Scope)
		require.Zero(t, a.Snapshot().In.AppliedSeq)
		require.Equal(t, uint64(1), p.server.RefusedStreams())
	})
}

// TestOptimisticOpenEarlyWindow: before the reply an optimistic stream
// has at most the early window in flight, sends what every acceptor
// takes (version 1 batches, no piggybacked ack), and after the reply
// goes on with what was negotiated; an acceptor configured with limits
// below the early profile announces the profile instead, so the early
// records are within them.
func TestOptimisticOpenEarlyWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		scfg := &Config{Stream: StreamConfig{MaxApplyBacklogRecords: 2, MaxApplyBacklogBytes: 64, MaxRecordSize: 100}}
		p := newSimPair(t, nil, scfg, nil, earlyRTT/2)
		ctx := context.Background()
		p.openPair(t, false, StreamOptions{Scope: "learn"})
		s, err := p.client.OpenRecordStream(ctx, StreamOptions{OptimisticOpen: true})
		require.NoError(t, err)
		require.Equal(t, uint64(1), s.Negotiated().Version, "the early profile until the reply")
		require.Equal(t, EarlyWindowBytes, s.MaxRecordSize())
		start := time.Now()
		for seq := uint64(1); seq <= EarlyWindowRecords; seq++ {
			_, err := s.Send(ctx, payloadFor(seq))
			require.NoError(t, err)
		}
		require.Zero(t, time.Since(start), "the early window takes the first records at once")
		sendMore := make(chan time.Duration, 1)
		go func() {
			_, err := s.Send(ctx, payloadFor(EarlyWindowRecords+1))
			if err != nil {
				t.Error(err)
			}
			sendMore <- time.Since(start)
		}()
		a, err := p.server.AcceptRecordStream(ctx)
		require.NoError(t, err)
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		applied := make(chan uint64, 1)
		go func() { applied <- applyChecked(t, actx, a) }()
		require.GreaterOrEqual(t, <-sendMore, earlyRTT, "the record beyond the early window waits for an ack")
		require.NoError(t, s.Barrier(ctx))
		require.Equal(t, uint64(2), s.Negotiated().Version)
		require.True(t, s.Negotiated().Features.Has(FeatureEarlyRecords))
		pl := s.Negotiated().PeerLimits
		require.Equal(t, uint64(EarlyWindowRecords), pl.MaxInFlightRecords, "the acceptor's 2 records raised to the early window")
		require.Equal(t, uint64(EarlyWindowBytes), pl.MaxInFlightBytes)
		require.Equal(t, uint64(EarlyWindowBytes), pl.MaxRecordSize)
		cancel()
		require.Equal(t, uint64(EarlyWindowRecords+1), <-applied)
		so, sa := s.Snapshot(), a.Snapshot()
		require.Zero(t, sa.Errors.ProtocolViolations)
		require.Zero(t, so.Acks.PiggybackedOut)
		require.Equal(t, so.FramesOut.Batch, sa.FramesIn.Batch)
	})
}
