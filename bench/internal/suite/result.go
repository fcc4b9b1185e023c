package suite

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/stats"
)

// Metrics are the figures of one repetition (Metrics[float64], NaN where
// the case does not measure a figure) or of a cell aggregated over its
// repetitions (Metrics[Stat]). The JSON name of each field is its name in
// the JSON lines; the better tag says which direction is an improvement
// (compare uses it).
type Metrics[T any] struct {
	// Every case.
	RecordsPerSec   T `json:"records_per_sec,omitzero" better:"higher"`
	MBPerSec        T `json:"mb_per_sec,omitzero" better:"higher"`
	AllocsPerRecord T `json:"allocs_per_record,omitzero" better:"lower"`
	CPUCores        T `json:"cpu_cores,omitzero" better:"lower"`

	// Latency cases and hol: Send to applied, µs.
	P50us  T `json:"p50_us,omitzero" better:"lower"`
	P99us  T `json:"p99_us,omitzero" better:"lower"`
	P999us T `json:"p999_us,omitzero" better:"lower"`
	// Samples is the number of latencies measured.
	Samples T `json:"samples,omitzero"`
	// Paced: how late Send started against the schedule, and the rate
	// offered.
	LagP99us      T `json:"lag_p99_us,omitzero" better:"lower"`
	OfferedPerSec T `json:"offered_per_sec,omitzero"`

	// Backlog.
	PeakInFlightRecords T `json:"peak_inflight_records,omitzero" better:"lower"`
	PeakBacklogRecords  T `json:"peak_backlog_records,omitzero" better:"lower"`
	PeakBacklogMiB      T `json:"peak_backlog_mib,omitzero" better:"lower"`
	SendBlockedMs       T `json:"send_blocked_ms,omitzero"`
	DrainMs             T `json:"drain_ms,omitzero" better:"lower"`
	PeakHeapLiveMiB     T `json:"peak_heap_live_mib,omitzero" better:"lower"`
	PeakHeapInUseMiB    T `json:"peak_heap_inuse_mib,omitzero" better:"lower"`

	// Many-streams.
	OpenPerSec          T `json:"open_per_sec,omitzero" better:"higher"`
	ClosePerSec         T `json:"close_per_sec,omitzero" better:"higher"`
	RoundMs             T `json:"round_ms,omitzero" better:"lower"`
	HeapKiBPerStream    T `json:"heap_kib_per_stream,omitzero" better:"lower"`
	GoroutinesPerStream T `json:"goroutines_per_stream,omitzero" better:"lower"`

	// Hol: the packet loss the simulated link produced.
	LossObserved T `json:"loss_observed,omitzero"`

	// Compression: the bytes the client's connection put on the wire per
	// record (quic-go's connection statistics), and over the payload.
	WireBytesPerRecord T `json:"wire_bytes_per_record,omitzero" better:"lower"`
	WireRatio          T `json:"wire_ratio,omitzero" better:"lower"`

	// Two-host runs: the server's CPU time over the repetition's wall
	// time, and its peak heap in use.
	ServerCPUCores    T `json:"server_cpu_cores,omitzero" better:"lower"`
	ServerPeakHeapMiB T `json:"server_peak_heap_mib,omitzero" better:"lower"`
}

// newMetrics returns per-repetition metrics with every figure NaN (not
// measured).
func newMetrics() Metrics[float64] {
	var m Metrics[float64]
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		v.Field(i).SetFloat(math.NaN())
	}
	return m
}

// MetricInfo describes one field of Metrics.
type MetricInfo struct {
	// Name is the JSON name; Better is "higher", "lower" or "" (neither).
	Name, Better string
	index        int
}

// metricInfos lists the metrics in field order.
var metricInfos = func() []MetricInfo {
	t := reflect.TypeFor[Metrics[float64]]()
	out := make([]MetricInfo, t.NumField())
	for i := range out {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[i] = MetricInfo{Name: name, Better: f.Tag.Get("better"), index: i}
	}
	return out
}()

