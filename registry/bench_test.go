package registry_test

import (
	"cmp"
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/recordmux/recordmux/registry"
)

// benchValue stands in for a stream: values are pointers in practice.
type benchValue struct{ id uint64 }

const preRegistered = 100_000

// newBenchRegistry returns a registry holding preRegistered live entries
// with keys 0..preRegistered-1, registered on ctx.
func newBenchRegistry(b *testing.B, ctx context.Context, shards int) *registry.Registry[uint64, *benchValue] {
	b.Helper()
	r := registry.New(cmp.Compare[uint64], &registry.Options[uint64, *benchValue]{Shards: shards})
	for k := range uint64(preRegistered) {
		if _, err := r.Register(ctx, k, &benchValue{id: k}); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// BenchmarkRegisterRemoveParallel measures one Register plus one detach of
// a fresh key per op, from GOMAXPROCS goroutines, with 100,000 other live
// entries in the registry.
func BenchmarkRegisterRemoveParallel(b *testing.B) {
	tests := []struct {
		name   string
		shards int
		// parent is the long-lived context (a listener's or connection's).
		cancelableParent bool
		// viaCancel detaches by ending a per-op child context instead of
		// calling Remove.
		viaCancel bool
	}{
		{name: "detach=remove/ctx=background/shards=default"},
		{name: "detach=remove/ctx=background/shards=1", shards: 1},
		{name: "detach=remove/ctx=shared-cancelable/shards=default", cancelableParent: true},
		{name: "detach=remove/ctx=shared-cancelable/shards=1", shards: 1, cancelableParent: true},
		{name: "detach=cancel/ctx=child-of-shared/shards=default", cancelableParent: true, viaCancel: true},
		{name: "detach=cancel/ctx=child-of-shared/shards=1", shards: 1, cancelableParent: true, viaCancel: true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			parent := context.Background()
			if tt.cancelableParent {
				var cancel context.CancelFunc
				parent, cancel = context.WithCancel(parent)
				defer cancel()
			}
			r := newBenchRegistry(b, parent, tt.shards)
			var worker atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Each worker owns the key range starting at id<<40.
				key := worker.Add(1) << 40
				v := &benchValue{}
				for pb.Next() {
					key++
					if !tt.viaCancel {
						e, err := r.Register(parent, key, v)
						if err != nil {
							b.Error(err)
							return
						}
						e.Remove()
						continue
					}
					ctx, cancel := context.WithCancel(parent)
					e, err := r.Register(ctx, key, v)
					cancel()
					if err != nil {
						b.Error(err)
						return
					}
					<-e.Done()
				}
			})
			b.StopTimer()
			if n := r.Len(); n != preRegistered {
				b.Fatalf("Len = %d after the run, want %d", n, preRegistered)
			}
		})
	}
}

// BenchmarkRegisterRemove is the single-goroutine cost of the same cycle.
func BenchmarkRegisterRemove(b *testing.B) {
	for _, shards := range []int{0, 1} {
		b.Run("shards="+shardsName(shards), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := newBenchRegistry(b, ctx, shards)
			v := &benchValue{}
			key := uint64(1) << 40
			b.ReportAllocs()
			for b.Loop() {
				key++
				e, err := r.Register(ctx, key, v)
				if err != nil {
					b.Fatal(err)
				}
				e.Remove()
			}
		})
	}
}

// BenchmarkGetParallel measures lookups of live keys.
func BenchmarkGetParallel(b *testing.B) {
	for _, shards := range []int{0, 1} {
		b.Run("shards="+shardsName(shards), func(b *testing.B) {
			r := newBenchRegistry(b, context.Background(), shards)
			var worker atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(worker.Add(1), 1))
				for pb.Next() {
					if _, ok := r.Get(rng.Uint64N(preRegistered)); !ok {
						b.Error("live key missing")
						return
					}
				}
			})
		})
	}
}

// BenchmarkSnapshot10k measures sorted snapshots of 10,000 live entries
// registered in a seeded random order.
func BenchmarkSnapshot10k(b *testing.B) {
	const n = 10_000
	r := registry.New[uint64, *benchValue](cmp.Compare[uint64], nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		k := rng.Uint64()
		if _, err := r.Register(context.Background(), k, &benchValue{id: k}); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("Snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s := r.Snapshot(); len(s) != n {
				b.Fatalf("len %d", len(s))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
	b.Run("AppendSnapshot/reuse", func(b *testing.B) {
		buf := make([]*benchValue, 0, n)
		b.ReportAllocs()
		for b.Loop() {
			buf = r.AppendSnapshot(buf[:0])
			if len(buf) != n {
				b.Fatalf("len %d", len(buf))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
	b.Run("Range", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			seen := 0
			r.Range(func(uint64, *benchValue) bool { seen++; return true })
			if seen != n {
				b.Fatalf("seen %d", seen)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
	})
}

func shardsName(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}
