package registry_test

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/registry"
)

var errStreamReset = errors.New("test: stream reset")

func TestDetachOnContextEnd(t *testing.T) {
	tests := []struct {
		name string
		// end ends the context that the entry is registered with, which is
		// derived from conn.
		end       func(cancelConn, cancelStream context.CancelCauseFunc)
		wantCause error
	}{
		{
			name:      "stream canceled",
			end:       func(_, cancelStream context.CancelCauseFunc) { cancelStream(nil) },
			wantCause: context.Canceled,
		},
		{
			name:      "stream canceled with cause",
			end:       func(_, cancelStream context.CancelCauseFunc) { cancelStream(errStreamReset) },
			wantCause: errStreamReset,
		},
		{
			name:      "connection canceled with cause",
			end:       func(cancelConn, _ context.CancelCauseFunc) { cancelConn(errConnClosed) },
			wantCause: errConnClosed,
		},
	}
	for _, tt := range tests {
		for _, doneBefore := range []bool{false, true} {
			name := tt.name
			if doneBefore {
				name += "/Done before"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					r, log := newLogged(0)
					conn, cancelConn := context.WithCancelCause(context.Background())
					defer cancelConn(nil)
					stream, cancelStream := context.WithCancelCause(conn)
					defer cancelStream(nil)

					e, err := r.Register(stream, 1, "v")
					require.NoError(t, err)
					var done <-chan struct{}
					if doneBefore {
						done = e.Done()
					}
					tt.end(cancelConn, cancelStream)
					synctest.Wait()

					require.True(t, e.Detached())
					require.ErrorIs(t, e.Cause(), tt.wantCause)
					require.True(t, isClosed(e.Done()))
					if doneBefore {
						require.True(t, isClosed(done))
					}
					_, ok := r.Get(1)
					require.False(t, ok)
					require.Zero(t, r.Len())
					require.Equal(t, []detachCall{{key: 1, val: "v", cause: e.Cause()}}, log.forKey(1))
					require.False(t, e.Remove(), "Remove after a context detach")
					require.Equal(t, 1, log.count())
				})
			})
		}
	}
}

// TestDetachAtTimeout checks that a WithTimeout context detaches its entry
// at exactly the deadline, in virtual time.
func TestDetachAtTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 5 * time.Second
		start := time.Now()
		var detachedAfter time.Duration
		r := registry.New(cmp.Compare[int], &registry.Options[int, string]{
			OnDetach: func(_ int, _ string, cause error) {
				require.ErrorIs(t, cause, context.DeadlineExceeded)
				detachedAfter = time.Since(start)
			},
		})
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		e, err := r.Register(ctx, 1, "v")
		require.NoError(t, err)

		time.Sleep(timeout - time.Nanosecond)
		synctest.Wait()
		require.False(t, e.Detached(), "detached before the deadline")
		require.Equal(t, 1, r.Len())

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.True(t, e.Detached())
		require.ErrorIs(t, e.Cause(), context.DeadlineExceeded)
		require.Equal(t, timeout, detachedAfter)
		require.Zero(t, r.Len())
	})
}

// TestRemoveStopsContextCallback checks that Remove unregisters the
// context callback: ending the context later does not detach again.
func TestRemoveStopsContextCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, log := newLogged(0)
		ctx, cancel := context.WithCancelCause(context.Background())
		e, err := r.Register(ctx, 1, "v")
		require.NoError(t, err)

		require.True(t, e.Remove())
		require.True(t, e.Detached())
		require.ErrorIs(t, e.Cause(), registry.ErrRemoved)
		require.Equal(t, 1, log.count(), "OnDetach must have run when Remove returns true")
		require.False(t, e.Remove())

		cancel(errConnClosed)
		synctest.Wait()
		require.Equal(t, []detachCall{{key: 1, val: "v", cause: registry.ErrRemoved}}, log.forKey(1))
		require.ErrorIs(t, e.Cause(), registry.ErrRemoved)
		require.Zero(t, r.Len())
	})
}

