package suite

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// svgTexts returns the text elements of an SVG file.
func svgTexts(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	var out []string
	for _, m := range regexp.MustCompile(`(?s)<text[^>]*>([^<]*)</text>`).FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// chartReport is a report with fixed figures for every chart kind.
func chartReport() *Report {
	o := DefaultOptions()
	o.Sizes, o.Streams = []int{64, 1 << 10}, []int{1}
	rep := &Report{Options: o}
	add := func(c, tr string, size int, loss float64, set func(*Metrics[float64])) {
		m := newMetrics()
		set(&m)
		rep.Results = append(rep.Results, Result{Case: c, Transport: tr, RecordSize: size, Streams: 1, Loss: loss, Reps: 1,
			Metrics: aggregate([]Metrics[float64]{m})})
	}
	add(CaseThroughput, "recordmux", 64, 0, func(m *Metrics[float64]) { m.MBPerSec = 123.4 })
	add(CaseThroughput, "recordmux", 1<<10, 0, func(m *Metrics[float64]) { m.MBPerSec = 456.7 })
	add(CaseThroughput, "yamux", 64, 0, func(m *Metrics[float64]) { m.MBPerSec = 78.9 })
	add(CaseHOL, "recordmux", 256, 0.01, func(m *Metrics[float64]) { m.P99us = 54_000 })
	add(CaseHOL, "recordmux", 256, 0.05, func(m *Metrics[float64]) { m.P99us = 150_000 })
	add(CaseHOL, "mux", 256, 0.01, func(m *Metrics[float64]) { m.P99us = 73_800 })
	add(CaseHOL, "mux", 256, 0.05, func(m *Metrics[float64]) { m.P99us = 275_800 })
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*10*time.Microsecond)
	}
	rep.Latency = []LatencySet{
		{Case: CasePingPong, Cell: "256B", Transport: "recordmux", Samples: lat},
		{Case: CasePingPong, Cell: "256B", Transport: "smux", Samples: lat[:50]},
	}
	rep.Backlog = []BacklogTrace{{Transport: "recordmux", Switch: time.Second, Points: []BacklogPoint{
		{T: 5 * time.Millisecond, InFlight: 10, HeapLive: 1 << 20, HeapInUse: 2 << 20},
		{T: 10 * time.Millisecond, InFlight: 20, HeapLive: 2 << 20, HeapInUse: 3 << 20},
	}}}
	return rep
}

func TestCharts(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteCharts(dir, chartReport())
	require.NoError(t, err)
	want := []string{"throughput-1stream.svg", "latency-pingpong-256b.svg", "hol-p99.svg", "backlog-records.svg", "backlog-heap.svg"}
	require.Len(t, files, len(want))
	for i, f := range want {
		require.Equal(t, filepath.Join(dir, f), files[i])
	}

	tp := svgTexts(t, files[0])
	for _, s := range []string{"throughput, 1 stream on one connection (median)", "record size", "MB/s of record payload",
		"64B", "1KiB", "recordmux", "yamux", "123", "457", "79"} {
		require.Contains(t, tp, s, "throughput chart: title, axis labels, categories, legend and value labels")
	}
	cdf := svgTexts(t, files[1])
	for _, s := range []string{"Send to applied, µs (log scale)", "fraction of records",
		"recordmux: p50 505, p99 990 µs", "smux: p50 255, p99 495 µs", "100", "200", "500"} {
		require.Contains(t, cdf, s, "latency CDF: axis labels, legend with p50 and p99, log ticks")
	}
	hol := svgTexts(t, files[2])
	for _, s := range []string{"packet loss, %", "p99 Send to applied, ms", "recordmux", "mux", "54.0", "150.0", "73.8", "275.8"} {
		require.Contains(t, hol, s, "hol chart: axis labels, series and values")
	}
	require.Contains(t, svgTexts(t, files[3]), "records")
	require.Contains(t, svgTexts(t, files[4]), "MiB")
	require.Contains(t, svgTexts(t, files[4]), "consumer speeds up (1s)")
}
