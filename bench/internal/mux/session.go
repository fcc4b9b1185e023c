package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"
)

// Defaults of [Config].
const (
	DefaultWindowRecords = 4096
	DefaultWindowBytes   = 4 << 20
	DefaultMaxWrite      = 16 << 10
	DefaultMaxRecordSize = 1 << 20
)

// Config tunes a [Session]. The zero value, and nil, mean the defaults.
// Both ends of a session must use the same windows: each end enforces on
// receive the windows it would respect on send.
type Config struct {
	// WindowRecords caps a stream's records sent but not yet acked; Send
	// blocks at the cap. 0 means DefaultWindowRecords.
	WindowRecords int
	// WindowBytes caps the record bytes of a stream sent but not yet
	// acked. 0 means DefaultWindowBytes.
	WindowBytes int
	// MaxWrite is the size up to which the writer coalesces frames into
	// one write of the byte stream. 0 means DefaultMaxWrite.
	MaxWrite int
	// MaxRecordSize is the largest record sent or accepted. 0 means
	// DefaultMaxRecordSize.
	MaxRecordSize int
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (c *Config) resolved() Config {
	if c == nil {
		c = &Config{}
	}
	return Config{
		WindowRecords: orDefault(c.WindowRecords, DefaultWindowRecords),
		WindowBytes:   orDefault(c.WindowBytes, DefaultWindowBytes),
		MaxWrite:      orDefault(c.MaxWrite, DefaultMaxWrite),
		MaxRecordSize: orDefault(c.MaxRecordSize, DefaultMaxRecordSize),
	}
}

// Errors a session or stream fails with.
const (
	// ErrClosed is returned after Close, and by waits for acks once the
	// peer finished its direction. It matches net.ErrClosed.
	ErrClosed Error = "mux: session closed"
	// ErrWindowExceeded means the peer sent more unacknowledged records
	// or bytes than the window allows.
	ErrWindowExceeded Error = "mux: peer exceeded the stream window"
	// ErrAckRange means the peer acked a record never sent, or went back.
	ErrAckRange Error = "mux: ack out of range"
	// ErrNotDelivered means Ack named a record Recv has not returned.
	ErrNotDelivered Error = "mux: ack beyond the last received record"
	// ErrStreamExists means Open named a stream that exists already.
	ErrStreamExists Error = "mux: stream exists"
	// ErrAfterFin means the peer sent DATA or a second FIN on a stream it
	// had finished.
	ErrAfterFin Error = "mux: frame after the stream's FIN"
	// ErrFinished means Send was called after CloseSend.
	ErrFinished Error = "mux: stream finished"
)

// readBufSize is the reader's initial buffer; it grows for larger frames.
const readBufSize = 64 << 10

// Session multiplexes streams over one byte stream. Create it with [New].
type Session struct {
	conn io.ReadWriteCloser
	cfg  Config

	wake       chan struct{} // capacity 1: rings the writer
	failed     chan struct{} // closed when err is set
	readerDone chan struct{}
	writerDone chan struct{}

	mu      sync.Mutex
	streams map[uint64]*Stream
	ring    []*Stream // streams in creation order, for round robin
	rr      int       // next ring index the writer serves
	acks    []*Stream // streams with an ack to send
	// accepted holds streams the peer opened that Accept has not returned;
	// acceptWait is closed when one arrives or the session ends.
	accepted   fifo[*Stream]
	acceptWait chan struct{}
	closing    bool
	eof        bool  // the peer finished its direction
	err        error // terminal failure
}

// New starts a session on conn. A *quic.Stream is a suitable conn; when
// conn also has CancelRead (as a quic-go stream does), a failing session
// calls it so that its reader stops.
func New(conn io.ReadWriteCloser, cfg *Config) *Session {
	s := &Session{
		conn:       conn,
		cfg:        cfg.resolved(),
		wake:       make(chan struct{}, 1),
		failed:     make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		streams:    make(map[uint64]*Stream),
	}
	go s.readLoop()
	go s.writeLoop()
	return s
}

// Stream returns the stream with the given id, creating it on first use.
func (s *Session) Stream(id uint64) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streamLocked(id)
}

func (s *Session) streamLocked(id uint64) *Stream {
	if st, ok := s.streams[id]; ok {
		return st
	}
	st := &Stream{s: s, id: id}
	s.streams[id] = st
	s.ring = append(s.ring, st)
	return st
}

// Open creates stream id and announces it to the peer, whose Accept
// returns it. The caller picks the number; the two ends must not pick the
// same one. Opening a stream that exists already is an error.
func (s *Session) Open(id uint64) (*Stream, error) {
	s.mu.Lock()
	switch {
	case s.err != nil:
		err := s.err
		s.mu.Unlock()
		return nil, err
	case s.closing:
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := s.streams[id]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d", ErrStreamExists, id)
	}
	st := s.streamLocked(id)
	st.out.push(AppendControl(nil, TypeOpen, id))
	s.mu.Unlock()
	s.wakeWriter()
	return st, nil
}

// Accept returns the next stream the peer opened with Open. Streams
// already announced are returned even if ctx is done. After the session
// ended, it returns the session's error, or ErrClosed.
func (s *Session) Accept(ctx context.Context) (*Stream, error) {
	s.mu.Lock()
	for {
		if s.accepted.len() > 0 {
			st := s.accepted.pop()
			s.mu.Unlock()
			return st, nil
		}
		switch {
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return nil, err
		case s.eof || s.closing:
			s.mu.Unlock()
			return nil, ErrClosed
		}
		ch := waitChan(&s.acceptWait)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		s.mu.Lock()
	}
}

