package flow

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func constRate(r float64) func(time.Duration) float64 {
	return func(time.Duration) float64 { return r }
}

func bigCaps() WindowParams { return WindowParams{MaxRecords: 1 << 20, MaxBytes: 1 << 30} }

// bestStatic runs the model with each static window and returns the best
// throughput.
func bestStatic(t *testing.T, rtt time.Duration, rate func(time.Duration) float64, link float64, end time.Duration) float64 {
	var best float64
	for _, win := range []int64{64, 256, 1024, 4096, 16384, 65536} {
		p := bigCaps()
		p.MaxRecords, p.Fixed = win, true
		m := newPathModel(NewWindow(p, 0, 0), rtt, rate)
		m.linkRate = link
		m.run(end)
		tp := m.throughput(end/2, end)
		t.Logf("static %6d: %8.0f records/s, p99 %v", win, tp, m.latencyQuantile(0.99, end/2, end))
		best = max(best, tp)
	}
	return best
}

// TestWindowModelPaths runs the adaptive window in the model on paths
// from loopback-like to a long round trip and checks that it keeps the
// throughput of the best static window while holding the delivery
// latency within the round trip plus the target, and that it settles.
func TestWindowModelPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rtt  time.Duration
		rate float64 // records per second the bottleneck applies
		link bool    // the bottleneck is the link (batches are a millisecond of it)
	}{
		{"loopback", 100 * time.Microsecond, 1_000_000, false},
		{"lan", time.Millisecond, 200_000, false},
		{"rtt20ms-50mbit", 20 * time.Millisecond, 50e6 / 8 / 256, true},
		{"rtt100ms-50mbit", 100 * time.Millisecond, 50e6 / 8 / 256, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			end := max(200*tc.rtt, 2*time.Second)
			link := 0.0
			if tc.link {
				link = tc.rate
			}
			best := bestStatic(t, tc.rtt, constRate(tc.rate), link, end)
			m := newPathModel(NewWindow(bigCaps(), 0, 0), tc.rtt, constRate(tc.rate))
			m.linkRate = link
			m.run(end)
			tp := m.throughput(end/2, end)
			p99 := m.latencyQuantile(0.99, end/2, end)
			ws := m.windowsIn(end/2, end)
			for _, w := range m.winLog {
				if w.at%(end/40) < tc.rtt+time.Millisecond {
					t.Logf("t=%-8v window %d", w.at.Round(time.Millisecond), w.win)
				}
			}
			t.Logf("adaptive: %8.0f records/s (best static %.0f), p99 %v, window %v..%v, stats %+v",
				tp, best, p99, slices.Min(ws), slices.Max(ws), m.w.Stats())
			require.GreaterOrEqual(t, tp, 0.9*best, "throughput")
			require.LessOrEqual(t, p99, 2*tc.rtt+DefaultTarget+time.Millisecond, "delivery p99")
			// Settled: once converged, the window stays within a band
			// (no oscillation between extremes). The 5th and 95th
			// percentiles leave out the one-round probes for the minimum
			// delay.
			slices.Sort(ws)
			lo, hi := ws[len(ws)*5/100], ws[len(ws)*95/100]
			require.LessOrEqual(t, float64(hi), 1.5*float64(lo), "window band %v", ws)
		})
	}
}

// TestWindowModelConsumerChange drops the consumer from full speed to
// 5,000 records/s and back and checks that the window follows within a
// few round trips each way, keeping latency bounded while the consumer is
// slow and the throughput once it is fast again.
func TestWindowModelConsumerChange(t *testing.T) {
	t.Parallel()
	const rtt = 20 * time.Millisecond
	slowFrom, slowTo, end := 2*time.Second, 4*time.Second, 6*time.Second
	rate := func(now time.Duration) float64 {
		if now >= slowFrom && now < slowTo {
			return 5000
		}
		return 200_000
	}
	m := newPathModel(NewWindow(bigCaps(), 0, 0), rtt, rate)
	m.run(end)
	for _, w := range m.winLog {
		if w.at%(100*time.Millisecond) < rtt+time.Millisecond {
			t.Logf("t=%-8v window %d", w.at.Round(time.Millisecond), w.win)
		}
	}
	at := func(t time.Duration) int64 {
		var w int64
		for _, l := range m.winLog {
			if l.at <= t {
				w = l.win
			}
		}
		return w
	}
	// Within 25 round trips of the slowdown the window is within twice
	// what 5,000 records/s need at the round trip plus the target.
	need := 5000 * (rtt + DefaultTarget).Seconds()
	require.LessOrEqual(t, float64(at(slowFrom+25*rtt)), 3*need, "window 25 round trips after the slowdown")
	// What was in flight at the slowdown drains at 5,000 records/s, which
	// no sender can undo; after that, delivery latency is the round trip,
	// the target and a floor-sized batch at the slow rate.
	drained := slowFrom + time.Duration(float64(at(slowFrom))/5000*float64(time.Second)) + 10*rtt
	slowP99 := m.latencyQuantile(0.99, drained, slowTo)
	t.Logf("drained at %v; p99 while slow %v", drained, slowP99)
	require.LessOrEqual(t, slowP99, 2*rtt+DefaultTarget, "latency while slow")
	require.InDelta(t, 5000, m.throughput(drained, slowTo), 250)
	// Within 15 round trips of the speed-up, throughput is back near the
	// consumer's rate and latency within the round trip plus the target.
	require.GreaterOrEqual(t, m.throughput(slowTo+15*rtt, end), 0.9*200_000)
	fastP99 := m.latencyQuantile(0.99, slowTo+15*rtt, end)
	require.LessOrEqual(t, fastP99, 2*rtt+DefaultTarget+time.Millisecond)
}

