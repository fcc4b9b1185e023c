package suite

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"slices"
	"sort"
	"time"

	"golang.org/x/exp/stats"
)

// Metric names. Each is a key of [Result.Metrics] and, in the JSON lines,
// a field with _min and _max companions.
const (
	MRecordsPerSec   = "records_per_sec"
	MMBPerSec        = "mb_per_sec"
	MP50us           = "p50_us"
	MP99us           = "p99_us"
	MP999us          = "p999_us"
	MAllocsPerRecord = "allocs_per_record"
	MCPUCores        = "cpu_cores"
)

// RequiredMetrics returns the metrics every JSON line carries (as null
// when a case does not measure them), in the order they are written.
func RequiredMetrics() []string {
	return []string{MRecordsPerSec, MMBPerSec, MP50us, MP99us, MP999us, MAllocsPerRecord, MCPUCores}
}

// Stat summarises one metric over the repetitions.
type Stat struct {
	Median, Min, Max float64
	// N counts the repetitions that measured the metric.
	N int
}

// Summarize returns the median, minimum and maximum of values, ignoring
// NaNs; all NaN (or no values) gives a Stat with N == 0 and NaN figures.
func Summarize(values []float64) Stat {
	v := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Stat{Median: nan(), Min: nan(), Max: nan()}
	}
	slices.Sort(v)
	return Stat{Median: stats.Median(v), Min: v[0], Max: v[len(v)-1], N: len(v)}
}

func nan() float64 { return math.NaN() }

// Quantiles returns the p50, p99 and p99.9 of the durations, in
// microseconds, computed with golang.org/x/exp/stats. No samples give
// NaNs.
func Quantiles(d []time.Duration) (p50, p99, p999 float64) {
	if len(d) == 0 {
		return nan(), nan(), nan()
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
// over its repetitions.
type Result struct {
	Case       string
	Transport  string
	RecordSize int
	Streams    int
	// Loss is the simulated packet loss rate (hol case only).
	Loss float64
	Reps int
	// Metrics holds every measured metric by name.
	Metrics map[string]Stat
	Machine *Machine
}

// Get returns the median of metric name, or NaN.
func (r *Result) Get(name string) float64 {
	if s, ok := r.Metrics[name]; ok && s.N > 0 {
		return s.Median
	}
	return nan()
}

// aggregate folds the metrics of each repetition into a Result.
func aggregate(base Result, reps []map[string]float64) Result {
	names := map[string]bool{}
	for _, m := range reps {
		for k := range m {
			names[k] = true
		}
	}
	base.Reps = len(reps)
	base.Metrics = make(map[string]Stat, len(names))
	for k := range names {
		vals := make([]float64, 0, len(reps))
		for _, m := range reps {
			if v, ok := m[k]; ok {
				vals = append(vals, v)
			}
		}
		base.Metrics[k] = Summarize(vals)
	}
	return base
}

// MarshalJSON writes the result as one flat object: identification
// fields, then every required metric (null when not measured) with _min
// and _max, then the case's other metrics in name order, then the
// machine.
func (r *Result) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	field := func(k string, v any) error {
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(vb)
		return nil
	}
	num := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	metric := func(k string) error {
		s, ok := r.Metrics[k]
		if !ok || s.N == 0 {
			s = Stat{Median: nan(), Min: nan(), Max: nan()}
		}
		if err := field(k, num(s.Median)); err != nil {
			return err
		}
		if err := field(k+"_min", num(s.Min)); err != nil {
			return err
		}
		return field(k+"_max", num(s.Max))
	}
	_ = field("case", r.Case)
	_ = field("transport", r.Transport)
	_ = field("record_size", r.RecordSize)
	_ = field("streams", r.Streams)
	if r.Case == CaseHOL {
		_ = field("loss", r.Loss)
	}
	_ = field("reps", r.Reps)
	required := RequiredMetrics()
	for _, k := range required {
		if err := metric(k); err != nil {
			return nil, err
		}
	}
	var extra []string
	for k := range r.Metrics {
		if !slices.Contains(required, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		if err := metric(k); err != nil {
			return nil, err
		}
	}
	if r.Machine != nil {
		if err := field("machine", r.Machine); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// WriteJSONLines writes one JSON object per result, one per line.
func WriteJSONLines(w io.Writer, results []Result) error {
	for i := range results {
		b, err := json.Marshal(&results[i])
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
