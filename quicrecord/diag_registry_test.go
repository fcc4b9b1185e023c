package quicrecord

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// registries is a connection pair behind a Listener with every registry
// a stream lands in replaced by one that counts detaches: the client
// Conn's, the server Conn's, and the Listener's.
type registries struct {
	sl           *simListener
	server, list detachCounter
	// clients has one counter per client Conn: the keys of dialed
	// connections' streams repeat from one connection to the next.
	clients map[*Conn]*detachCounter
}

func newRegistries(t *testing.T, cfg *Config) *registries {
	r := &registries{sl: newSimListener(t, cfg, cfg, simRTT/2), clients: make(map[*Conn]*detachCounter)}
	r.list.install(&r.sl.ln.streams)
	return r
}

// dial connects a new pair whose Conn registries count detaches.
func (r *registries) dial() *pair {
	return r.sl.dial(func(c *Conn) {
		if c.ln == nil {
			d := &detachCounter{}
			d.install(&c.streams)
			r.clients[c] = d
		} else {
			r.server.install(&c.streams)
		}
	})
}

// requireDetachedOnce checks that the stream pair (o, a) is gone from
// every registry it was in and left each exactly once. The client-side
// stream is in the client Conn's registry; the server-side one in the
// server Conn's and the Listener's.
func (r *registries) requireDetachedOnce(t *testing.T, p *pair, o, a *RecordStream) {
	t.Helper()
	for _, s := range []*RecordStream{o, a} {
		k := s.key()
		if s.conn == p.client {
			_, ok := p.client.streams.Get(k)
			require.False(t, ok, "stream %v still in the client registry", k)
			require.Equal(t, 1, r.clients[p.client].count(k), "client registry detaches of %v", k)
			continue
		}
		_, ok := p.server.streams.Get(k)
		require.False(t, ok, "stream %v still in the server registry", k)
		_, ok = r.sl.ln.streams.Get(k)
		require.False(t, ok, "stream %v still in the listener registry", k)
		require.Equal(t, 1, r.server.count(k), "server registry detaches of %v", k)
		require.Equal(t, 1, r.list.count(k), "listener registry detaches of %v", k)
	}
}

// requireLive checks that the stream pair is registered everywhere and
// has not detached.
func (r *registries) requireLive(t *testing.T, p *pair, o, a *RecordStream) {
	t.Helper()
	for _, s := range []*RecordStream{o, a} {
		k := s.key()
		if s.conn == p.client {
			require.Contains(t, keysOf(p.client.Snapshots()), k)
			require.Zero(t, r.clients[p.client].count(k))
			continue
		}
		require.Contains(t, keysOf(p.server.Snapshots()), k)
		require.Contains(t, keysOf(r.sl.ln.Snapshots()), k)
		require.Zero(t, r.server.count(k))
		require.Zero(t, r.list.count(k))
	}
}

// TestDiagDetachOnStreamEnd: each way a stream can end takes both of its
// ends out of the client, server and listener registries, once each, and
// leaves the other streams registered.
func TestDiagDetachOnStreamEnd(t *testing.T) {
	t.Parallel()
	ends := []struct {
		name string
		end  func(t *testing.T, o, a *RecordStream, cancel context.CancelFunc)
	}{
		{"opener Close", func(t *testing.T, o, _ *RecordStream, _ context.CancelFunc) {
			require.NoError(t, o.Close(context.Background()))
		}},
		{"acceptor Close", func(t *testing.T, _, a *RecordStream, _ context.CancelFunc) {
			require.NoError(t, a.Close(context.Background()))
		}},
		{"opener CloseWithError", func(t *testing.T, o, _ *RecordStream, _ context.CancelFunc) {
			require.NoError(t, o.CloseWithError(CodeApplicationMin, "done"))
		}},
		{"acceptor CloseWithError", func(t *testing.T, _, a *RecordStream, _ context.CancelFunc) {
			require.NoError(t, a.CloseWithError(CodeApplicationMin, "done"))
		}},
		{"stream context", func(_ *testing.T, _, _ *RecordStream, cancel context.CancelFunc) { cancel() }},
	}
	for _, serverOpens := range []bool{false, true} {
		for _, e := range ends {
			t.Run(fmt.Sprintf("serverOpens=%v/%s", serverOpens, e.name), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					r := newRegistries(t, nil)
					p := r.dial()
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					o, a := p.openPair(t, serverOpens, StreamOptions{Scope: "ending", DataID: 1})
					// The stream's life bounded by ctx, as RecordStream documents.
					defer context.AfterFunc(ctx, func() { _ = o.CloseWithError(CodeCancelled, "stream context done") })()
					o2, a2 := p.openPair(t, !serverOpens, StreamOptions{Scope: "staying", DataID: 2})
					send(t, o, 5)
					require.NoError(t, o.Flush(context.Background()))
					synctest.Wait()
					r.requireLive(t, p, o, a)
					r.requireLive(t, p, o2, a2)

					e.end(t, o, a, cancel)
					time.Sleep(simRTT) // the peer learns of the end
					synctest.Wait()    // detaches run on context.AfterFunc goroutines
					r.requireDetachedOnce(t, p, o, a)
					r.requireLive(t, p, o2, a2)
					require.NotEqual(t, StateOpen, o.Snapshot().Status.State)
					require.NotEqual(t, StateOpen, a.Snapshot().Status.State)

					// Closing what already ended detaches nothing again.
					require.NoError(t, o.Close(context.Background()))
					require.NoError(t, a.Close(context.Background()))
					synctest.Wait()
					r.requireDetachedOnce(t, p, o, a)
				})
			})
		}
	}
}