// Metric returns the description of the metric with JSON name name.
func Metric(name string) (MetricInfo, bool) {
	i := slices.IndexFunc(metricInfos, func(m MetricInfo) bool { return m.Name == name })
	if i < 0 {
		return MetricInfo{}, false
	}
	return metricInfos[i], true
}

// MetricNames returns the JSON names of every metric.
func MetricNames() []string {
	out := make([]string, len(metricInfos))
	for i, m := range metricInfos {
		out[i] = m.Name
	}
	return out
}

// Get returns metric m of an aggregated Metrics.
func (s *Metrics[T]) get(m MetricInfo) T {
	return reflect.ValueOf(s).Elem().Field(m.index).Interface().(T)
}

// aggregate folds the repetitions' metrics into one Stat per metric.
func aggregate(reps []Metrics[float64]) Metrics[Stat] {
	var out Metrics[Stat]
	dst := reflect.ValueOf(&out).Elem()
	vals := make([]float64, len(reps))
	for i := range dst.NumField() {
		for j := range reps {
			vals[j] = reflect.ValueOf(&reps[j]).Elem().Field(i).Float()
		}
		dst.Field(i).Set(reflect.ValueOf(Summarize(vals)))
	}
	return out
}

// Stat summarises one metric over the repetitions.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// N counts the repetitions that measured the metric; 0 means not
	// measured (and the metric is left out of the JSON).
	N int `json:"n"`
}

// IsZero reports a metric that was not measured.
func (s Stat) IsZero() bool { return s.N == 0 }

// Summarize returns the median, minimum and maximum of values, ignoring
// NaNs and infinities; none left gives the zero Stat.
func Summarize(values []float64) Stat {
	v := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Stat{}
	}
	slices.Sort(v)
	return Stat{Median: stats.Median(v), Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// Quantiles returns the p50, p99 and p99.9 of the durations, in
// microseconds, computed with golang.org/x/exp/stats. No samples give
// NaNs.
func Quantiles(d []time.Duration) (p50, p99, p999 float64) {
	if len(d) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	us := make([]float64, len(d))
	for i, x := range d {
		us[i] = float64(x) / float64(time.Microsecond)
	}
	slices.Sort(us)
	q := stats.Quantiles(us, 0.5, 0.99, 0.999)
	return q[0], q[1], q[2]
}

// Result is the outcome of one case cell for one transport, aggregated
// over its repetitions. It is one line of the JSON lines output.
type Result struct {
	Case       string `json:"case"`
	Transport  string `json:"transport"`
	RecordSize int    `json:"record_size"`
	Streams    int    `json:"streams"`
	// Loss is the simulated packet loss rate (hol only).
	Loss float64 `json:"loss,omitzero"`
	// Corpus is the record corpus (compression only; RecordSize is 0).
	Corpus string `json:"corpus,omitempty"`
	Reps   int    `json:"reps"`
	// Mode is "in-process" or "two-host".
	Mode string `json:"mode"`
	Metrics[Stat]
	Machine *Machine `json:"machine,omitempty"`
	// Server describes the server of a two-host run.
	Server *ServerInfo `json:"server,omitempty"`
}

// Key identifies the cell and transport of a result, for matching the
// rows of two runs.
func (r *Result) Key() string {
	k := fmt.Sprintf("%s/%s/%dB/x%d", r.Case, r.Transport, r.RecordSize, r.Streams)
	if r.Loss != 0 {
		k += fmt.Sprintf("/loss%g", r.Loss)
	}
	if r.Corpus != "" {
		k += "/" + r.Corpus
	}
	return k
}

// WriteJSONLines writes one JSON object per result, one per line.
func WriteJSONLines(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	for i := range results {
		if err := enc.Encode(&results[i]); err != nil {
			return err
		}
	}
	return nil
}

// ReadJSONLines reads what WriteJSONLines wrote; blank lines are skipped.
func ReadJSONLines(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, res)
	}
	return out, sc.Err()
}
