package transport

import (
	"context"

	"github.com/xtaci/smux"
)

// alpnSmux is the ALPN protocol of the smux transport.
const alpnSmux = "recordbench-smux"

// Smux is github.com/xtaci/smux (protocol version 2, which has per-stream
// flow control) over TLS 1.3 over one TCP connection, carrying the
// framer's record contract on each smux stream. Its buffers are raised to
// quic-go's maxima in the other transports: 16 MiB per stream, 64 MiB per
// session.
type Smux struct{ tuning Tuning }

// Name returns "smux".
func (Smux) Name() string { return "smux" }

// Describe says what the transport is.
func (Smux) Describe() string {
	return "xtaci/smux v2 over TLS over TCP, framer records on each smux stream"
}

// QUIC returns false.
func (Smux) QUIC() bool { return false }

// With applies t.
func (s Smux) With(t Tuning) Transport { s.tuning = s.tuning.merge(t); return s }

func (Smux) config() *smux.Config {
	c := smux.DefaultConfig()
	c.Version = 2
	c.MaxReceiveBuffer = 64 << 20
	c.MaxStreamBuffer = 16 << 20
	return c
}

func (s Smux) framing() framing { return framing{ackEvery: s.tuning.AckEvery} }

// Listen serves smux sessions.
func (s Smux) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	ln, err := n.Listen(addr)
	if err != nil {
		return nil, err
	}
	conf, f := id.ServerTLS(alpnSmux), s.framing()
	acceptConn := func(ctx context.Context) (*smux.Session, error) {
		tc, err := tlsAccept(ctx, ln, conf)
		if err != nil {
			return nil, err
		}
		return smux.Server(tc, s.config())
	}
	acceptStream := func(_ context.Context, sess *smux.Session) (Receiver, error) {
		st, err := sess.AcceptStream()
		if err != nil {
			return nil, err
		}
		return f.receiver(smuxStream{st}, func() { _ = st.Close() }), nil
	}
	return serve(ln.Addr(), ln.Close, acceptConn, acceptStream, (*smux.Session).Close), nil
}

// Dial connects to a smux server.
func (s Smux) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	tc, err := tlsDial(ctx, n, addr, pin.ClientTLS(alpnSmux))
	if err != nil {
		return nil, err
	}
	sess, err := smux.Client(tc, s.config())
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	return &smuxConn{s: sess, f: s.framing()}, nil
}

type smuxConn struct {
	s *smux.Session
	f framing
}

func (c *smuxConn) Open(context.Context) (Sender, error) {
	st, err := c.s.OpenStream()
	if err != nil {
		return nil, err
	}
	return c.f.sender(smuxStream{st}, func() { _ = st.Close() }), nil
}

func (c *smuxConn) Close() error { return c.s.Close() }

// smuxStream gives a smux stream the framer's half-close: Close finishes
// the write direction only (CloseWrite); the full Close runs once both
// directions are done.
type smuxStream struct{ *smux.Stream }

func (s smuxStream) Close() error { return s.CloseWrite() }