// TestWindowProbesMinDelay shows the minimum delay is refreshed when the
// path's round trip grows: without a probe a stale, smaller minimum would
// read as a standing queue forever and starve the stream.
func TestWindowProbesMinDelay(t *testing.T) {
	t.Parallel()
	w := NewWindow(bigCaps(), 0, 0)
	rtt := 10 * time.Millisecond
	m := newPathModel(w, rtt, constRate(50_000))
	m.run(3 * time.Second)
	require.InDelta(t, rtt, w.Stats().MinDelay, float64(2*time.Millisecond))
	// The round trip doubles: after the probe interval the model must
	// have adopted the new minimum and recovered the throughput.
	m.rtt = 20 * time.Millisecond
	m.run(3*time.Second + MinDelayWindow + 3*time.Second)
	st := w.Stats()
	require.InDelta(t, 20*time.Millisecond, st.MinDelay, float64(3*time.Millisecond), "stats %+v", st)
	require.GreaterOrEqual(t, m.throughput(MinDelayWindow+4*time.Second, MinDelayWindow+6*time.Second), 0.9*50_000)
}

// TestWindowFixed keeps the caps whatever happens.
func TestWindowFixed(t *testing.T) {
	w := NewWindow(WindowParams{MaxRecords: 1000, MaxBytes: 1 << 20, Fixed: true}, 0, 0)
	require.Equal(t, int64(1000), w.Records())
	w.OnBatch(1, 0, epoch)
	w.OnAck(10, 100, epoch.Add(time.Second))
	require.Equal(t, int64(1000), w.Records())
	w.SetCaps(500, 1<<10)
	require.Equal(t, [2]int64{500, 1 << 10}, [2]int64{w.Records(), w.Bytes()})

	// It still measures: a path model shows its delay and rate.
	m := newPathModel(NewWindow(WindowParams{MaxRecords: 64, MaxBytes: 1 << 30, Fixed: true}, 0, 0), 10*time.Millisecond, constRate(100_000))
	m.run(time.Second)
	st := m.w.Stats()
	require.Equal(t, int64(64), st.Records)
	require.InDelta(t, 10*time.Millisecond, st.MinDelay, float64(time.Millisecond))
	require.InDelta(t, 64/0.0106, st.RecordsPerSec, 600, "64 records per round trip plus service")
}

// TestWindowCapsAndFloor checks the window never leaves [floor, cap], and
// that a slow consumer drives it down towards the floor.
func TestWindowCapsAndFloor(t *testing.T) {
	for _, tc := range []struct {
		p         WindowParams
		wantRecs  int64
		wantBytes int64
		floor     int64
	}{
		{WindowParams{MaxRecords: 100, MaxBytes: 1 << 30}, 100, 256 << 10, 16},
		{WindowParams{MaxRecords: 8, MaxBytes: 1 << 30}, 8, 256 << 10, 8},
		{WindowParams{MaxRecords: 1 << 20, MaxBytes: 1 << 30, InitRecords: 10, MinRecords: 4}, 10, 256 << 10, 4},
	} {
		t.Run(fmt.Sprint(tc.p.MaxRecords, "/", tc.p.InitRecords), func(t *testing.T) {
			w := NewWindow(tc.p, 0, 0)
			require.Equal(t, tc.wantRecs, w.Records())
			require.Equal(t, tc.wantBytes, w.Bytes())
			// A consumer that takes 10 ms per record, one round trip of
			// 1 ms: the window that meets the target is a few records.
			m := newPathModel(w, time.Millisecond, constRate(100))
			m.run(60 * time.Second)
			var ws []int64
			for _, l := range m.winLog {
				ws = append(ws, l.win)
			}
			require.GreaterOrEqual(t, slices.Min(ws), tc.floor)
			require.LessOrEqual(t, slices.Max(ws), tc.p.MaxRecords)
			require.LessOrEqual(t, w.Records(), max(3*tc.floor, tc.wantRecs/2), "shrunk towards the floor: %v", ws[len(ws)-10:])
			require.InDelta(t, 100, m.throughput(30*time.Second, 60*time.Second), 5, "and still keeps the consumer busy")
		})
	}
}

