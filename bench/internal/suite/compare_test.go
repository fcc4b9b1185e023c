package suite

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// row returns a throughput result of tr with the given MB/s and p99 stats.
func row(tr string, mb, p99 Stat) Result {
	r := Result{Case: CaseThroughput, Transport: tr, RecordSize: 64, Streams: 1}
	r.MBPerSec, r.P99us = mb, p99
	return r
}

func st(med, lo, hi float64) Stat { return Stat{Median: med, Min: lo, Max: hi, N: 3} }

func TestCompare(t *testing.T) {
	old := []Result{
		row("recordmux", st(100, 95, 105), st(50, 40, 60)),
		row("framer", st(200, 190, 210), st(30, 28, 32)),
		row("gone", st(1, 1, 1), Stat{}),
	}
	cur := []Result{
		row("framer", st(150, 140, 160), st(31, 29, 33)),    // throughput down 25 %, apart; p99 +3.3 %, overlapping
		row("recordmux", st(110, 104, 112), st(20, 18, 22)), // throughput +10 %, overlapping; p99 −60 %, apart (better)
		row("new", st(1, 1, 1), Stat{}),
	}
	ch := Compare(old, cur)
	require.Len(t, ch, 4, "rows matched by key; metrics both measured")
	byKey := map[string]Change{}
	for _, c := range ch {
		byKey[c.Key+" "+c.Metric.Name] = c
	}
	f := byKey["throughput/framer/64B/x1 mb_per_sec"]
	require.InDelta(t, -0.25, f.Delta, 1e-12)
	require.False(t, f.Overlap)
	require.True(t, f.Worse())
	require.True(t, f.Regressed(0.05))
	require.False(t, f.Regressed(0.30), "below the threshold")

	fp := byKey["throughput/framer/64B/x1 p99_us"]
	require.InDelta(t, 31.0/30-1, fp.Delta, 1e-12)
	require.True(t, fp.Overlap)
	require.True(t, fp.Worse())
	require.False(t, fp.Regressed(0), "overlapping ranges never fail")

	r := byKey["throughput/recordmux/64B/x1 mb_per_sec"]
	require.InDelta(t, 0.10, r.Delta, 1e-12)
	require.True(t, r.Overlap, "104–112 overlaps 95–105")
	require.False(t, r.Worse())

	rp := byKey["throughput/recordmux/64B/x1 p99_us"]
	require.InDelta(t, -0.6, rp.Delta, 1e-12)
	require.False(t, rp.Overlap)
	require.False(t, rp.Worse(), "lower latency is better")

	bad, err := Regressions(ch, []string{"mb_per_sec", "p99_us"}, 0.05)
	require.NoError(t, err)
	require.Len(t, bad, 1)
	require.Equal(t, f, bad[0])
	bad, err = Regressions(ch, []string{"p99_us"}, 0.05)
	require.NoError(t, err)
	require.Empty(t, bad)
	_, err = Regressions(ch, []string{"speed"}, 0.05)
	require.ErrorContains(t, err, "unknown metric")

	var out bytes.Buffer
	require.NoError(t, WriteComparison(&out, ch, []string{"mb_per_sec"}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, "header and the two mb_per_sec rows")
	require.Contains(t, lines[1], "150 [140–160]")
	require.Contains(t, lines[1], "-25.0%")
	require.Contains(t, lines[1], "apart: WORSE")
	require.Contains(t, lines[2], "+10.0%")
	require.Contains(t, lines[2], "overlap")
}

func TestCompareEdges(t *testing.T) {
	// A metric with no better direction never regresses; a zero old
	// median has no relative change.
	o, n := Result{Case: CaseHOL, Transport: "mux", Loss: 0.05}, Result{Case: CaseHOL, Transport: "mux", Loss: 0.05}
	o.LossObserved, n.LossObserved = st(0.05, 0.05, 0.05), st(0.2, 0.2, 0.2)
	o.DrainMs, n.DrainMs = st(0, 0, 0), st(10, 10, 10)
	ch := Compare([]Result{o}, []Result{n})
	require.Len(t, ch, 2)
	for _, c := range ch {
		switch c.Metric.Name {
		case "loss_observed":
			require.False(t, c.Worse())
		case "drain_ms":
			require.True(t, math.IsNaN(c.Delta))
			require.True(t, c.Worse())
			require.False(t, c.Regressed(0.05), "no relative change to compare")
		}
	}
	o.Loss = 0.01
	require.Empty(t, Compare([]Result{o}, []Result{n}), "another loss is another row")
}
