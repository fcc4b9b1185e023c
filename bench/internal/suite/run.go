package suite

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/recordmux/recordmux/bench/internal/svgplot"
)

// Report is everything one run of the suite produced.
type Report struct {
	Machine Machine
	Options Options
	Results []Result
	// Latency holds the latency samples of every latency and hol cell per
	// transport, all repetitions merged, for the CDF charts.
	Latency []LatencySet
	// Backlog holds the time series of the backlog runs.
	Backlog []BacklogTrace
	// Elapsed is the wall time of the whole suite.
	Elapsed time.Duration
}

// LatencySet is the merged latency samples of one cell and transport.
type LatencySet struct {
	Case, Cell, Transport string
	Samples               []time.Duration
}

// cell is one combination of case parameters; its repetitions interleave
// the transports.
type cell struct {
	base       Result // Case, RecordSize, Streams, Loss
	label      string // for progress and charts, e.g. "64B x10"
	reps       int
	transports []string
	run        func(ctx context.Context, tr string, rep int) (repOut, error)
}

// repOut is what one repetition of one transport produced.
type repOut struct {
	metrics map[string]float64
	lat     []time.Duration
	trace   *BacklogTrace
}

// runner carries one suite run.
type runner struct {
	opts    *Options
	env     *Env
	started time.Time
	total   int
	done    int
}

// Run runs the selected cases and returns the report. Progress lines go
// to opts.Progress.
func Run(ctx context.Context, opts Options) (*Report, error) {
	cases, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	env, err := NewEnv(opts.Recordmux)
	if err != nil {
		return nil, err
	}
	r := &runner{opts: &opts, env: env, started: time.Now()}
	rep := &Report{Machine: DescribeMachine(), Options: opts}
	var cells []cell
	for _, c := range cases {
		cells = append(cells, r.cells(c)...)
	}
	for _, c := range cells {
		r.total += c.reps * len(c.transports)
	}
	r.progressf("recordbench: %d runs in %d cells\n", r.total, len(cells))
	if err := r.warmUp(ctx); err != nil {
		return rep, err
	}
	for _, c := range cells {
		if err := r.runCell(ctx, c, rep); err != nil {
			return rep, err
		}
	}
	rep.Machine.LoadEnd = LoadAverage()
	rep.Elapsed = time.Since(r.started)
	for i := range rep.Results {
		rep.Results[i].Machine = &rep.Machine
	}
	return rep, nil
}

// warmUp runs each transport briefly, unmeasured, so that the first
// measured run does not pay for the process's warm-up (heap growth, pools,
// code paths run the first time).
func (r *runner) warmUp(ctx context.Context) error {
	for _, tr := range []string{Recordmux, Raw, Framer} {
		if !slices.Contains(r.opts.Transports, tr) && len(r.opts.Transports) > 0 {
			continue
		}
		t, err := NewThroughput(ctx, r.env, tr, 1<<10, 1)
		if err != nil {
			return fmt.Errorf("warm-up %s: %w", tr, err)
		}
		_, err = t.Run(ctx, 0, warmUpTime)
		if err = firstErr(err, t.Close()); err != nil {
			return fmt.Errorf("warm-up %s: %w", tr, err)
		}
	}
	return nil
}

// warmUpTime is how long each transport runs in the warm-up.
const warmUpTime = 50 * time.Millisecond

func (r *runner) progressf(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, format, args...)
	}
}

// runCell runs the repetitions of one cell, interleaving the transports,
// and adds its results to rep.
func (r *runner) runCell(ctx context.Context, c cell, rep *Report) error {
	perTr := make(map[string][]map[string]float64)
	lat := make(map[string][]time.Duration)
	for i := range c.reps {
		for _, tr := range c.transports {
			if err := ctx.Err(); err != nil {
				return err
			}
			runtime.GC() // every run starts from a collected heap
			t0 := time.Now()
			out, err := c.run(ctx, tr, i)
			r.done++
			if err != nil {
				return fmt.Errorf("%s %s %s rep %d: %w", c.base.Case, c.label, tr, i+1, err)
			}
			perTr[tr] = append(perTr[tr], out.metrics)
			lat[tr] = append(lat[tr], out.lat...)
			if out.trace != nil {
				rep.Backlog = append(rep.Backlog, *out.trace)
			}
			el := time.Since(r.started).Round(time.Second)
			r.progressf("[%3d/%d %6s] %-12s %-14s %-9s rep %d/%d (%.1fs): %s\n",
				r.done, r.total, el, c.base.Case, c.label, tr, i+1, c.reps, time.Since(t0).Seconds(), summary(c.base.Case, out.metrics))
		}
	}
	for _, tr := range c.transports {
		res := c.base
		res.Transport = tr
		rep.Results = append(rep.Results, aggregate(res, perTr[tr]))
		if len(lat[tr]) > 0 {
			rep.Latency = append(rep.Latency, LatencySet{Case: c.base.Case, Cell: c.label, Transport: tr, Samples: lat[tr]})
		}
	}
	return nil
}

