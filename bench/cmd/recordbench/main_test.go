package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/recordmux/recordmux/bench/internal/suite"
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

func TestParseRunFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, out, err := parseRunFlags([]string{"-cases", "throughput,latency", "-transports", "recordmux,grpc", "-sizes", "64B,2KiB", "-streams", "1,5",
		"-volume", "8MiB", "-reps", "5", "-flush-delay", "100us", "-max-batch-bytes", "32KiB", "-max-batch-records", "7",
		"-ack-delay", "-1ns", "-hol-loss", "2%", "-json", "x.jsonl", "-plot", "d", "-q",
		"-connect", "h:1", "-pin", strings.Repeat("0", 64)}, &stderr)
	require.NoError(t, err)
	require.Equal(t, []string{"throughput", "latency"}, o.Cases)
	require.Equal(t, []string{"recordmux", "grpc"}, o.Transports)
	require.Equal(t, []int{64, 2048}, o.Sizes)
	require.Equal(t, []int{1, 5}, o.Streams)
	require.Equal(t, int64(8<<20), o.Volume)
	require.Equal(t, 5, o.Reps)
	rm := o.Transport.Recordmux
	require.Equal(t, 100*time.Microsecond, rm.FlushDelay)
	require.Equal(t, 32<<10, rm.MaxBatchBytes)
	require.Equal(t, 7, rm.MaxBatchRecords)
	require.Equal(t, -time.Nanosecond, rm.AckDelay)
	require.Equal(t, []float64{0.02}, o.HOLLoss)
	require.Equal(t, outputs{json: "x.jsonl", plotDir: "d", connect: "h:1", pin: strings.Repeat("0", 64)}, out)
	require.Nil(t, o.Progress)
	require.Nil(t, o.Log)

	o, _, err = parseRunFlags([]string{"-v"}, &stderr)
	require.NoError(t, err)
	require.NotNil(t, o.Log)
	require.Equal(t, suite.NewProgress(&stderr), o.Progress, "a buffer is no terminal: no bar")

	for _, bad := range [][]string{{"-sizes", "big"}, {"stray"}, {"-connect", "h:1"}, {"-transports", "pigeon"}, {"-cases", "nope"}} {
		_, _, err = parseRunFlags(bad, &stderr)
		require.Error(t, err, bad)
	}
}

// TestRunCommand runs the command end to end in process with minimal
// sizes, then compares the result with itself and with a slower copy.
func TestRunCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	js := filepath.Join(dir, "r.jsonl")
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-cases", "throughput,pingpong", "-transports", "recordmux,framer,smux", "-sizes", "64B", "-streams", "2",
		"-duration", "10ms", "-reps", "1", "-pingpongs", "10", "-json", js, "-plot", filepath.Join(dir, "plots")}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	require.Contains(t, stdout.String(), "THROUGHPUT")
	require.Contains(t, stdout.String(), "smux")
	require.NotContains(t, stdout.String(), "MISSED")
	require.Contains(t, stderr.String(), "GOMAXPROCS=", "machine header")
	require.NotContains(t, stderr.String(), "rep 1/1", "no progress to a non-terminal, no log without -v")

	rs, err := readResults(js)
	require.NoError(t, err)
	require.Len(t, rs, 6)
	require.FileExists(t, filepath.Join(dir, "plots", "throughput-2streams.svg"))
	require.FileExists(t, filepath.Join(dir, "plots", "latency-pingpong-256b.svg"))

	// compare: identical runs overlap everywhere and pass the gate.
	stdout.Reset()
	require.Equal(t, 0, run(ctx, []string{"compare", "-fail-on", "mb_per_sec,p99_us", js, js}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "+0.0%")
	require.NotContains(t, stdout.String(), "WORSE")

	// A copy with every throughput halved, ranges apart: the gate fails.
	for i := range rs {
		s := &rs[i].MBPerSec
		s.Median, s.Min, s.Max = s.Median/2, s.Min/2, s.Max/2
	}
	slow := filepath.Join(dir, "slow.jsonl")
	f, err := os.Create(slow)
	require.NoError(t, err)
	require.NoError(t, suite.WriteJSONLines(f, rs))
	require.NoError(t, f.Close())
	stdout.Reset()
	require.Equal(t, 1, run(ctx, []string{"compare", "-fail-on", "mb_per_sec", "-threshold", "10%", js, slow}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "-50.0%")
	require.Contains(t, stdout.String(), "regression(s) beyond 10.0%")
	require.Equal(t, 0, run(ctx, []string{"compare", "-fail-on", "p99_us", js, slow}, &stdout, &stderr), "latency did not change")
	require.Equal(t, 2, run(ctx, []string{"compare", "-fail-on", "speed", js, slow}, &stdout, &stderr))
	require.Equal(t, 2, run(ctx, []string{"compare", js}, &stdout, &stderr))
	require.Equal(t, 2, run(ctx, []string{"-cases", "nope"}, &stdout, &stderr))
}

// TestTwoProcesses builds recordbench and runs "serve" and "run -connect"
// as two processes over loopback with a tiny workload: the results carry
// the RTT the client measured and the server's CPU and heap.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "recordbench")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	srv := exec.CommandContext(ctx, bin, "serve", "-listen", "127.0.0.1:0")
	srvOut, err := srv.StdoutPipe()
	require.NoError(t, err)
	var srvErr syncBuffer
	srv.Stderr = &srvErr
	require.NoError(t, srv.Start())
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	}()
	var addr, pin string
	sc := bufio.NewScanner(srvOut)
	for (addr == "" || pin == "") && sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "recordbench serve: listening on "); ok {
			addr = a
		}
		if p, ok := strings.CutPrefix(line, "recordbench serve: fingerprint "); ok {
			pin = p
		}
	}
	require.NotEmpty(t, addr, srvErr.String())
	require.Len(t, pin, 64)
	go func() { _, _ = bufio.NewReader(srvOut).WriteTo(io.Discard) }()

	js := filepath.Join(dir, "two.jsonl")
	client := exec.CommandContext(ctx, bin, "run", "-connect", addr, "-pin", pin,
		"-cases", "throughput,pingpong", "-transports", "recordmux,yamux", "-sizes", "1KiB", "-streams", "2",
		"-duration", "20ms", "-reps", "1", "-pingpongs", "20", "-json", js)
	out, err = client.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "two hosts: server "+addr)
	require.Contains(t, string(out), "server cores")

	rs, err := readResults(js)
	require.NoError(t, err)
	require.Len(t, rs, 4)
	for _, r := range rs {
		require.Equal(t, "two-host", r.Mode)
		require.NotNil(t, r.Server)
		require.Equal(t, addr, r.Server.Addr)
		require.Positive(t, r.Server.RTTMinUs, "the RTT measured first")
		require.Positive(t, r.Server.RTTMedianUs)
		require.NotEmpty(t, r.Server.Machine.GoVersion, "the server's machine")
		require.Positive(t, r.ServerCPUCores.Median, "%s %s: the server's CPU", r.Case, r.Transport)
		require.Positive(t, r.ServerPeakHeapMiB.Median, "%s %s: the server's heap", r.Case, r.Transport)
	}
	require.Contains(t, srvErr.String(), "run of yamux", "the server logs each run")

	// A wrong pin is refused by the handshake.
	bad := exec.CommandContext(ctx, bin, "run", "-connect", addr, "-pin", strings.Repeat("ab", 32), "-cases", "pingpong")
	out, err = bad.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "pinned fingerprint")
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
