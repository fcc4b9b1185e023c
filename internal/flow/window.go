package flow

import (
	"math"
	"time"
)

// DefaultTarget is the queueing-delay target when WindowParams.Target and
// BacklogParams.Target are zero.
const DefaultTarget = 2 * time.Millisecond

// MinDelayWindow is how long a minimum delay is trusted: once it is older,
// the window probes for a new one.
const MinDelayWindow = 10 * time.Second

// restartVelocity is the steady growth step's multiplier at which the
// window goes back to startup's doubling.
const restartVelocity = 4

// lossRounds is how many rounds after a loss the window keeps its loss
// headroom (see effTarget).
const lossRounds = 8

// standingRounds is how many round minima a standing queue must show.
const standingRounds = 3

// rateRounds is the length of the delivery-rate filter, in rounds.
const rateRounds = 8

// maxStamps bounds the batch stamps a Window keeps; beyond it, new batches
// share the stamp of an older one (their delay is overestimated, which
// shrinks the window and so the number of batches in flight).
const maxStamps = 4096

// WindowParams configure a [Window]. Counts are in records and record
// bytes.
type WindowParams struct {
	// Target is the queueing delay the window aims at; 0 means
	// [DefaultTarget].
	Target time.Duration
	// MaxRecords and MaxBytes are hard caps; the window never exceeds
	// them. They must be at least 1.
	MaxRecords, MaxBytes int64
	// MinRecords and MinBytes are the floor; 0 means 16 records and
	// 16 KiB. A floor above the cap is lowered to it.
	MinRecords, MinBytes int64
	// InitRecords and InitBytes are the first window; 0 means 256 records
	// and 256 KiB.
	InitRecords, InitBytes int64
	// Fixed switches adaptation off: the window is the caps. The window
	// still measures (see Stats).
	Fixed bool
}

// mode is a Window's phase.
type mode uint8

const (
	modeStartup mode = iota // doubling each round until a queue forms
	modeSteady              // holding the queueing delay near the target
	modeProbe               // one round at the floor to refresh the minimum delay
)

// String names the mode for diagnostics.
func (m mode) String() string {
	switch m {
	case modeStartup:
		return "startup"
	case modeSteady:
		return "steady"
	case modeProbe:
		return "probe"
	}
	return "unknown"
}

// stamp is what a Window remembers of one batch: when it was created and
// how much had been acknowledged then.
type stamp struct {
	first      uint64    // sequence number of the batch's first record
	firstBytes uint64    // cumulative record bytes sent before it
	at         time.Time // when the batch was created
	ackedRecs  uint64    // cumulative records acknowledged at that time
	ackedBytes uint64    // cumulative record bytes acknowledged then
	ackAt      time.Time // when that acknowledgement arrived (at, if none yet)
}

// dim is one dimension of the window: records or bytes.
type dim struct {
	win        float64
	min, max   float64
	rate       [rateRounds]float64 // per-round maximum delivery rate, per second
	peak       float64             // maxRate as of the last round's end
	roundRate  float64
	probeSaved float64
}

// delaySample is one delay sample and what of its batch it waited for:
// the records and record bytes from the batch's first to the acked one;
// pipelined: records sent before the batch were still in flight when it
// was created.
type delaySample struct {
	d           time.Duration
	recs, bytes uint64
	pipelined   bool
}

func (d *dim) clamp() { d.win = math.Max(d.min, math.Min(d.win, d.max)) }

// maxRate is the windowed maximum of the delivery rate.
func (d *dim) maxRate() float64 {
	var m float64
	for _, r := range d.rate {
		m = math.Max(m, r)
	}
	return m
}

