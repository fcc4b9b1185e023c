package framer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// ackReadBufSize is the bufio buffer for reading acks. Acks are a few bytes
// each, so a small buffer already batches many of them per Read.
const ackReadBufSize = 4 << 10

// Sender writes records to the send direction of a stream and reads the
// receiver's cumulative acks from its receive direction.
//
// Send, Flush and Close must be called from one goroutine; WaitAcked is safe
// for concurrent use.
type Sender struct {
	str Stream
	w   *bufio.Writer
	hdr [binary.MaxVarintLen64]byte
	// fixed is the record size of a fixed-size sender (see
	// NewFixedSender) once its first record fixed it; -1 for a
	// length-prefixed sender, 0 before the first record.
	fixed int

	// sent is the sequence number of the last record passed to Send. Only
	// the sending goroutine writes it; the ack reader and WaitAcked read it.
	sent atomic.Uint64

	// readerDone is closed when the ack reader goroutine exits.
	readerDone chan struct{}

	mu    sync.Mutex
	acked uint64 // highest cumulative ack received
	// ackErr is set when the ack reader exits; acks above acked will never
	// come.
	ackErr error
	// notify is closed and cleared when acked advances or ackErr is set. It
	// is made lazily by a waiter, so acks that nobody waits for cost no
	// allocation.
	notify chan struct{}
}

// NewSender returns a Sender for str, whose writes go through a bufio.Writer
// of bufSize bytes (64 KiB when bufSize is 0 or negative). It starts the ack-reader
// goroutine, which runs until the ack direction of str ends.
func NewSender(str Stream, bufSize int) *Sender {
	if bufSize <= 0 {
		bufSize = defaultBufSize
	}
	s := &Sender{
		str:        str,
		w:          bufio.NewWriterSize(str, bufSize),
		fixed:      -1,
		readerDone: make(chan struct{}),
	}
	go s.readAcks()
	return s
}

// NewFixedSender is NewSender for the fixed-size format: the first record
// fixes the size of every record of the stream, which is written once as
// a uvarint before it; records follow back to back with no length prefix.
// Send refuses a record of another size with [ErrSizeChanged].
func NewFixedSender(str Stream, bufSize int) *Sender {
	s := NewSender(str, bufSize)
	s.fixed = 0
	return s
}

// Send buffers one record and returns its sequence number. The record is
// on its way once the buffer fills or [Sender.Flush] is called. rec may be
// reused as soon as Send returns. A record above [MaxRecordSize] is refused
// with [ErrRecordTooLarge] and uses no sequence number; after any other
// error (a stream write failed) the Sender is unusable.
func (s *Sender) Send(rec []byte) (seq uint64, err error) {
	if len(rec) > MaxRecordSize {
		return 0, ErrRecordTooLarge
	}
	prefix := s.fixed < 0
	if s.fixed >= 0 && len(rec) != s.fixed {
		if s.sent.Load() > 0 {
			return 0, fmt.Errorf("%w: %d bytes after %d", ErrSizeChanged, len(rec), s.fixed)
		}
		s.fixed, prefix = len(rec), true // the stream header
	}
	// Count the record as sent before its bytes can reach the peer: a
	// record at least as big as the buffer goes straight to the stream
	// (bufio.Writer skips the copy), and its ack may arrive before Write
	// returns.
	seq = s.sent.Load() + 1
	s.sent.Store(seq)
	if prefix {
		n := binary.PutUvarint(s.hdr[:], uint64(len(rec)))
		if _, err := s.w.Write(s.hdr[:n]); err != nil {
			return 0, err
		}
	}
	if _, err := s.w.Write(rec); err != nil {
		return 0, err
	}
	return seq, nil
}

// Flush writes all buffered records to the stream.
func (s *Sender) Flush() error {
	return s.w.Flush()
}

// Acked returns the highest sequence number acked so far.
func (s *Sender) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// WaitAcked blocks until the receiver has acked seq (or a later record), the
// ack direction ends, or ctx is done. An ack that has already arrived wins
// over a done ctx or an ended stream. seq must have been returned by Send;
// otherwise WaitAcked returns [ErrNotSent]. It does not flush.
func (s *Sender) WaitAcked(ctx context.Context, seq uint64) error {
	if seq > s.sent.Load() {
		return ErrNotSent
	}
	for {
		s.mu.Lock()
		if s.acked >= seq {
			s.mu.Unlock()
			return nil
		}
		if s.ackErr != nil {
			err := s.ackErr
			s.mu.Unlock()
			return err
		}
		if s.notify == nil {
			s.notify = make(chan struct{})
		}
		ch := s.notify
		s.mu.Unlock()

		select {
		case <-ch:
		case <-ctx.Done():
			// Prefer an ack that raced with the cancellation.
			s.mu.Lock()
			acked := s.acked
			s.mu.Unlock()
			if acked >= seq {
				return nil
			}
			return context.Cause(ctx)
		}
	}
}

// Close flushes, closes the send direction of the stream (FIN), and waits for
// the ack-reader goroutine to exit, that is until the receiver has closed its
// direction after its last ack or the stream or connection has failed. Close
// does not wait for any particular ack; use [Sender.WaitAcked] for that.
func (s *Sender) Close() error {
	err := s.w.Flush()
	if cerr := s.str.Close(); err == nil {
		err = cerr
	}
	<-s.readerDone
	return err
}

// readAcks is the ack-reader goroutine. It owns the receive direction of the
// stream; on an invalid ack it stops it with CancelRead (error code 0)
// when the stream has that method. It publishes the newest ack once per
// burst (when its buffer runs dry), not per ack, to take the lock and wake
// waiters less often.
func (s *Sender) readAcks() {
	defer close(s.readerDone)
	br := bufio.NewReaderSize(s.str, ackReadBufSize)
	var last uint64
	for {
		ack, err := binary.ReadUvarint(br)
		if err != nil {
			s.publish(last, ackReadError(err))
			return
		}
		if ack < last || ack > s.sent.Load() {
			s.publish(last, fmt.Errorf("%w: ack %d after %d, %d sent", ErrBadAck, ack, last, s.sent.Load()))
			if c, ok := s.str.(readCanceler); ok {
				c.CancelRead(0)
			}
			return
		}
		last = ack
		if br.Buffered() == 0 {
			s.publish(last, nil)
		}
	}
}

// ackReadError maps the error that ended the ack reader to the error that
// waiters for unacked records get.
func ackReadError(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return ErrAcksEnded
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated ack", ErrBadAck)
	default:
		return fmt.Errorf("%w: %w", ErrAcksEnded, err)
	}
}

// publish records ack (and, if non-nil, the terminal error) and wakes the
// waiters.
func (s *Sender) publish(ack uint64, err error) {
	s.mu.Lock()
	if ack > s.acked {
		s.acked = ack
	}
	if err != nil {
		s.ackErr = err
	}
	ch := s.notify
	s.notify = nil
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}
