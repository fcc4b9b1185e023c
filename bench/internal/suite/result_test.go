package suite

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 3})
	require.Equal(t, Stat{Median: 3, Min: 1, Max: 5, N: 3}, s)
	s = Summarize([]float64{4, math.NaN(), 1, 2, 10})
	require.Equal(t, Stat{Median: 3, Min: 1, Max: 10, N: 4}, s, "even count: mean of the middle two; NaN ignored")
	s = Summarize([]float64{math.NaN()})
	require.Zero(t, s.N)
	require.True(t, math.IsNaN(s.Median))
	require.Zero(t, Summarize(nil).N)
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
	r := aggregate(Result{Case: CaseThroughput, Transport: Raw, RecordSize: 64, Streams: 1}, []map[string]float64{
		{MRecordsPerSec: 10, "only_first": 1},
		{MRecordsPerSec: 30},
		{MRecordsPerSec: 20},
	})
	require.Equal(t, 3, r.Reps)
	require.Equal(t, Stat{Median: 20, Min: 10, Max: 30, N: 3}, r.Metrics[MRecordsPerSec])
	require.Equal(t, 1, r.Metrics["only_first"].N)
	require.Equal(t, 20.0, r.Get(MRecordsPerSec))
	require.True(t, math.IsNaN(r.Get(MP50us)))
}

// decodeLines parses JSON lines into maps.
func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	return out
}

func TestJSONSchema(t *testing.T) {
	mach := DescribeMachine()
	results := []Result{
		aggregate(Result{Case: CaseThroughput, Transport: Recordmux, RecordSize: 1024, Streams: 10, Machine: &mach},
			[]map[string]float64{{MRecordsPerSec: 1, MMBPerSec: 2, MAllocsPerRecord: 3, MCPUCores: 1.5}}),
		aggregate(Result{Case: CaseHOL, Transport: Mux, RecordSize: 256, Streams: 2, Loss: 0.01},
			[]map[string]float64{{MP50us: 10, MP99us: 20, MP999us: 30, "loss_observed": 0.011}, {MP50us: 12, MP99us: 22, MP999us: 32, "loss_observed": 0.009}}),
	}
	var buf bytes.Buffer
	require.NoError(t, WriteJSONLines(&buf, results))
	lines := decodeLines(t, buf.Bytes())
	require.Len(t, lines, 2)
	for _, m := range lines {
		for _, k := range []string{"case", "transport", "record_size", "streams", "reps"} {
			require.Contains(t, m, k)
		}
		for _, k := range RequiredMetrics() {
			require.Contains(t, m, k)
			require.Contains(t, m, k+"_min")
			require.Contains(t, m, k+"_max")
		}
	}
	require.Equal(t, "throughput", lines[0]["case"])
	require.Equal(t, 1024.0, lines[0]["record_size"])
	require.Equal(t, 2.0, lines[0][MMBPerSec])
	require.Nil(t, lines[0][MP50us], "not measured: null")
	require.NotContains(t, lines[0], "loss")
	require.Contains(t, lines[0], "machine")
	require.Equal(t, 0.01, lines[1]["loss"])
	require.Equal(t, 2.0, lines[1]["reps"])
	require.Equal(t, 11.0, lines[1][MP50us], "median of two")
	require.Equal(t, 10.0, lines[1][MP50us+"_min"])
	require.Equal(t, 12.0, lines[1][MP50us+"_max"])
	require.Contains(t, lines[1], "loss_observed_max")
}
