package quicrecord

import (
	"context"
	"fmt"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestHelloTimeout: a peer that opens a stream and sends nothing, or a
// HELLO one byte a second, is reset with CodeHelloTimeout exactly at the
// timeout; the connection's other streams carry on.
func TestHelloTimeout(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"silent", "one byte a second"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				cfg := &Config{HelloTimeout: 3 * time.Second}
				rawConn, qs := newSimQUIC(t, nil, cfg, nil, simRTT/2)
				refused := make(chan *StreamError, 10)
				cfg.OnStreamRefused = func(_ *AcceptInfo, err *StreamError) { refused <- err }
				conn, err := NewConn(qs, cfg)
				require.NoError(t, err)
				defer conn.Close()
				str, err := rawConn.OpenStreamSync(ctx)
				require.NoError(t, err)
				// quic-go announces a stream with its first byte.
				hello := rawHello().Append(nil)
				_, err = str.Write(hello[:1])
				require.NoError(t, err)
				start := time.Now()
				dripDone := make(chan struct{})
				if mode != "silent" {
					go func() {
						defer close(dripDone)
						for _, b := range hello[1:] {
							time.Sleep(time.Second)
							if _, err := str.Write([]byte{b}); err != nil {
								return
							}
						}
					}()
				} else {
					close(dripDone)
				}
				defer func() { <-dripDone }()
				raw := newRawPeer(t, str)
				raw.expectRefusal(CodeHelloTimeout)
				// The first byte arrives after half a round trip; the
				// timeout runs from there; the reset takes another half.
				require.Equal(t, simRTT+cfg.HelloTimeout, time.Since(start))
				require.ErrorIs(t, <-refused, ErrHelloTimeout)
				checkOtherStreamWorks(t, conn, rawConn)
			})
		})
	}
}

// TestCloseLeavesNoGoroutines: when Close returns, the stream's loops
// have ended; when Conn.Close returns, nothing of the connection remains.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	p := newLoopbackPair(t, nil, nil)
	o, a := p.openPair(t, false, StreamOptions{})
	send(t, o, 100)
	require.NoError(t, o.Close(context.Background()))
	for _, ch := range []chan struct{}{o.writerDone, o.readerDone} {
		select {
		case <-ch:
		default:
			t.Fatal("a loop of the closed stream is still running")
		}
	}
	// a is left open: Conn.Close must end it.
	_ = a
	require.NoError(t, p.client.Close())
	require.NoError(t, p.server.Close())
	require.NoError(t, p.ln.Close())
	require.NoError(t, goleak.Find(before))
}

// TestTransferSimnetMatrix runs 100,000 records over simnet with either
// side opening and either side sending.
func TestTransferSimnetMatrix(t *testing.T) {
	t.Parallel()
	for _, serverOpens := range []bool{false, true} {
		for _, acceptorSends := range []bool{false, true} {
			t.Run(fmt.Sprintf("serverOpens=%v/acceptorSends=%v", serverOpens, acceptorSends), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					p := newSimPair(t, nil, nil, nil, 5*time.Millisecond)
					o, a := p.openPair(t, serverOpens, StreamOptions{})
					tx, rx := o, a
					if acceptorSends {
						tx, rx = a, o
					}
					transfer(t, tx, rx, 100_000, 64, 3)
					require.NoError(t, tx.Close(context.Background()))
					require.NoError(t, rx.Close(context.Background()))
				})
			})
		}
	}
}

// TestALPNDefault: Dial and Listen set the recordmux ALPN when none is
// given, and a client asking for another protocol fails Dial clearly.
func TestALPNDefault(t *testing.T) {
	p := newLoopbackPair(t, nil, nil)
	require.Equal(t, ALPN, p.client.QUIC().ConnectionState().TLS.NegotiatedProtocol)

	_, ctls := tlsPair(t)
	stls, _ := tlsPair(t)
	ln, err := Listen("127.0.0.1:0", stls, nil)
	require.NoError(t, err)
	defer ln.Close()
	ctls.NextProtos = []string{"h3"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, ln.Addr().String(), ctls, nil)
	require.ErrorIs(t, err, ErrALPNMismatch)
}

// TestStreamCreditReturned opens and closes 2,000 streams one after the
// other, with each close order, on a connection that allows 1,024 at once:
// every closed stream must complete in quic-go on both sides and give its
// credit back, or the 1,025th open blocks.
func TestStreamCreditReturned(t *testing.T) {
	t.Parallel()
	for mode := range 4 {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newSimPair(t, nil, nil, nil, time.Millisecond)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				for i := range 2000 {
					o, err := p.client.OpenRecordStream(ctx, StreamOptions{DataID: uint64(i)})
					require.NoError(t, err, "cycle %d", i)
					a, err := p.server.AcceptRecordStream(ctx)
					require.NoError(t, err)
					_, err = o.Send(ctx, []byte("x"))
					require.NoError(t, err)
					switch mode {
					case 0: // opener closes first, acceptor drains to EOF
						require.NoError(t, o.Close(context.Background()))
						_, err = a.Recv(ctx)
						require.NoError(t, err)
						_, err = a.Recv(ctx)
						require.ErrorIs(t, err, io.EOF)
						require.NoError(t, a.Close(context.Background()))
					case 1: // acceptor closes at once
						require.NoError(t, a.Close(context.Background()))
						require.NoError(t, o.Close(context.Background()))
					case 2: // both at once
						done := make(chan struct{})
						go func() { _ = a.Close(context.Background()); close(done) }()
						require.NoError(t, o.Close(context.Background()))
						<-done
					case 3: // apply-based
						go func() { _ = a.Apply(ctx, func(Record) error { return nil }); _ = a.Close(context.Background()) }()
						require.NoError(t, o.Barrier(ctx))
						require.NoError(t, o.Close(context.Background()))
					}
				}
			})
		})
	}
}

// TestStatelessResetAfterRestart: a listener restarted on the same port
// with the same StatelessResetKey resets the connections of its previous
// run, so a client learns at once instead of after the idle timeout.
func TestStatelessResetAfterRestart(t *testing.T) {
	var key quic.StatelessResetKey
	copy(key[:], "0123456789abcdef0123456789abcdef")
	cfg := &Config{StatelessResetKey: &key}
	stls, ctls := tlsPair(t)
	ln, err := Listen("127.0.0.1:0", stls, cfg)
	require.NoError(t, err)
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		if c, err := ln.Accept(ctx); err == nil {
			_, _ = c.AcceptRecordStream(ctx)
		}
	}()
	client, err := Dial(ctx, addr, ctls, cfg)
	require.NoError(t, err)
	defer client.Close()
	s, err := client.OpenRecordStream(ctx, StreamOptions{})
	require.NoError(t, err)
	// The server vanishes without closing its connection (its transport
	// is torn down), then comes back on the same port.
	ln.cleanup()
	_ = ln.Close()
	ln2, err := Listen(addr, stls, cfg)
	require.NoError(t, err)
	defer ln2.Close()
	for ctx.Err() == nil {
		if _, err := s.Send(ctx, []byte("x")); err != nil {
			break
		}
		_ = s.Flush(ctx)
		time.Sleep(10 * time.Millisecond)
		if client.Context().Err() != nil {
			break
		}
	}
	<-client.Context().Done()
	// A stateless reset, not the 30 s idle timeout, ended the connection.
	var sr *quic.StatelessResetError
	require.ErrorAs(t, context.Cause(client.Context()), &sr)
}
