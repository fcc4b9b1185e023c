package registry_test

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/registry"
)

func TestRegisterGetLen(t *testing.T) {
	r, log := newLogged(0)
	require.Zero(t, r.Len())

	entries := make(map[int]*registry.Entry[int, string])
	for _, k := range []int{3, 1, 2} {
		e, err := r.Register(context.Background(), k, "v"+strconv.Itoa(k))
		require.NoError(t, err)
		require.Equal(t, k, e.Key())
		require.Equal(t, "v"+strconv.Itoa(k), e.Value())
		require.False(t, e.Detached())
		require.NoError(t, e.Cause())
		require.False(t, isClosed(e.Done()))
		entries[k] = e
	}
	require.Equal(t, 3, r.Len())
	for k := range entries {
		v, ok := r.Get(k)
		require.True(t, ok)
		require.Equal(t, "v"+strconv.Itoa(k), v)
	}
	v, ok := r.Get(4)
	require.False(t, ok)
	require.Empty(t, v)

	require.True(t, entries[2].Remove())
	require.Equal(t, 2, r.Len())
	_, ok = r.Get(2)
	require.False(t, ok)
	require.Equal(t, []string{"v1", "v3"}, r.Snapshot())
	require.Equal(t, []detachCall{{key: 2, val: "v2", cause: registry.ErrRemoved}}, log.forKey(2))
	require.Equal(t, 1, log.count())
}

func TestRegisterDuplicateKey(t *testing.T) {
	for _, shards := range []int{1, 0} {
		t.Run("shards="+strconv.Itoa(shards), func(t *testing.T) {
			r, log := newLogged(shards)
			first, err := r.Register(context.Background(), 7, "first")
			require.NoError(t, err)

			e, err := r.Register(context.Background(), 7, "second")
			require.ErrorIs(t, err, registry.ErrDuplicateKey)
			require.NotErrorIs(t, err, registry.ErrContextDone)
			require.Nil(t, e)

			v, ok := r.Get(7)
			require.True(t, ok)
			require.Equal(t, "first", v)
			require.Equal(t, 1, r.Len())
			require.False(t, first.Detached())
			require.Zero(t, log.count(), "a rejected registration must not call OnDetach")
		})
	}
}

var errConnClosed = errors.New("test: connection closed")

func TestRegisterContextDone(t *testing.T) {
	tests := []struct {
		name      string
		ctx       func() context.Context
		wantCause error
	}{
		{
			name: "canceled",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantCause: context.Canceled,
		},
		{
			name: "canceled with cause",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancelCause(context.Background())
				cancel(errConnClosed)
				return ctx
			},
			wantCause: errConnClosed,
		},
		{
			name: "parent canceled with cause",
			ctx: func() context.Context {
				parent, cancel := context.WithCancelCause(context.Background())
				child, cancelChild := context.WithCancel(parent)
				defer cancelChild()
				cancel(errConnClosed)
				return child
			},
			wantCause: errConnClosed,
		},
		{
			name: "deadline passed",
			ctx: func() context.Context {
				ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
				defer cancel()
				return ctx
			},
			wantCause: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, log := newLogged(0)
			e, err := r.Register(tt.ctx(), 1, "v")
			require.Nil(t, e)
			require.ErrorIs(t, err, registry.ErrContextDone)
			require.ErrorIs(t, err, tt.wantCause)
			require.NotErrorIs(t, err, registry.ErrDuplicateKey)
			require.Zero(t, r.Len())
			_, ok := r.Get(1)
			require.False(t, ok)
			require.Zero(t, log.count())

			// Nothing was registered, so the key is free.
			e, err = r.Register(context.Background(), 1, "v")
			require.NoError(t, err)
			require.True(t, e.Remove())
		})
	}
}

func TestNewNilComparePanics(t *testing.T) {
	require.Panics(t, func() { registry.New[int, int](nil, nil) })
}

func TestSnapshotDeterministicOrder(t *testing.T) {
	const n = 1000
	tests := []struct {
		name    string
		compare func(a, b int) int
		order   func(keys []int)
	}{
		{name: "ascending", compare: cmp.Compare[int], order: slices.Sort[[]int]},
		{
			name:    "descending",
			compare: func(a, b int) int { return cmp.Compare(b, a) },
			order:   func(keys []int) { slices.Sort(keys); slices.Reverse(keys) },
		},
	}
	for _, tt := range tests {
		for _, shards := range []int{1, 0, 64} {
			t.Run(tt.name+"/shards="+strconv.Itoa(shards), func(t *testing.T) {
				r := registry.New(tt.compare, &registry.Options[int, string]{Shards: shards})
				rng := rand.New(rand.NewPCG(1, 2))
				keys := rng.Perm(n)
				for _, k := range keys {
					_, err := r.Register(context.Background(), k, strconv.Itoa(k))
					require.NoError(t, err)
				}
				tt.order(keys)
				want := make([]string, n)
				for i, k := range keys {
					want[i] = strconv.Itoa(k)
				}

				snap := r.Snapshot()
				require.Equal(t, want, snap)
				again := r.Snapshot()
				require.Equal(t, want, again)
				again[0] = "mutated"
				require.Equal(t, want, r.Snapshot(), "snapshots must not share memory")

				prefix := []string{"a", "b"}
				require.Equal(t, append(slices.Clone(prefix), want...), r.AppendSnapshot(prefix))

				buf := make([]string, 0, n)
				reused := r.AppendSnapshot(buf)
				require.Equal(t, want, reused)
				require.Same(t, unsafeFirst(buf[:1]), unsafeFirst(reused), "AppendSnapshot must reuse spare capacity")

				var gotKeys []int
				r.Range(func(k int, v string) bool {
					require.Equal(t, strconv.Itoa(k), v)
					gotKeys = append(gotKeys, k)
					return true
				})
				require.Equal(t, keys, gotKeys)

				var firstTen []int
				r.Range(func(k int, _ string) bool {
					firstTen = append(firstTen, k)
					return len(firstTen) < 10
				})
				require.Equal(t, keys[:10], firstTen)
			})
		}
	}
}

