package bench_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/recordmux/recordmux/bench/internal/corpus"
	"github.com/recordmux/recordmux/bench/internal/suite"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// transports are the throughput and ping-pong transports, in the order
// they print.
func transports() []string {
	return []string{"recordmux", "raw", "framer", "mux", "grpc", "yamux", "smux"}
}

type size struct {
	name  string
	bytes int
}

func sizes() []size { return []size{{"64B", 64}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}} }

func newEnv(tb testing.TB) *suite.Env {
	tb.Helper()
	env, err := suite.NewEnv(transport.Options{})
	require.NoError(tb, err)
	return env
}

func streamsName(n int) string {
	if n == 1 {
		return "1stream"
	}
	return fmt.Sprintf("%dstreams", n)
}

// BenchmarkThroughput carries b.N records of each size over 1, 10 and 100
// streams (spread evenly) and reports records/s and payload MB/s, timed
// from the first Send until the last record of every stream is
// acknowledged as applied. allocs/op is per record, both ends included.
func BenchmarkThroughput(b *testing.B) {
	env := newEnv(b)
	for _, sz := range sizes() {
		b.Run(sz.name, func(b *testing.B) {
			for _, streams := range []int{1, 10, 100} {
				b.Run(streamsName(streams), func(b *testing.B) {
					for _, tr := range transports() {
						b.Run(tr, func(b *testing.B) { benchThroughput(b, env, tr, sz.bytes, streams) })
					}
				})
			}
		})
	}
}

func benchThroughput(b *testing.B, env *suite.Env, tr string, size, streams int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	th, err := suite.NewThroughput(ctx, env, tr, size, streams)
	require.NoError(b, err)
	defer func() { require.NoError(b, th.Close()) }()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	res, err := th.Run(ctx, int64(b.N), 0)
	b.StopTimer()
	require.NoError(b, err)
	secs := res.Elapsed.Seconds()
	b.ReportMetric(float64(res.Records)/secs, "records/s")
	b.ReportMetric(float64(res.Records)*float64(size)/1e6/secs, "MB/s")
}

// compressionTransports are recordmux plain and compressing, in the
// order they print.
func compressionTransports() []string {
	return []string{"recordmux", "recordmux-s2", "recordmux-zstd", "recordmux-auto"}
}

// BenchmarkCompression carries b.N records of each corpus (telemetry
// JSON lines, or random bytes of the same sizes) on one stream, plain and
// compressed, and reports records/s, payload MB/s, the bytes quic-go put
// on the wire per record and over the payload, timed from the first Send
// until the last record is acknowledged as applied. allocs/op is per
// record, both ends included. Compare the transports of one corpus
// within one run.
func BenchmarkCompression(b *testing.B) {
	env := newEnv(b)
	for _, kind := range corpus.Kinds {
		b.Run(kind.String(), func(b *testing.B) {
			for _, tr := range compressionTransports() {
				b.Run(tr, func(b *testing.B) { benchCompression(b, env, tr, kind) })
			}
		})
	}
}

func benchCompression(b *testing.B, env *suite.Env, tr string, kind corpus.Kind) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	th, err := suite.NewCorpusThroughput(ctx, env, tr, kind, 1)
	require.NoError(b, err)
	defer func() { require.NoError(b, th.Close()) }()
	b.SetBytes(int64(th.MeanRecordSize()))
	b.ReportAllocs()
	b.ResetTimer()
	res, err := th.Run(ctx, int64(b.N), 0)
	b.StopTimer()
	require.NoError(b, err)
	secs := res.Elapsed.Seconds()
	b.ReportMetric(float64(res.Records)/secs, "records/s")
	b.ReportMetric(float64(res.PayloadBytes)/1e6/secs, "MB/s")
	b.ReportMetric(float64(res.WireBytes)/float64(max(res.Records, 1)), "wire_B/record")
	b.ReportMetric(float64(res.WireBytes)/float64(max(res.PayloadBytes, 1)), "wire/payload")
}

// BenchmarkPingPong sends one 256-byte record and waits until it is
// acknowledged as applied, one round trip per iteration. Besides the mean
// (ns/op) it reports the median and 99th percentile round trip.
func BenchmarkPingPong(b *testing.B) {
	env := newEnv(b)
	b.Run("256B", func(b *testing.B) {
		for _, tr := range transports() {
			b.Run(tr, func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				pp, err := suite.NewPingPong(ctx, env, tr, 256)
				require.NoError(b, err)
				defer func() { require.NoError(b, pp.Close()) }()
				lat := make([]time.Duration, 0, 1<<16)
				b.SetBytes(256)
				b.ReportAllocs()
				for b.Loop() {
					t0 := time.Now()
					if err := pp.RoundTrip(ctx); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				p50, p99, _ := suite.Quantiles(lat)
				b.ReportMetric(p50, "p50_us")
				b.ReportMetric(p99, "p99_us")
				b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "records/s")
			})
		}
	})
}

// TestBenchmarkSetups runs each benchmark's body briefly, so that the
// default test run catches a broken benchmark.
func TestBenchmarkSetups(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tr := range transports() {
		th, err := suite.NewThroughput(ctx, env, tr, 1<<10, 3)
		require.NoError(t, err)
		res, err := th.Run(ctx, 100, 0)
		require.NoError(t, err)
		require.Equal(t, int64(100), res.Records, tr)
		require.NoError(t, th.Close())

		pp, err := suite.NewPingPong(ctx, env, tr, 256)
		require.NoError(t, err)
		for range 5 {
			require.NoError(t, pp.RoundTrip(ctx))
		}
		require.NoError(t, pp.Close())
	}
	for _, tr := range compressionTransports() {
		th, err := suite.NewCorpusThroughput(ctx, env, tr, corpus.Telemetry, 1)
		require.NoError(t, err)
		res, err := th.Run(ctx, 100, 0)
		require.NoError(t, err)
		require.Equal(t, int64(100), res.Records, tr)
		require.Positive(t, res.WireBytes, tr)
		require.NoError(t, th.Close())
	}
}
