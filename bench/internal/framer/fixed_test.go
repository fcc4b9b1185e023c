package framer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/bench/internal/framer"
)

// TestFixedSizeRoundTrip carries fixed-size records across a record
// boundary of the 64 KiB read buffer (1000 B does not divide it) and
// checks order, content, acks and the clean end.
func TestFixedSizeRoundTrip(t *testing.T) {
	const records, size = 3000, 1000
	cs, ss := newStreams(t, nil)
	done := make(chan error, 1)
	go func() {
		r := framer.NewFixedReceiver(ss, 0)
		for want := uint64(1); ; want++ {
			seq, rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				if want != records+1 {
					done <- errors.New("stream ended early")
					return
				}
				done <- r.Close()
				return
			}
			if err != nil {
				done <- err
				return
			}
			if seq != want || len(rec) != size || binary.BigEndian.Uint64(rec) != seq {
				done <- errors.New("unexpected record")
				return
			}
			if err := r.Ack(seq); err != nil {
				done <- err
				return
			}
		}
	}()
	s := framer.NewFixedSender(cs, 0)
	rec := make([]byte, size)
	for i := uint64(1); i <= records; i++ {
		binary.BigEndian.PutUint64(rec, i)
		seq, err := s.Send(rec)
		require.NoError(t, err)
		require.Equal(t, i, seq)
	}
	_, err := s.Send(make([]byte, size+1))
	require.ErrorIs(t, err, framer.ErrSizeChanged)
	require.NoError(t, s.Flush())
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	require.NoError(t, s.WaitAcked(ctx, records))
	require.NoError(t, s.Close())
	require.NoError(t, <-done)
}

// TestFixedSizeWire pins the format: the size once, then the records with
// no prefix.
func TestFixedSizeWire(t *testing.T) {
	w := halfBuffer{ended: make(chan struct{})}
	s := framer.NewFixedSender(&w, 0)
	for _, r := range [][]byte{[]byte("abc"), []byte("def")} {
		_, err := s.Send(r)
		require.NoError(t, err)
	}
	require.NoError(t, s.Flush())
	require.Equal(t, []byte("\x03abcdef"), w.out.Bytes())
	w.finish()
	require.NoError(t, s.Close())
}

// TestFixedSizeZeroRejected: a zero record size in the stream header is
// malformed.
func TestFixedSizeZeroRejected(t *testing.T) {
	hb := &halfBuffer{}
	hb.in.Reset([]byte{0})
	r := framer.NewFixedReceiver(hb, 0)
	_, _, err := r.Next()
	require.ErrorIs(t, err, framer.ErrBadLength)
}

// halfBuffer is an in-memory framer.Stream: writes collect in out; reads
// return in, then block until finish (or end at once when ended is nil).
type halfBuffer struct {
	in    bytes.Reader
	out   bytes.Buffer
	ended chan struct{}
}

func (b *halfBuffer) Read(p []byte) (int, error) {
	if b.in.Len() > 0 {
		return b.in.Read(p)
	}
	if b.ended != nil {
		<-b.ended
	}
	return 0, io.EOF
}

func (b *halfBuffer) Write(p []byte) (int, error) { return b.out.Write(p) }

func (b *halfBuffer) Close() error { return nil }

func (b *halfBuffer) finish() { close(b.ended) }

// TestHasRecord: HasRecord tells whether Next can return a record from
// the buffer alone, in both formats.
func TestHasRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte // two whole records, then the first bytes of a third
		new  func(framer.Stream, int) *framer.Receiver
	}{
		{"prefixed", []byte("\x03abc\x02de\x05fg"), framer.NewReceiver},
		{"fixed", []byte("\x02abcde"), framer.NewFixedReceiver},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb := &halfBuffer{}
			hb.in.Reset(tc.in)
			r := tc.new(hb, 0)
			_, _, err := r.Next()
			require.NoError(t, err)
			require.True(t, r.HasRecord(), "the second record is buffered")
			_, _, err = r.Next()
			require.NoError(t, err)
			require.False(t, r.HasRecord(), "only part of the third")
		})
	}
}
