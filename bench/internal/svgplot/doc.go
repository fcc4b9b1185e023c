// Package svgplot draws the benchmark charts as standalone SVG files with
// the standard library only: line charts (optionally with a logarithmic x
// axis, and as steps for CDFs) and grouped bar charts.
//
// # Usage
//
//	c := &svgplot.LineChart{Title: "latency CDF", XLabel: "µs", YLabel: "fraction", LogX: true, Step: true}
//	c.Series = append(c.Series, svgplot.Series{Name: "recordmux", X: xs, Y: ys})
//	err := c.WriteSVG(w)
//
// # Limitations
//
// Axes start at the data's range (bar charts at zero); non-finite points,
// and non-positive x on a log axis, are skipped. Text is not measured, so
// very long labels may overlap.
package svgplot
