package flow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBacklogSlowConsumerFixedSender runs a sender with a fixed 32,768
// record window against a consumer that drops from 200,000 to 5,000
// records/s and back. Without the receiver's window the backlog would
// hold 32,768 records, 6.5 s at the slow rate; with it, the slow
// consumer's latency stays within a few intervals.
func TestBacklogSlowConsumerFixedSender(t *testing.T) {
	t.Parallel()
	const rtt = 20 * time.Millisecond
	slowFrom, slowTo, end := 2*time.Second, 14*time.Second, 16*time.Second
	rate := func(now time.Duration) float64 {
		if now >= slowFrom && now < slowTo {
			return 5000
		}
		return 200_000
	}
	run := func(rx *Backlog) *pathModel {
		m := newPathModel(NewWindow(WindowParams{MaxRecords: 32768, MaxBytes: 1 << 30, Fixed: true}, 0, 0), rtt, rate)
		m.rx = rx
		m.run(end)
		return m
	}
	without := run(nil)
	with := run(NewBacklog(BacklogParams{MaxRecords: 32768, MaxBytes: 1 << 30}))
	// The 32,768 records in flight at the slowdown drain at 5,000/s
	// whatever the receiver does (6.6 s); measure after that.
	late := slowFrom + 32768*time.Second/5000 + time.Second
	p99Without := without.latencyQuantile(0.99, late, slowTo)
	p99With := with.latencyQuantile(0.99, late, slowTo)
	t.Logf("slow consumer, fixed sender window: p99 %v without the receiver's window, %v with it; stats %+v", p99Without, p99With, with.rx.Stats())
	require.Greater(t, p99Without, 5*time.Second)
	require.Less(t, p99With, 200*time.Millisecond)
	require.InDelta(t, 5000, with.throughput(late, slowTo), 250, "the consumer stays busy")
	// Back at full speed the window grows until the fixed sender builds a
	// standing queue again, and then holds twice what 200,000 records/s
	// need for the round trip plus twice the target.
	require.InDelta(t, 2*200_000*(rtt+2*DefaultTarget).Seconds(), with.rx.Records(), 1000)
	require.GreaterOrEqual(t, with.throughput(slowTo+time.Second, end), 0.9*200_000)
}

// TestBacklogQuietWhenNoQueue never announces anything for a consumer
// that keeps up.
func TestBacklogQuietWhenNoQueue(t *testing.T) {
	b := NewBacklog(BacklogParams{MaxRecords: 1000, MaxBytes: 1 << 20})
	now := epoch
	for i := range uint64(1000) {
		now = now.Add(time.Millisecond)
		require.False(t, b.OnApplied(100*time.Microsecond, i*10, i*1000, time.Millisecond, now))
	}
	require.Equal(t, [2]int64{1000, 1 << 20}, [2]int64{b.Records(), b.Bytes()})
}

// TestBacklogAnnouncesOnlyLargeChanges checks the hysteresis: a standing
// queue shrinks the window and announces it; small moves are not
// announced; recovery doubles back to the maximum and announces that.
func TestBacklogAnnouncesOnlyLargeChanges(t *testing.T) {
	b := NewBacklog(BacklogParams{MaxRecords: 10000, MaxBytes: 1 << 30, Interval: 100 * time.Millisecond})
	now := epoch
	var applied uint64
	step := func(sojourn time.Duration, perInterval uint64) bool {
		var announce bool
		for range 11 {
			now = now.Add(10 * time.Millisecond)
			applied += perInterval / 11
			if b.OnApplied(sojourn, applied, applied*100, 0, now) {
				announce = true
			}
		}
		return announce
	}
	require.False(t, step(100*time.Microsecond, 1100), "no standing queue")
	require.True(t, step(50*time.Millisecond, 1100), "a standing queue at 10,000 records/s")
	require.InDelta(t, 80, b.Records(), 1, "2 × 10,000/s × (0 + 2 × 2 ms)")
	require.False(t, step(50*time.Millisecond, 1155), "a small change is not announced")
	for i := 0; b.Records() < 10000; i++ {
		require.Less(t, i, 20, "grows back within 20 intervals")
		step(100*time.Microsecond, 1100)
	}
	require.Equal(t, int64(10000), b.Records())
}
