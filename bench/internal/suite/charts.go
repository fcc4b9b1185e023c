package suite

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// Chart is one chart of a report, drawn with gonum.org/v1/plot: the plot
// and, to its right, its legend.
type Chart struct {
	// File is the file name, e.g. "throughput-1stream.svg".
	File   string
	Plot   *plot.Plot
	Legend plot.Legend
	// Width and Height are the plot's size; the legend adds its width.
	Width, Height vg.Length
}

// newChart returns a chart with a title and axis labels.
func newChart(file, title, x, y string, w, h float64) *Chart {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	lg := plot.NewLegend()
	lg.Top, lg.Left = true, true
	return &Chart{File: file, Plot: p, Legend: lg, Width: vg.Points(w), Height: vg.Points(h)}
}

// legendGap separates the plot from its legend.
const legendGap = 8

// Save draws the chart into name, in the format its extension names
// (svg, png, pdf, …).
func (c *Chart) Save(name string) error {
	lw := c.Legend.Rectangle(draw.Canvas{}).Size().X + vg.Points(2*legendGap)
	cw, err := draw.NewFormattedCanvas(c.Width+lw, c.Height, strings.TrimPrefix(filepath.Ext(name), "."))
	if err != nil {
		return err
	}
	dc := draw.New(cw)
	c.Plot.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	lc := draw.Crop(dc, c.Width+vg.Points(legendGap), 0, 0, -vg.Points(legendGap))
	c.Legend.Draw(lc)
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = cw.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Charts returns the charts of a report: throughput by record size per
// transport (one chart per stream count), a latency CDF per latency and
// hol cell, the hol p99 against loss, and the backlog case over time.
func Charts(rep *Report) ([]*Chart, error) {
	var out []*Chart
	add := func(cs ...*Chart) { out = append(out, cs...) }
	tp, err := throughputCharts(rep)
	if err != nil {
		return nil, err
	}
	add(tp...)
	for _, k := range latencyCells(rep) {
		c, err := cdfChart(rep, k[0], k[1])
		if err != nil {
			return nil, err
		}
		add(c)
	}
	if c, ok, err := holChart(rep); err != nil {
		return nil, err
	} else if ok {
		add(c)
	}
	if len(rep.Backlog) > 0 {
		for _, heap := range []bool{false, true} {
			c, err := backlogChart(rep, heap)
			if err != nil {
				return nil, err
			}
			add(c)
		}
	}
	return out, nil
}

// WriteCharts writes every chart of the report into dir as SVG and
// returns the files written.
func WriteCharts(dir string, rep *Report) ([]string, error) {
	charts, err := Charts(rep)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, c := range charts {
		name := filepath.Join(dir, c.File)
		if err := c.Save(name); err != nil {
			return files, err
		}
		files = append(files, name)
	}
	return files, nil
}

// palette gives each transport the same colour in every chart, in the
// order of transport.All.
var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0x9e, 0xda, 0xe5, 0xff},
	{0x7f, 0x7f, 0x7f, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x2c, 0xa0, 0x2c, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
}

func colourOf(tr string) color.Color {
	i := slices.IndexFunc(transport.All(transport.Options{}), func(t transport.Transport) bool { return t.Name() == tr })
	if i < 0 {
		return color.Black
	}
	return palette[i%len(palette)]
}

// transportsOf lists the transports of rs in canonical order.
func transportsOf(rs []Result) []string {
	var out []string
	for _, t := range transport.All(transport.Options{}) {
		if slices.ContainsFunc(rs, func(r Result) bool { return r.Transport == t.Name() }) {
			out = append(out, t.Name())
		}
	}
	return out
}

// valueLabels returns labels showing ys above points xs (in data
// coordinates), shifted by dx.
func valueLabels(xs, ys []float64, f func(float64) string, dx vg.Length) (*plotter.Labels, error) {
	var xy plotter.XYLabels
	for i := range xs {
		if math.IsNaN(ys[i]) {
			continue
		}
		xy.XYs = append(xy.XYs, plotter.XY{X: xs[i], Y: ys[i]})
		xy.Labels = append(xy.Labels, f(ys[i]))
	}
	l, err := plotter.NewLabels(xy)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = vg.Points(7)
		l.TextStyle[i].Rotation = math.Pi / 2
		l.TextStyle[i].XAlign = draw.XLeft
		l.TextStyle[i].YAlign = draw.YCenter
	}
	l.Offset = vg.Point{X: dx, Y: vg.Points(2)}
	return l, nil
}

