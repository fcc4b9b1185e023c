package pace

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// lateSleep imitates a loaded virtual machine: every sleep wakes 1 ms late.
func lateSleep(d time.Duration) { time.Sleep(d + time.Millisecond) }

// microYield advances the bubble's virtual clock by 1 µs per spin, standing
// in for runtime.Gosched, which would stop virtual time.
func microYield() { time.Sleep(time.Microsecond) }

// lateness runs n events at rate through p and returns the largest delay
// between an event's deadline and Wait's return.
func lateness(p *Pacer, n int) (worst time.Duration, released int) {
	for released < n {
		k, first := p.Wait()
		if late := time.Since(first); late > worst {
			worst = late
		}
		released += k
	}
	return worst, released
}

func TestPacerSpinAccuracyDespiteOversleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, rate := range []float64{100, 1000, 10_000} {
			p := New(time.Now(), rate, &Options{SpinWindow: 1500 * time.Microsecond, Spin: true, Sleep: lateSleep, Yield: microYield})
			worst, released := lateness(p, 100)
			require.Equal(t, 100, released, "rate %v: every event released once", rate)
			require.LessOrEqual(t, worst, time.Microsecond, "rate %v", rate)
		}
	})
}

func TestPacerFineSleepAccuracy(t *testing.T) {
	// The fine sleep stands in for nanosleep: 50 µs of timer slack.
	fine := func(d time.Duration) { time.Sleep(d + 50*time.Microsecond) }
	synctest.Test(t, func(t *testing.T) {
		for _, rate := range []float64{100, 1000, 10_000} {
			p := New(time.Now(), rate, &Options{SpinWindow: 1500 * time.Microsecond, Sleep: lateSleep, FineSleep: fine})
			worst, released := lateness(p, 500)
			require.Equal(t, 500, released, "rate %v", rate)
			require.LessOrEqual(t, worst, 50*time.Microsecond, "rate %v", rate)
		}
	})
}

func TestNanoSleep(t *testing.T) {
	// Real time: only check that it sleeps at least as long as asked.
	start := time.Now()
	NanoSleep(200 * time.Microsecond)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Microsecond)
}

func TestPacerWithoutSpinOversleeps(t *testing.T) {
	// The failure the spin window exists for, so the test above is known
	// to detect it.
	synctest.Test(t, func(t *testing.T) {
		p := New(time.Now(), 100, &Options{SpinWindow: -1, Sleep: lateSleep, Yield: microYield})
		worst, _ := lateness(p, 50)
		require.GreaterOrEqual(t, worst, time.Millisecond)
	})
}

func TestPacerCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := New(start, 1000, &Options{Sleep: time.Sleep, FineSleep: time.Sleep})
		n, first := p.Wait()
		require.Equal(t, 1, n)
		require.Equal(t, start, first)
		time.Sleep(3500 * time.Microsecond) // miss events 1, 2 and 3
		n, first = p.Wait()
		require.Equal(t, 3, n)
		require.Equal(t, start.Add(time.Millisecond), first)
		require.Equal(t, int64(4), p.Next())
		n, first = p.Wait()
		require.Equal(t, 1, n)
		require.Equal(t, start.Add(4*time.Millisecond), first)
		require.Equal(t, start.Add(4*time.Millisecond), time.Now())
	})
}

func TestPacerNoDrift(t *testing.T) {
	// A rate whose interval is not a whole number of nanoseconds must not
	// accumulate rounding error.
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := New(start, 3, &Options{Sleep: time.Sleep, FineSleep: time.Sleep})
		var released int
		for released < 301 {
			n, _ := p.Wait()
			released += n
		}
		require.Equal(t, 301, released)
		require.Equal(t, start.Add(100*time.Second), time.Now())
	})
}

func TestPacerRejectsBadRate(t *testing.T) {
	require.Panics(t, func() { New(time.Now(), 0, nil) })
	require.Panics(t, func() { New(time.Now(), -1, nil) })
}