// Window is a sender's adaptive in-flight window. The owner calls
// [Window.OnBatch] when Send starts a batch, [Window.OnBlocked] when Send
// finds the window full, and [Window.OnAck] for every new cumulative ack;
// [Window.Records] and [Window.Bytes] are the limits to enforce. See the
// package documentation for the algorithm.
type Window struct {
	p      WindowParams
	target time.Duration
	recs   dim
	bytes  dim
	mode   mode

	stamps []stamp // ring of batches not yet fully acknowledged, oldest first
	head   int
	n      int

	ackedRecs  uint64
	ackedBytes uint64
	lastAckAt  time.Time

	// The current round ends when an ack reaches roundEnd.
	roundEnd     uint64
	roundMin     time.Duration // smallest net delay (see net) of the round; -1: none
	roundBest    delaySample   // the sample that gave roundMin
	roundRaw     time.Duration // smallest delay sample of the round; -1: none
	roundLimited bool          // Send found the window full during the round
	aboveSince   time.Time     // since when every net delay exceeded the base's+target; zero: not so
	aboveMin     time.Duration // the smallest of those net delays
	aboveBest    delaySample   // the sample that gave aboveMin
	persistent   bool          // the round ended early on a persistent queue
	losses       uint64        // the path's packet losses, as last told (OnLoss)
	roundLosses  uint64        // losses when the round began
	lossy        int           // rounds to go with loss headroom
	recent       [standingRounds]time.Duration
	rounds       uint64

	minDelay   time.Duration // windowed minimum delay; 0 until the first round
	base       delaySample   // the windowed sample of least net delay, which queueing is measured from
	minDelayAt time.Time     // when base was taken
	last       delaySample   // the latest delay sample
	lastNet    time.Duration // its net delay
	queueDelay time.Duration // the last round's least net delay above the base's

	startupBest float64 // best round rate in startup, records per second
	startupFlat int     // limited startup rounds without 25% growth
	rateGrew    bool    // the round delivered at least 25% more than any of the rateRounds before it
	velocity    float64 // multiplier of the steady growth step
	grewBy      float64 // the relative growth the last round gave the window (0: none)
	lastRate    float64 // the last round's delivery rate, records per second
}

// NewWindow returns a window with parameters p and the given send base:
// the sequence number before its first record, and the record bytes
// acknowledged before it.
func NewWindow(p WindowParams, base, baseBytes uint64) *Window {
	w := &Window{p: p, target: p.Target, ackedRecs: base, ackedBytes: baseBytes, roundMin: -1, roundRaw: -1, velocity: 1}
	if w.target <= 0 {
		w.target = DefaultTarget
	}
	w.recs = newDim(p.InitRecords, p.MinRecords, p.MaxRecords, 256, 16)
	w.bytes = newDim(p.InitBytes, p.MinBytes, p.MaxBytes, 256<<10, 16<<10)
	if p.Fixed {
		w.recs.win, w.bytes.win = w.recs.max, w.bytes.max
	}
	return w
}

func newDim(initial, floor, cap, defInit, defFloor int64) dim {
	cap = max(cap, 1)
	if initial <= 0 {
		initial = defInit
	}
	if floor <= 0 {
		floor = defFloor
	}
	d := dim{win: float64(initial), min: float64(min(floor, cap)), max: float64(cap)}
	d.clamp()
	return d
}

// Rebase moves the window, before its first batch, to a stream whose
// records start after base (a resumed stream continues its key's sequence
// numbers).
func (w *Window) Rebase(base uint64) {
	w.ackedRecs = base
}

// SetCaps changes the hard caps (for example when the peer announces a new
// receive window); the window is clamped to them at once.
func (w *Window) SetCaps(maxRecords, maxBytes int64) {
	w.recs.max, w.bytes.max = float64(max(maxRecords, 1)), float64(max(maxBytes, 1))
	w.recs.min, w.bytes.min = math.Min(w.recs.min, w.recs.max), math.Min(w.bytes.min, w.bytes.max)
	if w.p.Fixed {
		w.recs.win, w.bytes.win = w.recs.max, w.bytes.max
	}
	w.recs.clamp()
	w.bytes.clamp()
}

// Records is the most records that may be in flight now.
func (w *Window) Records() int64 { return int64(w.recs.win) }

// Bytes is the most record bytes that may be in flight now.
func (w *Window) Bytes() int64 { return int64(w.bytes.win) }

