package quicrecord

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCloseBounded: Close of a stream whose peer stopped reading (its
// writer is blocked by QUIC flow control) returns when its context ends
// or its CloseTimeout passes, whichever comes first, with a
// CodeCancelled *StreamError saying which, and resets the stream.
func TestCloseBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		ctxTimeout   time.Duration // 0: no deadline
		closeTimeout time.Duration
		want         time.Duration
		wantCause    error
	}{
		{"context first", 100 * time.Millisecond, time.Second, 100 * time.Millisecond, context.DeadlineExceeded},
		{"close timeout first", time.Second, 300 * time.Millisecond, 300 * time.Millisecond, os.ErrDeadlineExceeded},
		{"close timeout alone", 0, 200 * time.Millisecond, 200 * time.Millisecond, os.ErrDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				rawConn, qs := newSimQUIC(t, nil, nil, nil, simRTT/2)
				// A fixed window, so that the records outrun QUIC's flow
				// control and the writer blocks.
				conn, err := NewConn(qs, &Config{Stream: StreamConfig{CloseTimeout: tc.closeTimeout, Window: WindowFixed}})
				require.NoError(t, err)
				defer conn.Close()
				str, err := rawConn.OpenStreamSync(ctx)
				require.NoError(t, err)
				raw := newRawPeer(t, str)
				s := raw.handshake(ctx, conn, wideHello())
				sent := make(chan error, 1)
				go func() {
					rec := make([]byte, 1024)
					for {
						if _, err := s.Send(ctx, rec); err != nil {
							sent <- err
							return
						}
					}
				}()
				time.Sleep(time.Second) // the raw peer never reads: the writer blocks on flow control
				synctest.Wait()
				require.Less(t, s.Snapshot().Out.FlushedSeq, s.Snapshot().Out.LastSeq, "records wait for the peer")

				cctx := ctx
				if tc.ctxTimeout > 0 {
					var cancel context.CancelFunc
					cctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
					defer cancel()
				}
				start := time.Now()
				err = s.Close(cctx)
				require.Equal(t, tc.want, time.Since(start))
				require.ErrorIs(t, err, ErrCancelled)
				require.ErrorIs(t, err, tc.wantCause)
				require.ErrorIs(t, <-sent, net.ErrClosed, "Send fails once Close began")
				require.Error(t, s.Context().Err(), "the stream ended")
				require.NoError(t, s.Close(ctx), "Close after Close does nothing")
			})
		})
	}
}

// TestCloseWithErrorAfterClose: once a stream is closed, CloseWithError
// cannot send its code any more and says so; Close after either does
// nothing and returns nil.
func TestCloseWithErrorAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := newSimPair(t, nil, nil, nil, simRTT/2)

		o, a := p.openPair(t, false, StreamOptions{})
		require.NoError(t, o.Close(ctx))
		require.ErrorIs(t, o.CloseWithError(CodeApplicationMin, "too late"), ErrClosed)
		require.NoError(t, o.Close(ctx))
		_, err := a.Recv(ctx)
		require.ErrorIs(t, err, io.EOF, "the peer saw the graceful close, not the code")
		require.NoError(t, a.Close(ctx))

		o, a = p.openPair(t, false, StreamOptions{})
		require.NoError(t, o.CloseWithError(CodeApplicationMin, "first"))
		require.ErrorIs(t, o.CloseWithError(CodeApplicationMin+1, "second"), ErrClosed)
		require.NoError(t, o.Close(ctx))
		_, err = a.Recv(ctx)
		require.Equal(t, CodeApplicationMin, CodeOf(err), "the first code is the one the peer sees")
		require.NoError(t, a.Close(ctx))
	})
}

