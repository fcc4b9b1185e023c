package suite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// tinyOptions runs every case but hol with minimal sizes on a few
// transports: one of each kind (the contract test covers them all).
func tinyOptions() Options {
	o := DefaultOptions()
	o.Cases = []string{CaseThroughput, "latency", CaseBacklog, CaseManyStreams}
	o.Transports = []string{"recordmux", "recordmux-w1024", "framer", "mux", "yamux"}
	o.Reps, o.HeavyReps = 2, 1
	o.RepTimeout = 30 * time.Second
	o.Sizes, o.Streams = []int{64, 4 << 10}, []int{1, 3}
	o.Duration = 20 * time.Millisecond
	o.PingPongs = 20
	o.PacedRate, o.PacedDuration, o.PacedWarmup = 2000, 100*time.Millisecond, 10*time.Millisecond
	o.LoadedDuration, o.LoadedWarmup = 50*time.Millisecond, 10*time.Millisecond
	o.BacklogRate, o.BacklogSlowRate = 4000, 500
	o.BacklogSlow, o.BacklogFast = 150*time.Millisecond, 50*time.Millisecond
	o.BacklogWindowRecords, o.BacklogWindowBytes = 64, 64<<10
	o.ManyStreams = 40
	return o
}

// countingProgress counts what the suite reports.
type countingProgress struct{ begin, started, done, end int }

func (p *countingProgress) Begin(n int)  { p.begin = n }
func (p *countingProgress) Start(string) { p.started++ }
func (p *countingProgress) Done()        { p.done++ }
func (p *countingProgress) End()         { p.end++ }

func TestRunTiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	prog := &countingProgress{}
	o := tinyOptions()
	o.Log, o.Progress = &log, prog
	rep, err := Run(ctx, o)
	require.NoError(t, err)

	// 4 throughput cells, pingpong, paced, loaded-latency, backlog, many:
	// the variant only where the filter keeps it (every case here).
	const cells, trs = 4 + 3 + 2, 5
	require.Len(t, rep.Results, cells*trs)
	runs := (4+3)*trs*2 + 2*trs
	require.Equal(t, countingProgress{begin: runs, started: runs, done: runs, end: 1}, *prog)
	require.Equal(t, runs, strings.Count(log.String(), "\n"), "one log line per repetition")
	for _, r := range rep.Results {
		require.Equal(t, "in-process", r.Mode)
		require.Nil(t, r.Server)
		require.Positive(t, r.RecordsPerSec.Median, "%s %s", r.Case, r.Transport)
		require.Zero(t, r.ServerCPUCores.N, "no server figures in process")
		switch r.Case {
		case CaseThroughput, CasePingPong, CasePaced, CaseLoaded:
			require.Equal(t, 2, r.Reps)
			require.Equal(t, 2, r.RecordsPerSec.N)
		}
		switch r.Case {
		case CasePingPong, CasePaced, CaseLoaded:
			require.Positive(t, r.P50us.Median)
			require.GreaterOrEqual(t, r.P99us.Median, r.P50us.Median)
		case CaseBacklog:
			require.Positive(t, r.PeakInFlightRecords.N)
			if r.Transport == "recordmux" {
				require.LessOrEqual(t, r.PeakInFlightRecords.Median, 64.0, "the window holds")
				require.LessOrEqual(t, r.PeakBacklogRecords.Median, 64.0)
				require.Positive(t, r.SendBlockedMs.Median)
			}
		case CaseManyStreams:
			if r.Transport == "recordmux" {
				require.InDelta(t, 4, r.GoroutinesPerStream.Median, 0.5, "two loops per stream and end")
			}
		}
	}
	require.Len(t, rep.Backlog, trs)

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rep))
	for _, s := range []string{"THROUGHPUT", "LATENCY", "loaded-latency", "recordmux-w1024", "BACKLOG", "MANY-STREAMS", "GOMAXPROCS="} {
		require.Contains(t, table.String(), s)
	}
	for _, s := range []string{"MISSED", "TARGET", "target"} {
		require.NotContains(t, table.String(), s, "no project-internal targets in user output")
	}

	dir := t.TempDir()
	files, err := WriteCharts(dir, rep)
	require.NoError(t, err)
	// throughput per stream count (2), latency CDFs (3), backlog (2)
	require.Len(t, files, 7)
	require.FileExists(t, filepath.Join(dir, "throughput-3streams.svg"))
	require.FileExists(t, filepath.Join(dir, "latency-loaded-latency-256b-flat-out.svg"))

	var js bytes.Buffer
	require.NoError(t, WriteJSONLines(&js, rep.Results))
	back, err := ReadJSONLines(&js)
	require.NoError(t, err)
	require.Len(t, back, len(rep.Results))
	for i := range back {
		require.Equal(t, rep.Results[i].Metrics, back[i].Metrics, "JSON keeps every figure")
		require.Equal(t, rep.Results[i].Key(), back[i].Key())
	}
}