// Close sends everything queued, finishes the write direction and waits
// until the peer finished its own (or the session failed). It returns the
// session's failure, if any.
func (s *Session) Close() error {
	s.mu.Lock()
	s.closing = true
	notifyLocked(&s.acceptWait)
	s.mu.Unlock()
	s.wakeWriter()
	<-s.writerDone
	<-s.readerDone
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == ErrClosed {
		return nil
	}
	return s.err
}

func (s *Session) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// fail records the session's terminal error, wakes every waiter and stops
// the byte stream in both directions.
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.failed)
	notifyLocked(&s.acceptWait)
	for _, st := range s.ring {
		notifyLocked(&st.sendWait)
		notifyLocked(&st.recvWait)
	}
	s.mu.Unlock()
	if cr, ok := s.conn.(interface{ CancelRead(quic.StreamErrorCode) }); ok {
		cr.CancelRead(0)
	}
	_ = s.conn.Close()
}

// writeLoop is the only writer of the byte stream. It sends acks first,
// then data frames taken one per stream in turn, coalesced up to MaxWrite
// bytes per write, and the FIN once the session is closing and nothing is
// left.
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	var buf []byte
	for {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return
		}
		buf = s.fillLocked(buf[:0])
		fin := len(buf) == 0 && s.closing
		s.mu.Unlock()
		switch {
		case len(buf) > 0:
			if _, err := s.conn.Write(buf); err != nil {
				s.fail(err)
				return
			}
			continue
		case fin:
			if err := s.conn.Close(); err != nil {
				s.fail(err)
			}
			return
		}
		select {
		case <-s.wake:
		case <-s.failed:
			return
		}
	}
}

// fillLocked appends the next write to buf: all pending acks, then data.
func (s *Session) fillLocked(buf []byte) []byte {
	for _, st := range s.acks {
		if st.applied > st.ackSent {
			buf = AppendAck(buf, st.id, st.applied)
			st.ackSent = st.applied
		}
		st.ackQueued = false
	}
	clear(s.acks)
	s.acks = s.acks[:0]
	for len(buf) < s.cfg.MaxWrite {
		took := false
		for range len(s.ring) {
			st := s.ring[s.rr]
			s.rr = (s.rr + 1) % len(s.ring)
			if st.out.len() > 0 {
				buf = append(buf, st.out.pop()...)
				took = true
				if len(buf) >= s.cfg.MaxWrite {
					break
				}
			}
		}
		if !took {
			break
		}
	}
	return buf
}

// readLoop is the only reader of the byte stream.
func (s *Session) readLoop() {
	defer close(s.readerDone)
	buf := make([]byte, readBufSize)
	start, end := 0, 0
	maxFrame := DataLen(1<<62-1, s.cfg.MaxRecordSize)
	for {
		for {
			f, n, err := ParseFrame(buf[start:end], s.cfg.MaxRecordSize)
			if errors.Is(err, ErrShort) {
				break
			}
			if err == nil {
				err = s.handle(f)
			}
			if err != nil {
				s.fail(err)
				return
			}
			start += n
		}
		if start > 0 {
			end = copy(buf, buf[start:end])
			start = 0
		}
		if end == len(buf) {
			if len(buf) >= maxFrame {
				s.fail(ErrTooLarge)
				return
			}
			buf = append(buf, make([]byte, min(len(buf), maxFrame-len(buf)))...)
		}
		n, err := s.conn.Read(buf[end:])
		end += n
		if err != nil && n == 0 {
			s.readEnded(err, end > 0)
			return
		}
	}
}

// readEnded handles the end of the read direction.
func (s *Session) readEnded(err error, partial bool) {
	if !errors.Is(err, io.EOF) || partial {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		s.fail(err)
		return
	}
	s.mu.Lock()
	s.eof = true
	notifyLocked(&s.acceptWait)
	for _, st := range s.ring {
		notifyLocked(&st.sendWait)
		notifyLocked(&st.recvWait)
	}
	s.mu.Unlock()
}

// handle applies one frame from the peer.
func (s *Session) handle(f Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streamLocked(f.Stream)
	switch f.Type {
	case TypeAck:
		return st.ackedLocked(f.Seq)
	case TypeOpen:
		s.accepted.push(st)
		notifyLocked(&s.acceptWait)
		return nil
	case TypeFin:
		if st.finRecv {
			return fmt.Errorf("%w: second FIN on stream %d", ErrAfterFin, st.id)
		}
		st.finRecv = true
		notifyLocked(&st.recvWait)
		return nil
	}
	if st.finRecv {
		return fmt.Errorf("%w: DATA on stream %d", ErrAfterFin, st.id)
	}
	// Mirror of the sender's check in Send: a record is always allowed
	// when nothing is outstanding.
	outstanding := st.received - st.applied
	if outstanding >= uint64(s.cfg.WindowRecords) ||
		(outstanding > 0 && st.recvBytes-st.appliedBytes+uint64(len(f.Data)) > uint64(s.cfg.WindowBytes)) {
		return fmt.Errorf("%w: stream %d", ErrWindowExceeded, st.id)
	}
	st.received++
	st.recvBytes += uint64(len(f.Data))
	st.rcum.push(st.recvBytes)
	st.in.push(append([]byte(nil), f.Data...))
	notifyLocked(&st.recvWait)
	return nil
}

// notifyLocked wakes everyone waiting on *ch.
func notifyLocked(ch *chan struct{}) {
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}

// waitChan returns the channel that the next notifyLocked on ch closes.
func waitChan(ch *chan struct{}) <-chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}
