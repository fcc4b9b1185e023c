package suite

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/recordmux/recordmux/bench/internal/svgplot"
)

// transportColour gives each transport the same colour in every chart.
func transportColour(tr string) string {
	switch tr {
	case Recordmux:
		return "#1f77b4"
	case Raw:
		return "#7f7f7f"
	case Framer:
		return "#ff7f0e"
	case Mux:
		return "#d62728"
	}
	return "#2ca02c"
}

// cdfPoints returns at most n points (x ascending, y the cumulative
// fraction) of the empirical CDF of d, in unit.
func cdfPoints(d []time.Duration, unit time.Duration, n int) (xs, ys []float64) {
	if len(d) == 0 {
		return nil, nil
	}
	s := slices.Clone(d)
	slices.Sort(s)
	step := max(1, len(s)/n)
	for i := 0; i < len(s); i += step {
		xs = append(xs, float64(s[i])/float64(unit))
		ys = append(ys, float64(i+1)/float64(len(s)))
	}
	if xs[len(xs)-1] != float64(s[len(s)-1])/float64(unit) || ys[len(ys)-1] != 1 {
		xs = append(xs, float64(s[len(s)-1])/float64(unit))
		ys = append(ys, 1)
	}
	return xs, ys
}

// Plot is one chart file of a report.
type Plot struct {
	File  string
	Title string
	write func(*os.File) error
}

// Plots returns the charts of a report: throughput bars, a latency CDF per
// latency and hol cell (all transports on one chart), and backlog and
// heap over time.
func Plots(rep *Report) []Plot {
	var out []Plot
	if p, ok := throughputPlot(rep); ok {
		out = append(out, p)
	}
	for _, cellName := range latencyCells(rep) {
		out = append(out, cdfPlot(rep, cellName[0], cellName[1]))
	}
	if len(rep.Backlog) > 0 {
		out = append(out, backlogPlot(rep, false), backlogPlot(rep, true))
	}
	return out
}

// WritePlots writes every chart of the report into dir as SVG and returns
// the files written.
func WritePlots(dir string, rep *Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, p := range Plots(rep) {
		name := filepath.Join(dir, p.File)
		f, err := os.Create(name)
		if err != nil {
			return files, err
		}
		err = p.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return files, err
		}
		files = append(files, name)
	}
	return files, nil
}

func throughputPlot(rep *Report) (Plot, bool) {
	var rs []Result
	for _, r := range rep.Results {
		if r.Case == CaseThroughput {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return Plot{}, false
	}
	keys, m := grouped(rs)
	c := &svgplot.BarChart{Title: "throughput: MB/s of record payload (median)", YLabel: "MB/s", Width: 980}
	for _, k := range keys {
		c.Categories = append(c.Categories, fmt.Sprintf("%s x%d", sizeLabel(k.size), k.streams))
	}
	for _, tr := range []string{Recordmux, Raw, Framer} {
		s := svgplot.BarSeries{Name: tr, Colour: transportColour(tr)}
		for _, k := range keys {
			v := math.NaN()
			if r := m[k][tr]; r != nil {
				v = r.Get(MMBPerSec)
			}
			s.Values = append(s.Values, v)
		}
		c.Series = append(c.Series, s)
	}
	return Plot{File: "throughput.svg", Title: c.Title, write: func(f *os.File) error { return c.WriteSVG(f) }}, true
}

// latencyCells lists the (case, cell) pairs with latency samples.
func latencyCells(rep *Report) [][2]string {
	var out [][2]string
	for _, l := range rep.Latency {
		k := [2]string{l.Case, l.Cell}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func cdfPlot(rep *Report, c, cellName string) Plot {
	unit, unitName := time.Microsecond, "µs"
	if c == CaseHOL {
		unit, unitName = time.Millisecond, "ms"
	}
	ch := &svgplot.LineChart{
		Title:  fmt.Sprintf("%s %s: latency CDF (all repetitions)", c, cellName),
		XLabel: fmt.Sprintf("Send to applied ack, %s (log scale)", unitName), YLabel: "fraction of records",
		LogX: true, Step: true, YMax: 1,
		HLines: []svgplot.HLine{{Y: 0.5, Label: "p50"}, {Y: 0.99, Label: "p99"}},
	}
	for _, l := range rep.Latency {
		if l.Case != c || l.Cell != cellName {
			continue
		}
		xs, ys := cdfPoints(l.Samples, unit, 600)
		ch.Series = append(ch.Series, svgplot.Series{Name: fmt.Sprintf("%s (%d samples)", l.Transport, len(l.Samples)), X: xs, Y: ys, Colour: transportColour(l.Transport)})
	}
	file := fmt.Sprintf("latency-%s-%s.svg", c, slug(cellName))
	return Plot{File: file, Title: ch.Title, write: func(f *os.File) error { return ch.WriteSVG(f) }}
}

func slug(s string) string {
	s = strings.ToLower(s)
	s = strings.NewReplacer(" ", "-", "%", "pct", "/", "-per-", ".", "_").Replace(s)
	return s
}

func backlogPlot(rep *Report, heap bool) Plot {
	o := rep.Options
	ch := &svgplot.LineChart{XLabel: "time since the producer started, ms", Width: 900}
	if heap {
		ch.Title = "backlog case: live heap above baseline (solid) and heap in use (dashed)"
		ch.YLabel = "MiB"
		ch.HLines = []svgplot.HLine{{Y: float64(o.BacklogWindowBytes)/(1<<20) + 1, Label: "recordmux windows + 1 MiB"}}
	} else {
		ch.Title = "backlog case: records sent but not yet applied"
		ch.YLabel = "records"
		ch.HLines = []svgplot.HLine{{Y: float64(o.BacklogWindowRecords), Label: "recordmux MaxInFlightRecords"}}
	}
	seen := map[string]bool{}
	for _, t := range rep.Backlog {
		if seen[t.Transport] { // first repetition only, to keep the chart legible
			continue
		}
		seen[t.Transport] = true
		var xs, ys, ys2 []float64
		for _, p := range t.Points {
			xs = append(xs, float64(p.T)/float64(time.Millisecond))
			if heap {
				ys = append(ys, float64(p.HeapLive)/(1<<20))
				ys2 = append(ys2, float64(p.HeapInUse)/(1<<20))
			} else {
				ys = append(ys, float64(p.Sent-min(p.Applied, p.Sent)))
			}
		}
		col := transportColour(t.Transport)
		ch.Series = append(ch.Series, svgplot.Series{Name: t.Transport, X: xs, Y: ys, Colour: col})
		if heap {
			ch.Series = append(ch.Series, svgplot.Series{Name: t.Transport + " in use", X: xs, Y: ys2, Colour: col, Dashed: true})
		}
	}
	file := "backlog-records.svg"
	if heap {
		file = "backlog-heap.svg"
	}
	return Plot{File: file, Title: ch.Title, write: func(f *os.File) error { return ch.WriteSVG(f) }}
}
