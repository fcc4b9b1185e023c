package quicrecord

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// abortRounds is how many rounds each busy-abort test runs: each round
// aborts the sender at a different point of its flat-out stream.
const abortRounds = 50

// wideHello is a raw peer's HELLO with windows wide enough that a
// library sender is limited by QUIC, not by the recordmux window.
func wideHello() *frames.Hello {
	h := rawHello()
	h.WindowRecords, h.WindowBytes = 1<<20, 64<<20
	return h
}

// busyStream is a library stream accepted from a raw peer, sending 1 KiB
// records flat out (64 KiB batches) until it fails.
type busyStream struct {
	raw     *rawPeer
	s       *RecordStream
	sendErr chan error
}

func newBusyStream(t *testing.T, busy bool) *busyStream {
	ctx := context.Background()
	rawConn, qs := newSimQUIC(t, nil, nil, nil, simRTT/2)
	// A fixed window: the sender runs flat out with up to 8 MiB in
	// flight, more than QUIC's stream window, so that a peer that stops
	// reading leaves the writer blocked inside a Write.
	conn, err := NewConn(qs, &Config{Stream: StreamConfig{Window: WindowFixed}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	str, err := rawConn.OpenStreamSync(ctx)
	require.NoError(t, err)
	b := &busyStream{raw: newRawPeer(t, str), sendErr: make(chan error, 1)}
	b.s = b.raw.handshake(ctx, conn, wideHello())
	if !busy {
		close(b.sendErr)
		return b
	}
	go func() {
		rec := make([]byte, 1024)
		for {
			if _, err := b.s.Send(ctx, rec); err != nil {
				b.sendErr <- err
				return
			}
		}
	}()
	return b
}

// readUntilError has the raw peer read the library's batches, acking
// each one, and call trigger (once) after threshold bytes of them; from
// then on it reads without acking. It returns the ERROR frame that must
// follow whole batches, after checking that a reset with its code comes
// next, and how many batches arrived between the trigger and the ERROR.
func (b *busyStream) readUntilError(t *testing.T, threshold int, trigger func()) (frames.ErrorFrame, int) {
	t.Helper()
	read, after := 0, 0
	triggered := threshold == 0
	if triggered {
		trigger()
	}
	for {
		typ, p, err := b.raw.next()
		require.NoError(t, err, "the stream ended without an ERROR frame (triggered %v after %d bytes)", triggered, read)
		switch typ {
		case frames.TypeBatch:
			batch, _, err := frames.ParseBatch(p, 1<<20)
			require.NoError(t, err, "only whole frames before the ERROR")
			read += len(p)
			if triggered {
				after++
				continue
			}
			b.raw.write(ackFrame(batch.LastSeq()))
			if read >= threshold {
				triggered = true
				trigger()
			}
		case frames.TypeAck:
		case frames.TypeError:
			require.True(t, triggered, "an ERROR before the abort")
			f, _, err := frames.ParseError(p)
			require.NoError(t, err)
			_, _, err = b.raw.next()
			var se *quic.StreamError
			require.ErrorAs(t, err, &se, "the reset follows the ERROR")
			require.Equal(t, quic.StreamErrorCode(f.Code), se.ErrorCode)
			return f, after
		default:
			t.Fatalf("unexpected frame %v", typ)
		}
	}
}

// requireLocalAbort checks what the library side's callers see after an
// abort this side chose: the stream's cause, and Send failing with it.
func requireLocalAbort(t *testing.T, b *busyStream, code ErrorCode, reason string) {
	t.Helper()
	cause := context.Cause(b.s.Context())
	var se *StreamError
	require.ErrorAs(t, cause, &se)
	require.Equal(t, code, se.Code)
	require.Equal(t, reason, se.Reason)
	require.False(t, se.Remote)
	if err, ok := <-b.sendErr; ok {
		require.ErrorIs(t, err, &StreamError{Code: code}, "the busy Send failed with the abort")
	}
	_, err := b.s.Send(context.Background(), []byte("late"))
	require.Same(t, cause, err, "Send fails with the abort error")
}

// TestAbortReasonBusyViolation: a stream sending flat out is aborted by a
// protocol violation its raw peer commits (a second HELLO) at a different
// point of the stream each round. In every round the peer receives,
// after whole batches only, ERROR(seq 0, UNEXPECTED_FRAME, "second
// HELLO") and then the reset with that code.
func TestAbortReasonBusyViolation(t *testing.T) {
	t.Parallel()
	var busyRounds atomic.Int64 // the rounds run in parallel
	t.Cleanup(func() {
		t.Logf("%d of %d rounds had batches in flight between the violation and the ERROR", busyRounds.Load(), abortRounds)
	})
	for round := range abortRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := newBusyStream(t, true)
				threshold := 64<<10 + round*(97<<10)
				f, after := b.readUntilError(t, threshold, func() { b.raw.write(rawHello().Append(nil)) })
				require.Equal(t, frames.ErrorFrame{Code: CodeUnexpectedFrame, Reason: "second HELLO"}, f)
				if after > 0 {
					busyRounds.Add(1)
				}
				requireLocalAbort(t, b, CodeUnexpectedFrame, "second HELLO")
				require.NoError(t, b.s.Close(context.Background()))
			})
		})
	}
}