// unsafeFirst returns the address of s[0], to compare backing arrays.
func unsafeFirst(s []string) *string { return &s[0] }

func TestSnapshotEmpty(t *testing.T) {
	r, _ := newLogged(0)
	require.Nil(t, r.Snapshot())
	require.Equal(t, []string{"x"}, r.AppendSnapshot([]string{"x"}))
	r.Range(func(int, string) bool {
		t.Fatal("Range called fn on an empty registry")
		return true
	})
}

func TestSnapshotExcludesDetached(t *testing.T) {
	r, _ := newLogged(0)
	ctx, cancel := context.WithCancel(context.Background())
	var gone []*registry.Entry[int, string]
	for k := range 10 {
		regCtx := context.Background()
		if k%2 == 1 {
			regCtx = ctx
		}
		e, err := r.Register(regCtx, k, strconv.Itoa(k))
		require.NoError(t, err)
		if k%2 == 1 {
			gone = append(gone, e)
		}
	}
	cancel()
	for _, e := range gone {
		<-e.Done()
		_, ok := r.Get(e.Key())
		require.False(t, ok)
	}
	require.Equal(t, 5, r.Len())
	require.Equal(t, []string{"0", "2", "4", "6", "8"}, r.Snapshot())
}

// TestCallbacksRunWithoutLock re-enters the registry from OnDetach and from
// Range's function; if either ran under a registry or entry lock, this
// test would deadlock.
func TestCallbacksRunWithoutLock(t *testing.T) {
	type val struct {
		entry *registry.Entry[int, *val]
	}
	var r *registry.Registry[int, *val]
	var hookCalls, reRegistered int
	r = registry.New(cmp.Compare[int], &registry.Options[int, *val]{
		Shards: 1, // every key shares one lock: worst case for re-entry
		OnDetach: func(key int, v *val, cause error) {
			hookCalls++
			require.ErrorIs(t, cause, registry.ErrRemoved)
			require.True(t, v.entry.Detached())
			require.ErrorIs(t, v.entry.Cause(), registry.ErrRemoved)
			require.True(t, isClosed(v.entry.Done()))
			require.False(t, v.entry.Remove(), "re-entrant Remove must not detach twice")
			_, ok := r.Get(key)
			require.False(t, ok)
			_ = r.Len()
			_ = r.Snapshot()
			if key < 100 {
				// Register the same key again, from inside the hook.
				nv := &val{}
				e, err := r.Register(context.Background(), key+100, nv)
				require.NoError(t, err)
				nv.entry = e
				reRegistered++
			}
		},
	})
	for k := range 5 {
		v := &val{}
		e, err := r.Register(context.Background(), k, v)
		require.NoError(t, err)
		v.entry = e
	}

	r.Range(func(k int, v *val) bool {
		require.Equal(t, k, v.entry.Key())
		require.Equal(t, k < 100, v.entry.Remove())
		return true
	})
	require.Equal(t, 5, hookCalls)
	require.Equal(t, 5, reRegistered)
	require.Equal(t, 5, r.Len())

	r.Range(func(_ int, v *val) bool {
		require.True(t, v.entry.Remove())
		return true
	})
	require.Equal(t, 10, hookCalls)
	require.Zero(t, r.Len())
}

func TestDoneLazy(t *testing.T) {
	tests := []struct {
		name       string
		doneBefore bool
	}{
		{name: "Done called before detach", doneBefore: true},
		{name: "Done first called after detach", doneBefore: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newLogged(0)
			e, err := r.Register(context.Background(), 1, "v")
			require.NoError(t, err)
			var before <-chan struct{}
			if tt.doneBefore {
				before = e.Done()
				require.Equal(t, before, e.Done(), "Done must return the same channel")
				require.False(t, isClosed(before))
			}
			require.True(t, e.Remove())
			after := e.Done()
			require.True(t, isClosed(after))
			require.Equal(t, after, e.Done())
			if tt.doneBefore {
				require.Equal(t, before, after)
			}
		})
	}
}
