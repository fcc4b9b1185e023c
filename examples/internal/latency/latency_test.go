package latency

import (
	"context"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var s Samples
	if s.Percentile(50) != 0 || s.Summary().String() != "no samples" {
		t.Fatal("empty samples")
	}
	for i := 100; i >= 1; i-- {
		s.Add(time.Duration(i) * time.Millisecond)
	}
	var o Samples
	o.Add(101 * time.Millisecond)
	s.Merge(&o)
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, time.Millisecond}, {50, 51 * time.Millisecond}, {99, 100 * time.Millisecond}, {100, 101 * time.Millisecond}} {
		if got := s.Percentile(c.p); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if m := s.Summary(); m.N != 101 || m.P50 > m.P99 || m.P99 > m.Max {
		t.Errorf("Summary = %+v", m)
	}
}

// TestPacer: events are released on the absolute schedule, never early,
// and a late start releases the backlog at once.
func TestPacer(t *testing.T) {
	start := time.Now()
	p := NewPacer(start, 2000, false) // every 500µs
	for i := range 20 {
		due, err := p.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Duration(i) * 500 * time.Microsecond); !due.Equal(want) {
			t.Fatalf("event %d due %v, want %v", i, due.Sub(start), want.Sub(start))
		}
		if now := time.Now(); now.Before(due) {
			t.Fatalf("event %d released %v early", i, due.Sub(now))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := NewPacer(time.Now().Add(time.Hour), 1, false)
	if _, err := slow.Wait(ctx); err == nil {
		t.Fatal("Wait with a done context returned no error")
	}
}
