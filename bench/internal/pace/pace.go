package pace

import (
	"math"
	"runtime"
	"time"
)

// DefaultSpinWindow is how long before a deadline a [Pacer] stops its
// coarse sleep when [Options.SpinWindow] is 0.
const DefaultSpinWindow = time.Millisecond

// Options tune a [Pacer]. The zero value, and nil, mean the defaults.
type Options struct {
	// SpinWindow is how long before a deadline the pacer stops sleeping
	// with Sleep and waits finely instead. 0 means [DefaultSpinWindow]; a
	// negative value never waits finely (plain sleeping, which
	// oversleeps on loaded machines).
	SpinWindow time.Duration
	// Spin makes the fine wait spin with Yield until the deadline: the
	// most precise wait, at the cost of a busy core. Otherwise the fine
	// wait uses FineSleep.
	Spin bool
	// Now reads the clock; nil means [time.Now].
	Now func() time.Time
	// Sleep is the coarse sleep; nil means [time.Sleep].
	Sleep func(time.Duration)
	// FineSleep is the fine sleep; nil means [NanoSleep] where the
	// platform has it, and spinning elsewhere.
	FineSleep func(time.Duration)
	// Yield gives the processor away while spinning; nil means
	// [runtime.Gosched].
	Yield func()
}

// Pacer releases events at a fixed rate, scheduled by absolute time from a
// start instant. It is not safe for concurrent use.
type Pacer struct {
	start  time.Time
	nsPer  float64 // nanoseconds between events
	next   int64   // index of the next event Wait has not released
	window time.Duration
	spin   bool
	now    func() time.Time
	sleep  func(time.Duration)
	fine   func(time.Duration)
	yield  func()
	rateHz float64
}

// New returns a Pacer whose event i (from 0) is due at start + i/rate.
// rate is in events per second and must be positive and finite.
func New(start time.Time, rate float64, opts *Options) *Pacer {
	if !(rate > 0) || math.IsInf(rate, 1) {
		panic("pace: rate must be positive and finite")
	}
	if opts == nil {
		opts = &Options{}
	}
	p := &Pacer{
		start:  start,
		nsPer:  1e9 / rate,
		window: opts.SpinWindow,
		spin:   opts.Spin,
		now:    opts.Now,
		sleep:  opts.Sleep,
		fine:   opts.FineSleep,
		yield:  opts.Yield,
		rateHz: rate,
	}
	if p.window == 0 {
		p.window = DefaultSpinWindow
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = time.Sleep
	}
	if p.fine == nil {
		p.fine = defaultFineSleep()
	}
	if p.fine == nil {
		p.spin = true
	}
	if p.yield == nil {
		p.yield = runtime.Gosched
	}
	return p
}

// Rate returns the configured rate in events per second.
func (p *Pacer) Rate() float64 { return p.rateHz }

// At returns when event i is due.
func (p *Pacer) At(i int64) time.Time {
	return p.start.Add(time.Duration(float64(i) * p.nsPer))
}

// Next returns the index of the next event that Wait will release.
func (p *Pacer) Next() int64 { return p.next }

// Wait blocks until the next event is due and releases it together with
// every later event that is also due by then. It returns how many events
// it released (at least 1) and when the first of them was due. A caller
// that was on time gets n == 1; one that fell behind gets the backlog of
// the schedule, which it may send at once or drop.
func (p *Pacer) Wait() (n int, first time.Time) {
	first = p.At(p.next)
	for {
		d := first.Sub(p.now())
		switch {
		case d <= 0:
		case p.window < 0:
			p.sleep(d)
			continue
		case d > p.window:
			p.sleep(d - p.window)
			continue
		case p.spin:
			p.yield()
			continue
		default:
			p.fine(d)
			continue
		}
		break
	}
	elapsed := p.now().Sub(p.start)
	last := max(int64(float64(elapsed)/p.nsPer), p.next)
	// Guard against float rounding putting event last+1 in the past.
	for !p.At(last + 1).After(p.start.Add(elapsed)) {
		last++
	}
	n = int(last - p.next + 1)
	p.next = last + 1
	return n, first
}
