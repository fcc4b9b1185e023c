package quicrecord

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkThroughput sends records one way on one stream over loopback,
// timed from the first Send to the final Barrier.
func BenchmarkThroughput(b *testing.B) {
	for _, sz := range []struct {
		name string
		size int
	}{{"64B", 64}, {"1KiB", 1024}, {"16KiB", 16 << 10}} {
		b.Run(sz.name, func(b *testing.B) {
			p := newLoopbackPair(b, nil, nil)
			tx, rx := p.openPair(b, false, StreamOptions{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = rx.Apply(ctx, func(Record) error { return nil })
			}()
			rec := make([]byte, sz.size)
			b.SetBytes(int64(sz.size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := tx.Send(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Barrier(ctx); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			snap := tx.Snapshot()
			b.ReportMetric(float64(snap.Out.Records)/float64(max(snap.Out.Batches, 1)), "records/batch")
			b.ReportMetric(float64(snap.Acks.StandaloneIn+snap.Acks.PiggybackedIn)/float64(max(snap.Out.Batches, 1)), "acks/batch")
			cancel()
			<-done
		})
	}
}

// BenchmarkSendAllocs measures allocations on the send path alone: the
// stream's writer runs, the peer applies, and Send is called in a loop.
func BenchmarkSendAllocs(b *testing.B) {
	p := newLoopbackPair(b, nil, nil)
	tx, rx := p.openPair(b, false, StreamOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rx.Apply(ctx, func(Record) error { return nil }) }()
	rec := make([]byte, 64)
	for range 100_000 { // warm the pools and rings
		_, _ = tx.Send(ctx, rec)
	}
	_ = tx.Barrier(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tx.Send(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingPong sends one 256 B record and waits for its applied ack.
func BenchmarkPingPong(b *testing.B) {
	p := newLoopbackPair(b, nil, nil)
	tx, rx := p.openPair(b, false, StreamOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rx.Apply(ctx, func(Record) error { return nil }) }()
	rec := make([]byte, 256)
	var rtts []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := tx.Send(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if err := tx.Barrier(ctx); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50_us")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99_us")
}
