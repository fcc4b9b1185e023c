package suite

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Change is one metric of one row present in two runs.
type Change struct {
	// Key identifies the row (case, transport, size, streams, loss).
	Key    string
	Metric MetricInfo
	Old    Stat
	New    Stat
	// Delta is the relative change of the median: New/Old - 1 (NaN when
	// Old's median is 0).
	Delta float64
	// Overlap reports whether the min–max ranges of the two runs
	// overlap: if they do, the change may be noise.
	Overlap bool
}

// Worse reports whether the change goes in the metric's bad direction
// (always false for a metric with no better direction).
func (c Change) Worse() bool {
	switch c.Metric.Better {
	case "higher":
		return c.New.Median < c.Old.Median
	case "lower":
		return c.New.Median > c.Old.Median
	}
	return false
}

// Regressed reports a change that goes in the bad direction by more than
// threshold (a fraction: 0.05 for 5 %) with ranges that do not overlap.
func (c Change) Regressed(threshold float64) bool {
	return c.Worse() && !c.Overlap && math.Abs(c.Delta) > threshold
}

// Compare matches the rows of two runs by Key and returns, for every
// metric both measured, its change, in the new run's row order.
func Compare(old, new []Result) []Change {
	var out []Change
	for i := range new {
		n := &new[i]
		j := slices.IndexFunc(old, func(o Result) bool { return o.Key() == n.Key() })
		if j < 0 {
			continue
		}
		o := &old[j]
		for _, m := range metricInfos {
			a, b := o.get(m), n.get(m)
			if a.N == 0 || b.N == 0 {
				continue
			}
			delta := math.NaN()
			if a.Median != 0 {
				delta = b.Median/a.Median - 1
			}
			out = append(out, Change{Key: n.Key(), Metric: m, Old: a, New: b, Delta: delta,
				Overlap: a.Min <= b.Max && b.Min <= a.Max})
		}
	}
	return out
}

// WriteComparison prints the changes as a table; metrics restricts it to
// those names (all when empty). A change whose ranges do not overlap is
// marked with its direction: "better" or "WORSE".
func WriteComparison(w io.Writer, changes []Change, metrics []string) error {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tmetric\told median [min–max]\tnew median [min–max]\tchange\tranges\t")
	for _, c := range changes {
		if len(metrics) > 0 && !slices.Contains(metrics, c.Metric.Name) {
			continue
		}
		verdict := "overlap"
		switch {
		case c.Overlap:
		case c.Worse():
			verdict = "apart: WORSE"
		case c.Metric.Better != "" && c.New.Median != c.Old.Median:
			verdict = "apart: better"
		default:
			verdict = "apart"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Key, c.Metric.Name, statRange(c.Old), statRange(c.New), signedPct(c.Delta), verdict)
	}
	return tw.Flush()
}

func statRange(s Stat) string {
	return fmt.Sprintf("%s [%s–%s]", trim(s.Median), trim(s.Min), trim(s.Max))
}

func signedPct(d float64) string {
	if math.IsNaN(d) {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", d*100)
}

// Regressions returns the changes of the given metrics that regressed by
// more than threshold without overlapping ranges; an unknown metric name
// is an error.
func Regressions(changes []Change, metrics []string, threshold float64) ([]Change, error) {
	for _, m := range metrics {
		if _, ok := Metric(m); !ok {
			return nil, fmt.Errorf("unknown metric %q (one of %s)", m, strings.Join(MetricNames(), ", "))
		}
	}
	var out []Change
	for _, c := range changes {
		if slices.Contains(metrics, c.Metric.Name) && c.Regressed(threshold) {
			out = append(out, c)
		}
	}
	return out, nil
}
