package transport

import (
	"context"
	"errors"
	"net"
	"sync"
)

// server turns a transport's accept functions into a [Listener]: one
// goroutine accepts connections, one per connection accepts its streams,
// and the streams queue for Accept.
type server struct {
	addr          net.Addr
	closeListener func() error
	queue         chan Receiver
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	// conns are the close functions of the live connections, closed is
	// set by Close. Owner: mu.
	mu     sync.Mutex
	conns  map[*connEntry]struct{}
	closed bool
}

type connEntry struct{ close func() error }

// serve starts the accept loops. acceptConn returns the next connection
// (an error once the listener is closed); acceptStream the next stream of
// a connection (an error once it ended); closeConn ends a connection
// and, with it, its acceptStream.
func serve[C any](addr net.Addr, closeListener func() error, acceptConn func(context.Context) (C, error),
	acceptStream func(context.Context, C) (Receiver, error), closeConn func(C) error) *server {
	s := &server{addr: addr, closeListener: closeListener, queue: make(chan Receiver), conns: map[*connEntry]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(func() {
		for {
			c, err := acceptConn(s.ctx)
			if err != nil {
				return
			}
			e := &connEntry{close: sync.OnceValue(func() error { return closeConn(c) })}
			if !s.track(e) {
				_ = e.close()
				return
			}
			s.wg.Go(func() {
				defer s.untrack(e)
				for {
					r, err := acceptStream(s.ctx, c)
					if err != nil {
						return
					}
					select {
					case s.queue <- r:
					case <-s.ctx.Done():
						_ = r.Close()
						return
					}
				}
			})
		}
	})
	return s
}

// track adds a connection unless the server is closed.
func (s *server) track(e *connEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[e] = struct{}{}
	return true
}

// untrack closes a connection whose streams ended and forgets it.
func (s *server) untrack(e *connEntry) {
	_ = e.close()
	s.mu.Lock()
	delete(s.conns, e)
	s.mu.Unlock()
}

func (s *server) Addr() net.Addr { return s.addr }

func (s *server) Accept(ctx context.Context) (Receiver, error) {
	select {
	case r := <-s.queue:
		return r, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (s *server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*connEntry, 0, len(s.conns))
	for e := range s.conns {
		conns = append(conns, e)
	}
	s.mu.Unlock()
	s.cancel()
	err := s.closeListener()
	for _, e := range conns {
		_ = e.close()
	}
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
