package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultFailoverAttemptTimeout bounds one connection attempt of a
// [FailoverDial] function when it is given no timeout of its own.
const DefaultFailoverAttemptTimeout = 3 * time.Second

// FailoverDial returns a dial function for [NewResumableStream] that
// spreads a resumable stream over a fleet of acceptors (collectors that
// share their resume state, such as package quicrecord/jsrecord's): it
// tries addrs in order, starting with the one that last carried the
// stream, and moves on to the next when one is unreachable or refuses.
//
//	dial := quicrecord.FailoverDial([]string{"a:7450", "b:7450"}, tlsConf, cfg, 0)
//	rs, err := quicrecord.NewResumableStream(ctx, dial, cfg, opts)
//
// Each call tries every address at most once, each attempt bounded by
// attemptTimeout (0 or negative means [DefaultFailoverAttemptTimeout]) and by ctx, and
// returns the first connection made, or an error joining each address's
// failure. The waiting between calls, with its backoff, stays with the
// ResumableStream, which calls the function again after every lost
// connection and every failed open.
//
// An acceptor counts as having refused when the connection the previous
// call returned to it never carried a record stream (the stream open was
// refused, for example by a collector that cannot reach its shared
// store, or failed in its handshake): the next call then starts with the
// address after it. A connection that carried the stream keeps its
// address first, so a stream reconnects to the same acceptor while that
// one works.
//
// The function is safe for concurrent use, but is meant for one
// ResumableStream. NewResumableStream itself does not retry its first
// open: when the first acceptor that answers refuses the stream, it
// returns that error.
func FailoverDial(addrs []string, tlsConf *tls.Config, cfg *Config, attemptTimeout time.Duration) func(ctx context.Context) (*Conn, error) {
	return newFailover(addrs, tlsConf, cfg, attemptTimeout, false)
}

// FailoverDialEarly is FailoverDial with 0-RTT reconnects: it dials with
// DialEarly, through a TLS session cache of its own when tlsConf has
// none, so that a resumable stream's resume HELLO travels in the first
// flight of every connection after the first to an acceptor (whose
// listener must allow 0-RTT). See DialEarly for what 0-RTT carries.
func FailoverDialEarly(addrs []string, tlsConf *tls.Config, cfg *Config, attemptTimeout time.Duration) func(ctx context.Context) (*Conn, error) {
	var once sync.Once
	var cache tls.ClientSessionCache
	return newFailover(addrs, sessionCache(tlsConf, &once, &cache), cfg, attemptTimeout, true)
}

func newFailover(addrs []string, tlsConf *tls.Config, cfg *Config, attemptTimeout time.Duration, early bool) func(ctx context.Context) (*Conn, error) {
	f := &failover{
		early:   early,
		addrs:   append([]string(nil), addrs...),
		tls:     tlsConf,
		cfg:     cfg,
		timeout: orDefault(max(attemptTimeout, 0), DefaultFailoverAttemptTimeout),
	}
	return f.dial
}

// failover is the state of one FailoverDial function.
type failover struct {
	early   bool // DialEarly (0-RTT)
	addrs   []string
	tls     *tls.Config
	cfg     *Config
	timeout time.Duration

	// mu guards the fields below.
	mu      sync.Mutex
	first   int   // index of the address tried first
	last    *Conn // the connection the previous call returned, until the next call looks at it
	lastIdx int   // its address index
}

func (f *failover) dial(ctx context.Context) (*Conn, error) {
	if len(f.addrs) == 0 {
		return nil, &ConfigError{Field: "FailoverDial addrs", Value: "[]", Reason: "must name at least one acceptor"}
	}
	start := f.begin()
	var errs []error
	for i := range f.addrs {
		idx := (start + i) % len(f.addrs)
		actx, cancel := context.WithTimeout(ctx, f.timeout)
		conn, err := dial(actx, f.addrs[idx], f.tls, f.cfg, f.early)
		cancel()
		if err == nil {
			f.mu.Lock()
			f.first, f.last, f.lastIdx = idx, conn, idx
			f.mu.Unlock()
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		errs = append(errs, fmt.Errorf("%s: %w", f.addrs[idx], err))
	}
	return nil, fmt.Errorf("quicrecord: failover dial: no acceptor reachable: %w", errors.Join(errs...))
}

// begin returns the index to start from, moving past the acceptor of the
// previous call if its connection never carried a stream.
func (f *failover) begin() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last != nil {
		// A stream counts once its HELLO exchange completed: an
		// optimistic resume the acceptor refused did not carry one.
		if f.last.opened.Load() == 0 {
			f.first = (f.lastIdx + 1) % len(f.addrs)
		}
		f.last = nil
	}
	return f.first
}