// OnBatch records that a batch starting at sequence number first was
// created at now, after firstBytes record bytes in all were sent before
// it.
func (w *Window) OnBatch(first, firstBytes uint64, now time.Time) {
	if w.n == len(w.stamps) {
		if w.n == maxStamps {
			return
		}
		w.grow()
	}
	ackAt := w.lastAckAt
	if ackAt.IsZero() {
		ackAt = now
	}
	w.stamps[(w.head+w.n)%len(w.stamps)] = stamp{first: first, firstBytes: firstBytes, at: now, ackedRecs: w.ackedRecs, ackedBytes: w.ackedBytes, ackAt: ackAt}
	w.n++
	if w.roundEnd <= w.ackedRecs {
		w.roundEnd = first
	}
}

func (w *Window) grow() {
	ns := make([]stamp, max(16, 2*len(w.stamps)))
	for i := range w.n {
		ns[i] = w.stamps[(w.head+i)%len(w.stamps)]
	}
	w.stamps, w.head = ns, 0
}

// OnBlocked records that Send found the window full: the sender is
// window-limited, so the rounds it spans may grow the window.
func (w *Window) OnBlocked() { w.roundLimited = true }

// OnAck takes a new cumulative ack: every record up to seq is applied,
// and ackedBytes record bytes in all.
func (w *Window) OnAck(seq, ackedBytes uint64, now time.Time) {
	if seq <= w.ackedRecs {
		w.ackedRecs, w.ackedBytes = max(w.ackedRecs, seq), max(w.ackedBytes, ackedBytes)
		return
	}
	if st, ok := w.batchOf(seq); ok {
		w.sample(st, seq, ackedBytes, now)
	}
	w.ackedRecs, w.ackedBytes, w.lastAckAt = seq, ackedBytes, now
	if w.roundMin >= 0 && (w.queueing(now) || seq >= w.roundEnd) {
		w.endRound(now)
	}
}

// queueing reports whether every delay sample for three target round
// trips (one in startup) showed a standing queue (CoDel's test); then the
// round ends early with those samples' minimum, so that a window far too
// large for a consumer that slowed down shrinks within a few round trips
// instead of after a whole window has drained at the new, slower rate.
// Startup doubles the window every round, so it cannot wait three: a
// round's delays show the window of the round before, and two more
// doublings would build a queue of a whole round trip and more.
func (w *Window) queueing(now time.Time) bool {
	if w.p.Fixed || w.minDelay == 0 || w.lastNet <= w.net(w.base)+w.effTarget() {
		w.aboveSince = time.Time{}
		return false
	}
	if w.aboveSince.IsZero() {
		w.aboveSince, w.aboveMin, w.aboveBest = now, w.lastNet, w.last
		return false
	}
	if w.lastNet < w.aboveMin {
		w.aboveMin, w.aboveBest = w.lastNet, w.last
	}
	limit := w.minDelay + w.effTarget()
	interval := 3 * limit
	if w.mode == modeStartup {
		interval = limit
	}
	if now.Sub(w.aboveSince) < interval {
		return false
	}
	w.roundMin, w.roundBest, w.aboveSince = w.aboveMin, w.aboveBest, time.Time{}
	w.persistent = true
	return true
}

// batchOf drops the stamps of batches the ack covers whole and returns the
// stamp of the batch holding seq.
func (w *Window) batchOf(seq uint64) (stamp, bool) {
	for w.n >= 2 && w.stamps[(w.head+1)%len(w.stamps)].first <= seq {
		w.head = (w.head + 1) % len(w.stamps)
		w.n--
	}
	if w.n == 0 || w.stamps[w.head].first > seq {
		return stamp{}, false
	}
	return w.stamps[w.head], true
}

