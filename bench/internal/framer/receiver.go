package framer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Receiver reads records from the receive direction of a stream and writes
// cumulative acks to its send direction. All its methods must be called from
// one goroutine.
type Receiver struct {
	str Stream
	r   *bufio.Reader
	// buf holds records too large for r's buffer; it is reused and grows up
	// to the largest such record seen.
	buf []byte
	seq uint64 // sequence number of the last record returned by Next
	// fixed is the record size of a fixed-size receiver once the stream
	// header was read; -1 for a length-prefixed receiver, 0 before.
	fixed int

	pending uint64 // highest seq acked lazily
	ackSent uint64 // highest seq written to the stream as an ack
	ackBuf  [binary.MaxVarintLen64]byte
}

// NewReceiver returns a Receiver for str that reads through a bufio.Reader of
// bufSize bytes (64 KiB when bufSize is 0 or negative). Records up to
// bufSize bytes are returned as views into that buffer; larger ones are
// copied into a reusable buffer that grows as needed.
func NewReceiver(str Stream, bufSize int) *Receiver {
	if bufSize <= 0 {
		bufSize = defaultBufSize
	}
	return &Receiver{str: str, r: bufio.NewReaderSize(str, bufSize), fixed: -1}
}

// NewFixedReceiver is NewReceiver for the fixed-size format of
// [NewFixedSender].
func NewFixedReceiver(str Stream, bufSize int) *Receiver {
	r := NewReceiver(str, bufSize)
	r.fixed = 0
	return r
}

// Next returns the next record and its sequence number. rec is valid only
// until the next call to Next. At the end of the stream, Next returns
// [io.EOF]; a stream that ends inside a record yields
// [io.ErrUnexpectedEOF]. A length prefix above [MaxRecordSize] yields
// [ErrRecordTooLarge] before anything is allocated for it.
func (r *Receiver) Next() (seq uint64, rec []byte, err error) {
	n, err := r.readLen()
	if err != nil {
		return 0, nil, err
	}
	if n <= uint64(r.r.Size()) {
		// Fits in the bufio buffer: hand out a view into it instead of
		// copying. Peek's result stays valid until the next read on r.
		rec, err = r.r.Peek(int(n))
		if err != nil {
			return 0, nil, noEOF(err)
		}
		_, _ = r.r.Discard(int(n)) // cannot fail after a full Peek
	} else {
		if uint64(cap(r.buf)) < n {
			r.buf = make([]byte, n)
		}
		rec = r.buf[:n]
		if _, err := io.ReadFull(r.r, rec); err != nil {
			return 0, nil, noEOF(err)
		}
	}
	r.seq++
	return r.seq, rec, nil
}

// readLen reads and checks one length prefix; in the fixed-size format,
// the stream header the first time, then it only checks for the end of
// the stream.
func (r *Receiver) readLen() (uint64, error) {
	if r.fixed > 0 {
		if _, err := r.r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, err
		}
		return uint64(r.fixed), nil
	}
	n, err := binary.ReadUvarint(r.r)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		return 0, io.EOF // clean end: no byte of a new record
	case errors.Is(err, io.ErrUnexpectedEOF):
		return 0, err
	default:
		return 0, fmt.Errorf("%w: %w", ErrBadLength, err)
	}
	if n > MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes announced, limit %d", ErrRecordTooLarge, n, MaxRecordSize)
	}
	if r.fixed == 0 {
		if n == 0 {
			return 0, fmt.Errorf("%w: fixed record size 0", ErrBadLength)
		}
		r.fixed = int(n)
	}
	return n, nil
}

// noEOF turns an io.EOF inside a record into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Buffered returns how many received bytes are waiting in the read buffer.
// Zero means the next call to Next will read from the stream, which makes it
// a good moment to flush acks.
func (r *Receiver) Buffered() int {
	return r.r.Buffered()
}

// HasRecord reports whether the next record is entirely in the read
// buffer, so that Next will return it without reading the stream. When it
// is false, Next would wait for the network: the moment to flush acks.
// (Buffered() == 0 is rarely true under load: a read that ends inside a
// record leaves its first bytes buffered.)
func (r *Receiver) HasRecord() bool {
	n := r.r.Buffered()
	if r.fixed > 0 {
		return n >= r.fixed
	}
	head, _ := r.r.Peek(min(n, binary.MaxVarintLen64))
	size, k := binary.Uvarint(head)
	if k <= 0 {
		return false
	}
	return uint64(n-k) >= size
}

// Ack acknowledges every record up to and including seq and writes the ack to
// the stream at once.
func (r *Receiver) Ack(seq uint64) error {
	if err := r.AckLazy(seq); err != nil {
		return err
	}
	return r.FlushAcks()
}

// AckLazy records that every record up to and including seq is applied,
// without writing anything; [Receiver.FlushAcks] sends it. Acking an older
// seq than before is a no-op; acking a seq not yet returned by Next is
// [ErrNotSent].
func (r *Receiver) AckLazy(seq uint64) error {
	if seq > r.seq {
		return ErrNotSent
	}
	if seq > r.pending {
		r.pending = seq
	}
	return nil
}

// FlushAcks writes the newest lazily recorded ack, if it has not been written
// yet, as one uvarint.
func (r *Receiver) FlushAcks() error {
	if r.pending == r.ackSent {
		return nil
	}
	n := binary.PutUvarint(r.ackBuf[:], r.pending)
	if _, err := r.str.Write(r.ackBuf[:n]); err != nil {
		return err
	}
	r.ackSent = r.pending
	return nil
}

// Close flushes pending acks and closes the send direction of the stream
// (FIN), which ends the sender's ack reader. It does not stop reading; call
// it after Next returned io.EOF, or cancel the stream to abort.
func (r *Receiver) Close() error {
	err := r.FlushAcks()
	if cerr := r.str.Close(); err == nil {
		err = cerr
	}
	return err
}
