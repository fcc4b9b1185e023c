package transport

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/mux"
)

// alpnMux is the ALPN protocol of the mux transport.
const alpnMux = "recordbench-mux"

// Mux multiplexes every record stream of a connection over ONE QUIC
// stream with bench/internal/mux, the way yamux, smux and HTTP/2 (gRPC)
// multiplex over one TCP connection: one writer, acks ahead of data,
// round robin between streams, per-stream windows equal to recordmux's
// defaults. Over a lossy simulated link it shows the head-of-line
// blocking those TCP multiplexers suffer, which simnet cannot model for
// TCP itself: it stands in for them in the hol case.
type Mux struct{ tuning Tuning }

// Name returns "mux".
func (Mux) Name() string { return "mux" }

// Describe says what the transport is.
func (Mux) Describe() string {
	return "all streams on ONE QUIC stream (bench/internal/mux), as yamux/smux/gRPC share one TCP connection"
}

// QUIC returns true.
func (Mux) QUIC() bool { return true }

// With applies t; its windows set the mux's stream window.
func (m Mux) With(t Tuning) Transport { m.tuning = m.tuning.merge(t); return m }

// config gives the mux recordmux's default windows unless tuned.
func (m Mux) config() *mux.Config {
	c := &mux.Config{WindowRecords: 32768, WindowBytes: 8 << 20}
	if m.tuning.WindowRecords > 0 {
		c.WindowRecords = m.tuning.WindowRecords
	}
	if m.tuning.WindowBytes > 0 {
		c.WindowBytes = m.tuning.WindowBytes
	}
	return c
}

// muxConn is one end of a mux connection: the QUIC connection and the
// session on its one stream.
type muxConn struct {
	qc      *quic.Conn
	sess    *mux.Session
	release func() // client only
	nextID  atomic.Uint64
	close   func() error
}

func newMuxConn(qc *quic.Conn, str *quic.Stream, cfg *mux.Config, release func()) *muxConn {
	c := &muxConn{qc: qc, sess: mux.New(str, cfg), release: release}
	c.close = sync.OnceValue(func() error {
		err := c.sess.Close()
		_ = closeQUIC(c.qc)
		if c.release != nil {
			c.release()
		}
		return err
	})
	return c
}

// Listen serves mux connections.
func (m Mux) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	ln, closeLn, err := quicListen(n, addr, id.ServerTLS(alpnMux), quicConfig(n, m.tuning))
	if err != nil {
		return nil, err
	}
	cfg := m.config()
	acceptConn := func(ctx context.Context) (*muxConn, error) {
		qc, err := ln.Accept(ctx)
		if err != nil {
			return nil, err
		}
		str, err := acceptQUICStream(ctx, qc)
		if err != nil {
			_ = closeQUIC(qc)
			return nil, err
		}
		return newMuxConn(qc, str, cfg, nil), nil
	}
	acceptStream := func(ctx context.Context, c *muxConn) (Receiver, error) {
		st, err := c.sess.Accept(ctx)
		if err != nil {
			// The client finished its session: finish ours in reply,
			// and leave closing the QUIC connection to the client, so
			// that our FIN is not cut off by the close.
			_ = c.sess.Close()
			select {
			case <-c.qc.Context().Done():
			case <-ctx.Done():
			}
			return nil, err
		}
		return muxReceiver{st}, nil
	}
	return serve(ln.Addr(), closeLn, acceptConn, acceptStream, func(c *muxConn) error { return c.close() }), nil
}

// Dial connects to a mux server and opens the connection's one stream.
func (m Mux) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	qc, release, err := quicDial(ctx, n, addr, pin.ClientTLS(alpnMux), quicConfig(n, m.tuning))
	if err != nil {
		return nil, err
	}
	str, err := openQUICStream(ctx, qc)
	if err != nil {
		_ = closeQUIC(qc)
		release()
		return nil, err
	}
	return newMuxConn(qc, str, m.config(), release), nil
}

// Open opens a logical stream, numbered by the client.
func (c *muxConn) Open(context.Context) (Sender, error) {
	st, err := c.sess.Open(c.nextID.Add(1))
	if err != nil {
		return nil, err
	}
	return muxSender{st}, nil
}

// Close finishes the session (the peer finishes its own in reply) and
// closes the QUIC connection.
func (c *muxConn) Close() error { return c.close() }

type muxSender struct{ st *mux.Stream }

func (s muxSender) Send(ctx context.Context, rec []byte) (uint64, error) { return s.st.Send(ctx, rec) }

// Flush returns at once: the session's writer sends as soon as it can.
func (s muxSender) Flush() error { return nil }

func (s muxSender) WaitApplied(ctx context.Context, seq uint64) error {
	return s.st.WaitAcked(ctx, seq)
}

func (s muxSender) Applied() uint64 { return s.st.Acked() }

// Close sends the stream's FIN after its records.
func (s muxSender) Close() error { return s.st.CloseSend() }

type muxReceiver struct{ st *mux.Stream }

func (r muxReceiver) Recv(ctx context.Context) (uint64, []byte, error) { return r.st.Recv(ctx) }

// Ack queues the ack; the session's writer sends it ahead of any data.
func (r muxReceiver) Ack(seq uint64) error { return r.st.Ack(seq) }

// Close has nothing to do: a receiver sends no records.
func (r muxReceiver) Close() error { return nil }
