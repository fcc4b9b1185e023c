package quicrecord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkDiagSnapshot is the cost of one Snapshot of a live stream that
// carried traffic (over loopback UDP).
func BenchmarkDiagSnapshot(b *testing.B) {
	p := newLoopbackPair(b, nil, nil)
	o, a := p.openPair(b, false, StreamOptions{Scope: "bench", DataID: 1})
	ctx := context.Background()
	go func() { _ = a.Apply(ctx, func(Record) error { return nil }) }()
	for i := range 1000 {
		_, err := o.Send(ctx, payload(i))
		require.NoError(b, err)
	}
	require.NoError(b, o.Barrier(ctx))
	b.ReportAllocs()
	var snap RecordSnapshot
	for b.Loop() {
		snap = o.Snapshot()
	}
	require.Equal(b, uint64(1000), snap.Out.AckedSeq)
}

// BenchmarkDiagSummarize aggregates synthetic snapshots (the pure
// aggregation cost of Summarize, without taking the snapshots).
func BenchmarkDiagSummarize(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			snaps := randomSnapshots(rand.New(rand.NewPCG(5, 6)), n)
			b.ReportAllocs()
			var d DiagnosticsSummary
			for b.Loop() {
				d = Summarize(snaps, nil)
			}
			require.Equal(b, n, d.Streams.Total)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/stream")
		})
	}
}

// BenchmarkDiagDiagnostics is Conn.Diagnostics and Listener.Diagnostics
// over 10,000 real, idle, registered streams on one loopback connection
// (40,000 stream goroutines in the process). The streams are opened once,
// before the timed loop.
func BenchmarkDiagDiagnostics(b *testing.B) {
	const n = 10_000
	q := DefaultQUICConfig()
	q.MaxIncomingStreams = 2 * n
	cfg := &Config{QUIC: q, AcceptBacklog: n}
	p := newLoopbackPair(b, cfg, cfg)
	ctx := context.Background()
	var wg sync.WaitGroup
	var failed atomic.Bool
	wg.Go(func() {
		for range n {
			if _, err := p.server.AcceptRecordStream(ctx); err != nil {
				failed.Store(true)
				return
			}
		}
	})
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s, err := p.client.OpenRecordStream(ctx, StreamOptions{Scope: "bench", DataID: uint64(i)})
			if err != nil {
				failed.Store(true)
				return
			}
			// A little traffic so the sums are not all zero.
			_, _ = s.Send(ctx, payload(i))
		})
	}
	wg.Wait()
	require.False(b, failed.Load())
	require.Eventually(b, func() bool { return p.ln.streams.Len() == n }, 10*time.Second, 10*time.Millisecond)

	for _, c := range []struct {
		name string
		fn   func() DiagnosticsSummary
	}{
		{"Conn", p.client.Diagnostics},
		{"Listener", p.ln.Diagnostics},
	} {
		b.Run(fmt.Sprintf("%s/streams=%d", c.name, n), func(b *testing.B) {
			b.ReportAllocs()
			var d DiagnosticsSummary
			for b.Loop() {
				d = c.fn()
			}
			require.Equal(b, n, d.Streams.Total)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/stream")
		})
	}
}

// BenchmarkDiagSendPath measures the send path end to end over loopback
// UDP with 64-byte records whose peer applies them: "batched" calls Send
// only, so the writer loop packs many records per BATCH; "flush-each"
// calls Flush after every Send, one record per BATCH, the case where the
// per-batch counter updates weigh most. It reports the cost per record
// and per batch, the denominators for BenchmarkDiagCounterOps.
func BenchmarkDiagSendPath(b *testing.B) {
	for _, flushEach := range []bool{false, true} {
		name := "batched"
		if flushEach {
			name = "flush-each"
		}
		b.Run(name, func(b *testing.B) {
			p := newLoopbackPair(b, nil, nil)
			tx, rx := p.openPair(b, false, StreamOptions{Scope: "bench"})
			ctx := context.Background()
			go func() { _ = rx.Apply(ctx, func(Record) error { return nil }) }()
			rec := make([]byte, 64)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tx.Send(ctx, rec); err != nil {
					b.Fatal(err)
				}
				if flushEach {
					if err := tx.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			require.NoError(b, tx.Barrier(ctx))
			snap := tx.Snapshot()
			b.ReportMetric(float64(snap.Out.Records)/float64(snap.Out.Batches), "records/batch")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(snap.Out.Batches), "ns/batch")
		})
	}
}

