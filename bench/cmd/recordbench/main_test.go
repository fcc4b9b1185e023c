package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"64": 64, "64B": 64, "1KiB": 1024, "16KiB": 16 << 10, "4MiB": 4 << 20, "1KB": 1000, " 2 MiB ": 2 << 20} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "KiB", "-1", "1.5KiB", "0"} {
		_, err := parseSize(bad)
		require.Error(t, err, bad)
	}
}

func TestParseLosses(t *testing.T) {
	got, err := parseLosses("1%, 0.05,0")
	require.NoError(t, err)
	require.Equal(t, []float64{0.01, 0.05, 0}, got)
	_, err = parseLosses("150%")
	require.Error(t, err)
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, out, err := parseFlags([]string{"-cases", "throughput,latency", "-sizes", "64B,2KiB", "-streams", "1,5",
		"-volume", "8MiB", "-reps", "5", "-flush-delay", "100us", "-max-batch-bytes", "32KiB", "-max-batch-records", "7",
		"-ack-delay", "-1ns", "-hol-loss", "2%", "-json", "x.jsonl", "-plot", "d", "-q"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, []string{"throughput", "latency"}, o.Cases)
	require.Equal(t, []int{64, 2048}, o.Sizes)
	require.Equal(t, []int{1, 5}, o.Streams)
	require.Equal(t, int64(8<<20), o.Volume)
	require.Equal(t, 5, o.Reps)
	require.Equal(t, 100*time.Microsecond, o.Recordmux.FlushDelay)
	require.Equal(t, 32<<10, o.Recordmux.MaxBatchBytes)
	require.Equal(t, 7, o.Recordmux.MaxBatchRecords)
	require.Equal(t, -time.Nanosecond, o.Recordmux.AckDelay)
	require.Equal(t, []float64{0.02}, o.HOLLoss)
	require.Equal(t, outputs{json: "x.jsonl", plotDir: "d"}, out)
	require.Nil(t, o.Progress)

	_, _, err = parseFlags([]string{"-sizes", "big"}, &stderr)
	require.ErrorContains(t, err, "-sizes")
	_, _, err = parseFlags([]string{"stray"}, &stderr)
	require.Error(t, err)
}

// TestRunCommand runs the command end to end with minimal sizes.
func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "r.jsonl")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-cases", "throughput,pingpong", "-sizes", "64B", "-streams", "2", "-duration", "10ms",
		"-reps", "1", "-pingpongs", "10", "-json", js, "-plot", filepath.Join(dir, "plots")}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	require.Contains(t, stdout.String(), "THROUGHPUT")
	require.Contains(t, stdout.String(), "rm/framer")
	require.Contains(t, stderr.String(), "GOMAXPROCS=", "machine header")
	require.Contains(t, stderr.String(), "pingpong", "progress")

	f, err := os.Open(js)
	require.NoError(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		for _, k := range []string{"case", "transport", "record_size", "streams", "records_per_sec", "mb_per_sec",
			"p50_us", "p99_us", "p999_us", "allocs_per_record", "cpu_cores", "reps", "records_per_sec_min", "records_per_sec_max"} {
			require.Contains(t, m, k)
		}
		n++
	}
	require.Equal(t, 6, n)
	require.FileExists(t, filepath.Join(dir, "plots", "throughput.svg"))
	require.FileExists(t, filepath.Join(dir, "plots", "latency-pingpong-256b.svg"))

	require.Equal(t, 2, run([]string{"-cases", "nope"}, &stdout, &stderr))
}
