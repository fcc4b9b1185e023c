package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// readLoop is the stream's only reader. It owns s.fr and the read side of
// the QUIC stream. It parses each frame completely and validates it before
// anything of it takes effect, queues records for Recv and Apply, applies
// acks to the send direction, and stops reading while the apply backlog is
// full so that QUIC flow control pushes back on the peer.
func (s *RecordStream) readLoop() {
	defer s.conn.wg.Done()
	defer close(s.readerDone)
	err := s.readReply()
	if err == nil {
		err = s.readFrames()
	}
	s.readerExit(err)
}

func (s *RecordStream) readFrames() error {
	for {
		if err := s.waitBacklogRoom(); err != nil {
			return err
		}
		f, err := s.fr.Next()
		if err != nil {
			s.dropDirect(&f)
			return s.readFailed(err)
		}
		t := frames.Type(f.Type)
		s.ctr.frameIn(kindOf(t))
		now := time.Now()
		s.ctr.touch(now)
		switch t {
		case frames.TypeBatch:
			if err = s.handleBatch(&f, now); err != nil {
				s.dropDirect(&f)
			}
		case frames.TypeAck:
			err = s.handleAck(f.Payload)
		case frames.TypeError:
			err = s.handleError(f.Payload)
		case frames.TypeWindow:
			err = s.handleWindow(f.Payload)
		case frames.TypeDone:
			err = s.handleDone(f.Payload)
		case frames.TypeHello:
			err = s.protocolError(CodeUnexpectedFrame, "second HELLO", nil)
		default:
			// Unknown types are skipped by the reader; frameIn counted it.
		}
		if err != nil {
			return err
		}
	}
}

// protocolError handles a violation detected by the reader and returns
// the error that ends it.
func (s *RecordStream) protocolError(code ErrorCode, reason string, cause error) error {
	s.violation(code, reason, cause)
	return s.ctxCause()
}

func (s *RecordStream) ctxCause() error {
	if err := context.Cause(s.ctx); err != nil {
		return err
	}
	return ErrClosed
}

// frameError maps a codec error to a violation.
func (s *RecordStream) frameError(err error) error {
	var fe *frames.Error
	if errors.As(err, &fe) {
		return s.protocolError(fe.Code, fe.Reason, err)
	}
	return s.protocolError(CodeFrameEncoding, err.Error(), err)
}

// readFailed classifies the end of the read side.
func (s *RecordStream) readFailed(err error) error {
	if err == io.EOF {
		return io.EOF
	}
	var fe *frames.Error
	if errors.As(err, &fe) {
		return s.frameError(err)
	}
	if s.ctx.Err() != nil {
		return s.ctxCause()
	}
	err = s.streamErr(err)
	var se *StreamError
	if errors.As(err, &se) && se.Remote && se.Code != CodeNoError {
		// The peer reset the stream: it is over in both directions.
		s.abort(se, false)
	}
	return err
}

// readerExit records the end of the receive direction. io.EOF is the
// peer's graceful end: records already queued stay deliverable.
func (s *RecordStream) readerExit(err error) {
	recvErr := err
	stored := err
	if err == io.EOF {
		recvErr = nil
		stored = &StreamError{Code: CodeNoError, Remote: true, StreamID: s.id, Reason: "peer finished the stream"}
	}
	s.readerErr.Store(&stored)
	s.rmu.Lock()
	if recvErr != nil && s.rcv.err == nil {
		s.rcv.err = recvErr
	}
	s.rcv.eof = s.rcv.eof || err == io.EOF
	s.rcv.done = true
	s.rcv.wait.notify()
	s.rmu.Unlock()
	// Wake Barrier waiters: no more acks will come. Wake the writer: a
	// half-closed stream writes its FIN once the peer's direction ended.
	s.smu.Lock()
	s.snd.wait.notify()
	s.smu.Unlock()
	s.wakeWriter()
	s.maybeEnd()
}