// sample takes the delay and the delivery rate the ack of seq measures.
func (w *Window) sample(st stamp, seq, ackedBytes uint64, now time.Time) {
	if dt := now.Sub(st.ackAt).Seconds(); dt > 0 {
		w.recs.roundRate = math.Max(w.recs.roundRate, float64(seq-st.ackedRecs)/dt)
		w.bytes.roundRate = math.Max(w.bytes.roundRate, float64(ackedBytes-st.ackedBytes)/dt)
	}
	s := delaySample{d: now.Sub(st.at), recs: seq - st.first + 1, pipelined: st.ackedRecs+1 < st.first}
	if ackedBytes > st.firstBytes {
		s.bytes = ackedBytes - st.firstBytes
	}
	w.last, w.lastNet = s, w.net(s)
	if w.roundMin < 0 || w.lastNet < w.roundMin {
		w.roundMin, w.roundBest = w.lastNet, s
	}
	if w.roundRaw < 0 || s.d < w.roundRaw {
		w.roundRaw = s.d
	}
}

// net is a delay sample less its batch's own transmission: the batch's
// records and bytes up to the acked one at the delivery rate (the
// windowed maximum, or the round's if higher). A batch takes that long
// to cross a bottleneck with no queue at all (or a receiver whose apply
// rate is the bottleneck takes that long to apply it), and since the
// batches, sent as acks free room, grow with the window, a larger window
// would read it as a queue. It takes at most half the sample.
//
// A batch sent while nothing else was in flight (the whole window left
// at once, one batch a round trip) measures the rate it is judged by
// with its own delay, so that a queue would be taken for transmission:
// its deduction is at most the target. A pipelined batch's is not
// bounded by the target, which on a slow link is less than one batch's
// transmission (8 KiB takes 13 ms at 5 Mbit/s) and would leave each
// batch's length as "queue" that holds the window at its floor; instead
// its net delay is at least the path's minimum delay, so that a rate
// still underestimated (early on, or while the window, not the path,
// limits it) cannot take a sample below the round trip.
func (w *Window) net(s delaySample) time.Duration {
	var own float64
	if r := math.Max(w.recs.peak, w.recs.roundRate); r > 0 {
		own = float64(s.recs) / r
	}
	if r := math.Max(w.bytes.peak, w.bytes.roundRate); r > 0 {
		own = math.Max(own, float64(s.bytes)/r)
	}
	ded := min(time.Duration(own*float64(time.Second)), s.d/2)
	capped := s.d - min(ded, w.target)
	if !s.pipelined {
		return capped
	}
	return min(capped, max(s.d-ded, w.minDelay))
}

// endRound updates the model with the round that just ended and moves the
// window.
func (w *Window) endRound(now time.Time) {
	w.rounds++
	if w.losses > w.roundLosses {
		w.lossy = lossRounds
	} else if w.lossy > 0 {
		w.lossy--
	}
	w.roundLosses = w.losses
	prev := w.recs.maxRate()
	w.rateGrew = prev > 0 && w.recs.roundRate >= 1.25*prev
	for _, d := range []*dim{&w.recs, &w.bytes} {
		d.rate[w.rounds%rateRounds] = d.roundRate
	}
	lower := w.minDelay == 0 || w.roundMin <= w.net(w.base)
	switch {
	case w.p.Fixed:
		// Measure only: the minimum delay over its window.
		expired := now.Sub(w.minDelayAt) > MinDelayWindow
		if lower || expired {
			w.setBase(now, expired)
		}
		w.queueDelay = w.roundMin - w.net(w.base)
	case w.mode == modeProbe:
		w.setBase(now, true)
		w.recs.win, w.bytes.win = w.recs.probeSaved, w.bytes.probeSaved
		w.mode = modeSteady
	case lower:
		w.setBase(now, false)
		w.adjust()
	case now.Sub(w.minDelayAt) > MinDelayWindow:
		w.recs.probeSaved, w.bytes.probeSaved = w.recs.win, w.bytes.win
		w.recs.win, w.bytes.win = w.recs.min, w.bytes.min
		w.mode = modeProbe
	default:
		w.adjust()
	}
	w.minDelay = min(w.minDelay, w.roundRaw)
	w.nextRound()
}