// summary is the figure a progress line shows.
func summary(c string, m map[string]float64) string {
	f := svgplot.Format
	switch c {
	case CaseThroughput:
		return fmt.Sprintf("%s rec/s, %.1f MB/s", f(m[MRecordsPerSec]), m[MMBPerSec])
	case CasePingPong, CasePaced, CaseHOL:
		return fmt.Sprintf("p50 %.0f µs, p99 %.0f µs", m[MP50us], m[MP99us])
	case CaseBacklog:
		return fmt.Sprintf("peak heap %.1f MiB (window %.1f MiB), drain %.0f ms", m["peak_heap_live_mib"], m["window_mib"], m["drain_ms"])
	case CaseManyStreams:
		return fmt.Sprintf("%s opens/s, %.1f KiB/stream, %.2f goroutines/stream", f(m["open_per_sec"]), m["heap_kib_per_stream"], m["goroutines_per_stream"])
	}
	return ""
}

// sizeLabel prints a record size: 64B, 1KiB, 16KiB.
func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// cells returns the cells of case c.
func (r *runner) cells(c string) []cell {
	o := r.opts
	trs := o.transportsFor(c)
	if len(trs) == 0 {
		return nil
	}
	switch c {
	case CaseThroughput:
		var out []cell
		for _, size := range o.Sizes {
			for _, streams := range o.Streams {
				out = append(out, cell{
					base:  Result{Case: c, RecordSize: size, Streams: streams},
					label: fmt.Sprintf("%s x%d", sizeLabel(size), streams),
					reps:  o.Reps, transports: trs,
					run: func(ctx context.Context, tr string, _ int) (repOut, error) {
						return r.throughputRep(ctx, tr, size, streams)
					},
				})
			}
		}
		return out
	case CasePingPong:
		return []cell{{
			base: Result{Case: c, RecordSize: o.LatencySize, Streams: 1}, label: sizeLabel(o.LatencySize),
			reps: o.Reps, transports: trs, run: r.pingPongRep,
		}}
	case CasePaced:
		return []cell{{
			base: Result{Case: c, RecordSize: o.LatencySize, Streams: 1}, label: fmt.Sprintf("%s/s", svgplot.Format(o.PacedRate)),
			reps: o.Reps, transports: trs, run: r.pacedRep,
		}}
	case CaseBacklog:
		return []cell{{
			base: Result{Case: c, RecordSize: o.BacklogSize, Streams: 1}, label: sizeLabel(o.BacklogSize),
			reps: o.HeavyReps, transports: trs,
			run: func(ctx context.Context, tr string, rep int) (repOut, error) {
				m, trace, err := r.backlogRun(ctx, tr, rep)
				return repOut{metrics: m, trace: trace}, err
			},
		}}
	case CaseManyStreams:
		return []cell{{
			base: Result{Case: c, RecordSize: manySize, Streams: o.ManyStreams}, label: fmt.Sprintf("x%d", o.ManyStreams),
			reps: o.HeavyReps, transports: trs,
			run: func(ctx context.Context, tr string, _ int) (repOut, error) {
				m, err := r.manyRun(ctx, tr)
				return repOut{metrics: m}, err
			},
		}}
	case CaseHOL:
		var out []cell
		for _, loss := range o.HOLLoss {
			out = append(out, cell{
				base:  Result{Case: c, RecordSize: o.LatencySize, Streams: 2, Loss: loss},
				label: fmt.Sprintf("loss %g%%", loss*100),
				reps:  o.HeavyReps, transports: trs,
				run: func(ctx context.Context, tr string, rep int) (repOut, error) {
					m, lat, err := holRun(ctx, r.env, tr, holParams{
						loss: loss, rtt: o.HOLRTT, duration: o.HOLDuration, warmup: o.HOLWarmup,
						rate: o.HOLRate, size: o.LatencySize, bulkSize: o.HOLBulkSize, seed: o.Seed + uint64(rep),
					})
					return repOut{metrics: m, lat: lat}, err
				},
			})
		}
		return out
	}
	return nil
}

