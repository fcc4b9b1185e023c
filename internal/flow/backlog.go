package flow

import (
	"math"
	"time"
)

// DefaultInterval is the shortest interval over which a [Backlog] looks
// for a standing queue, when BacklogParams.Interval is zero.
const DefaultInterval = 100 * time.Millisecond

// BacklogParams configure a [Backlog]. Counts are in records and record
// bytes.
type BacklogParams struct {
	// Target is the queueing delay the sender's window aims at; the
	// backlog acts on a standing queue of twice that. 0 means
	// [DefaultTarget].
	Target time.Duration
	// MaxRecords and MaxBytes are the most the receiver ever accepts
	// unacknowledged (what its HELLO announced); at least 1.
	MaxRecords, MaxBytes int64
	// MinRecords and MinBytes are the least it announces; 0 means 16
	// records and 16 KiB.
	MinRecords, MinBytes int64
	// Interval is the shortest interval over which a standing queue is
	// measured (it is at least two round trips); 0 means
	// [DefaultInterval].
	Interval time.Duration
	// Fixed switches adaptation off: the window is always the maximum.
	Fixed bool
}

// Backlog is a receiver's adaptive announced window. The owner calls
// [Backlog.OnApplied] whenever the application applied a whole batch,
// with how long the batch waited between its arrival and the moment the
// application started on it; when it returns true
// the owner announces [Backlog.Records] and [Backlog.Bytes] to the peer.
// See the package documentation for the algorithm.
type Backlog struct {
	p      BacklogParams
	target time.Duration
	recs   float64 // announced window
	bytes  float64
	minR   float64
	minB   float64

	start      time.Time     // start of the current interval; zero before the first batch
	minSojourn time.Duration // smallest sojourn in the interval; -1: none
	startRecs  uint64        // cumulative records applied at start
	startBytes uint64
	sent       [2]int64 // the window last announced
	standing   bool     // the last interval ended with a standing queue
	idle       int      // consecutive intervals in which the application waited for records
	rate       float64  // records applied per second in the last interval
}

// NewBacklog returns a backlog window announcing its maximum.
func NewBacklog(p BacklogParams) *Backlog {
	b := &Backlog{p: p, target: p.Target, minSojourn: -1}
	if b.target <= 0 {
		b.target = DefaultTarget
	}
	if b.p.Interval <= 0 {
		b.p.Interval = DefaultInterval
	}
	b.p.MaxRecords, b.p.MaxBytes = max(p.MaxRecords, 1), max(p.MaxBytes, 1)
	b.minR = float64(min(cmpOr(p.MinRecords, 16), b.p.MaxRecords))
	b.minB = float64(min(cmpOr(p.MinBytes, 16<<10), b.p.MaxBytes))
	b.recs, b.bytes = float64(b.p.MaxRecords), float64(b.p.MaxBytes)
	b.sent = [2]int64{b.p.MaxRecords, b.p.MaxBytes}
	return b
}

func cmpOr(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

// Records is the announced window in records.
func (b *Backlog) Records() int64 { return int64(b.recs) }

// Bytes is the announced window in record bytes.
func (b *Backlog) Bytes() int64 { return int64(b.bytes) }

// OnApplied takes one batch the application finished: it waited sojourn
// between its arrival and the moment the application started on it (not
// counting the time its own records took, which is not queueing), and
// appliedRecs
// and appliedBytes records and bytes were applied in all. rtt is the
// path's smoothed round trip (0 if unknown). It reports whether the
// window changed enough to announce it again: by a quarter or more, or
// back to the maximum.
func (b *Backlog) OnApplied(sojourn time.Duration, appliedRecs, appliedBytes uint64, rtt time.Duration, now time.Time) bool {
	if b.p.Fixed {
		return false
	}
	if b.start.IsZero() {
		b.start, b.startRecs, b.startBytes = now, appliedRecs, appliedBytes
	}
	if b.minSojourn < 0 || sojourn < b.minSojourn {
		b.minSojourn = sojourn
	}
	interval := max(b.p.Interval, 2*rtt)
	elapsed := now.Sub(b.start)
	if elapsed < interval {
		return false
	}
	b.endInterval(elapsed, appliedRecs, appliedBytes, rtt)
	b.start, b.startRecs, b.startBytes, b.minSojourn = now, appliedRecs, appliedBytes, -1
	return b.changed()
}

// endInterval moves the window by the interval's minimum sojourn: a
// standing queue above twice the target means the application is the
// bottleneck, and the window becomes twice what its rate needs for a round
// trip plus that delay; a minimum below half the target means the
// application waits for records, and the window grows back towards the
// maximum (by half, then doubling from the second such interval in a
// row); in between it holds.
func (b *Backlog) endInterval(elapsed time.Duration, recs, bytes uint64, rtt time.Duration) {
	sec := elapsed.Seconds()
	rateR := float64(recs-b.startRecs) / sec
	rateB := float64(bytes-b.startBytes) / sec
	b.rate = rateR
	b.standing = b.minSojourn > 2*b.target
	switch {
	case b.standing:
		// Twice what the rate needs for a round trip plus the delay, as
		// BBR's window gain: acks leave per batch, so a sender limited by
		// this window sends it in bursts, and half of it is in flight
		// while the other half is applied.
		hold := 2 * (rtt + 2*b.target).Seconds()
		b.recs = math.Max(b.minR, math.Min(b.recs, rateR*hold))
		b.bytes = math.Max(b.minB, math.Min(b.bytes, rateB*hold))
		b.idle = 0
	case b.minSojourn < b.target/2:
		g := 1.5
		if b.idle++; b.idle >= 2 {
			g = 2
		}
		b.recs = math.Min(g*b.recs, float64(b.p.MaxRecords))
		b.bytes = math.Min(g*b.bytes, float64(b.p.MaxBytes))
	default:
		b.idle = 0
	}
}

// changed reports whether the window moved far enough from what was last
// announced to announce it, and remembers it as announced if so.
func (b *Backlog) changed() bool {
	cur := [2]int64{b.Records(), b.Bytes()}
	if cur == b.sent {
		return false
	}
	atMax := cur == [2]int64{b.p.MaxRecords, b.p.MaxBytes}
	far := func(now, then int64) bool { return 4*now <= 3*then || 4*now >= 5*then }
	if atMax || far(cur[0], b.sent[0]) || far(cur[1], b.sent[1]) {
		b.sent = cur
		return true
	}
	return false
}

// BacklogStats is a snapshot of a Backlog's state.
type BacklogStats struct {
	Records, Bytes int64   // the window as last computed
	Standing       bool    // the last interval found a standing queue
	AppliedPerSec  float64 // records applied per second in the last interval
}

// Stats returns the backlog window's state.
func (b *Backlog) Stats() BacklogStats {
	return BacklogStats{Records: b.Records(), Bytes: b.Bytes(), Standing: b.standing, AppliedPerSec: b.rate}
}