// waitBacklogRoom blocks while the apply backlog is full: the reader
// stops reading, and QUIC flow control pushes back on the peer. A peer
// that respects the window sends no BATCH while the backlog is full, only
// control frames; so when the peer stops reading this stream (the
// STOP_SENDING that comes with its CloseWithError) the reader resumes at
// once, to see the peer's ERROR frame and reset instead of leaving Barrier
// and Recv waiting for an application that may never ack.
func (s *RecordStream) waitBacklogRoom() error {
	stopped := s.qs.Context().Done()
	s.rmu.Lock()
	for s.rcv.received-s.rcv.applied >= uint64(s.set.maxBacklogRecs) ||
		s.rcv.recvBytes-s.rcv.applBytes >= uint64(s.set.maxBacklogBytes) {
		if s.rcv.err != nil {
			err := s.rcv.err
			s.rmu.Unlock()
			return err
		}
		ch := waitChan(&s.rcv.readerWait)
		s.rmu.Unlock()
		select {
		case <-ch:
		case <-stopped:
			return nil
		case <-s.ctx.Done():
			return s.ctxCause()
		}
		s.rmu.Lock()
	}
	s.rmu.Unlock()
	return nil
}

// newFrameReader returns the frame reader of a stream: a HELLO fits its
// maximum until the negotiation sets the stream's (see newStream).
func newFrameReader(qs io.Reader) *wire.Reader {
	return wire.NewReader(qs, wire.DefaultBuffer, frames.MaxHelloSize, frameCodec{})
}

// frameCodec is package frames' format for a wire.Reader.
type frameCodec struct{}

func (frameCodec) ParseHeader(b []byte, maxFrameSize uint64) (uint64, uint64, int, error) {
	t, length, n, err := frames.ParseHeader(b, maxFrameSize)
	return uint64(t), length, n, err
}

func (frameCodec) Known(t uint64) bool { return frames.Type(t).Known() }

func (frameCodec) Truncated(t uint64) error {
	return &frames.Error{Code: frames.CodeFrameEncoding, Frame: frames.Type(t), Reason: "truncated frame", Err: io.ErrUnexpectedEOF}
}

// directMinBatch is the smallest BATCH payload the reader reads straight
// into a receive buffer of its own (see wire.Reader.SetDirect) when the
// frame is not buffered whole yet: the Reader's own buffer stays at its
// initial 4 KiB (a smaller BATCH with its header fits it), and the
// records of a large batch are copied once (by quic-go, into that receive
// buffer) instead of twice. The first receive buffer of a frame is at
// most maxPooledBuf bytes, which holds a default batch whole; a larger
// frame's buffer doubles as its bytes arrive.
const directMinBatch = wire.DefaultBuffer - wire.MaxHeaderLen

// directBuf gives the frame reader a receive buffer of n bytes for a
// BATCH payload of total bytes, with its pool handle (a nil *[]byte if it
// is not pooled) as the token the reader hands back with the frame. The
// first call of a frame charges total to the receive budget, waiting for
// room (see recvAccount.acquire). Called by the reader loop, inside Next.
func (s *RecordStream) directBuf(n, total int) ([]byte, any, error) {
	if s.frameCharge == 0 {
		c, err := s.acct.acquire(s.ctx, int64(recvBufCap(total)))
		if err != nil {
			return nil, nil, err
		}
		s.frameCharge = c
	}
	buf, pooled := s.conn.recvBuf(n)
	return buf[:n], pooled, nil
}

// releaseBuf gives back a receive buffer the frame reader outgrew.
func (s *RecordStream) releaseBuf(token any) {
	pooled, _ := token.(*[]byte)
	s.conn.putRecvBuf(pooled)
}

// dropDirect gives back the receive buffer of a frame read directly that
// will not be queued, and its charge.
func (s *RecordStream) dropDirect(f *wire.Frame) {
	if f.Direct {
		s.releaseBuf(f.Token)
	}
	s.acct.release(s.frameCharge)
	s.frameCharge = 0
}