func TestOptionsValidation(t *testing.T) {
	_, err := Run(context.Background(), Options{Cases: []string{"nope"}, Reps: 1, HeavyReps: 1})
	require.ErrorContains(t, err, "unknown case")
	o := DefaultOptions()
	o.Transports = []string{"carrier-pigeon"}
	_, err = Run(context.Background(), o)
	require.ErrorIs(t, err, transport.ErrUnknown)

	o = DefaultOptions()
	o.Cases = []string{"latency", CaseThroughput}
	cases, err := o.selected()
	require.NoError(t, err)
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	require.Equal(t, []string{CaseThroughput, CasePingPong, CasePaced, CaseLoaded}, names)
	require.Equal(t, []string{"recordmux", "recordmux-w1024", "recordmux-w32768", "raw", "framer", "mux", "grpc", "yamux", "smux"},
		o.transportsFor(cases[3]), "loaded-latency: recordmux and its fixed windows, and the rest")
	o.Transports = []string{"yamux", "mux", "recordmux"}
	require.Equal(t, []string{"recordmux", "mux", "yamux"}, o.transportsFor(cases[0]), "canonical order")
	hol := caseDefs[len(caseDefs)-1]
	require.Equal(t, []string{"recordmux", "mux"}, o.transportsFor(hol), "TCP transports cannot run over simnet")
}

// TestHOLSynctest runs the head-of-line case over simnet in a synctest
// bubble, where time is virtual: with little loss a record's latency is
// one round trip, never less; with more loss it is at least that.
func TestHOLSynctest(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, tr string, loss float64) Metrics[float64] {
		var m Metrics[float64]
		synctest.Test(t, func(t *testing.T) {
			var err error
			m, _, err = HOL(context.Background(), transport.Options{}, tr, HOLParams{
				Loss: loss, RTT: 20 * time.Millisecond, Duration: time.Second, Warmup: 200 * time.Millisecond,
				Rate: 100, Size: 256, BulkSize: 1024, Seed: 1, InBubble: true,
			})
			require.NoError(t, err)
		})
		return m
	}
	t.Run("0.1% loss", func(t *testing.T) {
		// Some loss keeps the congestion window, and so the work of
		// simulating the bulk stream, small.
		for _, tr := range []string{"recordmux", "mux", "framer"} {
			m := run(t, tr, 0.001)
			// One round trip of virtual time, plus a little queueing
			// behind the bulk stream for congestion window.
			require.GreaterOrEqual(t, m.P50us, 20_000.0, tr)
			require.LessOrEqual(t, m.P50us, 30_000.0, tr)
			require.Equal(t, 80.0, m.Samples)
			require.Greater(t, m.MBPerSec, 1.0, "%s: the bulk stream moved", tr)
		}
	})
	t.Run("5% loss", func(t *testing.T) {
		for _, tr := range []string{"recordmux", "mux", "framer"} {
			m := run(t, tr, 0.05)
			require.GreaterOrEqual(t, m.P50us, 20_000.0, tr)
			require.GreaterOrEqual(t, m.P99us, m.P50us, tr)
			require.InDelta(t, 0.05, m.LossObserved, 0.03, tr)
		}
	})
}