// TestDiagDetachOnConnEnd: closing either Conn takes every stream of the
// pair out of all three registries, once each.
func TestDiagDetachOnConnEnd(t *testing.T) {
	t.Parallel()
	for _, closeServer := range []bool{false, true} {
		t.Run(fmt.Sprintf("closeServer=%v", closeServer), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				r := newRegistries(t, nil)
				p := r.dial()
				other := r.dial() // a second connection on the same listener stays up
				const n = 6
				var os, as []*RecordStream
				for i := range n {
					o, a := p.openPair(t, i%2 == 1, StreamOptions{Scope: "conn-end", DataID: uint64(i)})
					os, as = append(os, o), append(as, a)
				}
				oo, oa := other.openPair(t, false, StreamOptions{Scope: "other"})
				synctest.Wait()
				require.Len(t, r.sl.ln.Snapshots(), n+1)

				c := p.client
				if closeServer {
					c = p.server
				}
				require.NoError(t, c.CloseWithError(CodeApplicationMin+1, "maintenance"))
				time.Sleep(simRTT)
				synctest.Wait()
				for i := range n {
					r.requireDetachedOnce(t, p, os[i], as[i])
				}
				require.Empty(t, p.client.Snapshots())
				require.Empty(t, p.server.Snapshots())
				require.Equal(t, []streamKey{oa.key()}, keysOf(r.sl.ln.Snapshots()), "only the other connection's stream remains")
				r.requireLive(t, other, oo, oa)
			})
		})
	}
}

// TestDiagDetachRace closes streams and their connection at the same
// moment, many times over, with every mix of which side closes the stream
// (gracefully or not) and which side closes the connection. Whatever wins,
// each stream leaves the client Conn's, the server Conn's and the
// Listener's registry exactly once, and nothing stays behind. The
// goroutines of the bubble run in parallel, so the race detector sees the
// real interleavings.
func TestDiagDetachRace(t *testing.T) {
	t.Parallel()
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	synctest.Test(t, func(t *testing.T) {
		r := newRegistries(t, nil)
		const perConn = 6
		total := 0
		for it := range iterations {
			p := r.dial()
			var os, as []*RecordStream
			for j := range perConn {
				o, a := p.openPair(t, j%3 == 2, StreamOptions{Scope: "race", DataID: uint64(j)})
				os, as = append(os, o), append(as, a)
				send(t, o, j)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for j := range perConn {
				s := os[j]
				if (it+j)%2 == 1 {
					s = as[j]
				}
				graceful := (it/2+j)%2 == 0
				wg.Go(func() {
					<-start
					if graceful {
						_ = s.Close(context.Background())
					} else {
						_ = s.CloseWithError(CodeApplicationMin, "race")
					}
				})
			}
			conn := p.client
			if it%2 == 1 {
				conn = p.server
			}
			wg.Go(func() {
				<-start
				_ = conn.CloseWithError(CodeApplicationMin+2, "race")
			})
			close(start)
			wg.Wait()
			require.NoError(t, p.client.Close())
			require.NoError(t, p.server.Close())
			synctest.Wait()
			for j := range perConn {
				r.requireDetachedOnce(t, p, os[j], as[j])
			}
			require.Zero(t, p.client.streams.Len())
			require.Zero(t, p.server.streams.Len())
			total += perConn
		}
		require.Zero(t, r.sl.ln.streams.Len())
		require.Equal(t, total, r.list.total(), "listener detaches")
		require.Equal(t, total, r.server.total(), "server Conn detaches")
		clients := 0
		for _, d := range r.clients {
			clients += d.total()
		}
		require.Equal(t, total, clients, "client Conn detaches")
	})
}

// TestDiagNoGoroutinePerEntry opens many idle streams through a Listener,
// so each stream is registered three times (client Conn, server Conn,
// Listener), and counts the goroutines of the synctest bubble. What is
// counted: every goroutine in the bubble, before and after, once all are
// blocked; and separately those running a stream's writeLoop or readLoop.
// The growth must be exactly the loops, two per stream end: the
// registries add no goroutine per entry (they detach with
// context.AfterFunc), and once the streams end and detach the count is
// back where it started.
func TestDiagNoGoroutinePerEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistries(t, nil)
		p := r.dial()
		synctest.Wait()
		base, baseLoops := bubbleGoroutines(t)
		require.Zero(t, baseLoops)

		const n = 300
		var os, as []*RecordStream
		for i := range n {
			o, a := p.openPair(t, false, StreamOptions{Scope: "idle", DataID: uint64(i)})
			os, as = append(os, o), append(as, a)
		}
		synctest.Wait()
		require.Len(t, r.sl.ln.Snapshots(), n)
		require.Len(t, p.client.Snapshots(), n)
		total, loops := bubbleGoroutines(t)
		require.Equal(t, 4*n, loops, "two loops per stream end")
		require.Equal(t, 4*n, total-base, "nothing but the loops per stream: %d goroutines for %d streams", total-base, n)

		for i := range n {
			require.NoError(t, os[i].Close(context.Background()))
			require.NoError(t, as[i].Close(context.Background()))
		}
		synctest.Wait()
		require.Zero(t, r.sl.ln.streams.Len())
		require.Equal(t, n, r.list.total())
		total, loops = bubbleGoroutines(t)
		require.Zero(t, loops)
		require.Equal(t, base, total, "no goroutine left behind by detach")
	})
}
