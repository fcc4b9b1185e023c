package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/recordmux/recordmux/quicrecord"
)

// BenchmarkSinks measures agent → collector → sink throughput of 256-byte
// records over loopback QUIC, one resumable stream, for the journal sink
// (with and without fsync) and for JetStream (embedded, one replica, its
// default fsync interval), in one run so the figures compare.
func BenchmarkSinks(b *testing.B) {
	for _, bc := range []struct {
		name string
		args func(dir string) []string
	}{
		{"journal-fsync", func(dir string) []string {
			return []string{"-sink", filepath.Join(dir, "sink.jsonl"), "-state", filepath.Join(dir, "state")}
		}},
		{"journal-nofsync", func(dir string) []string {
			return []string{"-sink", filepath.Join(dir, "sink.jsonl"), "-state", filepath.Join(dir, "state"), "-no-fsync"}
		}},
		{"jetstream-R1", func(dir string) []string {
			return []string{"-jetstream", "embedded", "-state", filepath.Join(dir, "state")}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchSink(b, bc.args(b.TempDir()))
		})
	}
}

func benchSink(b *testing.B, sinkArgs []string) {
	certs := certSet(b)
	args := append([]string{"-cert", filepath.Join(certs, "collector.pem"), "-key", filepath.Join(certs, "collector-key.pem")}, sinkArgs...)
	c := startCollector(b, args...)
	rs, err := quicrecord.DialResumable(b.Context(), c.addr, pinned(b, certs, "collector"), nil, quicrecord.ResumeOptions{MinBackoff: 5 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 256)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := rs.Send(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rs.Barrier(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	if err := rs.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}
