package suite

import (
	"context"
	"slices"
	"sync"
	"time"
)

// How per-record applied-ack times are learnt.
//
// After each burst (paced) or every few records (flat out), the sender
// offers the last sequence number p to a pool of probe goroutines
// (without blocking: if every probe is busy the offer is dropped and a
// later one covers p). A probe waits until p is applied — the transport's
// WaitApplied(p), for every transport — and then notes (p, now).
// Afterwards a record k is taken to be applied at the earliest noted time
// of any probe with p >= k. That is exact up to goroutine wake-up when k
// itself was probed, and an upper bound otherwise.

// completion says that every record up to seq was applied by at.
type completion struct {
	seq uint64
	at  time.Time
}

// ackClock collects completions from any number of goroutines.
type ackClock struct {
	mu   sync.Mutex
	done []completion
}

func (c *ackClock) add(seq uint64, at time.Time) {
	c.mu.Lock()
	c.done = append(c.done, completion{seq, at})
	c.mu.Unlock()
}

// times returns, for records 1..n (index k-1), the earliest completion
// that covers it; the zero time where none does.
func (c *ackClock) times(n int) []time.Time {
	c.mu.Lock()
	done := slices.Clone(c.done)
	c.mu.Unlock()
	slices.SortFunc(done, func(a, b completion) int {
		switch {
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	out := make([]time.Time, n)
	var best time.Time
	j := 0
	for k := n; k >= 1; k-- {
		for j < len(done) && done[j].seq >= uint64(k) {
			if best.IsZero() || done[j].at.Before(best) {
				best = done[j].at
			}
			j++
		}
		out[k-1] = best
	}
	return out
}

// probeWorkers is the size of the probe pool: enough that a probe is free
// for every burst even when acks take many send intervals.
const probeWorkers = 64

// prober is the pool of probe goroutines.
type prober struct {
	ch    chan uint64
	wg    sync.WaitGroup
	clock *ackClock
	mu    sync.Mutex
	err   error
}

// startProber starts probeWorkers goroutines that call wait for each
// offered sequence number and note its completion in clock.
func startProber(ctx context.Context, clock *ackClock, wait func(context.Context, uint64) error) *prober {
	p := &prober{ch: make(chan uint64), clock: clock}
	for range probeWorkers {
		p.wg.Go(func() {
			for seq := range p.ch {
				if err := wait(ctx, seq); err != nil {
					p.mu.Lock()
					if p.err == nil {
						p.err = err
					}
					p.mu.Unlock()
					continue
				}
				clock.add(seq, time.Now())
			}
		})
	}
	return p
}

// offer hands seq to an idle probe, or drops it if none is idle.
func (p *prober) offer(seq uint64) {
	select {
	case p.ch <- seq:
	default:
	}
}

// stop ends the probes once their waits return and reports the first
// error a wait returned.
func (p *prober) stop() error {
	close(p.ch)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// latencies turns send times (index seq-1) and applied times into
// latencies, skipping records sent before from and records never covered.
func latencies(sent, applied []time.Time, from time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(sent))
	for i, t := range sent {
		if t.Before(from) || i >= len(applied) || applied[i].IsZero() {
			continue
		}
		out = append(out, applied[i].Sub(t))
	}
	return out
}
