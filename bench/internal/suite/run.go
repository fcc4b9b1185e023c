package suite

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Report is everything one run of the suite produced.
type Report struct {
	Machine Machine
	// Server describes the server of a two-host run; nil in-process.
	Server  *ServerInfo
	Options Options
	Results []Result
	// Latency holds the latency samples of every latency and hol cell
	// per transport, all repetitions merged, for the CDF charts.
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
	m     Metrics[float64]
	lat   []time.Duration
	trace *BacklogTrace
}

// runner carries one suite run.
type runner struct {
	opts *Options
	env  *Env
}

// Run runs the selected cases in process and returns the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	env, err := NewEnv(opts.Transport)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	return RunIn(ctx, env, opts)
}

// RunIn runs the selected cases in env: in process, or against a remote
// server (see [Connect]), where cases that need both ends in one process
// are skipped.
func RunIn(ctx context.Context, env *Env, opts Options) (*Report, error) {
	cases, err := opts.selected()
	if err != nil {
		return nil, err
	}
	started := time.Now()
	r := &runner{opts: &opts, env: env}
	rep := &Report{Machine: DescribeMachine(), Server: env.peer.Server(), Options: opts}
	var cells []cell
	for _, c := range cases {
		if c.localOnly && env.Remote() {
			r.logf("recordbench: %s skipped: it needs both ends in this process\n", c.name)
			continue
		}
		if trs := opts.transportsFor(c); len(trs) > 0 {
			cells = append(cells, c.cells(r, trs)...)
		}
	}
	total := 0
	for _, c := range cells {
		total += c.reps * len(c.transports)
	}
	prog := opts.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	prog.Begin(total)
	defer prog.End()
	if err := r.warmUp(ctx, cells); err != nil {
		return rep, err
	}
	for _, c := range cells {
		if err := r.runCell(ctx, c, rep, prog); err != nil {
			return rep, err
		}
	}
	rep.Machine.LoadEnd = LoadAverage()
	rep.Elapsed = time.Since(started)
	mode := "in-process"
	if env.Remote() {
		mode = "two-host"
	}
	for i := range rep.Results {
		rep.Results[i].Machine, rep.Results[i].Server, rep.Results[i].Mode = &rep.Machine, rep.Server, mode
	}
	return rep, nil
}

// warmUp runs each transport of the run briefly, unmeasured, so that the
// first measured run does not pay for the process's warm-up (heap growth,
// pools, code run the first time).
func (r *runner) warmUp(ctx context.Context, cells []cell) error {
	seen := map[string]bool{}
	for _, c := range cells {
		for _, tr := range c.transports {
			if seen[tr] {
				continue
			}
			seen[tr] = true
			t, err := NewThroughput(ctx, r.env, tr, 1<<10, 1)
			if err != nil {
				return fmt.Errorf("warm-up %s: %w", tr, err)
			}
			_, err = t.Run(ctx, 0, warmUpTime)
			if err = firstErr(err, t.Close()); err != nil {
				return fmt.Errorf("warm-up %s: %w", tr, err)
			}
		}
	}
	return nil
}

// warmUpTime is how long each transport runs in the warm-up.
const warmUpTime = 50 * time.Millisecond

func (r *runner) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, format, args...)
	}
}

// runCell runs the repetitions of one cell, interleaving the transports,
// and adds its results to rep.
func (r *runner) runCell(ctx context.Context, c cell, rep *Report, prog Progress) error {
	perTr := make(map[string][]Metrics[float64])
	lat := make(map[string][]time.Duration)
	for i := range c.reps {
		for _, tr := range c.transports {
			if err := ctx.Err(); err != nil {
				return err
			}
			prog.Start(fmt.Sprintf("%s %s %s rep %d/%d", c.base.Case, c.label, tr, i+1, c.reps))
			runtime.GC() // every run starts from a collected heap
			t0 := time.Now()
			rctx, cancel := context.WithTimeout(ctx, r.opts.RepTimeout)
			out, err := c.run(rctx, tr, i)
			cancel()
			prog.Done()
			if err != nil {
				return fmt.Errorf("%s %s %s rep %d: %w", c.base.Case, c.label, tr, i+1, err)
			}
			perTr[tr] = append(perTr[tr], out.m)
			lat[tr] = append(lat[tr], out.lat...)
			if out.trace != nil {
				rep.Backlog = append(rep.Backlog, *out.trace)
			}
			r.logf("%-14s %-14s %-16s rep %d/%d (%.1fs): %s\n", c.base.Case, c.label, tr, i+1, c.reps,
				time.Since(t0).Seconds(), summary(&out.m))
		}
	}
	for _, tr := range c.transports {
		res := c.base
		res.Transport = tr
		res.Reps = len(perTr[tr])
		res.Metrics = aggregate(perTr[tr])
		rep.Results = append(rep.Results, res)
		if len(lat[tr]) > 0 {
			rep.Latency = append(rep.Latency, LatencySet{Case: c.base.Case, Cell: c.label, Transport: tr, Samples: lat[tr]})
		}
	}
	return nil
}

// summary is the figure a log line shows: whichever the case measured.
func summary(m *Metrics[float64]) string {
	s := ""
	add := func(format string, v float64) {
		if v == v { // not NaN
			s += fmt.Sprintf(format, v)
		}
	}
	add("%.1f MB/s ", m.MBPerSec)
	add("p50 %.0f µs ", m.P50us)
	add("p99 %.0f µs ", m.P99us)
	add("peak in flight %.0f ", m.PeakInFlightRecords)
	add("%.1f KiB/stream ", m.HeapKiBPerStream)
	return s
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

// withServer adds a two-host server's CPU and heap to m.
func withServer(m *Metrics[float64], rep SinkReport) {
	if rep.Wall > 0 {
		m.ServerCPUCores = float64(rep.CPU) / float64(rep.Wall)
		m.ServerPeakHeapMiB = float64(rep.PeakHeapInUse) / (1 << 20)
	}
}
