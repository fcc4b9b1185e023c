package suite

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	require.Equal(t, Stat{Median: 3, Min: 1, Max: 5, N: 3}, Summarize([]float64{5, 1, 3}))
	require.Equal(t, Stat{Median: 3, Min: 1, Max: 10, N: 4}, Summarize([]float64{4, math.NaN(), 1, 2, 10}),
		"even count: mean of the middle two; NaN ignored")
	require.Equal(t, Stat{Median: 2, Min: 2, Max: 2, N: 1}, Summarize([]float64{math.Inf(1), 2}))
	require.True(t, Summarize([]float64{math.NaN()}).IsZero())
	require.True(t, Summarize(nil).IsZero())
}

func TestQuantiles(t *testing.T) {
	d := make([]time.Duration, 0, 1000)
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	p50, p99, p999 := Quantiles(d)
	require.InDelta(t, 500.5, p50, 0.01)
	require.InDelta(t, 990.01, p99, 0.01)
	require.InDelta(t, 999.001, p999, 0.01)
	require.Equal(t, 1000*time.Microsecond, d[0], "input not modified")
	p50, _, _ = Quantiles(nil)
	require.True(t, math.IsNaN(p50))
}

func TestAggregate(t *testing.T) {
	reps := []Metrics[float64]{newMetrics(), newMetrics(), newMetrics()}
	for i, v := range []float64{10, 30, 20} {
		reps[i].RecordsPerSec = v
	}
	reps[0].DrainMs = 7
	m := aggregate(reps)
	require.Equal(t, Stat{Median: 20, Min: 10, Max: 30, N: 3}, m.RecordsPerSec)
	require.Equal(t, Stat{Median: 7, Min: 7, Max: 7, N: 1}, m.DrainMs, "measured by one repetition only")
	require.True(t, m.P50us.IsZero(), "not measured")
	for _, info := range metricInfos {
		if info.Name != "records_per_sec" && info.Name != "drain_ms" {
			require.True(t, m.get(info).IsZero(), info.Name)
		}
	}
}

func TestMetricInfos(t *testing.T) {
	names := MetricNames()
	require.Contains(t, names, "p99_us")
	require.Contains(t, names, "server_cpu_cores")
	seen := map[string]bool{}
	for _, m := range metricInfos {
		require.False(t, seen[m.Name], "duplicate %s", m.Name)
		seen[m.Name] = true
		require.Contains(t, []string{"", "higher", "lower"}, m.Better, m.Name)
	}
	m, ok := Metric("mb_per_sec")
	require.True(t, ok)
	require.Equal(t, "higher", m.Better)
	m, _ = Metric("p99_us")
	require.Equal(t, "lower", m.Better)
	_, ok = Metric("nope")
	require.False(t, ok)
}

func TestJSONLines(t *testing.T) {
	mach := DescribeMachine()
	tp := newMetrics()
	tp.MBPerSec, tp.RecordsPerSec = 2, 1
	hol1, hol2 := newMetrics(), newMetrics()
	hol1.P50us, hol2.P50us = 10, 12
	results := []Result{
		{Case: CaseThroughput, Transport: "recordmux", RecordSize: 1024, Streams: 10, Reps: 1, Mode: "in-process",
			Metrics: aggregate([]Metrics[float64]{tp}), Machine: &mach},
		{Case: CaseHOL, Transport: "mux", RecordSize: 256, Streams: 2, Loss: 0.01, Reps: 2, Mode: "in-process",
			Metrics: aggregate([]Metrics[float64]{hol1, hol2}),
			Server:  &ServerInfo{Addr: "h:1", RTTMinUs: 100, RTTMedianUs: 120, RTTSamples: 20}},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteJSONLines(&buf, results))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var m0, m1 map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m0))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &m1))
	for _, k := range []string{"case", "transport", "record_size", "streams", "reps", "mode"} {
		require.Contains(t, m0, k)
	}
	require.Equal(t, map[string]any{"median": 2.0, "min": 2.0, "max": 2.0, "n": 1.0}, m0["mb_per_sec"])
	require.NotContains(t, m0, "p50_us", "not measured: left out")
	require.NotContains(t, m0, "loss")
	require.NotContains(t, m0, "server")
	require.Contains(t, m0, "machine")
	require.Equal(t, 0.01, m1["loss"])
	require.Equal(t, map[string]any{"median": 11.0, "min": 10.0, "max": 12.0, "n": 2.0}, m1["p50_us"])
	require.Equal(t, 120.0, m1["server"].(map[string]any)["rtt_median_us"])

	back, err := ReadJSONLines(strings.NewReader(buf.String() + "\n\n"))
	require.NoError(t, err)
	require.Len(t, back, 2)
	require.Equal(t, results[1].Metrics, back[1].Metrics)
	require.Equal(t, "hol/mux/256B/x2/loss0.01", back[1].Key())
	_, err = ReadJSONLines(strings.NewReader("{\n"))
	require.ErrorContains(t, err, "line 1")
}