// setBase takes the round's sample of least net delay as the base that
// queueing is measured from; fresh starts the windowed minimum delay over
// from the round's (after a probe, or once it is too old). The base is
// kept as a sample, not as a net delay, so that its deduction follows the
// delivery rate as it is measured better, the same as the samples it is
// compared with.
func (w *Window) setBase(now time.Time, fresh bool) {
	w.base, w.minDelayAt = w.roundBest, now
	if fresh || w.minDelay == 0 {
		w.minDelay = w.roundRaw
	}
}

// effTarget is the queueing-delay target in force: the configured one,
// or on a path that lost packets in the last lossRounds rounds half the
// minimum delay, if longer. A loss stalls every ack behind the lost
// packet for about a round trip; a window with no room beyond the pipe
// then runs dry and the path idles, so a lossy path gets that much more
// room, as BBR's window gain gives every path.
func (w *Window) effTarget() time.Duration {
	if w.lossy > 0 {
		return max(w.target, w.minDelay/2)
	}
	return w.target
}

// OnLoss tells the window the path's packet losses so far (a cumulative
// count, such as quic-go's ConnectionStats.PacketsLost): a round in which
// it grew is a loss round, whose delays a retransmission inflated.
func (w *Window) OnLoss(total uint64) { w.losses = total }

// standing returns the delay a standing queue is judged by: the smallest
// of the last standingRounds round minima, so that one or two rounds
// inflated by a loss (every ack behind a lost packet waits for its
// retransmission) do not read as a queue; or the round's own minimum when
// the early test (queueing) already saw it persist.
func (w *Window) standing() time.Duration {
	w.recent[w.rounds%standingRounds] = w.roundMin
	if w.persistent {
		w.persistent = false
		return w.roundMin
	}
	m := w.roundMin
	for _, d := range w.recent {
		if d > 0 && d < m {
			m = d
		}
	}
	return m
}

// adjust moves the window by the round's queueing delay.
func (w *Window) adjust() {
	target := w.effTarget()
	base := w.net(w.base)
	q := w.roundMin - base
	w.queueDelay = q
	standing := w.standing()
	grewBy, lastRate := w.grewBy, w.lastRate
	w.grewBy, w.lastRate = 0, w.recs.roundRate
	switch {
	case standing-base > target:
		// A standing queue: shrink in proportion, so that the same rate
		// meets the target, but not below what the rate the round
		// delivered needs at the target delay (the queue drains at that
		// rate), and forget the faster past. A queue that ends startup
		// takes the window straight to that need, as leaving startup
		// does otherwise: the doubling overshot by the round the delay
		// lags behind, which a step in proportion would keep queued.
		f := float64(base+target) / float64(standing)
		if w.mode == modeStartup {
			f = 0
		}
		rtt := (w.minDelay + target).Seconds()
		for _, d := range []*dim{&w.recs, &w.bytes} {
			d.win = math.Max(d.win*f, d.roundRate*rtt)
			for i := range d.rate {
				d.rate[i] = d.roundRate
			}
		}
		w.mode, w.velocity = modeSteady, 1
	case !w.roundLimited:
		// Not window-limited: the round says nothing about more room.
		w.velocity = 1
	case w.mode == modeStartup:
		// Startup's rate is what its window lets through, not the
		// path's, so its estimate of a batch's own transmission would
		// be too long: startup reads the delays as they are.
		w.startupRound(w.roundRaw-w.minDelay, target)
	case q < target/2:
		// Room below the target while window-limited: add what the
		// measured rate fills with half the target of queue, times the
		// velocity, which doubles for every round that still shows no
		// queue at all (as Copa does), so that the window follows a path
		// or consumer that sped up within a few round trips and creeps
		// up by half the target per round on a full path; but at least a
		// sixteenth, since on a long round trip half the target of the
		// rate is a sliver of the window and a queueing delay read within
		// its noise would otherwise hold a half-empty pipe for seconds.
		step := target.Seconds() / 2 * w.velocity
		// The rate followed the last growth (by half of it, at least):
		// the window, not the path, limits it, and what reads as a
		// small queue is the delay's jitter.
		following := grewBy > 0 && w.recs.roundRate >= lastRate*(1+grewBy/2)
		before := w.recs.win
		for _, d := range []*dim{&w.recs, &w.bytes} {
			d.win += math.Max(d.win/16, d.maxRate()*step)
		}
		w.grewBy = w.recs.win/before - 1
		switch {
		case q >= target/4 && !w.rateGrew && !following:
			// A queue is forming and the rate no longer grows with
			// the window: creep. (While the rate still grows by a
			// quarter a round, or by half of what the window last
			// grew, the queue is one the path is still clearing as it
			// ramps up, such as QUIC's own slow start on a long round
			// trip, or delay jitter, and the velocity keeps doubling.)
			w.velocity = 1
		case w.velocity >= restartVelocity:
			// Two rounds in a row without any queue: far more room
			// than the window uses. Search exponentially again.
			w.mode, w.startupBest, w.startupFlat, w.velocity = modeStartup, 0, 0, 1
		default:
			w.velocity *= 2
		}
	default:
		// Between half the target and the target: hold.
		w.velocity = 1
	}
	w.capByRate(target)
}

