package quicrecord

import (
	"context"
	"slices"
	"sync"
)

// waitq is a set of goroutines waiting, under a mutex, for a change to the
// state that mutex guards. Each waiter sleeps on a one-slot channel that
// the queue keeps for the next waiter afterwards, so in steady state a wait
// allocates nothing (closing a fresh channel per change, as notifyLocked
// does, allocates one per wait). Every method is called with the mutex
// held; the mutex's owner is the waitq's owner.
type waitq struct {
	waiting []chan struct{} // registered waiters, each at most once
	free    []chan struct{} // drained channels for the next waiters
}

// add registers a waiter and returns the channel that receives one value
// at the next notify.
func (q *waitq) add() chan struct{} {
	var ch chan struct{}
	if n := len(q.free); n > 0 {
		ch = q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
	} else {
		ch = make(chan struct{}, 1)
	}
	q.waiting = append(q.waiting, ch)
	return ch
}

// notify wakes every registered waiter and unregisters it. The sends never
// block: a channel is registered at most once and is empty when it is.
func (q *waitq) notify() {
	for i, ch := range q.waiting {
		ch <- struct{}{}
		q.waiting[i] = nil
	}
	q.waiting = q.waiting[:0]
}

// remove ends a wait, whatever ended it: it unregisters ch if notify has
// not, drains it, and keeps it for the next waiter.
func (q *waitq) remove(ch chan struct{}) {
	if i := slices.Index(q.waiting, ch); i >= 0 {
		q.waiting = slices.Delete(q.waiting, i, i+1)
	}
	select {
	case <-ch:
	default:
	}
	q.free = append(q.free, ch)
}

// sleepLocked waits until q is notified, done is closed or ctx ends. mu is
// held on entry and on return, released while waiting. It returns ctx's
// error if ctx ended, nil otherwise; the caller checks its condition again.
func sleepLocked(ctx context.Context, mu *sync.Mutex, q *waitq, done <-chan struct{}) error {
	ch := q.add()
	mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-done:
	case <-ctx.Done():
		err = ctxError(ctx)
	}
	mu.Lock()
	q.remove(ch)
	return err
}
