package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recordmux/recordmux/examples/internal/outbuf"
	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

// testCollector is a minimal acceptor of resumable streams: it applies
// every record, remembering per key what it got, and fails the test on a
// duplicate or a gap.
type testCollector struct {
	t    *testing.T
	addr string
	pin  string // PEM file of its certificate

	mu      sync.Mutex
	applied map[string][]string // key (hex) -> records in order
	changed chan struct{}
}

func newTestCollector(t *testing.T) *testCollector {
	t.Helper()
	cert, err := tlsutil.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(t.TempDir(), "collector.pem")
	if err := os.WriteFile(pin, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	tc := &testCollector{t: t, pin: pin, applied: map[string][]string{}, changed: make(chan struct{})}
	store := quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{
		LoadApplied: func(_ context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
			tc.mu.Lock()
			defer tc.mu.Unlock()
			recs, ok := tc.applied[hex.EncodeToString(info.Key)]
			return uint64(len(recs)), ok, nil
		},
	})
	ln, err := quicrecord.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, &quicrecord.Config{ResumeStore: store})
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
						defer s.Close()
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
	args := []string{"-addr", tc.addr, "-pin", tc.pin, "-state", state, "-rate", "0", "-name", "a1", "-progress", "0"}
	for i, n := range []int{300, 200} {
		var stdout, stderr outbuf.Buffer
		if code := run(t.Context(), append(args, "-generate", fmt.Sprint(n)), &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit code %d\n%s%s", i, code, stdout.String(), stderr.String())
		}
		t.Logf("run %d:\n%s", i, stdout.String())
		first := 1 + 300*i
		want := fmt.Sprintf("records sent        %d (seq %d..%d)\n  records acked       %d\n", n, first, first+n-1, n)
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run %d summary lacks %q", i, want)
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
