package suite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAckClockAttribution(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var c ackClock
	// Out of order, as probes finish: record k is applied at the earliest
	// completion with seq >= k.
	c.add(5, at(50))
	c.add(2, at(30))
	c.add(7, at(40)) // a later probe finishing first covers 1..7
	c.add(9, at(90))
	got := c.times(10)
	want := []time.Time{at(30), at(30), at(40), at(40), at(40), at(40), at(40), at(90), at(90), {}}
	require.Equal(t, want, got)

	sent := []time.Time{at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), at(8), at(9)}
	lat := latencies(sent, got, at(2))
	// Records 1 and 2 sent before the warm-up ended; record 10 never
	// covered.
	require.Equal(t, []time.Duration{38 * time.Millisecond, 37 * time.Millisecond, 36 * time.Millisecond,
		35 * time.Millisecond, 34 * time.Millisecond, 83 * time.Millisecond, 82 * time.Millisecond}, lat)
}

func TestProber(t *testing.T) {
	var c ackClock
	release := make(chan struct{})
	boom := errors.New("boom")
	p := startProber(context.Background(), &c, func(_ context.Context, seq uint64) error {
		<-release
		if seq == 3 {
			return boom
		}
		return nil
	})
	for seq := uint64(1); seq <= 3; seq++ {
		p.ch <- seq // blocking handoff, so that all three are probed
	}
	p.offer(4) // may or may not find an idle probe
	close(release)
	require.ErrorIs(t, p.stop(), boom)
	times := c.times(2)
	require.False(t, times[0].IsZero())
	require.False(t, times[1].IsZero())
}