// TestTwoHostLoopback runs a few cases against a control server in this
// process, over loopback: the results carry the RTT and the server's CPU
// and heap, and the hol case is skipped.
func TestTwoHostLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := transport.NewIdentity()
	require.NoError(t, err)
	srv, err := Listen("127.0.0.1:0", 0, id, nil)
	require.NoError(t, err)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	defer func() { stop(); require.NoError(t, <-served) }()

	_, err = Connect(ctx, srv.Addr().String(), transport.Pin(strings.Repeat("ab", 32)), transport.Options{})
	require.ErrorIs(t, err, transport.ErrPinMismatch)

	env, err := Connect(ctx, srv.Addr().String(), id.Pin(), transport.Options{})
	require.NoError(t, err)
	defer env.Close()
	o := tinyOptions()
	o.Cases = []string{CaseThroughput, CasePingPong, CaseManyStreams, CaseHOL}
	o.Transports = []string{"recordmux", "smux"}
	o.Sizes, o.Streams, o.Reps = []int{1 << 10}, []int{2}, 1
	var log bytes.Buffer
	o.Log = &log
	rep, err := RunIn(ctx, env, o)
	require.NoError(t, err)
	require.Contains(t, log.String(), "hol skipped")
	require.NotNil(t, rep.Server)
	require.Positive(t, rep.Server.RTTMinUs)
	require.GreaterOrEqual(t, rep.Server.RTTMedianUs, rep.Server.RTTMinUs)
	require.Equal(t, rttPings, rep.Server.RTTSamples)
	require.Len(t, rep.Results, 3*2)
	for _, r := range rep.Results {
		require.Equal(t, "two-host", r.Mode)
		require.Same(t, rep.Server, r.Server)
		require.Positive(t, r.ServerCPUCores.Median, "%s %s", r.Case, r.Transport)
		require.Positive(t, r.ServerPeakHeapMiB.Median, "%s %s", r.Case, r.Transport)
	}
	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rep))
	require.Contains(t, table.String(), "two hosts: server "+srv.Addr().String())
	require.Contains(t, table.String(), "server cores")
}

func TestProgressSilentWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	require.NoError(t, err)
	defer f.Close()
	for _, w := range []interface{ Write([]byte) (int, error) }{&buf, f} {
		p := NewProgress(w)
		require.IsType(t, nopProgress{}, p)
		p.Begin(3)
		p.Start("throughput 64B x1 recordmux rep 1/3")
		p.Done()
		p.End()
	}
	require.Zero(t, buf.Len())
	st, err := f.Stat()
	require.NoError(t, err)
	require.Zero(t, st.Size())

	// The bar itself shows the running repetition and the count.
	bar := &barProgress{w: &buf}
	bar.Begin(3)
	bar.Start("pingpong 256B yamux rep 2/3")
	bar.Done()
	require.Contains(t, buf.String(), "pingpong 256B yamux rep 2/3")
	require.Contains(t, buf.String(), "(0/3)", "the count of repetitions")
	bar.End()
}

// TestCompressionCaseTiny runs the compression case briefly: a result per
// corpus and transport, each with the wire bytes quic-go counted; on the
// telemetry corpus every compressing variant puts fewer bytes on the
// wire per payload byte than plain recordmux, and on the incompressible
// one none does better than the payload itself.
func TestCompressionCaseTiny(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := DefaultOptions()
	o.Cases = []string{CaseCompression}
	o.Reps = 1
	o.Volume = 2 << 20
	var log bytes.Buffer
	o.Log = &log
	rep, err := Run(ctx, o)
	require.NoError(t, err)
	require.Len(t, rep.Results, 2*4)
	ratio := map[string]float64{}
	for _, r := range rep.Results {
		require.Equal(t, CaseCompression, r.Case)
		require.Positive(t, r.RecordsPerSec.Median, r.Key())
		require.Positive(t, r.WireBytesPerRecord.Median, r.Key())
		ratio[r.Corpus+"/"+r.Transport] = r.WireRatio.Median
	}
	for _, tr := range []string{"recordmux-s2", "recordmux-zstd", "recordmux-auto"} {
		require.Less(t, ratio["telemetry/"+tr], 0.6*ratio["telemetry/recordmux"], tr)
		require.Greater(t, ratio["incompressible/"+tr], 1.0, tr)
	}
	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rep))
	require.Contains(t, table.String(), "COMPRESSION:")
	require.Contains(t, table.String(), "wire B/record")
}