func (r *runner) throughputRep(ctx context.Context, tr string, size, streams int) (repOut, error) {
	t, err := NewThroughput(ctx, r.env, tr, size, streams)
	if err != nil {
		return repOut{}, err
	}
	var total int64
	if r.opts.Volume > 0 {
		total = max(r.opts.Volume/int64(size), int64(streams))
	}
	res, err := t.Run(ctx, total, r.opts.Duration)
	err = firstErr(err, t.Close())
	if err != nil {
		return repOut{}, err
	}
	secs := res.Elapsed.Seconds()
	return repOut{metrics: map[string]float64{
		MRecordsPerSec:   res.Records / secs,
		MMBPerSec:        res.Records * float64(size) / 1e6 / secs,
		MAllocsPerRecord: float64(res.Allocs) / max(res.Records, 1),
		MCPUCores:        res.Cores,
	}}, nil
}

// pingPongWarmup round trips run before the measured ones.
const pingPongWarmup = 50

func (r *runner) pingPongRep(ctx context.Context, tr string, _ int) (repOut, error) {
	pp, err := NewPingPong(ctx, r.env, tr, r.opts.LatencySize)
	if err != nil {
		return repOut{}, err
	}
	defer func() { _ = pp.Close() }()
	for range pingPongWarmup {
		if err := pp.RoundTrip(ctx); err != nil {
			return repOut{}, err
		}
	}
	n := r.opts.PingPongs
	lat := make([]time.Duration, 0, n)
	m := startMeter()
	for range n {
		t0 := time.Now()
		if err := pp.RoundTrip(ctx); err != nil {
			return repOut{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	reg := m.stopAt(time.Now())
	if err := pp.Close(); err != nil {
		return repOut{}, err
	}
	p50, p99, p999 := Quantiles(lat)
	secs := reg.elapsed.Seconds()
	return repOut{lat: lat, metrics: map[string]float64{
		MRecordsPerSec:   float64(n) / secs,
		MMBPerSec:        float64(n) * float64(r.opts.LatencySize) / 1e6 / secs,
		MP50us:           p50,
		MP99us:           p99,
		MP999us:          p999,
		MAllocsPerRecord: float64(reg.allocs) / float64(n),
		MCPUCores:        reg.cores,
	}}, nil
}

func (r *runner) pacedRep(ctx context.Context, tr string, _ int) (repOut, error) {
	o := r.opts
	st, err := newPacedStream(ctx, r.env, tr, o.LatencySize)
	if err != nil {
		return repOut{}, err
	}
	out, err := runPaced(ctx, st, pacedParams{rate: o.PacedRate, duration: o.PacedDuration, warmup: o.PacedWarmup, size: o.LatencySize})
	err = firstErr(err, st.close())
	if err != nil {
		return repOut{}, err
	}
	p50, p99, p999 := Quantiles(out.lat)
	_, lag99, _ := Quantiles(out.lag)
	secs := o.PacedDuration.Seconds()
	return repOut{lat: out.lat, metrics: map[string]float64{
		MRecordsPerSec:    float64(out.sent) / secs,
		MMBPerSec:         float64(out.sent) * float64(o.LatencySize) / 1e6 / secs,
		MP50us:            p50,
		MP99us:            p99,
		MP999us:           p999,
		MAllocsPerRecord:  float64(out.region.allocs) / float64(max(out.sent, 1)),
		MCPUCores:         out.region.cores,
		"offered_per_sec": o.PacedRate,
		"samples":         float64(len(out.lat)),
		"lag_p99_us":      lag99,
	}}, nil
}
