package svgplot

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// wellFormed decodes the whole document as XML.
func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
	}
}

func TestLineChart(t *testing.T) {
	c := &LineChart{
		Title: "latency <CDF> & more", XLabel: "µs", YLabel: "fraction", LogX: true, Step: true,
		Series: []Series{
			{Name: "recordmux", X: []float64{50, 80, 120, 900}, Y: []float64{0.25, 0.5, 0.99, 1}},
			{Name: "framer", X: []float64{0, math.NaN(), 60, 100}, Y: []float64{0, 0.5, 0.5, 1}, Dashed: true},
		},
		HLines: []HLine{{Y: 0.99, Label: "p99"}},
	}
	var b bytes.Buffer
	require.NoError(t, c.WriteSVG(&b))
	wellFormed(t, b.Bytes())
	s := b.String()
	require.Contains(t, s, "recordmux")
	require.Contains(t, s, "latency &lt;CDF&gt; &amp; more")
	require.Equal(t, 2, strings.Count(s, "<polyline"))
	require.NotContains(t, s, "NaN")
	require.NotContains(t, s, "Inf")
}

func TestEmptyCharts(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, (&LineChart{Title: "empty"}).WriteSVG(&b))
	wellFormed(t, b.Bytes())
	b.Reset()
	require.NoError(t, (&BarChart{Title: "empty"}).WriteSVG(&b))
	wellFormed(t, b.Bytes())
	require.NotContains(t, b.String(), "NaN")
}

func TestBarChart(t *testing.T) {
	c := &BarChart{
		Title: "throughput", YLabel: "MB/s", Categories: []string{"64B", "1KiB"},
		Series: []BarSeries{{Name: "recordmux", Values: []float64{10, 200}}, {Name: "raw", Values: []float64{math.NaN(), 250}}},
	}
	var b bytes.Buffer
	require.NoError(t, c.WriteSVG(&b))
	wellFormed(t, b.Bytes())
	require.Equal(t, 3, strings.Count(b.String(), "<title>"), "NaN bars are skipped")
}

func TestTicks(t *testing.T) {
	lo, hi, ticks := linearTicks(3, 97)
	require.Equal(t, 0.0, lo)
	require.Equal(t, 100.0, hi)
	require.Equal(t, []float64{0, 20, 40, 60, 80, 100}, ticks)
	lo, hi, ticks = logTicks(40, 3000)
	require.Equal(t, 10.0, lo)
	require.Equal(t, 10000.0, hi)
	require.Contains(t, ticks, 200.0)
	require.Equal(t, 10000.0, ticks[len(ticks)-1])
	_, _, ticks = logTicks(1, 1e8)
	require.Len(t, ticks, 9)
}

func TestFormat(t *testing.T) {
	require.Equal(t, "1.5M", Format(1.5e6))
	require.Equal(t, "25k", Format(25_000))
	require.Equal(t, "2500", Format(2500))
	require.Equal(t, "0.125", Format(0.125))
}