// TestWindowAllocs checks that the per-ack and per-batch paths allocate
// nothing once the stamp ring has grown.
func TestWindowAllocs(t *testing.T) {
	w := NewWindow(bigCaps(), 0, 0)
	now := epoch
	seq := uint64(0)
	step := func() {
		now = now.Add(time.Millisecond)
		w.OnBatch(seq+1, seq*100, now)
		seq += 10
		w.OnBlocked()
		w.OnAck(seq, seq*100, now.Add(500*time.Microsecond))
	}
	for range 100 {
		step()
	}
	require.Zero(t, testing.AllocsPerRun(1000, step))
}

// TestWindowStartupRidesRampUp drives a window round by round on a
// 100 ms path whose delivery rate keeps doubling (QUIC's own slow start
// behind the window) while every round after the first shows a queue of
// 1.5 ms, above half the target. While the rate grows by a quarter a
// round, startup goes on (the window follows the rate, within twice what
// it needs); once the rate stops growing, startup ends and the window
// drops to what the rate needs at the target.
func TestWindowStartupRidesRampUp(t *testing.T) {
	const rtt = 100 * time.Millisecond
	w := NewWindow(bigCaps(), 0, 0)
	now, seq := epoch, uint64(0)
	delivered := int64(64) // what the path lets through per round
	round := func(queue time.Duration) {
		n := min(w.Records(), delivered)
		w.OnBatch(seq+1, seq*100, now)
		w.OnBlocked()
		seq += uint64(n)
		now = now.Add(rtt + queue)
		w.OnAck(seq, seq*100, now)
	}
	need := func(perRound int64) float64 { // records at the target delay
		return float64(perRound) / rtt.Seconds() * (rtt + DefaultTarget).Seconds()
	}
	round(0)
	for range 3 {
		delivered *= 2
		round(1500 * time.Microsecond)
		st := w.Stats()
		require.Equal(t, "startup", st.Mode, "the rate doubled, so the queue is the path ramping up: %+v", st)
		require.InDelta(t, 2*need(delivered), float64(st.Records), 0.05*need(delivered), "the window keeps twice what the rate needs")
	}
	// The path is full: the rate stays where it is.
	for range 4 {
		round(1500 * time.Microsecond)
	}
	st := w.Stats()
	require.Equal(t, "steady", st.Mode, "stats %+v", st)
	require.LessOrEqual(t, float64(st.Records), 1.1*need(delivered), "startup ended and the window came down to what the rate needs: %+v", st)
}

// TestWindowGrowsThroughJitter: a steady window well below the pipe, on a
// path whose delay sits 0.7 ms above its minimum whatever the window
// (jitter from batching, acks and pacing, read as a small queue between a
// quarter and half the target). Its rate follows every growth of the
// window, so the window is what limits it: the growth keeps speeding up
// until it searches as startup does, instead of creeping by a sixteenth a
// round. (Creeping, a window that startup left at 32 records on a 100 ms
// path delivered 770 records/s of the 5,900 the path carried.)
func TestWindowGrowsThroughJitter(t *testing.T) {
	const rtt = 100 * time.Millisecond
	w := NewWindow(WindowParams{MaxRecords: 1 << 20, MaxBytes: 1 << 30, InitRecords: 32}, 0, 0)
	now, seq := epoch, uint64(0)
	round := func(queue time.Duration) {
		n := w.Records() // the path takes all of it
		w.OnBatch(seq+1, seq*100, now)
		w.OnBlocked()
		seq += uint64(n)
		now = now.Add(rtt + queue)
		w.OnAck(seq, seq*100, now)
	}
	round(0)
	for range 3 { // a standing queue ends startup
		round(5 * time.Millisecond)
	}
	require.Equal(t, "steady", w.Stats().Mode)
	start := w.Records()
	for range 10 {
		round(700 * time.Microsecond)
	}
	require.GreaterOrEqual(t, w.Records(), 4*start, "from %d records: %+v", start, w.Stats())
}