// TestAbortReasonBusyCloseWithError: a stream sending flat out is closed
// with CloseWithError at a different point of the stream each round. The
// raw peer receives ERROR(seq 0, code, reason) after whole batches, then
// the reset; CloseWithError returns once the loops ended.
func TestAbortReasonBusyCloseWithError(t *testing.T) {
	t.Parallel()
	const code = CodeApplicationMin + 7
	const reason = "shutting down: disk full — réessayez"
	for round := range abortRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := newBusyStream(t, true)
				closed := make(chan error, 1)
				threshold := 64<<10 + round*(97<<10)
				f, _ := b.readUntilError(t, threshold, func() {
					go func() { closed <- b.s.CloseWithError(code, reason) }()
				})
				require.Equal(t, frames.ErrorFrame{Code: code, Reason: reason}, f)
				require.NoError(t, <-closed)
				requireLocalAbort(t, b, code, reason)
			})
		})
	}
}

// TestAbortReasonBusyCloseWithErrorLibraryPeer: the same, with this
// library on both ends: the receiving side's Apply and its stream's cause
// report the sender's code and exact reason, as a remote error.
func TestAbortReasonBusyCloseWithErrorLibraryPeer(t *testing.T) {
	t.Parallel()
	const code = CodeApplicationMin + 8
	const reason = "rebalancing"
	for round := range abortRounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				p := newSimPair(t, nil, nil, nil, simRTT/2)
				o, a := p.openPair(t, false, StreamOptions{})
				applied := make(chan uint64, 64)
				applyErr := make(chan error, 1)
				go func() {
					applyErr <- a.Apply(ctx, func(r Record) error {
						select {
						case applied <- r.Seq:
						default:
						}
						return nil
					})
				}()
				go func() {
					rec := make([]byte, 1024)
					for {
						if _, err := o.Send(ctx, rec); err != nil {
							return
						}
					}
				}()
				// Abort once the receiver applied past a point that moves
				// with the round.
				for seq := range applied {
					if seq >= uint64(64+round*97) {
						break
					}
				}
				require.NoError(t, o.CloseWithError(code, reason))
				err := <-applyErr
				var se *StreamError
				require.ErrorAs(t, err, &se)
				require.Equal(t, code, se.Code)
				require.Equal(t, reason, se.Reason)
				require.True(t, se.Remote)
				<-a.Context().Done()
				require.Equal(t, err, context.Cause(a.Context()))
				require.NoError(t, a.Close(context.Background()))
			})
		})
	}
}

// TestAbortReasonIdle: an idle stream aborted by CloseWithError or by a
// violation delivers its ERROR and reset too.
func TestAbortReasonIdle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trigger func(b *busyStream, closed chan<- error)
		code    ErrorCode
		reason  string
	}{
		{"CloseWithError", func(b *busyStream, closed chan<- error) {
			go func() { closed <- b.s.CloseWithError(CodeApplicationMin+1, "idle close") }()
		}, CodeApplicationMin + 1, "idle close"},
		{"violation", func(b *busyStream, closed chan<- error) {
			b.raw.write(ackFrame(5))
			close(closed)
		}, CodeAckOutOfRange, "ack 5 beyond the highest sequence number sent, 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := newBusyStream(t, false)
				time.Sleep(simRTT) // quiet
				closed := make(chan error, 1)
				f, after := b.readUntilError(t, 0, func() { tc.trigger(b, closed) })
				require.Equal(t, frames.ErrorFrame{Code: tc.code, Reason: tc.reason}, f)
				require.Zero(t, after)
				require.NoError(t, <-closed)
				requireLocalAbort(t, b, tc.code, tc.reason)
				require.NoError(t, b.s.Close(context.Background()))
			})
		})
	}
}

// TestAbortStalledPeer: a peer that stopped reading leaves the writer
// blocked inside a batch. CloseWithError still fails local calls at once,
// returns after abortTimeout, and the peer gets the reset with the code
// alone: an ERROR cannot follow half a frame.
func TestAbortStalledPeer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const code = CodeApplicationMin + 2
		b := newBusyStream(t, true)
		// The raw peer reads nothing: QUIC flow control stops the writer
		// inside a Write, and the window stops Send.
		time.Sleep(5 * time.Second)
		snap := b.s.Snapshot()
		time.Sleep(5 * time.Second)
		require.Equal(t, snap.Out, b.s.Snapshot().Out, "the writer is stuck")
		require.Less(t, snap.Out.FlushedSeq, snap.Out.LastSeq, "with records taken and not written")

		start := time.Now()
		closed := make(chan error, 1)
		go func() { closed <- b.s.CloseWithError(code, "stalled") }()
		<-b.s.Context().Done()
		err := <-b.sendErr
		require.ErrorIs(t, err, &StreamError{Code: code}, "the blocked Send fails at once")
		require.ErrorIs(t, b.s.Barrier(context.Background()), &StreamError{Code: code}, "so does Barrier")
		require.Zero(t, time.Since(start))
		require.NoError(t, <-closed)
		require.Equal(t, abortTimeout, time.Since(start), "CloseWithError waited for the write in progress, no longer")
		b.raw.expectReset(code)
	})
}