// BenchmarkDiagCounterOps replays, on a bare counters struct, exactly the
// counter updates the core makes for one BATCH that carries a
// piggybacked ack, on both ends:
//
//   - the sender's writer pass (stream_writer.go pass, and
//     publishSendLocked): 5 stores publishing the send state, 1 add of
//     the ERROR frames written (usually 0), 2 adds for the batch, 1 for
//     the piggybacked ack, 1 store of the flushed seq, and touch (a store
//     of the time the pass read anyway): 11 atomic writes;
//   - the receiver's reader (stream_reader.go readFrames and handleBatch,
//     and ackUpdate for the piggybacked ack): 1 add for the frame, touch,
//     5 stores publishing the send state again, 1 add for the ack, 2
//     stores and 2 storeMax for the backlog, 3 adds for records, bytes
//     and batches: 15 atomic writes (storeMax is a load and, when it
//     grows, a CAS) and one clock read;
//   - the receiver's Ack of that batch (stream_recv.go consume): 3 stores.
//
// "uncontended" is the cost with the cache lines local; "scraped" runs a
// goroutine taking snapshots of the same counters in a tight loop, the
// worst case for cache-line sharing. Compare ns/op here with ns/batch of
// BenchmarkDiagSendPath to get the share of the send path the counters
// take. The numbers are for both ends together.
func BenchmarkDiagCounterOps(b *testing.B) {
	run := func(b *testing.B, s *RecordStream) {
		c := &s.ctr
		var seq, bytes uint64
		passStart := time.Now() // the writer reads the clock for its own needs
		b.ReportAllocs()
		for b.Loop() {
			seq += 64
			bytes += 64 * 64
			// Sender: writer pass.
			c.outRecords.Store(seq)
			c.outBytes.Store(bytes)
			c.ackedSeq.Store(seq - 64)
			c.inflightRec.Store(64)
			c.inflightB.Store(64 * 64)
			c.outFrames[kindError].Add(0)
			c.outBatches.Add(1)
			c.outFrames[kindBatch].Add(1)
			c.acksPiggyOut.Add(1)
			c.flushedSeq.Store(seq)
			c.touch(passStart)
			// Receiver: reader.
			c.frameIn(kindBatch)
			c.touch(time.Now())
			c.outRecords.Store(seq)
			c.outBytes.Store(bytes)
			c.ackedSeq.Store(seq - 64)
			c.inflightRec.Store(64)
			c.inflightB.Store(64 * 64)
			c.acksPiggyIn.Add(1)
			c.backlogRec.Store(64)
			c.backlogBytes.Store(64 * 64)
			storeMax(&c.backlogPeakR, 64)
			storeMax(&c.backlogPeakB, 64*64)
			c.inRecords.Add(64)
			c.inBytes.Add(64 * 64)
			c.inBatches.Add(1)
			// Receiver: Ack.
			c.appliedSeq.Store(seq)
			c.backlogRec.Store(0)
			c.backlogBytes.Store(0)
		}
	}
	newStreamForCounters := func() *RecordStream {
		s := &RecordStream{conn: &Conn{}, info: streamInfo{role: RoleOpener}}
		s.ctx, s.cancel = context.WithCancelCause(context.Background())
		b.Cleanup(func() { s.cancel(nil) })
		return s
	}
	b.Run("uncontended", func(b *testing.B) { run(b, newStreamForCounters()) })
	b.Run("scraped", func(b *testing.B) {
		s := newStreamForCounters()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var snap RecordSnapshot
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.fillCounters(&snap)
			}
		})
		run(b, s)
		close(stop)
		wg.Wait()
	})
}
