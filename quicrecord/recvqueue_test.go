package quicrecord

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRecvQueue drives the receive queue as the reader (push) and Apply
// or Recv (pop) do, in uneven steps: batches come out in order, the slice
// is compacted instead of growing while the queue never empties, and a
// long slice is given back once the queue empties.
func TestRecvQueue(t *testing.T) {
	var s RecordStream
	next, want := uint64(1), uint64(1)
	push := func(n int) {
		for range n {
			s.pushBatchLocked(inBatch{last: next})
			next++
		}
	}
	pop := func(n int) {
		for range n {
			require.True(t, s.queuedLocked())
			require.Equal(t, want, s.rcv.q[s.rcv.qHead].last)
			s.popBatchLocked()
			want++
		}
	}
	push(10)
	for range 1000 {
		push(3)
		pop(3)
	}
	require.LessOrEqual(t, cap(s.rcv.q), 64, "3,000 batches through a queue of 10 to 13 leave a small slice")
	pop(10)
	require.False(t, s.queuedLocked())
	require.Zero(t, s.rcv.qHead)
	require.NotNil(t, s.rcv.q, "a short slice is kept")

	push(500)
	pop(500)
	require.False(t, s.queuedLocked())
	require.Nil(t, s.rcv.q, "a long slice is given back")
	push(1)
	pop(1)
	require.Equal(t, next, want)
}
