package framer_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/framer"
)

// benchQUICConfig is the flow-control setup shared by all benchmarks, large
// enough that windows do not limit loopback throughput.
func benchQUICConfig() *quic.Config {
	return &quic.Config{
		InitialStreamReceiveWindow:     4 << 20,
		MaxStreamReceiveWindow:         16 << 20,
		InitialConnectionReceiveWindow: 8 << 20,
		MaxConnectionReceiveWindow:     32 << 20,
	}
}

// benchSize is one record size of the throughput benchmarks.
type benchSize struct {
	name string
	size int
}

func benchSizes() []benchSize {
	return []benchSize{{"64B", 64}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}}
}

// randomBytes returns n bytes from a seeded RNG.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

// reportThroughput reports records/s and payload MB/s for b.N records of
// size bytes over the timed part of the benchmark.
func reportThroughput(b *testing.B, size int) {
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "records/s")
	b.ReportMetric(float64(b.N)*float64(size)/1e6/secs, "MB/s")
}

// BenchmarkRawQUIC measures plain quic-go byte-stream throughput on one
// stream: the writer writes, in 64 KiB chunks, exactly the bytes that b.N
// framed records of the given size occupy (length prefixes included); the
// reader reads them with a 64 KiB buffer and replies with one byte. The time
// runs from the first write until the reply is read. MB/s and records/s count
// payload only, so they compare directly with BenchmarkFramer.
//
// It uses b.N rather than b.Loop: the whole volume is one pipelined transfer
// whose size the reader must know, and the drain belongs in the timing.
func BenchmarkRawQUIC(b *testing.B) {
	for _, sz := range benchSizes() {
		b.Run(sz.name, func(b *testing.B) {
			cs, ss := newStreams(b, benchQUICConfig())
			framed := int64(binary.PutUvarint(make([]byte, binary.MaxVarintLen64), uint64(sz.size)) + sz.size)
			total := int64(b.N) * framed
			chunk := randomBytes(64 << 10)

			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				for got := int64(0); got < total; {
					n, err := ss.Read(buf[:min(int64(len(buf)), total-got)])
					got += int64(n)
					if err != nil && got < total {
						done <- err
						return
					}
				}
				_, err := ss.Write([]byte{1})
				done <- err
			}()

			b.SetBytes(int64(sz.size))
			b.ReportAllocs()
			b.ResetTimer()
			for rem := total; rem > 0; {
				n := min(rem, int64(len(chunk)))
				if _, err := cs.Write(chunk[:n]); err != nil {
					b.Fatal(err)
				}
				rem -= n
			}
			var reply [1]byte
			if _, err := io.ReadFull(cs, reply[:]); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			reportThroughput(b, sz.size)
		})
	}
}

// benchReceiver is the receiving side of the framer benchmarks. It acks
// every record lazily and flushes acks whenever its read buffer is empty
// (eager: ack every record at once), and closes after io.EOF.
func benchReceiver(str *quic.Stream, eager bool, done chan<- error) {
	r := framer.NewReceiver(str, 0)
	for {
		seq, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			done <- r.Close()
			return
		}
		if err != nil {
			done <- err
			return
		}
		if eager {
			err = r.Ack(seq)
		} else if err = r.AckLazy(seq); err == nil && r.Buffered() == 0 {
			err = r.FlushAcks()
		}
		if err != nil {
			done <- err
			return
		}
	}
}

// BenchmarkFramer measures framer throughput: b.N records of the given size
// through [framer.Sender.Send], a Flush, and the time until WaitAcked on the
// last one returns. Uses b.N for the same reason as BenchmarkRawQUIC.
func BenchmarkFramer(b *testing.B) {
	for _, sz := range benchSizes() {
		b.Run(sz.name, func(b *testing.B) {
			cs, ss := newStreams(b, benchQUICConfig())
			done := make(chan error, 1)
			go benchReceiver(ss, false, done)
			s := framer.NewSender(cs, 0)
			rec := randomBytes(sz.size)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()

			b.SetBytes(int64(sz.size))
			b.ReportAllocs()
			b.ResetTimer()
			var last uint64
			for range b.N {
				seq, err := s.Send(rec)
				if err != nil {
					b.Fatal(err)
				}
				last = seq
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := s.WaitAcked(ctx, last); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			reportThroughput(b, sz.size)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkFramerPingPong measures one round trip: send a 256 B record,
// flush, and wait for its ack, which the receiver sends at once. Besides the
// mean (ns/op) it reports the median round trip as p50_us.
func BenchmarkFramerPingPong(b *testing.B) {
	const size = 256
	cs, ss := newStreams(b, benchQUICConfig())
	done := make(chan error, 1)
	go benchReceiver(ss, true, done)
	s := framer.NewSender(cs, 0)
	rec := randomBytes(size)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	durations := make([]time.Duration, 0, 1<<16)

	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		seq, err := s.Send(rec)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := s.WaitAcked(ctx, seq); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2])/float64(time.Microsecond), "p50_us")
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