// TestRemoveReleasesEntry checks that Remove unregisters the context
// callback from a long-lived context: afterwards nothing reachable from
// the context refers to the entry, so its value can be collected while the
// context lives on. A live entry stays reachable (the control).
func TestRemoveReleasesEntry(t *testing.T) {
	type payload struct{ _ [64]byte }
	r := registry.New[int, *payload](cmp.Compare[int], nil)
	listener, cancel := context.WithCancel(context.Background())
	defer cancel()

	register := func(key int, remove bool) <-chan struct{} {
		collected := make(chan struct{})
		v := &payload{}
		runtime.AddCleanup(v, func(ch chan struct{}) { close(ch) }, collected)
		e, err := r.Register(listener, key, v)
		require.NoError(t, err)
		if remove {
			require.True(t, e.Remove())
		}
		return collected
	}
	removed := register(1, true)
	live := register(2, false)

	runtime.GC()
	runtime.GC()
	select {
	case <-removed:
	case <-time.After(10 * time.Second):
		t.Fatal("removed entry still reachable: its context callback was not stopped")
	}
	require.False(t, isClosed(live), "a live entry must stay reachable")
	require.Equal(t, 1, r.Len())
	runtime.KeepAlive(listener)
}

// TestDetachExactlyOnceRace ends a connection context and a stream context
// derived from it while two goroutines call Remove, all at once, and checks
// that every entry detached exactly once with a consistent cause.
func TestDetachExactlyOnceRace(t *testing.T) {
	iterations := 2000
	if testing.Short() {
		iterations = 200
	}
	synctest.Test(t, func(t *testing.T) {
		var hookCalls sync.Map // key → *atomic.Int32
		r := registry.New(cmp.Compare[int], &registry.Options[int, string]{
			OnDetach: func(key int, _ string, _ error) {
				n, _ := hookCalls.LoadOrStore(key, new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
			},
		})
		for i := range iterations {
			conn, cancelConn := context.WithCancelCause(context.Background())
			stream, cancelStream := context.WithCancelCause(conn)
			connKey, streamKey := 2*i, 2*i+1
			connEntry, err := r.Register(conn, connKey, "conn")
			require.NoError(t, err)
			streamEntry, err := r.Register(stream, streamKey, "stream")
			require.NoError(t, err)

			start := make(chan struct{})
			var wg sync.WaitGroup
			var removedTrue atomic.Int32
			var goneAfterRemove atomic.Int32
			wg.Go(func() { <-start; cancelConn(errConnClosed) })
			wg.Go(func() { <-start; cancelStream(errStreamReset) })
			for range 2 {
				wg.Go(func() {
					<-start
					if streamEntry.Remove() {
						removedTrue.Add(1)
					}
					// Remove returns only once the entry is detached.
					if _, ok := r.Get(streamKey); !ok {
						goneAfterRemove.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			synctest.Wait() // let every context.AfterFunc goroutine finish

			require.Equal(t, int32(2), goneAfterRemove.Load(), "iteration %d", i)
			require.LessOrEqual(t, removedTrue.Load(), int32(1), "iteration %d", i)
			if removedTrue.Load() == 1 {
				require.ErrorIs(t, streamEntry.Cause(), registry.ErrRemoved, "iteration %d", i)
			} else {
				cause := streamEntry.Cause()
				require.True(t, errors.Is(cause, errConnClosed) || errors.Is(cause, errStreamReset),
					"iteration %d: cause %v", i, cause)
			}
			require.ErrorIs(t, connEntry.Cause(), errConnClosed, "iteration %d", i)
			for _, k := range []int{connKey, streamKey} {
				n, ok := hookCalls.Load(k)
				require.True(t, ok, "iteration %d: key %d never detached", i, k)
				require.Equal(t, int32(1), n.(*atomic.Int32).Load(), "iteration %d: key %d", i, k)
			}
		}
		require.Zero(t, r.Len())
	})
}

// TestReregisterAfterDetach checks that a key is free once its entry has
// detached, and that nothing left over from the old entry (a late Remove, a
// late context end) touches the new entry.
func TestReregisterAfterDetach(t *testing.T) {
	tests := []struct {
		name      string
		detach    func(old *registry.Entry[int, string], cancel context.CancelCauseFunc)
		wantCause error
	}{
		{
			name:      "old removed",
			detach:    func(old *registry.Entry[int, string], _ context.CancelCauseFunc) { old.Remove() },
			wantCause: registry.ErrRemoved,
		},
		{
			name: "old context ended",
			detach: func(old *registry.Entry[int, string], cancel context.CancelCauseFunc) {
				cancel(errConnClosed)
				<-old.Done()
			},
			wantCause: errConnClosed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, log := newLogged(1)
				oldCtx, cancelOld := context.WithCancelCause(context.Background())
				old, err := r.Register(oldCtx, 1, "old")
				require.NoError(t, err)
				tt.detach(old, cancelOld)

				newer, err := r.Register(context.Background(), 1, "new")
				require.NoError(t, err)

				// Stale detaches of the old entry.
				require.False(t, old.Remove())
				cancelOld(errStreamReset)
				synctest.Wait()

				v, ok := r.Get(1)
				require.True(t, ok)
				require.Equal(t, "new", v)
				require.False(t, newer.Detached())
				require.Equal(t, 1, r.Len())
				require.Equal(t, []detachCall{{key: 1, val: "old", cause: tt.wantCause}}, log.forKey(1))

				require.True(t, newer.Remove())
				require.Len(t, log.forKey(1), 2)
				require.Zero(t, r.Len())
			})
		})
	}
}

// TestReregisterRace re-registers a key right after Remove returns, while
// the old entry's context ends concurrently; the key must always be free
// and the new entry must survive the old entry's detach.
func TestReregisterRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, log := newLogged(0)
		const key = 42
		current, err := r.Register(context.Background(), key, "0")
		require.NoError(t, err)
		for i := range 1000 {
			ctx, cancel := context.WithCancelCause(context.Background())
			require.True(t, current.Remove())
			old, err := r.Register(ctx, key, "old")
			require.NoError(t, err, "iteration %d", i)

			var wg sync.WaitGroup
			wg.Go(func() { cancel(errConnClosed) })
			old.Remove()
			current, err = r.Register(context.Background(), key, "new")
			require.NoError(t, err, "iteration %d: key still taken after Remove returned", i)
			wg.Wait()
			synctest.Wait()

			v, ok := r.Get(key)
			require.True(t, ok, "iteration %d", i)
			require.Equal(t, "new", v, "iteration %d", i)
			require.False(t, current.Detached(), "iteration %d", i)
		}
		require.True(t, current.Remove())
		require.Len(t, log.forKey(key), 2001)
	})
}

