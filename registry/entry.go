package registry

import (
	"sync"
	"sync/atomic"
)

// An Entry is one registration in a [Registry]: a key, a value, and the
// lifetime given by the context passed to [Registry.Register]. It is live
// until it detaches, which happens exactly once: when that context ends
// or when [Entry.Remove] is called, whichever comes first.
//
// Entries are created only by [Registry.Register]. All methods are safe
// for concurrent use.
type Entry[K comparable, V any] struct {
	// reg, key and val are set by Register and never written again.
	reg *Registry[K, V]
	key K
	val V

	// stop unregisters the context.AfterFunc callback. Written once by
	// Register before it returns the entry; read only by Remove, which a
	// caller can reach only through that return value.
	stop func() bool

	// claimed is set by the single detach that wins; owner: whichever
	// goroutine's CompareAndSwap succeeds, which then does the detach.
	claimed atomic.Bool

	// mu owns done and cause.
	mu sync.Mutex
	// done is created on the first Done call and closed on detach.
	done chan struct{}
	// cause is nil while live and the detach cause afterwards.
	cause error
}

// Key returns the entry's key.
func (e *Entry[K, V]) Key() K { return e.key }

// Value returns the entry's value.
func (e *Entry[K, V]) Value() V { return e.val }

// Remove detaches the entry from its registry and unregisters its context
// callback, so a long-lived context does not keep collecting callbacks
// for removed entries. It reports whether this call detached the entry: of
// any number of concurrent Remove calls and a concurrent end of the
// context, exactly one detaches it, and only a Remove that does returns
// true; the entry's cause is then [ErrRemoved].
//
// When Remove returns, the entry is detached — if another Remove or the
// context got there first, Remove waits for that detach to finish (but not
// for its OnDetach hook). When it returns true, [Options.OnDetach] has
// already been called.
func (e *Entry[K, V]) Remove() bool {
	if e.stop() {
		e.detach(ErrRemoved)
		return true
	}
	// Someone else owns the detach and is not holding any lock we hold;
	// it closes done before calling out, so this wait is short and cannot
	// deadlock, even when called from OnDetach.
	<-e.Done()
	return false
}

// Detached reports whether the entry has left the registry.
func (e *Entry[K, V]) Detached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cause != nil
}

// Cause returns nil while the entry is live. Once it has detached it
// returns context.Cause of its context if the context ended first, or
// [ErrRemoved] if [Entry.Remove] detached it.
func (e *Entry[K, V]) Cause() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cause
}

// Done returns a channel that is closed when the entry detaches. By then
// the entry is absent from the registry and [Entry.Cause] is non-nil. The
// channel is allocated on the first call; successive calls return the
// same channel.
func (e *Entry[K, V]) Done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done == nil {
		e.done = make(chan struct{})
		if e.cause != nil {
			close(e.done)
		}
	}
	return e.done
}

// detach takes the entry out of the registry, records cause, closes done,
// and then, with no lock held, calls the registry's OnDetach hook. Only
// the first call does anything. The context.AfterFunc stop function
// already lets exactly one of the callback and Remove through; claimed
// makes that property local to this function.
func (e *Entry[K, V]) detach(cause error) {
	if !e.claimed.CompareAndSwap(false, true) {
		return
	}
	e.reg.unlink(e)

	e.mu.Lock()
	e.cause = cause
	if e.done != nil {
		close(e.done)
	}
	e.mu.Unlock()

	if fn := e.reg.onDetach; fn != nil {
		fn(e.key, e.val, cause)
	}
}
