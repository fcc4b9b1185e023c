package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// Listener accepts QUIC connections carrying record streams. Its registry
// spans the streams of every connection it accepted.
//
// Like quic-go's Listener, Close stops accepting and leaves the
// connections already accepted alone; Shutdown also ends them, gracefully.
type Listener struct {
	ql      quicListener
	set     *settings
	streams *streamRegistry
	ended   endedTotals // streams that detached from streams
	cleanup func()      // closes the transport and socket Listen created; may be nil

	nextConn atomic.Uint64

	// mu guards conns, closed and cleaned.
	mu     sync.Mutex
	conns  map[*Conn]struct{} // accepted connections that have not ended
	closed bool
	// budget is the receive budget of all accepted connections (see
	// Config.MaxListenerReceiveBytes).
	budget *budget
	// cleaned is set once cleanup ran: after Close, when the last
	// accepted connection ended.
	cleaned bool
}

// withALPN returns tlsConf with the recordmux ALPN set when it names none.
// It clones rather than modifies the caller's config.
func withALPN(tlsConf *tls.Config) *tls.Config {
	if tlsConf == nil {
		tlsConf = &tls.Config{}
	}
	if len(tlsConf.NextProtos) > 0 {
		return tlsConf
	}
	c := tlsConf.Clone()
	c.NextProtos = []string{ALPN}
	return c
}

// Listen listens for QUIC connections on the UDP address addr. When
// tlsConf names no ALPN, [ALPN] is used. The Listener owns the socket. An
// invalid cfg is a *ConfigError, and a tlsConf that is nil or has no
// certificate (no Certificates, GetCertificate or GetConfigForClient)
// fails at once with [ErrNoCertificate], as every handshake would.
func Listen(addr string, tlsConf *tls.Config, cfg *Config) (*Listener, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	if tlsConf == nil || (len(tlsConf.Certificates) == 0 && tlsConf.GetCertificate == nil && tlsConf.GetConfigForClient == nil) {
		return nil, fmt.Errorf("%w: Listen needs a tls.Config with Certificates, GetCertificate or GetConfigForClient (package identity makes one)", ErrNoCertificate)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quicrecord: listen: %w", err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("quicrecord: listen: %w", err)
	}
	tr := &quic.Transport{Conn: pc, StatelessResetKey: cfg.resetKey()}
	var ql quicListener
	if qconf := cfg.quicConfig(); qconf.Allow0RTT {
		ql, err = tr.ListenEarly(withALPN(tlsConf), qconf)
	} else {
		ql, err = tr.Listen(withALPN(tlsConf), qconf)
	}
	if err != nil {
		_ = tr.Close()
		_ = pc.Close()
		return nil, fmt.Errorf("quicrecord: listen: %w", err)
	}
	l := newListener(ql, set)
	l.cleanup = func() {
		_ = tr.Close()
		_ = pc.Close()
	}
	return l, nil
}

// NewListener wraps a quic-go listener the caller set up, for example on
// a quic.Transport of its own. Closing the Listener closes ql but not its
// transport. An invalid cfg is a *ConfigError, and ql is left alone.
func NewListener(ql *quic.Listener, cfg *Config) (*Listener, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	return newListener(ql, set), nil
}

func newListener(ql quicListener, set *settings) *Listener {
	l := &Listener{
		ql:    ql,
		set:   set,
		conns: make(map[*Conn]struct{}),
	}
	l.budget = newBudget(set.listenerBudget, nil)
	l.streams = newStreamRegistry(0, &l.ended, nil)
	return l
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ql.Addr() }

// Accept waits for the next connection. After Close or Shutdown it
// returns ErrClosed. When the listener allows 0-RTT (Config.QUIC.Allow0RTT,
// NewEarlyListener), a connection may come before its handshake
// completed: its TLS state (the client certificate) is final once
// Conn.QUIC().HandshakeComplete() is closed.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	qc, err := l.ql.Accept(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		if errors.Is(err, quic.ErrServerClosed) {
			return nil, ErrClosed
		}
		return nil, err
	}
	c := newConn(qc, l.set, l, l.nextConn.Add(1), nil)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return nil, ErrClosed
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if c.ctx.Err() != nil {
		l.forget(c) // it ended before it was listed
	}
	return c, nil
}

// forget drops a connection that ended; once the Listener is closed and
// the last one ended, the transport Listen created is closed. Called by
// the connection when it ends.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	clean := l.closed && len(l.conns) == 0 && !l.cleaned && l.cleanup != nil
	if clean {
		l.cleaned = true
	}
	l.mu.Unlock()
	if clean {
		l.cleanup()
	}
}

// Close stops accepting: Accept returns ErrClosed, connections whose
// handshake completed but that Accept has not returned are closed, and
// handshakes in progress are refused. Like quic-go's Listener.Close, it
// leaves the connections already accepted alone: they and their streams
// go on until they are closed or end (a Listener made by Listen keeps its
// socket open until then). Use Shutdown to end them too. Close is
// idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := l.ql.Close()
	for {
		// Connections queued in quic-go before the close: Accept
		// returns them at once now, then ErrServerClosed.
		qc, aerr := l.ql.Accept(context.Background())
		if aerr != nil {
			break
		}
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeNoError), "")
	}
	l.forget(nil) // clean up now if no connection is left
	return err
}

// Shutdown stops accepting, as Close does, then ends every connection the
// Listener accepted, gracefully: each is closed with CodeNoError once it
// has no stream left (streams its peer opens from now on are refused with
// CodeRefused), or when ctx ends, whichever comes first. quic-go has no
// counterpart; it is net/http's Server.Shutdown for record streams. It
// returns nil when every connection ended on its own, and ctx's cause
// when ctx ended first and the remaining ones were closed. When it
// returns, the connections' goroutines have ended.
func (l *Listener) Shutdown(ctx context.Context) error {
	_ = l.Close()
	l.mu.Lock()
	conns := slices.Collect(maps.Keys(l.conns))
	l.mu.Unlock()
	for _, c := range conns {
		c.draining.Store(true)
	}
	var wg sync.WaitGroup
	var cut atomic.Bool
	for _, c := range conns {
		wg.Go(func() {
			if c.waitIdle(ctx) != nil {
				cut.Store(true)
			}
			_ = c.Close()
		})
	}
	wg.Wait()
	if cut.Load() {
		return ctxError(ctx)
	}
	return nil
}
