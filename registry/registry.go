package registry

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"runtime"
	"slices"
	"sync"
)

// maxDefaultShards caps the shard count chosen when [Options.Shards] is zero.
const maxDefaultShards = 256

// Options configures a [Registry]. New never modifies an Options, and a
// nil *Options means all defaults.
type Options[K comparable, V any] struct {
	// OnDetach, if non-nil, is called exactly once for every entry that
	// leaves the registry, whether its context ended or [Entry.Remove]
	// detached it. cause is the entry's [Entry.Cause]: context.Cause of
	// the context, or [ErrRemoved].
	//
	// It is called after the entry is gone from the registry and after
	// [Entry.Done] is closed, never while a registry lock is held, so it
	// may call any method of the registry or of any entry. A
	// context-driven detach calls it on the goroutine that
	// [context.AfterFunc] starts; an explicit removal calls it on the
	// goroutine calling Remove, before Remove returns. Calls for
	// different entries may run concurrently.
	//
	// Zero (nil) means no hook.
	OnDetach func(key K, v V, cause error)

	// Shards is the number of independently locked partitions of the key
	// space; it is rounded up to a power of two. More shards let
	// registrations from many goroutines proceed in parallel; each shard
	// costs one cache line. Use 1 for small registries touched by few
	// goroutines, such as one per connection; a single shard also skips
	// hashing the key.
	//
	// Zero or negative means 4×GOMAXPROCS (at New time) rounded up to a
	// power of two, at most 256.
	Shards int
}

// onDetach returns the detach hook, or nil.
func (o *Options[K, V]) onDetach() func(K, V, error) {
	if o == nil {
		return nil
	}
	return o.OnDetach
}

// shards returns the effective shard count: a power of two ≥ 1.
func (o *Options[K, V]) shards() int {
	n := 0
	if o != nil {
		n = o.Shards
	}
	if n <= 0 {
		n = min(4*runtime.GOMAXPROCS(0), maxDefaultShards)
	}
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// A Registry is a set of live entries keyed by K, each carrying a value V.
// An entry leaves the registry when the context it was registered with
// ends, or when [Entry.Remove] is called, whichever comes first.
//
// A Registry must be created with [New]; it is safe for concurrent use.
type Registry[K comparable, V any] struct {
	// compare, onDetach, seed and mask are set by New and never written
	// again.
	compare  func(a, b K) int
	onDetach func(K, V, error)
	seed     maphash.Seed
	mask     uint64 // len(shards)-1; zero means a single shard and no hashing

	// shards has a fixed length; each shard's map is owned by its mutex.
	shards []shard[K, V]
}

// A shard is one independently locked part of the key space, padded to
// its own cache line so that shards locked by different cores do not
// contend through false sharing.
type shard[K comparable, V any] struct {
	mu sync.Mutex
	// entries holds the live entry of each key in this shard. Owner: mu;
	// read or written only with mu held. Allocated on first use.
	entries map[K]*Entry[K, V]
	_       [64 - 16]byte // sync.Mutex (8) + map pointer (8) → one 64-byte line
}

// kv is a key and value copied out of the registry for a snapshot.
type kv[K comparable, V any] struct {
	key K
	val V
}

// New returns an empty registry configured by opts (nil means defaults).
//
// compare orders keys for [Registry.Snapshot] and [Registry.Range], in the
// manner of [cmp.Compare]: negative when a < b, zero when a == b, positive
// when a > b. It must be a strict total order consistent with ==, or
// snapshot order is unspecified. New panics if compare is nil.
func New[K comparable, V any](compare func(a, b K) int, opts *Options[K, V]) *Registry[K, V] {
	if compare == nil {
		panic("registry: New called with a nil compare function")
	}
	n := opts.shards()
	return &Registry[K, V]{
		compare:  compare,
		onDetach: opts.onDetach(),
		seed:     maphash.MakeSeed(),
		mask:     uint64(n - 1),
		shards:   make([]shard[K, V], n),
	}
}

// shardFor returns the shard that owns key.
func (r *Registry[K, V]) shardFor(key K) *shard[K, V] {
	if r.mask == 0 {
		return &r.shards[0]
	}
	return &r.shards[maphash.Comparable(r.seed, key)&r.mask]
}

// Register adds an entry for key with value v, live until ctx ends or
// [Entry.Remove] is called.
//
// The entry detaches itself when ctx ends, through [context.AfterFunc]:
// no goroutine waits on ctx while the entry is live. Its [Entry.Cause] is
// then context.Cause(ctx).
//
// If a live entry already holds key, Register returns an error matching
// [ErrDuplicateKey]. If ctx has already ended, Register registers nothing
// and returns an error matching [ErrContextDone] that also wraps
// context.Cause(ctx). If ctx ends while Register runs, the entry may be
// returned already detached, or detach shortly after Register returns.
func (r *Registry[K, V]) Register(ctx context.Context, key K, v V) (*Entry[K, V], error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w (key %v): %w", ErrContextDone, key, context.Cause(ctx))
	}
	e := &Entry[K, V]{reg: r, key: key, val: v}
	sh := r.shardFor(key)
	sh.mu.Lock()
	if _, dup := sh.entries[key]; dup {
		sh.mu.Unlock()
		return nil, fmt.Errorf("%w %v", ErrDuplicateKey, key)
	}
	if sh.entries == nil {
		sh.entries = make(map[K]*Entry[K, V])
	}
	sh.entries[key] = e
	sh.mu.Unlock()

	// Insert first, then arm the callback: if ctx ends in between, the
	// callback still finds the entry and detaches it. Arming it first
	// could let the callback run before the insert and leave a dead
	// entry in the map for good.
	e.stop = context.AfterFunc(ctx, func() { e.detach(context.Cause(ctx)) })
	return e, nil
}

