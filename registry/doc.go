// Package registry keeps a concurrent set of live entries, each of which
// detaches itself when the context it was registered with ends.
//
// A [Registry] maps keys to values. [Registry.Register] adds an entry tied
// to a context; the entry leaves the registry when that context ends or
// when [Entry.Remove] is called, whichever comes first, and an optional
// [Options.OnDetach] hook hears about it exactly once. Snapshots come out
// sorted by key, so diagnostics built on them are deterministic.
//
// The package depends on the standard library only.
//
// # Usage
//
// Track the live streams of a connection, each tied to a stream context
// derived from the connection's context:
//
//	streams := registry.New(cmp.Compare[uint64], &registry.Options[uint64, *Stream]{
//		OnDetach: func(id uint64, s *Stream, cause error) {
//			log.Printf("stream %d gone: %v", id, cause)
//		},
//		Shards: 1, // one connection's streams: little contention
//	})
//
//	e, err := streams.Register(stream.Context(), stream.ID(), stream)
//	switch {
//	case errors.Is(err, registry.ErrDuplicateKey):
//		// a live stream already uses this ID
//	case errors.Is(err, registry.ErrContextDone):
//		// the stream (or its connection) is already gone
//	}
//	...
//	e.Remove() // optional: detaches now instead of at context end
//
//	for _, s := range streams.Snapshot() { // sorted by stream ID
//		...
//	}
//
// # Cancellation
//
// Each entry arms [context.AfterFunc] on its context and keeps the stop
// function. No goroutine waits while the entry is live; when the context
// ends, the context package runs the detach on a new, short-lived
// goroutine. [Entry.Remove] calls the stop function, so a long-lived
// context (say a listener's) does not accumulate callbacks for entries
// removed by hand.
//
// Detach happens exactly once per entry, also when the context ends while
// Remove runs, and when a parent and a derived context are cancelled at
// the same moment. After detach the entry is absent from [Registry.Len],
// [Registry.Get] and snapshots, [Entry.Done] is closed and [Entry.Cause]
// says why: context.Cause of the context, or [ErrRemoved]. The key may then
// be registered again, and nothing left over from the old entry can
// remove the new one.
//
// Register with a context that has already ended registers nothing and
// returns an error matching both [ErrContextDone] and context.Cause of the
// context.
//
// # Concurrency
//
// All methods of [Registry] and [Entry] are safe for concurrent use. Keys
// are spread over [Options.Shards] independently locked shards by a
// per-registry [hash/maphash] seed, so Register, Remove and Get on
// different keys rarely contend. Ownership of every piece of mutable
// state is written next to its field.
//
// No callback runs while a lock is held: [Options.OnDetach] runs after the
// entry's locks are released, and [Registry.Range] copies the entries
// before calling its function. Both may therefore call back into the
// registry, including to register or remove entries.
//
// # Limitations
//
// Snapshot, AppendSnapshot, Range and Len read the shards one after
// another, so under concurrent changes their result need not be a single
// point-in-time view; each entry in it was live when its shard was read.
// Snapshots copy and sort all live entries, O(n log n) per call.
//
// An entry registered with a context that ends during Register may be
// returned already detached, or detach just after Register returns.
//
// OnDetach for a context-driven detach runs on a goroutine started by
// the context package, possibly after Register's caller has moved on;
// hooks for different entries may run concurrently.
//
// A context implementation that is neither derived from the standard
// library's contexts nor implements an AfterFunc method makes
// [context.AfterFunc] start one goroutine per entry; the standard
// contexts (WithCancel, WithCancelCause, WithTimeout, ...) do not.
package registry
