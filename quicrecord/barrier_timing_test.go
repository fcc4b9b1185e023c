package quicrecord

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord/diag"
)

// TestBarrierTimeSplit checks, in virtual time over a simulated link, how
// a Barrier's time is split into flush-wait (until its records were
// handed to QUIC) and ack-wait (until the peer applied them).
func TestBarrierTimeSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// run sends and calls Barrier; it returns how long the Barrier
		// took.
		run func(t *testing.T, tx *RecordStream) time.Duration
		// check tests the split of the one Barrier's time.
		check func(t *testing.T, b diag.BarrierStats, took time.Duration)
	}{
		{
			// An idle stream writes the record at once: in virtual time
			// the flush takes no time, the ack a round trip.
			"idle stream", func(t *testing.T, tx *RecordStream) time.Duration {
				_, err := tx.Send(context.Background(), []byte("one"))
				require.NoError(t, err)
				start := time.Now()
				require.NoError(t, tx.Barrier(context.Background()))
				return time.Since(start)
			},
			func(t *testing.T, b diag.BarrierStats, took time.Duration) {
				require.Zero(t, b.FlushWaitTotal)
				require.GreaterOrEqual(t, b.AckWaitTotal, simRTT)
				require.Equal(t, took, b.AckWaitTotal)
			},
		},
		{
			// Records already written when Barrier is called: no
			// flush-wait either.
			"flushed before", func(t *testing.T, tx *RecordStream) time.Duration {
				for range 10 {
					_, err := tx.Send(context.Background(), []byte("rec"))
					require.NoError(t, err)
				}
				require.NoError(t, tx.Flush(context.Background()))
				start := time.Now()
				require.NoError(t, tx.Barrier(context.Background()))
				return time.Since(start)
			},
			func(t *testing.T, b diag.BarrierStats, took time.Duration) {
				require.Zero(t, b.FlushWaitTotal)
				require.Equal(t, took, b.AckWaitTotal)
			},
		},
		{
			// 8 MiB queued at once: QUIC's congestion window lets the
			// writer hand the last batch over only after many round
			// trips; the ack of the last record comes after about one
			// more.
			"bulk", func(t *testing.T, tx *RecordStream) time.Duration {
				rec := make([]byte, 64<<10)
				for range 128 {
					_, err := tx.Send(context.Background(), rec)
					require.NoError(t, err)
				}
				start := time.Now()
				require.NoError(t, tx.Barrier(context.Background()))
				return time.Since(start)
			},
			func(t *testing.T, b diag.BarrierStats, took time.Duration) {
				require.Greater(t, b.FlushWaitTotal, 2*simRTT)
				require.GreaterOrEqual(t, b.AckWaitTotal, simRTT/2)
				require.Less(t, b.AckWaitTotal, b.FlushWaitTotal)
				require.Equal(t, took, b.FlushWaitTotal+b.AckWaitTotal)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tx := simApplied(t)
				took := tc.run(t, tx)
				b := tx.Snapshot().Barrier
				require.Equal(t, uint64(1), b.Calls)
				require.Equal(t, b.FlushWaitTotal, b.FlushWaitMax)
				require.Equal(t, b.AckWaitTotal, b.AckWaitMax)
				tc.check(t, b, took)
			})
		})
	}
}

// TestBarriersShareFlushMark: concurrent Barriers with the same target
// share one flush mark, and every mark is gone once they return.
func TestBarriersShareFlushMark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tx := simApplied(t)
		ctx := context.Background()
		rec := make([]byte, 64<<10)
		for range 32 {
			_, err := tx.Send(ctx, rec)
			require.NoError(t, err)
		}
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- tx.Barrier(ctx) }()
		}
		synctest.Wait()
		tx.smu.Lock()
		marks := append([]flushMark(nil), tx.snd.flushMarks...)
		tx.smu.Unlock()
		require.Len(t, marks, 1)
		require.Equal(t, uint64(32), marks[0].target)
		require.Equal(t, 3, marks[0].refs)
		for range 3 {
			require.NoError(t, <-errs)
		}
		tx.smu.Lock()
		require.Empty(t, tx.snd.flushMarks)
		tx.smu.Unlock()
		b := tx.Snapshot().Barrier
		require.Equal(t, uint64(3), b.Calls)
		require.Positive(t, b.FlushWaitMax)
	})
}

// simApplied opens a stream over simnet, inside the caller's synctest
// bubble, whose acceptor applies every record until the test ends, and
// returns the opener.
//
// The sender's window is fixed (32,768 records, 8 MiB): the bulk cases
// measure a Barrier behind a deep queue of records, which an adaptive
// window would not let build up (Send would block instead).
func simApplied(t *testing.T) *RecordStream {
	t.Helper()
	p := newSimPair(t, &Config{Stream: StreamConfig{Window: WindowFixed}}, nil, nil, simRTT/2)
	tx, rx := p.openPair(t, false, StreamOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = rx.Apply(ctx, func(Record) error { return nil }) }()
	return tx
}