// handleBatch validates a BATCH and queues its records. The payload is
// the frame reader's buffer, copied before it is kept, unless the frame
// was read directly into a receive buffer of its own, which is kept; on
// error the caller gives that back. A compressed batch's records are
// decoded into a receive buffer of their own (see inflate), given back
// here on error.
func (s *RecordStream) handleBatch(f *wire.Frame, now time.Time) error {
	b, _, err := frames.ParseBatch(f.Payload, uint64(s.set.maxRecordSize))
	if err != nil {
		return s.frameError(err)
	}
	if b.HasAck && !s.piggyback.Load() {
		return s.protocolError(CodeUnexpectedFrame, "piggybacked ack on a stream that did not negotiate it", nil)
	}
	if !b.Compressed() {
		return s.queueBatch(f, &b, now, nil, nil, 0)
	}
	raw, pooled, charge, err := s.inflate(f, &b)
	if err != nil {
		return err
	}
	if err := s.queueBatch(f, &b, now, raw, pooled, charge); err != nil {
		s.conn.putRecvBuf(pooled)
		s.acct.release(charge)
		return err
	}
	return nil
}

// queueBatch checks a parsed BATCH against the stream's state and queues
// its records: from own (its pool handle ownPooled, its charge to the
// receive budget ownCharge) when not nil, the decoded records of a
// compressed batch; else from the frame's payload, as handleBatch says.
func (s *RecordStream) queueBatch(f *wire.Frame, b *frames.Batch, now time.Time, own []byte, ownPooled *[]byte, ownCharge int64) error {
	// The reader is the only writer of rcv.received, so it may read it
	// without the lock; the window check needs applied, which it does not own.
	s.rmu.Lock()
	if err := s.rcv.err; err != nil {
		// The stream was aborted while the frame was read: the reader
		// goes on until the writer resets the stream, queueing nothing.
		s.rmu.Unlock()
		return err
	}
	if s.rcv.eof {
		s.rmu.Unlock()
		return s.protocolError(CodeUnexpectedFrame, "BATCH after DONE", nil)
	}
	received := s.rcv.received
	dups := s.duplicates(b) // of an optimistic resume, dropped (resume_early.go)
	backlogRecs := received - s.rcv.applied + uint64(b.Count) - dups
	backlogBytes := s.rcv.recvBytes - s.rcv.applBytes + uint64(b.DataBytes)
	s.rmu.Unlock()
	if b.FirstSeq != received+1 {
		return s.protocolError(CodeSequenceGap, fmt.Sprintf("batch starts at seq %d, expected %d", b.FirstSeq, received+1), nil)
	}
	// One record larger than the byte window may come alone into an empty
	// backlog, as the sender may send it when nothing is in flight.
	alone := backlogRecs == uint64(b.Count) && b.Count == 1
	if dups < uint64(b.Count) && (backlogRecs > uint64(s.set.maxBacklogRecs) || (backlogBytes > uint64(s.set.maxBacklogBytes) && !alone)) {
		return s.protocolError(CodeWindowExceeded, fmt.Sprintf("%d records / %d bytes unacknowledged exceed the announced window", backlogRecs, backlogBytes), nil)
	}
	if err := s.batchAck(b); err != nil {
		return err
	}
	if dups == uint64(b.Count) {
		s.dropDuplicates(f, b, ownPooled, ownCharge)
		return nil
	}

	buf, pooled, charge := own, ownPooled, ownCharge
	if own == nil {
		var err error
		if buf, pooled, charge, err = s.keepRecords(f, b.Records); err != nil {
			return err
		}
		s.ctr.zInRaw.Add(uint64(len(b.Records)))
		s.ctr.zInWire.Add(uint64(len(b.Records)))
	}
	s.rmu.Lock()
	start := frames.NewRecordIter(buf, b.FirstSeq)
	dupBytes, wake := s.skipDuplicatesLocked(&start, dups)
	it := start
	for {
		_, rec, ok := it.Next()
		if !ok {
			break
		}
		s.rcv.recvBytes += uint64(len(rec))
		s.rcv.cum.push(s.rcv.recvBytes)
	}
	last := b.LastSeq()
	s.pushBatchLocked(inBatch{buf: buf, pooled: pooled, charge: charge, it: start, last: last, arrived: now})
	s.rcv.received = last
	br, bb := last-s.rcv.applied, s.rcv.recvBytes-s.rcv.applBytes
	s.ctr.backlogRec.Store(br)
	s.ctr.backlogBytes.Store(bb)
	storeMax(&s.ctr.backlogPeakR, br)
	storeMax(&s.ctr.backlogPeakB, bb)
	// Count the batch before anyone can apply it, so a snapshot taken
	// after its ack never shows fewer records in than applied.
	s.ctr.inRecords.Add(uint64(b.Count) - dups)
	s.ctr.inBytes.Add(uint64(b.DataBytes - dupBytes))
	s.ctr.inBatches.Add(1)
	s.rcv.wait.notify()
	s.rmu.Unlock()
	if wake {
		s.wakeWriter()
	}
	return nil
}

