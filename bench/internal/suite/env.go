package suite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// Peer is the server end of every run as the client sees it: a [Sink] in
// this process, or one on a `recordbench serve` across the network.
type Peer interface {
	// Start starts the server end of a run of spec and returns the
	// address to dial.
	Start(ctx context.Context, spec transport.Spec, c Consumer) (addr string, err error)
	// Settle waits until the server accepted streams streams, collects
	// its garbage and returns its live heap and goroutines. In-process it
	// returns zeros: the client measures the whole process.
	Settle(ctx context.Context, streams int) (ServerState, error)
	// Stop ends the run's server end and returns what it saw.
	Stop(ctx context.Context) (SinkReport, error)
	// Network and Pin are what clients dial with.
	Network() transport.Network
	Pin() transport.Pin
	// Server describes a remote server; nil in-process.
	Server() *ServerInfo
	// Close ends the peer.
	Close() error
}

// ServerState is a remote server's heap and goroutines after a garbage
// collection.
type ServerState struct {
	HeapLive   uint64 `json:"heap_live"`
	Goroutines int    `json:"goroutines"`
}

// Env is where runs take place: the server end and the transports'
// options. Create it with [NewEnv] (in-process) or [Connect] (two
// hosts).
type Env struct {
	peer Peer
	opts transport.Options
}

// NewEnv returns an in-process environment: servers on 127.0.0.1 in this
// process, with a fresh identity.
func NewEnv(opts transport.Options) (*Env, error) {
	id, err := transport.NewIdentity()
	if err != nil {
		return nil, err
	}
	return &Env{peer: &localPeer{n: transport.Sockets, addr: "127.0.0.1:0", id: id}, opts: opts}, nil
}

// newSimEnv returns an in-process environment over a simulated link.
func newSimEnv(n *transport.SimNet, opts transport.Options) (*Env, error) {
	id, err := transport.NewIdentity()
	if err != nil {
		return nil, err
	}
	return &Env{peer: &localPeer{n: n, addr: transport.SimServerAddr, id: id}, opts: opts}, nil
}

// Close ends the environment (a two-host one's control connection).
func (e *Env) Close() error { return e.peer.Close() }

// Remote reports a two-host environment.
func (e *Env) Remote() bool { return e.peer.Server() != nil }

// localPeer runs the server end in this process.
type localPeer struct {
	n    transport.Network
	addr string
	id   *transport.Identity
	sink *Sink
}

func (p *localPeer) Start(ctx context.Context, spec transport.Spec, c Consumer) (string, error) {
	if p.sink != nil {
		return "", errors.New("suite: a run is already going on")
	}
	tr, err := spec.Build()
	if err != nil {
		return "", err
	}
	p.sink, err = StartSink(ctx, tr, p.n, p.addr, p.id, c)
	if err != nil {
		return "", err
	}
	return p.sink.Addr(), nil
}

func (p *localPeer) Settle(ctx context.Context, streams int) (ServerState, error) {
	return ServerState{}, waitAccepted(ctx, p.sink, streams)
}

// waitAccepted polls until s accepted n streams.
func waitAccepted(ctx context.Context, s *Sink, n int) error {
	if s == nil {
		return errors.New("suite: no run going on")
	}
	for s.Accepted() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("server accepted %d of %d streams: %w", s.Accepted(), n, context.Cause(ctx))
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (p *localPeer) Stop(context.Context) (SinkReport, error) {
	if p.sink == nil {
		return SinkReport{}, errors.New("suite: no run going on")
	}
	rep := p.sink.Stop()
	p.sink = nil
	return rep, nil
}

func (p *localPeer) Network() transport.Network { return p.n }
func (p *localPeer) Pin() transport.Pin         { return p.id.Pin() }
func (p *localPeer) Server() *ServerInfo        { return nil }
func (p *localPeer) Close() error               { return nil }

// session is one connection of a run and its streams.
type session struct {
	env     *Env
	conn    transport.Conn
	senders []transport.Sender
	// ended is set by the first abort, whose results rep and err are
	// kept.
	ended bool
	rep   SinkReport
	err   error
}

// connect starts the server end of a run of transport name with tuning t
// and consumer c, and dials it.
func (e *Env) connect(ctx context.Context, name string, t transport.Tuning, c Consumer) (*session, error) {
	spec := transport.Spec{Name: name, Options: e.opts, Tuning: t}
	tr, err := spec.Build()
	if err != nil {
		return nil, err
	}
	addr, err := e.peer.Start(ctx, spec, c)
	if err != nil {
		return nil, err
	}
	conn, err := tr.Dial(ctx, e.peer.Network(), addr, e.peer.Pin())
	if err != nil {
		_, _ = e.peer.Stop(ctx)
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &session{env: e, conn: conn}, nil
}

// openParallel is how many streams are opened or closed at once.
const openParallel = 64

// open opens n more streams, openParallel at a time.
func (s *session) open(ctx context.Context, n int) error {
	first := len(s.senders)
	s.senders = append(s.senders, make([]transport.Sender, n)...)
	return forEach(ctx, n, openParallel, func(i int) error {
		snd, err := s.conn.Open(ctx)
		s.senders[first+i] = snd
		return err
	})
}

// dialStreams is connect followed by open.
func (e *Env) dialStreams(ctx context.Context, name string, t transport.Tuning, c Consumer, n int) (*session, error) {
	s, err := e.connect(ctx, name, t, c)
	if err != nil {
		return nil, err
	}
	if err := s.open(ctx, n); err != nil {
		_, _ = s.abort(ctx)
		return nil, fmt.Errorf("open: %w", err)
	}
	return s, nil
}

// finish closes the streams (openParallel at a time), the connection and
// the server end, and returns the server's report.
func (s *session) finish(ctx context.Context) (SinkReport, error) {
	err := forEach(context.WithoutCancel(ctx), len(s.senders), openParallel, func(i int) error {
		if s.senders[i] == nil {
			return nil
		}
		return s.senders[i].Close()
	})
	rep, cerr := s.abort(ctx)
	return rep, firstErr(err, cerr)
}

// abort closes the connection, which ends its streams at once, and the
// server end. Later calls return the first one's results.
func (s *session) abort(ctx context.Context) (SinkReport, error) {
	if !s.ended {
		s.ended = true
		err := s.conn.Close()
		var serr error
		s.rep, serr = s.env.peer.Stop(context.WithoutCancel(ctx))
		s.err = firstErr(err, serr)
	}
	return s.rep, s.err
}

// forEach runs fn(0..n-1) on up to parallel goroutines and returns the
// first error; after an error the remaining indices are skipped.
func forEach(ctx context.Context, n, parallel int, fn func(i int) error) error {
	var (
		mu   sync.Mutex
		next int
		ferr error
		wg   sync.WaitGroup
	)
	for range min(max(parallel, 1), n) {
		wg.Go(func() {
			for {
				mu.Lock()
				if ferr != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if ferr == nil && ctx.Err() != nil {
		ferr = context.Cause(ctx)
	}
	return ferr
}

// firstErr returns the first non-nil error of errs that is not the clean
// end of a stream.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// payload returns n bytes from a ChaCha8 generator seeded with seed.
func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}
