package mux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// halfConn is one end of an in-memory byte stream with a half-close, like
// a QUIC stream: Close finishes the write direction only, CancelRead
// stops the read direction.
type halfConn struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (c *halfConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *halfConn) Write(p []byte) (int, error)     { return c.w.Write(p) }
func (c *halfConn) Close() error                    { return c.w.Close() }
func (c *halfConn) CancelRead(quic.StreamErrorCode) { _ = c.r.CloseWithError(net.ErrClosed) }
func (c *halfConn) abort()                          { c.CancelRead(0); _ = c.w.CloseWithError(net.ErrClosed) }

func halfPipe() (*halfConn, *halfConn) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return &halfConn{r: ar, w: aw}, &halfConn{r: br, w: bw}
}

// sessionPair connects two sessions through an in-memory pipe.
func sessionPair(t *testing.T, cfg *Config) (a, b *Session) {
	t.Helper()
	ca, cb := halfPipe()
	a, b = New(ca, cfg), New(cb, cfg)
	t.Cleanup(func() {
		ca.abort()
		cb.abort()
		<-a.readerDone
		<-a.writerDone
		<-b.readerDone
		<-b.writerDone
	})
	return a, b
}

// rawPeer returns a session whose peer is the raw byte stream cb, for
// tests that write frames by hand.
func rawPeer(t *testing.T) (*Session, *halfConn) {
	t.Helper()
	ca, cb := halfPipe()
	s := New(ca, nil)
	t.Cleanup(func() {
		cb.abort()
		<-s.readerDone
		<-s.writerDone
	})
	return s, cb
}

func record(rng *rand.Rand, stream, seq uint64) []byte {
	n := rng.IntN(3000)
	b := make([]byte, 16+n)
	copy(b, fmt.Sprintf("%07d:%08d", stream, seq))
	return b
}

func TestSessionRoundTripInterleaved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A small window, so that senders block and acks matter.
	a, b := sessionPair(t, &Config{WindowRecords: 16, WindowBytes: 8 << 10, MaxWrite: 4 << 10})
	const perStream = 2000
	ids := []uint64{1, 2, 1 << 20}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(ids))
	for i, id := range ids {
		wg.Go(func() {
			tx := a.Stream(id)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			var last uint64
			for seq := uint64(1); seq <= perStream; seq++ {
				got, err := tx.Send(ctx, record(rng, id, seq))
				if err != nil {
					errs <- err
					return
				}
				if got != seq {
					errs <- fmt.Errorf("stream %d: seq %d, want %d", id, got, seq)
				}
				last = got
			}
			errs <- tx.WaitAcked(ctx, last)
		})
		wg.Go(func() {
			rx := b.Stream(id)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for want := uint64(1); want <= perStream; want++ {
				seq, rec, err := rx.Recv(ctx)
				if err != nil {
					errs <- err
					return
				}
				if seq != want || !bytes.Equal(rec, record(rng, id, want)) {
					errs <- fmt.Errorf("stream %d: got seq %d %q, want %d", id, seq, rec[:16], want)
					return
				}
				if err := rx.Ack(seq); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, id := range ids {
		require.Equal(t, uint64(perStream), a.Stream(id).Acked())
	}
	closeBoth(t, a, b)
}

func closeBoth(t *testing.T, a, b *Session) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	require.NoError(t, a.Close())
	require.NoError(t, <-done)
}

func TestSessionWindowBlocksSend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := sessionPair(t, &Config{WindowRecords: 4})
	tx, rx := a.Stream(1), b.Stream(1)
	for range 4 {
		_, err := tx.Send(ctx, []byte("x"))
		require.NoError(t, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	_, err := tx.Send(short, []byte("x"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	seq, _, err := rx.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, rx.Ack(seq))
	require.NoError(t, tx.WaitAcked(ctx, 1))
	seq, err = tx.Send(ctx, []byte("y"))
	require.NoError(t, err)
	require.Equal(t, uint64(5), seq)
	require.ErrorIs(t, rx.Ack(2), ErrNotDelivered)
	closeBoth(t, a, b)
	_, _, err = rx.Recv(ctx)
	require.NoError(t, err, "records received before the close stay readable")
}

func TestSessionEOFAndErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := sessionPair(t, nil)
	_, err := a.Stream(3).Send(ctx, make([]byte, DefaultMaxRecordSize+1))
	require.ErrorIs(t, err, ErrTooLarge)
	closeBoth(t, a, b)
	_, _, err = b.Stream(3).Recv(ctx)
	require.ErrorIs(t, err, io.EOF)
	_, err = a.Stream(3).Send(ctx, []byte("late"))
	require.True(t, errors.Is(err, net.ErrClosed), "got %v", err)
}

func TestSessionPeerViolation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, cb := rawPeer(t)
	// An ack for a record never sent fails the session.
	go func() { _, _ = cb.Write(AppendAck(nil, 1, 5)) }()
	_, _, err := s.Stream(1).Recv(ctx)
	require.ErrorIs(t, err, ErrAckRange)
}

func TestSessionOpenAcceptFin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := sessionPair(t, nil)
	tx, err := a.Open(7)
	require.NoError(t, err)
	_, err = a.Open(7)
	require.ErrorIs(t, err, ErrStreamExists)
	for i := range 3 {
		_, err := tx.Send(ctx, []byte{byte(i)})
		require.NoError(t, err)
	}
	require.NoError(t, tx.CloseSend())
	require.NoError(t, tx.CloseSend(), "idempotent")
	_, err = tx.Send(ctx, []byte("late"))
	require.ErrorIs(t, err, ErrFinished)

	rx, err := b.Accept(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(7), rx.ID())
	for want := uint64(1); want <= 3; want++ {
		seq, rec, err := rx.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, want, seq)
		require.Equal(t, []byte{byte(want - 1)}, rec)
		require.NoError(t, rx.Ack(seq))
	}
	_, _, err = rx.Recv(ctx)
	require.ErrorIs(t, err, io.EOF, "after the FIN")
	require.NoError(t, tx.WaitAcked(ctx, 3), "acks flow after the FIN")

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	_, err = b.Accept(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing else was opened")
	closeBoth(t, a, b)
	_, err = b.Accept(ctx)
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestSessionDataAfterFin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, cb := rawPeer(t)
	var b []byte
	b = AppendControl(b, TypeOpen, 1)
	b = AppendControl(b, TypeFin, 1)
	b = AppendData(b, 1, []byte("x"))
	go func() { _, _ = cb.Write(b) }()
	_, err := s.Accept(ctx)
	require.NoError(t, err)
	_, err = s.Accept(ctx)
	require.ErrorIs(t, err, ErrAfterFin)
}
