package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recordmux/recordmux/examples/internal/outbuf"
	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
)

// testCollector is a minimal acceptor of resumable streams: it applies
// every record, remembering per key what it got, and fails the test on a
// duplicate or a gap.
type testCollector struct {
	t    *testing.T
	addr string
	pin  string // PEM file of its certificate
	fp   string // its key's fingerprint, the other form -pin takes

	mu      sync.Mutex
	applied map[string][]string // key (hex) -> records in order
	changed chan struct{}
}

func newTestCollector(t *testing.T) *testCollector {
	t.Helper()
	dir := t.TempDir()
	pin := filepath.Join(dir, "collector.pem")
	cert, _, err := identity.LoadOrCreate(pin, filepath.Join(dir, "collector-key.pem"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCollector{t: t, pin: pin, fp: identity.FingerprintOf(cert.Leaf).String(), applied: map[string][]string{}, changed: make(chan struct{})}
	store := quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{
		AllowAnonymous: true, // the agent has no client certificate
		LoadApplied: func(_ context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
			tc.mu.Lock()
			defer tc.mu.Unlock()
			recs, ok := tc.applied[hex.EncodeToString(info.Key)]
			return uint64(len(recs)), ok, nil
		},
	})
	ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(cert), &quicrecord.Config{ResumeStore: store})
	if err != nil {
		t.Fatal(err)
	}
	tc.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					s, err := conn.AcceptRecordStream(ctx)
					if err != nil {
						return
					}
					wg.Go(func() {
						defer s.Close(context.Background())
						key := hex.EncodeToString(s.ResumeKey())
						_ = s.Apply(ctx, func(r quicrecord.Record) error {
							tc.mu.Lock()
							defer tc.mu.Unlock()
							if want := uint64(len(tc.applied[key])) + 1; r.Seq != want {
								t.Errorf("key %s: got seq %d, want %d", key, r.Seq, want)
							}
							tc.applied[key] = append(tc.applied[key], string(r.Data))
							close(tc.changed)
							tc.changed = make(chan struct{})
							return nil
						})
					})
				}
			})
		}
	})
	return tc
}

// records returns the records applied for key.
func (tc *testCollector) records(key string) []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]string(nil), tc.applied[key]...)
}

// waitFor waits until key has n records.
func (tc *testCollector) waitFor(key string, n int) {
	tc.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		tc.mu.Lock()
		got, ch := len(tc.applied[key]), tc.changed
		tc.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			tc.t.Fatalf("key %s: %d records applied, want %d", key, got, n)
		}
	}
}

func stateKey(t *testing.T, path string) string {
	t.Helper()
	st, ok, err := loadState(path)
	if err != nil || !ok {
		t.Fatalf("loadState(%s) = %v, %v", path, ok, err)
	}
	return st.Key
}

// TestAgentGenerateContinues: two runs with one state file make one
// stream, seq 1..300 then 301..500, and the summary says so.
func TestAgentGenerateContinues(t *testing.T) {
	tc := newTestCollector(t)
	state := filepath.Join(t.TempDir(), "agent.state")
	for i, n := range []int{300, 200} {
		pin := tc.pin
		if i == 1 {
			pin = tc.fp // the same collector, pinned by its key's fingerprint instead of its certificate file
		}
		args := []string{"-addr", tc.addr, "-pin", pin, "-state", state, "-rate", "0", "-name", "a1", "-progress", "0", "-generate", fmt.Sprint(n)}
		var stdout, stderr outbuf.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit code %d\n%s%s", i, code, stdout.String(), stderr.String())
		}
		t.Logf("run %d:\n%s", i, stdout.String())
		first := 1 + 300*i
		want := fmt.Sprintf("records sent        %d (seq %d..%d)\n  records acked       %d\n", n, first, first+n-1, n)
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run %d summary lacks %q", i, want)
		}
		// Compression is on by default, and the generated telemetry
		// shrinks. (How much depends on how the records fell into
		// batches, which depends on timing: 1.9x to 3x for these runs.)
		m := regexp.MustCompile(`compression         auto: ratio (\d+\.\d\d)x, (\d+) → (\d+) bytes in [1-9]\d* compressed batches`).FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatalf("run %d summary lacks the compression ratio:\n%s", i, stdout.String())
		}
		before, _ := strconv.Atoi(m[2])
		after, _ := strconv.Atoi(m[3])
		if ratio, _ := strconv.ParseFloat(m[1], 64); ratio <= 1 || after >= before {
			t.Errorf("run %d: compression ratio %s (%s → %s bytes): the telemetry did not shrink", i, m[1], m[2], m[3])
		}
	}
	recs := tc.records(stateKey(t, state))
	if len(recs) != 500 {
		t.Fatalf("%d records applied, want 500", len(recs))
	}
	if recs[499] != string(telemetry("a1", 500)) {
		t.Errorf("record 500 = %s, want %s", recs[499], telemetry("a1", 500))
	}
}

