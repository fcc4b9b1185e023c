package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// Listener accepts QUIC connections carrying record streams. Its registry
// spans the streams of every connection it accepted.
type Listener struct {
	ql      *quic.Listener
	set     *settings
	streams *streamRegistry
	ended   endedTotals // streams that detached from streams
	cleanup func()      // closes the transport and socket Listen created; may be nil

	nextConn atomic.Uint64

	// mu guards conns and closed.
	mu     sync.Mutex
	conns  map[*Conn]func() bool // live connections and the stop func of their watch
	closed bool
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
	ql, err := tr.Listen(withALPN(tlsConf), cfg.quicConfig())
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

func newListener(ql *quic.Listener, set *settings) *Listener {
	l := &Listener{
		ql:    ql,
		set:   set,
		conns: make(map[*Conn]func() bool),
	}
	l.streams = newStreamRegistry(0, &l.ended)
	return l
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ql.Addr() }

// Accept waits for the next connection.
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
	l.conns[c] = context.AfterFunc(c.ctx, func() { l.forget(c) })
	l.mu.Unlock()
	return c, nil
}

func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Close stops accepting and closes every connection the Listener
// accepted. When it returns, their goroutines have ended.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := make([]*Conn, 0, len(l.conns))
	for c, stop := range l.conns {
		stop()
		conns = append(conns, c)
	}
	clear(l.conns)
	l.mu.Unlock()
	err := l.ql.Close()
	for c := range slices.Values(conns) {
		_ = c.Close()
	}
	if l.cleanup != nil {
		l.cleanup()
	}
	return err
}
