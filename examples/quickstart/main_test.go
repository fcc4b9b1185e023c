package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs the program in-process with a small transfer and
// checks that the report has its parts.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-records", "20000", "-streams", "3", "-size", "64", "-progress", "10ms"}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	t.Logf("stdout:\n%s", out)
	for _, re := range []string{
		`(?m)^throughput: 20000 records \(.* MiB\) in .* = \d+ records/s, [\d.]+ MiB/s$`,
		`(?m)^delivery latency.*\n  p50 \S+  p90 \S+  p99 \S+  p99\.9 \S+  max \S+  \(20000 samples\)$`,
		`(?m)^ack latency.*\n  p50 \S+  p90 \S+  p99 \S+  p99\.9 \S+  max \S+  \(\d+ samples\)$`,
		`(?m)^recordmux: 3 streams \(3 open, 0 closed, 0 failed\)`,
		`(?m)^out +10000 `, // the client sent half of the records
		`(?m)^in +10000 `,  // and applied the other half
		`(?m)^acks +piggybacked +standalone`,
		`(?m)^barrier waits +calls`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s", re)
		}
	}
	if !strings.Contains(stderr.String(), "applied 20000/20000 records: done") {
		t.Errorf("no final progress line on stderr:\n%s", stderr.String())
	}
}

// TestQuickstartOneStream: counts of one are printed in the singular.
func TestQuickstartOneStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-records", "2000", "-streams", "1", "-size", "64", "-progress", "0"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{" on 1 stream of one QUIC connection", "\nrecordmux: 1 stream (1 open, "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestQuickstartFlags: bad flags are usage errors (exit code 2).
func TestQuickstartFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-streams", "0"},
		{"-records", "3", "-streams", "2"},
		{"-size", "7"},
		{"-nosuchflag"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2; stderr: %s", args, code, stderr.String())
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
	if !strings.HasPrefix(first, "quickstart: ") || len(first) < len("quickstart: ")+30 {
		t.Errorf("-h starts with %q; want a line saying what quickstart does", first)
	}
	if !strings.Contains(help, "\n  -records ") {
		t.Errorf("-h does not list -records:\n%s", help)
	}
}