// TestAgentTail follows a file while lines are appended, stops on
// cancellation after draining, and a second run with the same state file
// continues after the last line the collector applied.
func TestAgentTail(t *testing.T) {
	tc := newTestCollector(t)
	dir := t.TempDir()
	logFile, state := filepath.Join(dir, "app.log"), filepath.Join(dir, "agent.state")
	appendLines := func(from, to int) {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := from; i <= to; i++ {
			fmt.Fprintf(f, "line %d\n", i)
		}
	}
	args := []string{"-addr", tc.addr, "-pin", tc.pin, "-state", state, "-tail", logFile, "-progress", "0", "-checkpoint", "10ms"}
	appendLines(1, 50)

	runUntil := func(n int, more func()) string {
		ctx, cancel := context.WithCancel(t.Context())
		var stdout, stderr outbuf.Buffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, &stdout, &stderr) }()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if stderr.Wait(wctx, regexp.MustCompile(`connected`)) == nil {
			t.Fatalf("agent did not connect:\n%s", stderr.String())
		}
		more()
		tc.waitFor(stateKey(t, state), n)
		cancel() // SIGINT: drain and exit
		if code := <-done; code != 0 {
			t.Fatalf("exit code %d\n%s%s", code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	out := runUntil(80, func() { appendLines(51, 80) })
	if !strings.Contains(out, "records acked       80\n") {
		t.Errorf("first run summary:\n%s", out)
	}
	appendLines(81, 100)
	out = runUntil(120, func() { appendLines(101, 120) })
	if !strings.Contains(out, "records sent        40 (seq 81..120)") {
		t.Errorf("second run summary:\n%s", out)
	}
	recs := tc.records(stateKey(t, state))
	for i, r := range recs {
		if r != fmt.Sprintf("line %d", i+1) {
			t.Fatalf("record %d = %q", i+1, r)
		}
	}
	if len(recs) != 120 {
		t.Fatalf("%d records, want 120", len(recs))
	}
}

// TestAgentFlags: usage errors exit with 2 before anything is dialed.
func TestAgentFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-pin", "x"}, // no source
		{"-pin", "x", "-generate", "1", "-tail", "f"}, // two sources
		{"-generate", "1"},                            // no trust
		{"-generate", "1", "-pin", "x", "-ca", "y"},   // two trusts
		{"-generate", "1", "-pin", "x", "-cert", "c"}, // cert without key
		{"-generate", "1", "-pin", "x", "-min-backoff", "0"},
	} {
		var stderr outbuf.Buffer
		if code := run(t.Context(), args, &stderr, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2; %s", args, code, stderr.String())
		}
	}
}