// TestSingleReceiver: a second Recv or Apply while one runs fails with
// ErrConcurrentReceive (so is a Recv from inside Apply's function), and
// the stream is usable again once the first returns.
func TestSingleReceiver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		o, a := p.openPair(t, false, StreamOptions{})
		got := make(chan Record, 1)
		go func() {
			r, err := a.Recv(ctx)
			require.NoError(t, err)
			got <- r
		}()
		synctest.Wait() // the first Recv waits for a record
		_, err := a.Recv(ctx)
		require.ErrorIs(t, err, ErrConcurrentReceive)
		require.EqualError(t, err, "quicrecord: Recv: another Recv or Apply of stream 0 is running")
		err = a.Apply(ctx, func(Record) error { return nil })
		require.ErrorIs(t, err, ErrConcurrentReceive)

		send(t, o, 2)
		require.Equal(t, uint64(1), (<-got).Seq)
		require.NoError(t, a.Ack(1))
		actx, cancel := context.WithCancel(ctx)
		var inner error
		err = a.Apply(actx, func(r Record) error {
			_, inner = a.Recv(ctx)
			cancel()
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, inner, ErrConcurrentReceive, "Apply is the receiver while it runs")
		require.NoError(t, o.Barrier(ctx), "Apply acked record 2")
		send(t, o, 1)
		r, err := a.Recv(ctx)
		require.NoError(t, err, "one receiver at a time, not one for good")
		require.Equal(t, uint64(3), r.Seq)
	})
}

// TestListenerCloseLeavesConnections: Listener.Close stops accepting
// (Accept fails, a new Dial is refused) but, like quic-go's, leaves the
// accepted connections and their streams working; the socket Listen made
// is released once the last of them ends.
func TestListenerCloseLeavesConnections(t *testing.T) {
	p := newLoopbackPair(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := p.client.OpenRecordStream(ctx, StreamOptions{})
	require.NoError(t, err)
	a, err := p.server.AcceptRecordStream(ctx)
	require.NoError(t, err)
	addr := p.ln.Addr().String()

	require.NoError(t, p.ln.Close())
	require.NoError(t, p.ln.Close(), "idempotent")
	_, err = p.ln.Accept(ctx)
	require.ErrorIs(t, err, ErrClosed)
	_, ctls := tlsPair(t)
	_, err = Dial(ctx, addr, ctls, &Config{HandshakeTimeout: 300 * time.Millisecond})
	var de *DialError
	require.ErrorAs(t, err, &de, "no new connection")

	send(t, o, 3)
	go func() { _ = a.Apply(ctx, func(Record) error { return nil }) }()
	require.NoError(t, o.Barrier(ctx), "the accepted connection still carries records")
	pc, err := net.ListenPacket("udp", addr)
	if err == nil {
		_ = pc.Close()
	}
	require.Error(t, err, "the socket stays open while a connection lives")

	require.NoError(t, p.server.Close())
	require.Eventually(t, func() bool {
		pc, err := net.ListenPacket("udp", addr)
		if err == nil {
			_ = pc.Close()
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond, "the socket is released with the last connection")
}

// TestListenerShutdown: Shutdown stops accepting, closes an idle
// connection at once (its peer sees a graceful close), refuses streams
// opened on a busy one, closes it once its last stream ended and returns
// nil; with streams that never end, it closes them all when ctx ends and
// returns ctx's error.
func TestListenerShutdown(t *testing.T) {
	t.Parallel()
	for _, streamsEnd := range []bool{true, false} {
		t.Run(map[bool]string{true: "streams end", false: "ctx ends"}[streamsEnd], func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				sl := newSimListener(t, nil, nil, simRTT/2)
				idle := sl.dial(nil)
				busy := sl.dial(nil)
				o, a := busy.openPair(t, false, StreamOptions{})

				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- sl.ln.Shutdown(sctx) }()
				time.Sleep(simRTT)
				_, err := idle.client.AcceptRecordStream(ctx)
				require.ErrorIs(t, err, ErrConnClosedByPeer, "the idle connection is closed at once")
				_, err = sl.ln.Accept(ctx)
				require.ErrorIs(t, err, ErrClosed)
				_, err = busy.client.OpenRecordStream(ctx, StreamOptions{})
				require.ErrorIs(t, err, ErrRefused, "no new stream on a connection shutting down")
				require.Empty(t, done)

				if streamsEnd {
					require.NoError(t, o.Close(ctx))
					require.NoError(t, a.Close(ctx))
					require.NoError(t, <-done)
					require.Less(t, time.Since(start), time.Minute)
				} else {
					require.ErrorIs(t, <-done, context.DeadlineExceeded)
					require.Equal(t, time.Minute, time.Since(start))
				}
				_, err = busy.client.AcceptRecordStream(ctx)
				require.ErrorIs(t, err, ErrConnClosedByPeer)
				require.Error(t, busy.server.Context().Err())
			})
		})
	}
}