// batchAck applies the ack a BATCH carries, if any.
func (s *RecordStream) batchAck(b *frames.Batch) error {
	if !b.HasAck {
		return nil
	}
	if code, reason := s.ackUpdate(b.Ack); code != 0 {
		return s.protocolError(code, reason, nil)
	}
	s.ctr.acksPiggyIn.Add(1)
	if s.onAck != nil {
		s.onAck(b.Ack)
	}
	return nil
}

// keepRecords returns the receive buffer a batch's records are queued in,
// its pool handle and its charge to the receive budget: the buffer the
// frame was read into directly, or else a copy of records (which alias
// the frame reader's buffer) in one charged now, waiting for budget room.
func (s *RecordStream) keepRecords(f *wire.Frame, records []byte) ([]byte, *[]byte, int64, error) {
	charge := s.frameCharge
	s.frameCharge = 0
	if f.Direct {
		pooled, _ := f.Token.(*[]byte)
		return records, pooled, charge, nil
	}
	charge, err := s.acct.acquire(s.ctx, int64(recvBufCap(len(records))))
	if err != nil {
		return nil, nil, 0, err
	}
	buf, pooled := s.conn.recvBuf(len(records))
	return append(buf, records...), pooled, charge, nil
}

func (s *RecordStream) handleAck(payload []byte) error {
	a, _, err := frames.ParseAck(payload)
	if err != nil {
		return s.frameError(err)
	}
	if code, reason := s.ackUpdate(a); code != 0 {
		return s.protocolError(code, reason, nil)
	}
	s.ctr.acksSoloIn.Add(1)
	if s.onAck != nil {
		s.onAck(a)
	}
	return nil
}

// handleDone ends the peer's records: after its DONE only acks and
// errors may come, and Recv and Apply end once the queue is empty. The
// writer is woken, as a half-closed stream's FIN may now be due.
func (s *RecordStream) handleDone(payload []byte) error {
	if !s.halfClose.Load() {
		return s.protocolError(CodeUnexpectedFrame, "DONE on a stream that did not negotiate half-close", nil)
	}
	last, _, err := frames.ParseDone(payload)
	if err != nil {
		return s.frameError(err)
	}
	s.rmu.Lock()
	received, again := s.rcv.received, s.rcv.eof
	if !again && last == received {
		s.rcv.eof = true
		s.rcv.wait.notify()
	}
	s.rmu.Unlock()
	switch {
	case again:
		return s.protocolError(CodeUnexpectedFrame, "second DONE", nil)
	case last != received:
		return s.protocolError(CodeSequenceGap, fmt.Sprintf("DONE at seq %d, but the last record received is %d", last, received), nil)
	}
	s.wakeWriter()
	return nil
}

func (s *RecordStream) handleError(payload []byte) error {
	f, _, err := frames.ParseError(payload)
	if err != nil {
		return s.frameError(err)
	}
	if f.Seq == 0 {
		se := &StreamError{Code: f.Code, Reason: f.Reason, Remote: true, StreamID: s.id}
		s.abort(se, false)
		return se
	}
	re, code, reason := s.rejectUpdate(&f)
	if code != 0 {
		return s.protocolError(code, reason, nil)
	}
	s.ctr.rejectedByPeer.Add(1)
	if fn := s.onReject.Load(); fn != nil {
		(*fn)(re)
	}
	return nil
}
