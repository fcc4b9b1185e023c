package registry

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestUnlinkLeavesNewerEntry drives a stale detach directly: after an
// entry has detached and its key has been registered again, neither an
// unlink of the old entry nor a second detach of it may touch the new one.
func TestUnlinkLeavesNewerEntry(t *testing.T) {
	for _, shards := range []int{1, 0} {
		var hookCalls int
		r := New(cmp.Compare[string], &Options[string, int]{
			OnDetach: func(string, int, error) { hookCalls++ },
			Shards:   shards,
		})
		old, err := r.Register(context.Background(), "k", 1)
		require.NoError(t, err)
		require.True(t, old.Remove())
		newer, err := r.Register(context.Background(), "k", 2)
		require.NoError(t, err)

		r.unlink(old)
		old.detach(errors.New("test: stale detach"))

		v, ok := r.Get("k")
		require.True(t, ok)
		require.Equal(t, 2, v)
		require.False(t, newer.Detached())
		require.ErrorIs(t, old.Cause(), ErrRemoved, "a second detach must not overwrite the cause")
		require.Equal(t, 1, hookCalls)
	}
}

func TestShardCount(t *testing.T) {
	dflt := 1
	for dflt < min(4*runtime.GOMAXPROCS(0), maxDefaultShards) {
		dflt <<= 1
	}
	tests := []struct {
		opts *Options[int, int]
		want int
	}{
		{opts: nil, want: dflt},
		{opts: &Options[int, int]{}, want: dflt},
		{opts: &Options[int, int]{Shards: -3}, want: dflt},
		{opts: &Options[int, int]{Shards: 1}, want: 1},
		{opts: &Options[int, int]{Shards: 2}, want: 2},
		{opts: &Options[int, int]{Shards: 3}, want: 4},
		{opts: &Options[int, int]{Shards: 64}, want: 64},
		{opts: &Options[int, int]{Shards: 1000}, want: 1024},
	}
	for _, tt := range tests {
		r := New(cmp.Compare[int], tt.opts)
		require.Len(t, r.shards, tt.want, "opts %+v", tt.opts)
		require.Equal(t, uint64(tt.want-1), r.mask)
	}
	opts := &Options[int, int]{Shards: 3}
	New(cmp.Compare[int], opts)
	require.Equal(t, 3, opts.Shards, "New must not modify Options")
}

// TestShardCacheLine checks that a shard fills exactly one 64-byte line.
func TestShardCacheLine(t *testing.T) {
	require.Equal(t, uintptr(64), unsafe.Sizeof(shard[string, []byte]{}))
	require.Equal(t, uintptr(64), unsafe.Sizeof(shard[[4]uint64, int]{}))
}