// TestNoGoroutinePerEntry registers 10,000 entries on cancelable contexts
// and checks that no goroutine waits per entry.
func TestNoGoroutinePerEntry(t *testing.T) {
	const n = 10_000
	var hooks sync.WaitGroup
	hooks.Add(n)
	r := registry.New(cmp.Compare[int], &registry.Options[int, int]{
		OnDetach: func(int, int, error) { hooks.Done() },
	})
	conn, cancelConn := context.WithCancelCause(context.Background())
	defer cancelConn(nil)

	before := runtime.NumGoroutine()
	entries := make([]*registry.Entry[int, int], n)
	for i := range n {
		ctx := context.Context(conn)
		if i%2 == 0 {
			// Half on their own stream context, as the stream registry does.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(conn)
			defer cancel()
		}
		e, err := r.Register(ctx, i, i)
		require.NoError(t, err)
		entries[i] = e
	}
	after := runtime.NumGoroutine()
	require.Less(t, after-before, 10, "goroutines grew from %d to %d for %d entries", before, after, n)
	require.Equal(t, n, r.Len())

	cancelConn(errConnClosed)
	for _, e := range entries {
		<-e.Done()
		require.ErrorIs(t, e.Cause(), errConnClosed)
	}
	hooks.Wait()
	require.Zero(t, r.Len())
}

// TestConcurrentStress mixes every operation on overlapping keys from many
// goroutines and checks the accounting afterwards.
func TestConcurrentStress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hookCalls atomic.Int64
		r := registry.New(cmp.Compare[int], &registry.Options[int, int]{
			OnDetach: func(int, int, error) { hookCalls.Add(1) },
		})
		conn, cancelConn := context.WithCancelCause(context.Background())
		var registered atomic.Int64
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				var leftOpen []context.CancelFunc
				defer func() {
					// Released after the connection has ended them.
					<-conn.Done()
					for _, cancel := range leftOpen {
						cancel()
					}
				}()
				for i := range 500 {
					key := (g*7 + i) % 64
					ctx, cancel := context.WithCancel(conn)
					e, err := r.Register(ctx, key, key)
					if err != nil {
						cancel()
						if !errors.Is(err, registry.ErrDuplicateKey) {
							t.Errorf("Register: %v", err)
						}
						continue
					}
					registered.Add(1)
					switch i % 3 {
					case 0:
						e.Remove()
						cancel()
					case 1:
						cancel()
					default:
						leftOpen = append(leftOpen, cancel) // left for the connection to end
					}
					if snap := r.Snapshot(); !isSortedInts(snap) {
						t.Errorf("snapshot not sorted: %v", snap)
					}
					r.Get(key)
				}
			})
		}
		synctest.Wait() // workers done, waiting for the connection to end
		cancelConn(errConnClosed)
		wg.Wait()
		synctest.Wait()
		require.Zero(t, r.Len())
		require.Equal(t, registered.Load(), hookCalls.Load())
	})
}

func isSortedInts(s []int) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}
