package quicrecord

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWaitq covers the ways a wait ends: a notify, a done channel, a
// cancelled ctx; and checks that channels are reused, drained, and that a
// notify after a waiter left does not reach the next one.
func TestWaitq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var q waitq
		state := 0

		// A notify wakes every waiter.
		woke := make(chan int, 3)
		for range 3 {
			go func() {
				mu.Lock()
				for state == 0 {
					require.NoError(t, sleepLocked(context.Background(), &mu, &q, nil))
				}
				mu.Unlock()
				woke <- state
			}()
		}
		synctest.Wait()
		mu.Lock()
		require.Len(t, q.waiting, 3)
		state = 1
		q.notify()
		mu.Unlock()
		for range 3 {
			require.Equal(t, 1, <-woke)
		}
		mu.Lock()
		require.Empty(t, q.waiting)
		require.Len(t, q.free, 3, "channels kept for reuse")
		for _, ch := range q.free {
			require.Zero(t, len(ch), "kept channels are drained")
		}
		mu.Unlock()

		// done and ctx end a wait; the waiter is unregistered.
		done := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 2)
		go func() {
			mu.Lock()
			errs <- sleepLocked(context.Background(), &mu, &q, done)
			mu.Unlock()
		}()
		go func() {
			mu.Lock()
			errs <- sleepLocked(ctx, &mu, &q, nil)
			mu.Unlock()
		}()
		synctest.Wait()
		close(done)
		require.NoError(t, <-errs)
		cancel()
		require.ErrorIs(t, <-errs, context.Canceled)
		mu.Lock()
		require.Empty(t, q.waiting)
		require.Len(t, q.free, 3)
		mu.Unlock()

		// A waiter that left by ctx while a notify raced with it leaves a
		// drained channel: the next waiter is not woken by that notify.
		mu.Lock()
		ch := q.add()
		q.notify() // delivered, never received
		q.remove(ch)
		mu.Unlock()
		sleeping := make(chan error, 1)
		tctx, tcancel := context.WithTimeout(context.Background(), time.Second)
		defer tcancel()
		go func() {
			mu.Lock()
			sleeping <- sleepLocked(tctx, &mu, &q, nil)
			mu.Unlock()
		}()
		synctest.Wait()
		select {
		case err := <-sleeping:
			t.Fatalf("woken by a stale notify: %v", err)
		default:
		}
		require.ErrorIs(t, <-sleeping, context.DeadlineExceeded)
	})
}

// TestWaitqNoAllocs: once warm, a wait and its notify allocate nothing.
func TestWaitqNoAllocs(t *testing.T) {
	var mu sync.Mutex
	var q waitq
	mu.Lock()
	q.remove(q.add())
	allocs := testing.AllocsPerRun(100, func() {
		ch := q.add()
		q.notify()
		q.remove(ch)
	})
	mu.Unlock()
	require.Zero(t, allocs)
}
