package svgplot

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
)

// Colour returns the palette colour for series index i (cycled).
func Colour(i int) string {
	palette := [...]string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}
	return palette[i%len(palette)]
}

// Series is one line of a [LineChart]; X and Y have the same length.
type Series struct {
	Name string
	X, Y []float64
	// Colour is a CSS colour; empty means the palette colour of the
	// series' index.
	Colour string
	Dashed bool
}

// HLine is a labelled horizontal reference line, such as a configured
// limit.
type HLine struct {
	Y     float64
	Label string
}

// LineChart is a chart of one or more series against a shared x axis.
type LineChart struct {
	Title, XLabel, YLabel string
	// LogX makes the x axis logarithmic (base 10).
	LogX bool
	// Step draws each series as a staircase (right, then up), as a CDF
	// should be drawn.
	Step   bool
	Series []Series
	HLines []HLine
	// YMax, if positive, fixes the top of the y axis (1 for a CDF).
	YMax float64
	// Width and Height in pixels; 0 means 760 × 440.
	Width, Height int
}

// layout is the plot area inside the canvas.
type layout struct {
	w, h                   float64
	left, right, top, bot  float64
	xmin, xmax, ymin, ymax float64
	logX                   bool
}

func (l *layout) px(x float64) float64 {
	if l.logX {
		x, lo, hi := math.Log10(x), math.Log10(l.xmin), math.Log10(l.xmax)
		return l.left + (x-lo)/(hi-lo)*(l.w-l.left-l.right)
	}
	return l.left + (x-l.xmin)/(l.xmax-l.xmin)*(l.w-l.left-l.right)
}

func (l *layout) py(y float64) float64 {
	return l.h - l.bot - (y-l.ymin)/(l.ymax-l.ymin)*(l.h-l.top-l.bot)
}

func size(w, h int) (float64, float64) {
	if w <= 0 {
		w = 760
	}
	if h <= 0 {
		h = 440
	}
	return float64(w), float64(h)
}

// usable reports whether a point can be drawn.
func usable(x, y float64, logX bool) bool {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
		return false
	}
	return !logX || x > 0
}

// WriteSVG writes the chart as a standalone SVG document.
func (c *LineChart) WriteSVG(w io.Writer) error {
	l := layout{left: 78, right: 24, top: 40, bot: 56, logX: c.LogX}
	l.w, l.h = size(c.Width, c.Height)
	l.xmin, l.xmax = math.Inf(1), math.Inf(-1)
	l.ymin, l.ymax = math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for i := range min(len(s.X), len(s.Y)) {
			if !usable(s.X[i], s.Y[i], c.LogX) {
				continue
			}
			l.xmin, l.xmax = min(l.xmin, s.X[i]), max(l.xmax, s.X[i])
			l.ymin, l.ymax = min(l.ymin, s.Y[i]), max(l.ymax, s.Y[i])
		}
	}
	for _, h := range c.HLines {
		l.ymin, l.ymax = min(l.ymin, h.Y), max(l.ymax, h.Y)
	}
	if math.IsInf(l.xmin, 0) { // no data
		l.xmin, l.xmax, l.ymin, l.ymax = 1, 10, 0, 1
	}
	l.ymin = min(l.ymin, 0)
	var xt []float64
	if c.LogX {
		l.xmin, l.xmax, xt = logTicks(l.xmin, l.xmax)
	} else {
		l.xmin, l.xmax, xt = linearTicks(l.xmin, l.xmax)
	}
	var yt []float64
	if c.YMax > 0 {
		l.ymax = c.YMax
	} else {
		l.ymax *= 1.04
	}
	l.ymin, l.ymax, yt = linearTicks(l.ymin, l.ymax)

	bw := bufio.NewWriter(w)
	header(bw, l.w, l.h, c.Title)
	axes(bw, &l, xt, yt, c.XLabel, c.YLabel)
	for _, h := range c.HLines {
		y := l.py(h.Y)
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="6 4"/>`+"\n", l.left, y, l.w-l.right, y)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11" fill="#555">%s</text>`+"\n", l.w-l.right-4, y-4, esc(h.Label))
	}
	for i, s := range c.Series {
		col := s.Colour
		if col == "" {
			col = Colour(i)
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(bw, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="`, col, dash)
		prevY, started := 0.0, false
		for j := range min(len(s.X), len(s.Y)) {
			if !usable(s.X[j], s.Y[j], c.LogX) {
				continue
			}
			x, y := l.px(s.X[j]), l.py(s.Y[j])
			if c.Step && started {
				fmt.Fprintf(bw, "%.1f,%.1f ", x, prevY)
			}
			fmt.Fprintf(bw, "%.1f,%.1f ", x, y)
			prevY, started = y, true
		}
		fmt.Fprint(bw, "\"/>\n")
	}
	legend(bw, &l, c.Series)
	fmt.Fprint(bw, "</svg>\n")
	return bw.Flush()
}

func header(w io.Writer, width, height float64, title string) {
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%.1f" y="24" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n", width/2, esc(title))
}

func axes(w io.Writer, l *layout, xt, yt []float64, xlabel, ylabel string) {
	x0, x1, y0, y1 := l.left, l.w-l.right, l.top, l.h-l.bot
	for _, t := range yt {
		y := l.py(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11">%s</text>`+"\n", x0-6, y+4, esc(Format(t)))
	}
	for _, t := range xt {
		x := l.px(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", x, y0, x, y1)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", x, y1+16, esc(Format(t)))
	}
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", x0, y0, x1-x0, y1-y0)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12">%s</text>`+"\n", (x0+x1)/2, l.h-14, esc(xlabel))
	fmt.Fprintf(w, `<text x="16" y="%.1f" text-anchor="middle" font-size="12" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", (y0+y1)/2, (y0+y1)/2, esc(ylabel))
}

func legend(w io.Writer, l *layout, series []Series) {
	x, y := l.left+10, l.top+16
	for i, s := range series {
		col := s.Colour
		if col == "" {
			col = Colour(i)
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", x, y-4, x+18, y-4, col, dash)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="12">%s</text>`+"\n", x+24, y, esc(s.Name))
		y += 16
	}
}

func esc(s string) string { return html.EscapeString(s) }

// Format prints an axis value compactly: 1500 as 1.5k, 2e6 as 2M.
func Format(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trim(v/1e9) + "G"
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e4:
		return trim(v/1e3) + "k"
	default:
		return trim(v)
	}
}

func trim(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// linearTicks widens [lo, hi] to multiples of a 1-2-5 step giving about
// six ticks and returns the widened range and the ticks.
func linearTicks(lo, hi float64) (float64, float64, []float64) {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, m := range []float64{1, 2, 5} {
		if raw <= m*mag {
			step = m * mag
			break
		}
	}
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for t := lo; t <= hi+step/2; t += step {
		ticks = append(ticks, math.Round(t/step)*step)
	}
	return lo, hi, ticks
}

// logTicks widens [lo, hi] (both > 0) to whole decades and returns ticks at
// 1, 2 and 5 times each power of ten (only powers when the range spans
// more than four decades).
func logTicks(lo, hi float64) (float64, float64, []float64) {
	a, b := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if b <= a {
		b = a + 1
	}
	mults := []float64{1, 2, 5}
	if b-a > 4 {
		mults = []float64{1}
	}
	var ticks []float64
	for e := a; e <= b; e++ {
		for _, m := range mults {
			if t := m * math.Pow(10, e); t <= math.Pow(10, b)*1.0001 {
				ticks = append(ticks, t)
			}
		}
	}
	return math.Pow(10, a), math.Pow(10, b), ticks
}