// startupRound doubles the window, or leaves startup once a queue forms or
// the rate stops growing; leaving, the window drops to what the measured
// rate needs at the target delay, which drains the queue startup built.
func (w *Window) startupRound(q, target time.Duration) {
	if r := w.recs.roundRate; r >= 1.25*w.startupBest {
		w.startupBest, w.startupFlat = r, 0
	} else {
		w.startupFlat++
	}
	// A queue ends startup, unless the rate still grew by a quarter this
	// round: then the queue is the path's own ramp-up (QUIC's slow start
	// holding records that the window let go), not a full pipe, and
	// leaving now would size the window from a rate the path is about to
	// exceed. A full pipe stops the rate from growing, which ends startup
	// the round after.
	if (q < target/2 || w.startupFlat == 0) && w.startupFlat < 3 {
		w.scale(2)
		return
	}
	w.mode = modeSteady
	rtt := (w.minDelay + target).Seconds()
	for _, d := range []*dim{&w.recs, &w.bytes} {
		if r := d.maxRate(); r > 0 {
			d.win = math.Min(d.win, r*rtt)
		}
	}
}

func (w *Window) scale(g float64) {
	w.recs.win *= g
	w.bytes.win *= g
}

// capByRate keeps the window within twice what the measured rate needs at
// the target delay, and within the floor and the caps.
func (w *Window) capByRate(target time.Duration) {
	rtt := (w.minDelay + target).Seconds()
	for _, d := range []*dim{&w.recs, &w.bytes} {
		if r := d.maxRate(); r > 0 {
			d.win = math.Min(d.win, math.Max(2*r*rtt, d.min))
		}
		d.clamp()
	}
}

func (w *Window) nextRound() {
	w.roundMin, w.roundRaw = -1, -1
	w.recs.peak, w.bytes.peak = w.recs.maxRate(), w.bytes.maxRate()
	w.roundLimited = false
	w.recs.roundRate, w.bytes.roundRate = 0, 0
	w.roundEnd = w.ackedRecs + 1
	if w.n > 0 {
		if last := w.stamps[(w.head+w.n-1)%len(w.stamps)].first; last > w.ackedRecs {
			w.roundEnd = last
		}
	}
}

// WindowStats is a snapshot of a Window's model.
type WindowStats struct {
	Records, Bytes int64         // the current window
	MinDelay       time.Duration // windowed minimum of the Send→ack delay
	LastDelay      time.Duration // the latest delay sample
	QueueDelay     time.Duration // the last round's least delay above the floor's, each less its batch's own transmission
	RecordsPerSec  float64       // windowed maximum delivery rate
	BytesPerSec    float64
	Rounds         uint64
	Mode           string
}

// Stats returns the window's current model.
func (w *Window) Stats() WindowStats {
	return WindowStats{
		Records: w.Records(), Bytes: w.Bytes(),
		MinDelay: w.minDelay, LastDelay: w.last.d, QueueDelay: w.queueDelay,
		RecordsPerSec: w.recs.maxRate(), BytesPerSec: w.bytes.maxRate(),
		Rounds: w.rounds, Mode: w.mode.String(),
	}
}
