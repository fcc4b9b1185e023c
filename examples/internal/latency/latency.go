// Package latency holds the two small tools the examples measure with: a
// sample set that reports percentiles, and a pacer that releases events
// at a fixed rate without oversleeping.
package latency

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Samples is a set of durations. The zero value is empty and ready to
// use. It is not safe for concurrent use: give each goroutine its own and
// Merge them.
type Samples struct {
	d      []time.Duration
	sorted bool
}

// Add records one sample.
func (s *Samples) Add(d time.Duration) {
	s.d = append(s.d, d)
	s.sorted = false
}

// Merge adds every sample of o.
func (s *Samples) Merge(o *Samples) {
	s.d = append(s.d, o.d...)
	s.sorted = false
}

// Len returns the number of samples.
func (s *Samples) Len() int { return len(s.d) }

// Percentile returns the smallest sample that at least p percent of the
// samples do not exceed (nearest rank), or 0 without samples. p is in
// [0, 100].
func (s *Samples) Percentile(p float64) time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	if !s.sorted {
		slices.Sort(s.d)
		s.sorted = true
	}
	rank := int(p/100*float64(len(s.d))+0.999999999) - 1
	return s.d[min(max(rank, 0), len(s.d)-1)]
}

// Summary is the usual percentiles of a sample set.
type Summary struct {
	N                   int
	P50, P90, P99, P999 time.Duration
	Max                 time.Duration
}

// Summary returns the percentiles.
func (s *Samples) Summary() Summary {
	return Summary{
		N: len(s.d), P50: s.Percentile(50), P90: s.Percentile(90),
		P99: s.Percentile(99), P999: s.Percentile(99.9), Max: s.Percentile(100),
	}
}

// String prints the summary on one line.
func (m Summary) String() string {
	if m.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  p99.9 %v  max %v  (%d samples)",
		round(m.P50), round(m.P90), round(m.P99), round(m.P999), round(m.Max), m.N)
}

// round keeps three significant digits or so, for reading.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

// FineWindow is how long before a deadline a [Pacer] stops sleeping with
// time.Sleep, which can wake up to about a millisecond late, and waits
// finely instead.
const FineWindow = time.Millisecond

// Pacer releases events at a fixed rate on an absolute schedule: event i
// is due at start + i/rate, so a late wake-up does not shift the events
// after it. It sleeps with time.Sleep until [FineWindow] before a
// deadline, then waits finely: on Linux with the nanosleep system call
// (which wakes within about 50 µs and leaves the processor to the Go
// runtime), elsewhere by spinning. Spinning (NewPacer's spin) is the most
// precise, but a goroutine that spins with runtime.Gosched keeps its
// processor busy, so the runtime polls the network less often: in this
// repository's latency example it multiplied the request→reply latency of
// a quic-go connection in the same process several times. It is not safe
// for concurrent use.
type Pacer struct {
	start time.Time
	every time.Duration
	next  int64
	spin  bool
}

// NewPacer returns a pacer whose first event is due at start. rate is in
// events per second and must be positive. With spin, the fine wait spins
// on every platform.
func NewPacer(start time.Time, rate float64, spin bool) *Pacer {
	return &Pacer{start: start, every: time.Duration(float64(time.Second) / rate), spin: spin || !haveFineSleep}
}

// Wait blocks until the next event is due and returns when it was due (not
// when Wait returned: measuring from the due time keeps a late sender from
// hiding its lateness). It returns ctx's error if ctx ends first.
func (p *Pacer) Wait(ctx context.Context) (time.Time, error) {
	due := p.start.Add(time.Duration(p.next) * p.every)
	p.next++
	for {
		d := time.Until(due)
		if d <= 0 {
			return due, nil
		}
		if err := ctx.Err(); err != nil {
			return due, err
		}
		switch {
		case d > FineWindow:
			t := time.NewTimer(d - FineWindow)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return due, ctx.Err()
			}
		case p.spin:
			runtime.Gosched()
		default:
			fineSleep(d)
		}
	}
}
