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

	"github.com/recordmux/recordmux/quicrecord"
)

// tinyOptions runs every loopback case with minimal sizes.
func tinyOptions() Options {
	o := DefaultOptions()
	o.Cases = []string{CaseThroughput, "latency", CaseBacklog, CaseManyStreams}
	o.Reps, o.HeavyReps = 2, 1
	o.Sizes, o.Streams = []int{64, 4 << 10}, []int{1, 3}
	o.Duration = 20 * time.Millisecond
	o.PingPongs = 20
	o.PacedRate, o.PacedDuration, o.PacedWarmup = 2000, 100*time.Millisecond, 10*time.Millisecond
	o.BacklogRate, o.BacklogSlowRate = 4000, 500
	o.BacklogSlow, o.BacklogFast = 150*time.Millisecond, 50*time.Millisecond
	o.BacklogWindowRecords, o.BacklogWindowBytes = 64, 64<<10
	o.ManyStreams = 40
	return o
}

func TestRunTiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var progress bytes.Buffer
	o := tinyOptions()
	o.Progress = &progress
	rep, err := Run(ctx, o)
	require.NoError(t, err)

	// 4 throughput cells + pingpong + paced + backlog + many, 3 transports each.
	require.Len(t, rep.Results, 8*3)
	for _, r := range rep.Results {
		require.NotEmpty(t, r.Metrics, "%s %s", r.Case, r.Transport)
		switch r.Case {
		case CaseThroughput, CasePingPong, CasePaced:
			require.Equal(t, 2, r.Reps)
			require.Greater(t, r.Get(MRecordsPerSec), 0.0, "%s %s", r.Case, r.Transport)
		}
		if r.Case == CasePingPong || r.Case == CasePaced {
			require.Greater(t, r.Get(MP50us), 0.0)
			require.GreaterOrEqual(t, r.Get(MP99us), r.Get(MP50us))
		}
	}
	require.Equal(t, 6*3*2+2*3, strings.Count(progress.String(), "\n")-1, "one progress line per run")

	for _, r := range rep.Results {
		if r.Case == CaseBacklog && r.Transport == Recordmux {
			// The configured windows hold.
			require.LessOrEqual(t, r.Get("peak_inflight_records"), 64.0)
			require.LessOrEqual(t, r.Get("peak_backlog_records"), 64.0)
			require.Greater(t, r.Get("send_blocked_ms"), 0.0)
		}
		if r.Case == CaseManyStreams && r.Transport == Recordmux {
			require.InDelta(t, 4, r.Get("goroutines_per_stream"), 0.5, "two loops per stream and end")
		}
	}
	require.Len(t, rep.Backlog, 3)

	var table bytes.Buffer
	require.NoError(t, WriteTable(&table, rep))
	for _, s := range []string{"THROUGHPUT", "LATENCY", "BACKLOG", "MANY-STREAMS", "TARGETS", "GOMAXPROCS="} {
		require.Contains(t, table.String(), s)
	}

	dir := t.TempDir()
	files, err := WritePlots(dir, rep)
	require.NoError(t, err)
	// throughput, two latency CDFs, two backlog charts
	require.Len(t, files, 5)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte("<svg")), f)
	}
	require.FileExists(t, filepath.Join(dir, "backlog-heap.svg"))

	var js bytes.Buffer
	require.NoError(t, WriteJSONLines(&js, rep.Results))
	require.Len(t, decodeLines(t, js.Bytes()), len(rep.Results))
}

func TestOptionsValidation(t *testing.T) {
	_, err := Run(context.Background(), Options{Cases: []string{"nope"}, Reps: 1, HeavyReps: 1})
	require.ErrorContains(t, err, "unknown case")
	o := DefaultOptions()
	o.Transports = []string{"carrier-pigeon"}
	_, err = Run(context.Background(), o)
	require.ErrorContains(t, err, "unknown transport")
	o = DefaultOptions()
	o.Cases = []string{"latency", CaseThroughput}
	cases, err := o.normalize()
	require.NoError(t, err)
	require.Equal(t, []string{CaseThroughput, CasePingPong, CasePaced}, cases)
	o.Transports = []string{Mux, Recordmux}
	require.Equal(t, []string{Recordmux}, o.transportsFor(CaseThroughput))
	require.Equal(t, []string{Recordmux, Mux}, o.transportsFor(CaseHOL))
}

// TestHOLSynctest runs the head-of-line case over simnet in a synctest
// bubble, where time is virtual: with little loss a record's latency is
// one round trip, never less; with more loss it is at least that.
func TestHOLSynctest(t *testing.T) {
	run := func(t *testing.T, tr string, loss float64) map[string]float64 {
		var m map[string]float64
		synctest.Test(t, func(t *testing.T) {
			env, err := NewEnv(quicrecord.Config{}) // certificates valid in virtual time
			require.NoError(t, err)
			m, _, err = holRun(context.Background(), env, tr, holParams{
				loss: loss, rtt: 20 * time.Millisecond, duration: time.Second, warmup: 200 * time.Millisecond,
				rate: 100, size: 256, bulkSize: 1024, seed: 1, sleepOnly: true,
			})
			require.NoError(t, err)
		})
		return m
	}
	t.Run("0.1% loss", func(t *testing.T) {
		// Some loss keeps the congestion window, and so the work of
		// simulating the bulk stream, small.
		for _, tr := range []string{Recordmux, Mux} {
			m := run(t, tr, 0.001)
			// One round trip of virtual time, plus a little queueing
			// behind the bulk stream for congestion window.
			require.GreaterOrEqual(t, m[MP50us], 20_000.0, tr)
			require.LessOrEqual(t, m[MP50us], 30_000.0, tr)
			require.Equal(t, 80.0, m["samples"])
			require.Greater(t, m[MMBPerSec], 1.0, "%s: the bulk stream moved", tr)
		}
	})
	t.Run("5% loss", func(t *testing.T) {
		for _, tr := range []string{Recordmux, Mux, Framer} {
			m := run(t, tr, 0.05)
			require.GreaterOrEqual(t, m[MP50us], 20_000.0, tr)
			require.GreaterOrEqual(t, m[MP99us], m[MP50us], tr)
			require.InDelta(t, 0.05, m["loss_observed"], 0.03, tr)
		}
	})
}
