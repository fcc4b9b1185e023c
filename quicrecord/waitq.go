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
//
// A waiter may name a target (see notifyUpTo): one waiting for an ack of
// sequence number n sleeps through acks below n, so that many waiters
// with different targets are not all woken by every ack.
type waitq struct {
	waiting []waiter        // registered waiters, each at most once
	free    []chan struct{} // drained channels for the next waiters
}

// waiter is a registered wait: its channel and its target (0: any change).
type waiter struct {
	ch     chan struct{}
	target uint64
}

// add registers a waiter for any change and returns the channel that
// receives one value at the next notify.
func (q *waitq) add() chan struct{} { return q.addFor(0) }

// addFor registers a waiter that notifyUpTo wakes only once its value
// reaches target (and notify always).
func (q *waitq) addFor(target uint64) chan struct{} {
	var ch chan struct{}
	if n := len(q.free); n > 0 {
		ch = q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
	} else {
		ch = make(chan struct{}, 1)
	}
	q.waiting = append(q.waiting, waiter{ch: ch, target: target})
	return ch
}

// notify wakes every registered waiter and unregisters it. The sends never
// block: a channel is registered at most once and is empty when it is.
func (q *waitq) notify() {
	for i, w := range q.waiting {
		w.ch <- struct{}{}
		q.waiting[i] = waiter{}
	}
	q.waiting = q.waiting[:0]
}

// notifyUpTo wakes and unregisters the waiters for any change and those
// whose target is at most v; the others keep waiting.
func (q *waitq) notifyUpTo(v uint64) {
	kept := q.waiting[:0]
	for _, w := range q.waiting {
		if w.target <= v {
			w.ch <- struct{}{}
			continue
		}
		kept = append(kept, w)
	}
	clear(q.waiting[len(kept):])
	q.waiting = kept
}

// remove ends a wait, whatever ended it: it unregisters ch if notify has
// not, drains it, and keeps it for the next waiter.
func (q *waitq) remove(ch chan struct{}) {
	if i := slices.IndexFunc(q.waiting, func(w waiter) bool { return w.ch == ch }); i >= 0 {
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
	return sleepLockedFor(ctx, mu, q, done, 0)
}

// sleepLockedFor is sleepLocked for a waiter with a target (see
// waitq.notifyUpTo).
func sleepLockedFor(ctx context.Context, mu *sync.Mutex, q *waitq, done <-chan struct{}, target uint64) error {
	ch := q.addFor(target)
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
