package transport

import (
	"context"
	"io"

	"github.com/hashicorp/yamux"
)

// alpnYamux is the ALPN protocol of the yamux transport.
const alpnYamux = "recordbench-yamux"

// Yamux is github.com/hashicorp/yamux over TLS 1.3 over one TCP
// connection, carrying the framer's record contract on each yamux stream
// (length-prefixed records through a 64 KiB buffer, cumulative acks).
// Stream windows are raised to 16 MiB, quic-go's per-stream maximum in
// the other transports.
type Yamux struct{ tuning Tuning }

// Name returns "yamux".
func (Yamux) Name() string { return "yamux" }

// Describe says what the transport is.
func (Yamux) Describe() string {
	return "hashicorp/yamux over TLS over TCP, framer records on each yamux stream"
}

// QUIC returns false.
func (Yamux) QUIC() bool { return false }

// With applies t.
func (y Yamux) With(t Tuning) Transport { y.tuning = y.tuning.merge(t); return y }

func (y Yamux) config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.MaxStreamWindowSize = 16 << 20
	c.AcceptBacklog = max(c.AcceptBacklog, y.tuning.MaxStreams)
	c.LogOutput = io.Discard
	return c
}

func (y Yamux) framing() framing { return framing{ackEvery: y.tuning.AckEvery} }

// Listen serves yamux sessions.
func (y Yamux) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	ln, err := n.Listen(addr)
	if err != nil {
		return nil, err
	}
	conf, f := id.ServerTLS(alpnYamux), y.framing()
	acceptConn := func(ctx context.Context) (*yamux.Session, error) {
		tc, err := tlsAccept(ctx, ln, conf)
		if err != nil {
			return nil, err
		}
		return yamux.Server(tc, y.config())
	}
	acceptStream := func(ctx context.Context, s *yamux.Session) (Receiver, error) {
		st, err := s.AcceptStreamWithContext(ctx)
		if err != nil {
			return nil, err
		}
		return f.receiver(st, nil), nil
	}
	return serve(ln.Addr(), ln.Close, acceptConn, acceptStream, (*yamux.Session).Close), nil
}

// Dial connects to a yamux server.
func (y Yamux) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	tc, err := tlsDial(ctx, n, addr, pin.ClientTLS(alpnYamux))
	if err != nil {
		return nil, err
	}
	s, err := yamux.Client(tc, y.config())
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	return &yamuxConn{s: s, f: y.framing()}, nil
}

type yamuxConn struct {
	s *yamux.Session
	f framing
}

// Open opens a yamux stream; its Close is a half-close (FIN), as the
// framer needs.
func (c *yamuxConn) Open(context.Context) (Sender, error) {
	st, err := c.s.OpenStream()
	if err != nil {
		return nil, err
	}
	return c.f.sender(st, nil), nil
}

func (c *yamuxConn) Close() error { return c.s.Close() }