// TestAgentStoppedBeforeConnecting: an agent stopped (SIGINT) while the
// collector is still unreachable prints its summary and exits 0: being
// stopped is what was asked for, not an error.
func TestAgentStoppedBeforeConnecting(t *testing.T) {
	// A UDP socket that never answers: the agent's dial waits for it.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	other, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "agent.state")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr outbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-addr", silent.LocalAddr().String(), "-pin", identity.FingerprintOf(other.Leaf).String(),
			"-state", state, "-generate", "10", "-progress", "0"}, &stdout, &stderr)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if stderr.Wait(wctx, regexp.MustCompile(`new stream [0-9a-f]+`)) == nil {
		t.Fatalf("the agent did not start:\n%s", stderr.String())
	}
	cancel() // SIGINT before any connection
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the agent did not stop:\n%s", stderr.String())
	}
	if code != 0 {
		t.Errorf("exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("stderr reports the cancellation as an error:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped before the collector was reached") {
		t.Errorf("stderr does not say why nothing was sent:\n%s", stderr.String())
	}
	for _, want := range []string{
		"edge-agent summary: stream " + stateKey(t, state) + " (generate)\n",
		"  records sent        0\n  records acked       0\n  connections         0 (0 resumes)\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestAgentWrongPin: a collector whose key is not the pinned one is
// refused at once (a TLS failure is not retried), and nothing is sent.
func TestAgentWrongPin(t *testing.T) {
	tc := newTestCollector(t)
	other, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var stdout, stderr outbuf.Buffer
	code := run(ctx, []string{"-addr", tc.addr, "-pin", identity.FingerprintOf(other.Leaf).String(), "-generate", "10", "-progress", "0"}, &stdout, &stderr)
	if code != 1 || ctx.Err() != nil {
		t.Fatalf("exit code %d (context: %v), want 1 at once; stderr:\n%s", code, ctx.Err(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "is not pinned") {
		t.Errorf("stderr does not name the pin failure:\n%s", stderr.String())
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.applied) != 0 {
		t.Errorf("the collector applied records from a client that refused it: %v", tc.applied)
	}
}

// TestAgentBehindCollector: a state file behind what the collector
// applied (the previous run was killed with records in flight) continues
// the stream: the records the collector already applied are not applied
// again, and the summary counts them as duplicates dropped.
func TestAgentBehindCollector(t *testing.T) {
	tc := newTestCollector(t)
	state := filepath.Join(t.TempDir(), "agent.state")
	st := agentState{Key: "0123456789abcdef", Acked: 5, Source: "generate"}
	if err := st.save(state); err != nil {
		t.Fatal(err)
	}
	tc.mu.Lock()
	for i := 1; i <= 10; i++ {
		tc.applied[st.Key] = append(tc.applied[st.Key], string(telemetry("a", uint64(i))))
	}
	tc.mu.Unlock()
	var stdout, stderr outbuf.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"-addr", tc.addr, "-pin", tc.pin, "-state", state, "-generate", "15", "-name", "a", "-progress", "0"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	got := tc.applied[st.Key]
	if len(got) != 20 {
		t.Fatalf("collector holds %d records, want 20 (1..10 before, 11..20 now)", len(got))
	}
	for i, rec := range got {
		if want := string(telemetry("a", uint64(i+1))); rec != want {
			t.Fatalf("record %d: got %q, want %q", i+1, rec, want)
		}
	}
	if !strings.Contains(stdout.String(), "duplicates dropped") {
		t.Fatalf("summary lacks the duplicates count:\n%s", stdout.String())
	}
	t.Logf("stdout: %s", stdout.String())
}

// TestHelp: -h says on its first line what the program does, then lists
// the flags, and exits 0.
func TestHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-h: exit code %d", code)
	}
	help := stderr.String()
	first, _, _ := strings.Cut(help, "\n")
	if !strings.HasPrefix(first, "edge-agent: ") || len(first) < len("edge-agent: ")+30 {
		t.Errorf("-h starts with %q; want a line saying what edge-agent does", first)
	}
	if !strings.Contains(help, "\n  -pin ") {
		t.Errorf("-h does not list -pin:\n%s", help)
	}
}

// TestAgentMigrates: asked to migrate (as SIGHUP does) mid-stream, the
// agent moves its connection to a new socket by probe and switch: the
// stream carries on without a disconnection, and every record is applied
// once.
func TestAgentMigrates(t *testing.T) {
	tc := newTestCollector(t)
	state := filepath.Join(t.TempDir(), "agent.state")
	migrate := make(chan struct{}, 1)
	args := []string{"-addr", tc.addr, "-pin", tc.pin, "-state", state, "-rate", "2000", "-name", "m", "-progress", "0", "-generate", "1000",
		"-migrate-addr", "127.0.0.1:0"}
	var stdout, stderr outbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- runWith(t.Context(), args, &stdout, &stderr, migrate) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(state); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	key := stateKey(t, state)
	tc.waitFor(key, 200)
	migrate <- struct{}{}
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d\n%s%s", code, stdout.String(), stderr.String())
	}
	log := stderr.String()
	if !strings.Contains(log, "connection moved to 127.0.0.1:") {
		t.Errorf("no migration in the log:\n%s", log)
	}
	if n := strings.Count(log, "disconnected"); n != 0 {
		t.Errorf("%d disconnections, want none:\n%s", n, log)
	}
	if n := len(tc.records(key)); n != 1000 {
		t.Errorf("%d records applied, want 1000", n)
	}
}