// unlink deletes e from its shard if, and only if, e is still the entry
// stored under its key. A stale detach of an earlier entry therefore never
// removes a newer entry registered under the same key.
func (r *Registry[K, V]) unlink(e *Entry[K, V]) {
	sh := r.shardFor(e.key)
	sh.mu.Lock()
	if sh.entries[e.key] == e {
		delete(sh.entries, e.key)
	}
	sh.mu.Unlock()
}

// Len returns the number of live entries. With concurrent registrations
// and detaches the count is a sum over shards read one after another.
func (r *Registry[K, V]) Len() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

// Get returns the value of the live entry for key, and whether there is one.
func (r *Registry[K, V]) Get(key K) (V, bool) {
	sh := r.shardFor(key)
	sh.mu.Lock()
	e, ok := sh.entries[key]
	sh.mu.Unlock()
	if !ok {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Snapshot returns the values of the live entries, sorted by key with the
// registry's compare function, in a newly allocated slice that the caller
// owns. It returns nil when the registry is empty.
func (r *Registry[K, V]) Snapshot() []V {
	return r.AppendSnapshot(nil)
}

// AppendSnapshot appends the values of the live entries, sorted by key, to
// dst and returns the extended slice, like [Registry.Snapshot]. Passing a
// slice with enough spare capacity (for example last time's result
// resliced to [:0]) avoids allocating the result.
func (r *Registry[K, V]) AppendSnapshot(dst []V) []V {
	pairs := r.sorted()
	dst = slices.Grow(dst, len(pairs))
	for _, p := range pairs {
		dst = append(dst, p.val)
	}
	return dst
}

// Range calls fn for each live entry's key and value, in the order of the
// registry's compare function, until fn returns false. It first copies the entries, then calls
// fn with no lock held, so fn may call any method of the registry or its
// entries; an entry that detaches after the copy may still be passed to fn.
func (r *Registry[K, V]) Range(fn func(key K, v V) bool) {
	for _, p := range r.sorted() {
		if !fn(p.key, p.val) {
			return
		}
	}
}

// sorted copies every live key and value, one shard at a time, and sorts
// the copy by key. No lock is held while sorting or allocating.
func (r *Registry[K, V]) sorted() []kv[K, V] {
	n := r.Len()
	if n == 0 {
		return nil
	}
	// A little slack for registrations that land between Len and the copy.
	pairs := make([]kv[K, V], 0, n+n/8+1)
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k, e := range sh.entries {
			pairs = append(pairs, kv[K, V]{key: k, val: e.val})
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(pairs, func(a, b kv[K, V]) int { return r.compare(a.key, b.key) })
	return pairs
}
