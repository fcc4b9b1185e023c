package svgplot

import (
	"bufio"
	"fmt"
	"io"
	"math"
)

// BarSeries is one group member of a [BarChart]: its value for each
// category (NaN for none).
type BarSeries struct {
	Name   string
	Values []float64
	Colour string
}

// BarChart draws grouped bars: for each category, one bar per series.
type BarChart struct {
	Title, YLabel string
	Categories    []string
	Series        []BarSeries
	// Width and Height in pixels; 0 means 760 × 440.
	Width, Height int
}

// WriteSVG writes the chart as a standalone SVG document.
func (c *BarChart) WriteSVG(w io.Writer) error {
	l := layout{left: 78, right: 24, top: 40, bot: 56}
	l.w, l.h = size(c.Width, c.Height)
	top := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				top = max(top, v)
			}
		}
	}
	var yt []float64
	l.ymin, l.ymax, yt = linearTicks(0, max(top*1.08, 1e-9))
	l.xmin, l.xmax = 0, 1

	bw := bufio.NewWriter(w)
	header(bw, l.w, l.h, c.Title)
	axes(bw, &l, nil, yt, "", c.YLabel)
	n := max(len(c.Categories), 1)
	groupW := (l.w - l.left - l.right) / float64(n)
	barW := groupW * 0.8 / float64(max(len(c.Series), 1))
	for ci, cat := range c.Categories {
		gx := l.left + float64(ci)*groupW + groupW*0.1
		for si, s := range c.Series {
			if ci >= len(s.Values) || math.IsNaN(s.Values[ci]) || math.IsInf(s.Values[ci], 0) {
				continue
			}
			col := s.Colour
			if col == "" {
				col = Colour(si)
			}
			y := l.py(s.Values[ci])
			fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				gx+float64(si)*barW, y, barW*0.92, l.h-l.bot-y, col, esc(s.Name), esc(cat), esc(Format(s.Values[ci])))
		}
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", gx+groupW*0.4, l.h-l.bot+16, esc(cat))
	}
	ls := make([]Series, len(c.Series))
	for i, s := range c.Series {
		ls[i] = Series{Name: s.Name, Colour: s.Colour}
	}
	legend(bw, &l, ls)
	fmt.Fprint(bw, "</svg>\n")
	return bw.Flush()
}
