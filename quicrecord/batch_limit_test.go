package quicrecord

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// timedWrite is one BATCH Write the writer timed: n bytes in took.
type timedWrite struct {
	n    int
	took time.Duration
}

// TestBatchLimitFollowsWrites: a stream's batches start bounded by
// minBatchBytes. Writes that small are too short to time, so until one
// was timed a delivery rate (from the acks) that fills twice that in a
// millisecond (batchTime) lifts the bound to a millisecond of it; timed
// Writes then move it to batchTime of the
// rate they measured, always within minBatchBytes and the configured
// batch size. (With nothing to lift it, 1 KiB records on loopback took
// 1.4 times as long: their batches stayed below 8 KiB.)
func TestBatchLimitFollowsWrites(t *testing.T) {
	const maxBatch = 64 << 10
	for _, tc := range []struct {
		name      string
		delivered uint64 // the delivery rate the acks measured, bytes per second
		writes    []timedWrite
		want      int64
	}{
		{"no delivery rate yet", 0, []timedWrite{{7 << 10, 7 * time.Microsecond}}, minBatchBytes},
		{"loopback's delivery rate lifts it", 300e6, []timedWrite{{7 << 10, 7 * time.Microsecond}}, maxBatch},
		{"200 Mbit/s delivered: 24.4 KiB", 25e6, []timedWrite{{7 << 10, 7 * time.Microsecond}}, 25000},
		{"50 Mbit/s delivered: below the floor", 6.25e6, []timedWrite{{7 << 10, 7 * time.Microsecond}}, minBatchBytes},
		{"100 Mbit/s delivered: 12.5 KB, not twice the floor", 12.5e6, []timedWrite{{7 << 10, 7 * time.Microsecond}}, minBatchBytes},
		{"a slow link: 8 KiB timed at 13 ms", 0, []timedWrite{{8 << 10, 13 * time.Millisecond}}, minBatchBytes},
		{"a timed rate wins over the delivery rate", 300e6, []timedWrite{{8 << 10, 13 * time.Millisecond}, {3 << 10, time.Microsecond}}, minBatchBytes},
		{"50 Mbit/s timed: 1 ms is 6.1 KiB, below the floor", 0, []timedWrite{{8 << 10, 1311 * time.Microsecond}}, minBatchBytes},
		{"200 Mbit/s timed: 1 ms is 24.4 KiB", 0, []timedWrite{{25000, time.Millisecond}}, 25000},
		{"loopback timed: past the configured size", 0, []timedWrite{{64 << 10, 50 * time.Microsecond}}, maxBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &RecordStream{}
			s.batchBytes.Store(maxBatch)
			s.batchLimit.Store(min(minBatchBytes, s.batchBytes.Load()))
			s.ctr.rateBytes.Store(tc.delivered)
			var w writer
			for _, wr := range tc.writes {
				s.noteWrite(&w, wr.n, wr.took)
			}
			require.Equal(t, tc.want, s.batchLimit.Load())
		})
	}
}

// TestBatchLimitStartsSmall: a new stream's batch bound is minBatchBytes
// until its writer learns a rate (a flat-out sender's first batch
// would otherwise be a whole MaxBatchBytes, and on a slow link its
// transmission inflated the minimum delay the window is sized from).
func TestBatchLimitStartsSmall(t *testing.T) {
	p := newLoopbackPair(t, nil, nil)
	tx, _ := p.openPair(t, false, StreamOptions{})
	require.Equal(t, int64(minBatchBytes), tx.batchLimit.Load())
	require.Greater(t, tx.batchBytes.Load(), int64(minBatchBytes))
}
