package diag

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRatios(t *testing.T) {
	require.Zero(t, BarrierStats{}.MeanFlushWait())
	require.Zero(t, BarrierStats{}.MeanAckWait())
	b := BarrierStats{Calls: 4, FlushWaitTotal: 10 * time.Millisecond, AckWaitTotal: time.Second}
	require.Equal(t, 2500*time.Microsecond, b.MeanFlushWait())
	require.Equal(t, 250*time.Millisecond, b.MeanAckWait())
	require.Zero(t, TrafficTotals{}.RecordsPerBatch())
	require.Equal(t, 2.5, TrafficTotals{Records: 5, Batches: 2}.RecordsPerBatch())
	require.Zero(t, AckStats{}.PiggybackRatioOut())
	require.Equal(t, 0.75, AckStats{PiggybackedOut: 3, StandaloneOut: 1}.PiggybackRatioOut())
	require.Equal(t, 0.25, AckStats{PiggybackedIn: 1, StandaloneIn: 3}.PiggybackRatioIn())
	require.Equal(t, uint64(28), FrameCounts{Hello: 1, Batch: 2, Ack: 3, Error: 4, Window: 5, Done: 6, Unknown: 7}.Total())
}

// TestCountersAdd: Add sums every total and keeps the larger barrier
// maxima.
func TestCountersAdd(t *testing.T) {
	a := Counters{
		Out: TrafficTotals{Records: 1, Bytes: 2, Batches: 3}, In: TrafficTotals{Records: 4, Bytes: 5, Batches: 6},
		FramesOut: FrameCounts{Hello: 1, Batch: 2, Ack: 3, Error: 4, Unknown: 5},
		FramesIn:  FrameCounts{Hello: 5, Batch: 4, Ack: 3, Error: 2, Unknown: 1},
		Acks:      AckStats{PiggybackedOut: 1, StandaloneOut: 2, PiggybackedIn: 3, StandaloneIn: 4},
		Barrier:   BarrierStats{Calls: 2, FlushWaitTotal: 3, FlushWaitMax: 2, AckWaitTotal: 9, AckWaitMax: 5},
		Errors:    ErrorStats{RejectedByPeer: 1, RejectedLocally: 2, ProtocolViolations: 3},
	}
	b := a
	b.Barrier.FlushWaitMax, b.Barrier.AckWaitMax = 7, 1
	sum := a
	sum.Add(&b)
	require.Equal(t, Counters{
		Out: TrafficTotals{Records: 2, Bytes: 4, Batches: 6}, In: TrafficTotals{Records: 8, Bytes: 10, Batches: 12},
		FramesOut: FrameCounts{Hello: 2, Batch: 4, Ack: 6, Error: 8, Unknown: 10},
		FramesIn:  FrameCounts{Hello: 10, Batch: 8, Ack: 6, Error: 4, Unknown: 2},
		Acks:      AckStats{PiggybackedOut: 2, StandaloneOut: 4, PiggybackedIn: 6, StandaloneIn: 8},
		Barrier:   BarrierStats{Calls: 4, FlushWaitTotal: 6, FlushWaitMax: 7, AckWaitTotal: 18, AckWaitMax: 5},
		Errors:    ErrorStats{RejectedByPeer: 2, RejectedLocally: 4, ProtocolViolations: 6},
	}, sum)
}

// TestBarrierJSON: durations marshal as Go duration strings with the
// means added, and read back exactly.
func TestBarrierJSON(t *testing.T) {
	b := BarrierStats{Calls: 2, FlushWaitTotal: 3 * time.Millisecond, FlushWaitMax: 2 * time.Millisecond, AckWaitTotal: time.Second, AckWaitMax: 600 * time.Millisecond}
	out, err := json.Marshal(b)
	require.NoError(t, err)
	require.JSONEq(t, `{"calls":2,"flush_wait_total":"3ms","flush_wait_max":"2ms","flush_wait_mean":"1.5ms",
		"ack_wait_total":"1s","ack_wait_max":"600ms","ack_wait_mean":"500ms"}`, string(out))
	var back BarrierStats
	require.NoError(t, json.Unmarshal(out, &back))
	require.Equal(t, b, back)
	require.Error(t, json.Unmarshal([]byte(`{"flush_wait_total":"soon"}`), &back))
}
