package quicrecord

import (
	"context"
	"sync"
)

// budget is a receive budget: bytes of received record data a
// connection (or every connection of a listener) may hold in receive
// buffers, apply backlogs and frames being read. A connection's budget
// has its listener's as parent; a grant takes room in both.
//
// Owner: mu guards used and wait. Waiters never hold mu while they wait,
// and release notifies after changing used, under mu, by closing wait
// (no call out).
type budget struct {
	parent *budget // nil for a listener's budget or a dialed connection's
	limit  int64

	mu   sync.Mutex
	used int64
	wait chan struct{} // closed when room is given back; see waitChan
}

func newBudget(limit int64, parent *budget) *budget {
	return &budget{limit: limit, parent: parent}
}

// clamp returns n, or the budget's limit (its parent's, if smaller) when
// n is above it: a single grant larger than the whole budget waits until
// all of it is free instead of forever.
func (b *budget) clamp(n int64) int64 {
	for x := b; x != nil; x = x.parent {
		n = min(n, x.limit)
	}
	return n
}

// tryTake takes n bytes from b and its parent if both have room, and
// otherwise returns the channels to wait on for room.
func (b *budget) tryTake(n int64) (ok bool, wb, wp <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false, waitChan(&b.wait), nil
	}
	if p := b.parent; p != nil {
		p.mu.Lock()
		if p.used+n > p.limit {
			wp = waitChan(&p.wait)
			p.mu.Unlock()
			return false, nil, wp
		}
		p.used += n
		p.mu.Unlock()
	}
	b.used += n
	return true, nil, nil
}

// give returns n bytes to b and its parent and wakes their waiters.
func (b *budget) give(n int64) {
	for x := b; x != nil; x = x.parent {
		x.mu.Lock()
		x.used -= n
		notifyLocked(&x.wait)
		x.mu.Unlock()
	}
}

// Used returns the bytes currently granted.
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// recvAccount is one stream's share of its connection's budget: what the
// stream holds, and the small credit it may hold before the application
// accepts it.
//
// Owner: mu guards held, closed and acceptWait; accepted is set once.
type recvAccount struct {
	b      *budget
	credit int64 // what the stream may hold until accepted

	mu         sync.Mutex
	held       int64
	closed     bool          // the stream ended: everything was given back
	accepted   bool          // the application has the stream
	acceptWait chan struct{} // closed when accepted
}

func newRecvAccount(b *budget, credit int64, accepted bool) *recvAccount {
	return &recvAccount{b: b, credit: credit, accepted: accepted}
}

// accept lifts the pre-accept credit.
func (a *recvAccount) accept() {
	a.mu.Lock()
	a.accepted = true
	notifyLocked(&a.acceptWait)
	a.mu.Unlock()
}

// acquire takes n bytes for the stream, waiting while the stream is not
// accepted and would hold more than its credit, and while the budget has
// no room: the reader stops reading meanwhile, so QUIC flow control
// pushes back on the peer. It returns the bytes charged (n, or less when
// n is above the whole budget; see budget.clamp), or ctx's cause.
func (a *recvAccount) acquire(ctx context.Context, n int64) (int64, error) {
	n = a.b.clamp(n)
	for {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			if err := context.Cause(ctx); err != nil {
				return 0, err
			}
			return 0, ErrClosed
		}
		if !a.accepted && a.held+n > a.credit {
			ch := waitChan(&a.acceptWait)
			a.mu.Unlock()
			if err := waitOn(ctx, ch, nil); err != nil {
				return 0, err
			}
			continue
		}
		ok, wb, wp := a.b.tryTake(n)
		if ok {
			a.held += n
			a.mu.Unlock()
			return n, nil
		}
		a.mu.Unlock()
		if err := waitOn(ctx, wb, wp); err != nil {
			return 0, err
		}
	}
}

// release gives back n bytes the stream held. After close it does
// nothing: close gave everything back.
func (a *recvAccount) release(n int64) {
	if n == 0 {
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.held -= n
	a.mu.Unlock()
	a.b.give(n)
}

// close gives back everything the stream holds, for good.
func (a *recvAccount) close() {
	a.mu.Lock()
	n := a.held
	a.held, a.closed = 0, true
	notifyLocked(&a.acceptWait)
	a.mu.Unlock()
	if n != 0 {
		a.b.give(n)
	}
}

// waitOn waits until one of the channels (nil ones never) is closed or
// ctx is done (its cause).
func waitOn(ctx context.Context, a, b <-chan struct{}) error {
	select {
	case <-a:
	case <-b:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return nil
}