// throughputCharts draws, per stream count, MB/s by record size with a
// bar per transport and its value on top.
func throughputCharts(rep *Report) ([]*Chart, error) {
	var rs []Result
	for _, r := range rep.Results {
		if r.Case == CaseThroughput {
			rs = append(rs, r)
		}
	}
	var out []*Chart
	for _, streams := range rep.Options.Streams {
		var cell []Result
		for _, r := range rs {
			if r.Streams == streams {
				cell = append(cell, r)
			}
		}
		if len(cell) == 0 {
			continue
		}
		trs := transportsOf(cell)
		var names []string
		for _, size := range rep.Options.Sizes {
			names = append(names, sizeLabel(size))
		}
		ch := newChart(fmt.Sprintf("throughput-%dstream%s.svg", streams, plural(streams)),
			fmt.Sprintf("throughput, %d stream%s on one connection (median)", streams, plural(streams)),
			"record size", "MB/s of record payload", max(420, float64(len(trs)*len(names))*16+120), 360)
		p := ch.Plot
		barW := vg.Points(min(14, 300/float64(max(len(trs), 1))))
		for i, tr := range trs {
			vals := make(plotter.Values, len(rep.Options.Sizes))
			xs := make([]float64, len(vals))
			for j, size := range rep.Options.Sizes {
				xs[j], vals[j] = float64(j), math.NaN()
				if k := slices.IndexFunc(cell, func(r Result) bool { return r.Transport == tr && r.RecordSize == size }); k >= 0 {
					vals[j] = cell[k].MBPerSec.Median
				}
			}
			ys := slices.Clone([]float64(vals))
			for j := range vals {
				if math.IsNaN(vals[j]) {
					vals[j] = 0
				}
			}
			b, err := plotter.NewBarChart(vals, barW)
			if err != nil {
				return nil, err
			}
			b.Color = colourOf(tr)
			b.LineStyle.Width = 0
			b.Offset = barW * vg.Length(float64(i)-float64(len(trs)-1)/2)
			labels, err := valueLabels(xs, ys, func(v float64) string { return fmt.Sprintf("%.0f", v) }, b.Offset)
			if err != nil {
				return nil, err
			}
			p.Add(b, labels)
			ch.Legend.Add(tr, b)
		}
		p.NominalX(names...)
		p.Y.Min = 0
		p.Y.Max *= 1.12 // room for the value labels
		out = append(out, ch)
	}
	return out, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// latencyCells lists the (case, cell) pairs with latency samples.
func latencyCells(rep *Report) [][2]string {
	var out [][2]string
	for _, l := range rep.Latency {
		if k := [2]string{l.Case, l.Cell}; !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// cdfPoints returns at most n points (x ascending, y the cumulative
// fraction) of the empirical CDF of d, in unit.
func cdfPoints(d []time.Duration, unit time.Duration, n int) plotter.XYs {
	if len(d) == 0 {
		return nil
	}
	s := slices.Clone(d)
	slices.Sort(s)
	step := max(1, len(s)/n)
	var out plotter.XYs
	for i := 0; i < len(s); i += step {
		out = append(out, plotter.XY{X: float64(s[i]) / float64(unit), Y: float64(i+1) / float64(len(s))})
	}
	if last := float64(s[len(s)-1]) / float64(unit); out[len(out)-1].X != last || out[len(out)-1].Y != 1 {
		out = append(out, plotter.XY{X: last, Y: 1})
	}
	return out
}

// cdfChart draws the latency CDF of one cell, a line per transport on a
// log scale; the legend gives each transport's p50 and p99.
func cdfChart(rep *Report, c, cellName string) (*Chart, error) {
	unit, unitName := time.Microsecond, "µs"
	if c == CaseHOL {
		unit, unitName = time.Millisecond, "ms"
	}
	ch := newChart(fmt.Sprintf("latency-%s-%s.svg", c, slug(cellName)), fmt.Sprintf("%s %s: latency CDF, all repetitions", c, cellName),
		fmt.Sprintf("Send to applied, %s (log scale)", unitName), "fraction of records", 560, 400)
	p := ch.Plot
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
	p.Y.Min, p.Y.Max = 0, 1
	for _, l := range rep.Latency {
		if l.Case != c || l.Cell != cellName {
			continue
		}
		pts := cdfPoints(l.Samples, unit, 600)
		for i := range pts {
			pts[i].X = max(pts[i].X, 1e-3) // the log scale has no zero
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.StepStyle = plotter.PreStep
		line.Color = colourOf(l.Transport)
		line.Width = vg.Points(1.5)
		p50, p99, _ := Quantiles(l.Samples)
		scale := float64(time.Microsecond) / float64(unit)
		p.Add(line)
		ch.Legend.Add(fmt.Sprintf("%s: p50 %s, p99 %s %s", l.Transport, trim(p50*scale), trim(p99*scale), unitName), line)
	}
	for _, q := range []float64{0.5, 0.99} {
		ref := plotter.NewFunction(func(float64) float64 { return q })
		ref.Color = color.Gray{Y: 0xa0}
		ref.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(ref)
	}
	return ch, nil
}

// logTicks labels a log axis at 1, 2 and 5 times each power of ten, with
// unlabelled ticks at the other integers.
type logTicks struct{}

// Ticks returns the ticks between lo and hi.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	if !(lo > 0) || hi < lo {
		return nil
	}
	for p := math.Pow(10, math.Floor(math.Log10(lo))); p <= hi; p *= 10 {
		for m := 1.0; m <= 9; m++ {
			v := m * p
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = trim(v)
			}
			out = append(out, t)
		}
	}
	return out
}

func slug(s string) string {
	return strings.NewReplacer(" ", "-", "%", "pct", "/", "-per-", ".", "_").Replace(strings.ToLower(s))
}

// holChart draws the hol case's p99 against the loss rate, a line per
// transport with its values.
func holChart(rep *Report) (*Chart, bool, error) {
	var rs []Result
	for _, r := range rep.Results {
		if r.Case == CaseHOL {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil, false, nil
	}
	ch := newChart("hol-p99.svg", "head-of-line: p99 of a latency stream beside a bulk stream (simulated link)\n"+
		"mux = all streams on ONE QUIC stream, standing in for yamux, smux and gRPC over TCP",
		"packet loss, %", "p99 Send to applied, ms", 520, 380)
	p := ch.Plot
	for _, tr := range transportsOf(rs) {
		var pts plotter.XYs
		for _, r := range rs {
			if r.Transport == tr && r.P99us.N > 0 {
				pts = append(pts, plotter.XY{X: r.Loss * 100, Y: r.P99us.Median / 1000})
			}
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, false, err
		}
		line.Color, points.Color = colourOf(tr), colourOf(tr)
		points.Shape = draw.CircleGlyph{}
		xs, ys := make([]float64, len(pts)), make([]float64, len(pts))
		for i, pt := range pts {
			xs[i], ys[i] = pt.X, pt.Y
		}
		labels, err := valueLabels(xs, ys, func(v float64) string { return fmt.Sprintf("%.1f", v) }, vg.Points(3))
		if err != nil {
			return nil, false, err
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].Rotation = 0
		}
		p.Add(line, points, labels)
		ch.Legend.Add(tr, line, points)
	}
	p.Y.Min = 0
	p.Y.Max *= 1.15
	return ch, true, nil
}

// backlogChart draws the backlog case over time: records in flight, or
// the heap (live solid, in use dashed). The first repetition of each
// transport only, to keep the chart legible.
func backlogChart(rep *Report, heap bool) (*Chart, error) {
	o := rep.Options
	ch := newChart("backlog-records.svg", "backlog case: records sent, not yet acknowledged as applied",
		"time since the producer started, ms", "records", 640, 400)
	if heap {
		ch = newChart("backlog-heap.svg", "backlog case: live heap above baseline (solid), heap in use (dashed)",
			"time since the producer started, ms", "MiB", 640, 400)
	}
	p := ch.Plot
	seen := map[string]bool{}
	for _, t := range rep.Backlog {
		if seen[t.Transport] {
			continue
		}
		seen[t.Transport] = true
		var a, b plotter.XYs
		for _, pt := range t.Points {
			x := float64(pt.T) / float64(time.Millisecond)
			if heap {
				a = append(a, plotter.XY{X: x, Y: float64(pt.HeapLive) / (1 << 20)})
				b = append(b, plotter.XY{X: x, Y: float64(pt.HeapInUse) / (1 << 20)})
			} else {
				a = append(a, plotter.XY{X: x, Y: float64(pt.InFlight)})
			}
		}
		if len(a) == 0 {
			continue
		}
		line, err := plotter.NewLine(a)
		if err != nil {
			return nil, err
		}
		line.Color, line.Width = colourOf(t.Transport), vg.Points(1.5)
		p.Add(line)
		ch.Legend.Add(t.Transport, line)
		if heap {
			dashed, err := plotter.NewLine(b)
			if err != nil {
				return nil, err
			}
			dashed.Color, dashed.Dashes = colourOf(t.Transport), []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(dashed)
		}
	}
	switchAt := float64(o.BacklogSlow) / float64(time.Millisecond)
	marker, err := plotter.NewLine(plotter.XYs{{X: switchAt, Y: 0}, {X: switchAt, Y: math.Max(p.Y.Max, 1)}})
	if err != nil {
		return nil, err
	}
	marker.Color, marker.Dashes = color.Gray{Y: 0x80}, []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(marker)
	ch.Legend.Add(fmt.Sprintf("consumer speeds up (%v)", o.BacklogSlow), marker)
	p.Y.Min = 0
	return ch, nil
}
