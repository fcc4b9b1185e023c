package transport

import (
	"context"
	"crypto/tls"
	"io"
	"sync"

	"github.com/quic-go/quic-go"
)

// quicConfig returns the QUIC configuration every QUIC transport uses:
// recordmux's default (see recordmux.go), with room for t.MaxStreams
// streams, adapted to n.
func quicConfig(n Network, t Tuning) *quic.Config {
	c := defaultQUICConfig()
	if want := int64(t.MaxStreams) + 64; t.MaxStreams > 0 && want > c.MaxIncomingStreams {
		c.MaxIncomingStreams = want
	}
	n.tuneQUIC(c)
	return c
}

// quicListen listens for QUIC connections at addr of n. close closes the
// listener, its quic.Transport and the socket.
func quicListen(n Network, addr string, tlsConf *tls.Config, qc *quic.Config) (ln *quic.Listener, close func() error, err error) {
	pc, err := n.ListenPacket(addr)
	if err != nil {
		return nil, nil, err
	}
	tr := &quic.Transport{Conn: pc}
	ln, err = tr.Listen(tlsConf, qc)
	if err != nil {
		_ = tr.Close()
		_ = pc.Close()
		return nil, nil, err
	}
	return ln, func() error {
		err := ln.Close()
		_ = tr.Close()
		_ = pc.Close()
		return err
	}, nil
}

// quicDial connects to the QUIC server at addr of n. release closes the
// quic.Transport and socket; call it after closing the connection.
func quicDial(ctx context.Context, n Network, addr string, tlsConf *tls.Config, qc *quic.Config) (c *quic.Conn, release func(), err error) {
	pc, ra, err := n.DialPacket(addr)
	if err != nil {
		return nil, nil, err
	}
	tr := &quic.Transport{Conn: pc}
	release = sync.OnceFunc(func() {
		_ = tr.Close()
		_ = pc.Close()
	})
	c, err = tr.Dial(ctx, ra, tlsConf, qc)
	if err != nil {
		release()
		return nil, nil, err
	}
	return c, release, nil
}

// openQUICStream opens a bidirectional stream and writes one preamble
// byte: quic-go announces a stream to the peer only with its first data.
func openQUICStream(ctx context.Context, c *quic.Conn) (*quic.Stream, error) {
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.Write([]byte{0}); err != nil {
		s.CancelRead(0)
		s.CancelWrite(0)
		return nil, err
	}
	return s, nil
}

// acceptQUICStream accepts a stream opened with openQUICStream and reads
// its preamble byte.
func acceptQUICStream(ctx context.Context, c *quic.Conn) (*quic.Stream, error) {
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		s.CancelRead(0)
		s.CancelWrite(0)
		return nil, err
	}
	return s, nil
}

// closeQUIC closes a QUIC connection gracefully.
func closeQUIC(c *quic.Conn) error { return c.CloseWithError(0, "") }

// listenQUICStreams serves a transport that carries each record stream on
// its own QUIC stream in format f (raw, framer).
func listenQUICStreams(n Network, addr string, tlsConf *tls.Config, qc *quic.Config, f framing) (Listener, error) {
	ln, closeLn, err := quicListen(n, addr, tlsConf, qc)
	if err != nil {
		return nil, err
	}
	return serve(ln.Addr(), closeLn, ln.Accept,
		func(ctx context.Context, c *quic.Conn) (Receiver, error) {
			s, err := acceptQUICStream(ctx, c)
			if err != nil {
				return nil, err
			}
			return f.receiver(s, nil), nil
		}, closeQUIC), nil
}

// dialQUICStreams connects to a listenQUICStreams server.
func dialQUICStreams(ctx context.Context, n Network, addr string, tlsConf *tls.Config, qc *quic.Config, f framing) (Conn, error) {
	c, release, err := quicDial(ctx, n, addr, tlsConf, qc)
	if err != nil {
		return nil, err
	}
	return &quicStreamsConn{c: c, release: release, f: f}, nil
}

// quicStreamsConn is a client connection of listenQUICStreams.
type quicStreamsConn struct {
	c       *quic.Conn
	release func()
	f       framing
}

func (q *quicStreamsConn) Open(ctx context.Context) (Sender, error) {
	s, err := openQUICStream(ctx, q.c)
	if err != nil {
		return nil, err
	}
	return q.f.sender(s, nil), nil
}

func (q *quicStreamsConn) Close() error {
	err := closeQUIC(q.c)
	q.release()
	return err
}
