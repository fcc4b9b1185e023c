package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLatencyService runs a short paced load in-process and checks that
// every request got its reply and that the percentiles are sane.
func TestLatencyService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-rate", "2000", "-duration", "500ms", "-warmup", "100ms", "-streams", "2", "-progress", "0"}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	t.Logf("stdout:\n%s", out)
	m := regexp.MustCompile(`sent (\d+) requests, received (\d+) replies; (\d+) measured`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no request count")
	}
	if m[1] != m[2] || m[1] != "1200" || m[3] != "1000" {
		t.Errorf("sent %s, received %s, measured %s; want 1200, 1200, 1000", m[1], m[2], m[3])
	}
	m = regexp.MustCompile(`request→reply latency.*\n  p50 (\S+)  p90 (\S+)  p99 (\S+)  p99\.9 (\S+)  max (\S+)  \(1000 samples\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no latency percentiles for the 1000 measured requests")
	}
	var prev time.Duration
	for i, s := range m[1:] {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("percentile %d: %v", i, err)
		}
		if d <= 0 || d < prev {
			t.Errorf("percentiles %v are not positive and ascending", m[1:])
		}
		prev = d
	}
	if !regexp.MustCompile(`(?m)^pacer lateness.*\n  p50 `).MatchString(out) {
		t.Error("no pacer lateness")
	}
	if !regexp.MustCompile(`(?m)^recordmux: 2 streams`).MatchString(out) {
		t.Error("no diagnostics table")
	}
}

// TestLatencyServiceFlags: bad flags are usage errors.
func TestLatencyServiceFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-rate", "0"},
		{"-duration", "0s"},
		{"-streams", "0"},
		{"-size", "15"},
		{"-reply-size", "3"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
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
	if !strings.HasPrefix(first, "latency-service: ") || len(first) < len("latency-service: ")+30 {
		t.Errorf("-h starts with %q; want a line saying what latency-service does", first)
	}
	if !strings.Contains(help, "\n  -rate ") {
		t.Errorf("-h does not list -rate:\n%s", help)
	}
}
