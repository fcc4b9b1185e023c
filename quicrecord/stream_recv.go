package quicrecord

import (
	"context"
	"io"
	"time"

	"github.com/recordmux/recordmux/frames"
)

// Receive buffers: a batch's records wait in a buffer of their own. A
// BATCH of at least directMinBatch bytes that the frame reader has not
// buffered whole is read straight into one (see directBuf); a smaller one
// is copied out of the frame reader's buffer. Batches below minPooledBuf
// get an exact allocation (the allocator's size classes waste at most
// 12.5%); larger ones, up to maxPooledBuf, a buffer rounded up to a
// multiple of pooledBufStep (again at most 12.5% waste) from one of the
// connection's pools. Apply gives pooled buffers back after the batch is
// applied; records returned by Recv belong to the caller, so their buffer
// is left to the garbage collector. The waste bound keeps the memory of an
// apply backlog within 12.5% of MaxApplyBacklogBytes.
const (
	minPooledBuf  = 32 << 10
	maxPooledBuf  = 80 << 10
	pooledBufStep = 4 << 10
	numBufPools   = (maxPooledBuf-minPooledBuf)/pooledBufStep + 1
)

// bufClass returns the pool index for a buffer of n bytes, or -1.
func bufClass(n int) int {
	if n < minPooledBuf || n > maxPooledBuf {
		return -1
	}
	return (n - minPooledBuf + pooledBufStep - 1) / pooledBufStep
}

// recvBufCap returns the capacity of the buffer recvBuf returns for n
// bytes: what a batch of n bytes is charged to the receive budget.
func recvBufCap(n int) int {
	if k := bufClass(n); k >= 0 {
		return minPooledBuf + k*pooledBufStep
	}
	return n
}

// recvBuf returns an empty buffer with capacity for n bytes, and the
// pool handle to give it back with, nil if it is not pooled.
func (c *Conn) recvBuf(n int) ([]byte, *[]byte) {
	k := bufClass(n)
	if k < 0 {
		return make([]byte, 0, n), nil
	}
	if p, ok := c.bufPools[k].Get().(*[]byte); ok {
		return (*p)[:0], p
	}
	p := new([]byte)
	*p = make([]byte, 0, minPooledBuf+k*pooledBufStep)
	return *p, p
}

// putRecvBuf gives a pooled buffer back.
func (c *Conn) putRecvBuf(p *[]byte) {
	if p == nil {
		return
	}
	if k := bufClass(cap(*p)); k >= 0 {
		c.bufPools[k].Put(p)
	}
}

// Recv returns the next record in order. It blocks until one is available
// or ctx is done; records already received are returned even if ctx is
// done. After the peer finished the stream and every record was returned,
// Recv returns io.EOF; after a failure, the stream's error.
//
// The record's Data belongs to the caller. Receiving a record does not
// acknowledge it: call [RecordStream.Ack] (or Reject) once it is applied,
// or use [RecordStream.Apply], which does both. Records received and not
// acknowledged count against the apply backlog.
//
// A stream has one receiver at a time: Recv returns an error matching
// [ErrConcurrentReceive] while another Recv or Apply of the stream runs.
func (s *RecordStream) Recv(ctx context.Context) (Record, error) {
	if !s.receiving.CompareAndSwap(false, true) {
		return Record{}, misuse(ErrConcurrentReceive, "Recv: another Recv or Apply of stream %d is running", s.id)
	}
	defer s.receiving.Store(false)
	s.rmu.Lock()
	for {
		if s.queuedLocked() && s.deliverableLocked() {
			b := &s.rcv.q[s.rcv.qHead]
			s.startBatchLocked(b)
			seq, data, _ := b.it.Next()
			var charge int64
			if seq == b.last {
				charge = b.charge
				s.popBatchLocked()
			}
			s.rcv.delivered = seq
			if s.rsm != nil {
				s.rsm.delivered.Store(seq)
			}
			s.rmu.Unlock()
			// The records are the caller's now: the batch leaves the
			// receive budget.
			s.acct.release(charge)
			return Record{Seq: seq, Data: data}, nil
		}
		if err := s.recvEndLocked(); err != nil {
			s.rmu.Unlock()
			return Record{}, err
		}
		if err := sleepLocked(ctx, &s.rmu, &s.rcv.wait, nil); err != nil {
			s.rmu.Unlock()
			return Record{}, err
		}
	}
}

// deliverableLocked reports whether queued records may still be handed
// out. A resumable stream that failed hands out nothing more: its records
// will be sent again on the stream that resumes it.
func (s *RecordStream) deliverableLocked() bool {
	return s.rsm == nil || s.rcv.err == nil
}

// queuedLocked reports whether a batch waits in the queue.
func (s *RecordStream) queuedLocked() bool { return s.rcv.qHead < len(s.rcv.q) }

// pushBatchLocked appends b to the queue. When more than half of the
// slice is delivered batches, the live ones move to its front first, so
// the slice stays within twice the queue's peak length.
func (s *RecordStream) pushBatchLocked(b inBatch) {
	if h := s.rcv.qHead; h > 0 && h >= len(s.rcv.q)/2 && len(s.rcv.q) == cap(s.rcv.q) {
		n := copy(s.rcv.q, s.rcv.q[h:])
		clear(s.rcv.q[n:])
		s.rcv.q, s.rcv.qHead = s.rcv.q[:n], 0
	}
	s.rcv.q = append(s.rcv.q, b)
}

// keptQueueCap is the largest queue slice kept once the queue empties: a
// short queue is reused without allocating, a long one (a backlog of many
// small batches) is given back.
const keptQueueCap = 64

// popBatchLocked removes the head batch, dropping the queue's references
// to its buffer.
func (s *RecordStream) popBatchLocked() {
	s.rcv.q[s.rcv.qHead] = inBatch{}
	s.rcv.qHead++
	if s.rcv.qHead == len(s.rcv.q) {
		s.rcv.q, s.rcv.qHead = s.rcv.q[:0], 0
		if cap(s.rcv.q) > keptQueueCap {
			s.rcv.q = nil
		}
	}
}

// recvEndLocked returns the error that ends delivery once the queue is
// empty: io.EOF after the peer's FIN, the terminal error after a failure.
func (s *RecordStream) recvEndLocked() error {
	if s.rcv.err != nil {
		return s.rcv.err
	}
	if s.rcv.eof {
		return io.EOF
	}
	if s.ctx.Err() != nil {
		return s.ctxCause()
	}
	return nil
}

// Ack acknowledges every record up to and including seq as applied. Acks
// are cumulative; acking a sequence number at or below an earlier ack is a
// no-op. seq must not exceed the last record returned by Recv (an error
// matching [ErrNotDelivered] otherwise). The ack reaches the peer in the
// header of the next outgoing batch, or in an ACK frame when none leaves
// within the stream's AckDelay or this direction is idle.
func (s *RecordStream) Ack(seq uint64) error {
	return s.consume("Ack", seq, nil)
}

// Reject reports that record seq failed to apply. It counts as consumed:
// records before it are acknowledged as applied, and the peer receives an
// ERROR frame for seq with code and reason before the ack that covers it.
// A reason longer than 1 KiB is cut on a UTF-8 boundary (see
// frames.TruncateReason). seq must be the next record not yet acked or
// rejected or a later one up to the last returned by Recv: an error
// matching [ErrAlreadyApplied] or [ErrNotDelivered] otherwise.
func (s *RecordStream) Reject(seq uint64, code ErrorCode, reason string) error {
	return s.consume("Reject", seq, &frames.ErrorFrame{Seq: seq, Code: code, Reason: reason})
}

// consume acks (rej nil) or rejects the records up to seq for the call
// named op.
func (s *RecordStream) consume(op string, seq uint64, rej *frames.ErrorFrame) error {
	s.rmu.Lock()
	if s.rcv.err != nil {
		err := s.rcv.err
		if s.rsm != nil && seq <= s.rcv.delivered && seq > s.rcv.applied {
			// The records were handed out before the stream failed: their
			// application still counts for the stream resuming this key.
			s.rcv.applied = seq
			s.rsm.setApplied(seq)
		}
		s.rmu.Unlock()
		return err
	}
	if seq > s.rcv.delivered {
		delivered := s.rcv.delivered
		s.rmu.Unlock()
		return misuse(ErrNotDelivered, "%s(%d): the last record delivered is %d", op, seq, delivered)
	}
	if seq <= s.rcv.applied {
		applied := s.rcv.applied
		s.rmu.Unlock()
		if rej != nil {
			return misuse(ErrAlreadyApplied, "Reject(%d): record %d was already applied (acked or rejected); the last applied is %d", seq, seq, applied)
		}
		return nil
	}
	s.rcv.applBytes = s.rcv.cum.pop(int(seq - s.rcv.applied))
	if s.rcv.applied == s.rcv.ackSent {
		s.rcv.ackSince = time.Now()
	}
	s.rcv.applied = seq
	if rej != nil {
		rej.Reason = frames.TruncateReason(rej.Reason)
		s.rcv.errFrames = append(s.rcv.errFrames, *rej)
		s.ctr.rejectedLocally.Add(1)
	}
	s.ctr.appliedSeq.Store(seq)
	if s.rsm != nil {
		s.rsm.setApplied(seq)
	}
	s.ctr.backlogRec.Store(s.rcv.received - seq)
	s.ctr.backlogBytes.Store(s.rcv.recvBytes - s.rcv.applBytes)
	s.appliedLocked(seq)
	notifyLocked(&s.rcv.readerWait)
	wake := !s.rcv.notified
	s.rcv.notified = true
	s.ackRung.Store(true)
	s.rmu.Unlock()
	if wake {
		s.wakeWriter()
	}
	return nil
}

// ackWork is what the writer takes from the receive direction in one
// pass: the ack to convey and the rejections that go before it.
type ackWork struct {
	ack   uint64    // highest seq applied (acked or rejected) locally
	due   bool      // ack is above what the peer was told
	since time.Time // when applied first went above what the peer was told
	// errs are the rejections to send, in order. The writer owns the
	// slice from now on, and hands it back as the spare of a later pass.
	errs []frames.ErrorFrame
	// window is the WINDOW frame owed to the peer, if windowDue.
	window    frames.WindowFrame
	windowDue bool
}

// takeAckWork hands the writer the pending ack and rejections, putting
// spare (an empty slice the writer owns) in place of the rejection queue.
// Called by the writer loop, once per pass.
func (s *RecordStream) takeAckWork(spare []frames.ErrorFrame) ackWork {
	s.rmu.Lock()
	s.rcv.notified = false
	s.ackRung.Store(false)
	a := ackWork{ack: s.rcv.applied, due: s.rcv.applied > s.rcv.ackSent, since: s.rcv.ackSince, errs: s.rcv.errFrames}
	a.window, a.windowDue = s.takeWindowLocked()
	s.rcv.errFrames = spare
	s.rmu.Unlock()
	return a
}

// ackWritten records that a frame carrying ack was written. Called by the
// writer loop.
func (s *RecordStream) ackWritten(ack uint64, now time.Time) {
	s.rmu.Lock()
	if ack > s.rcv.ackSent {
		s.rcv.ackSent = ack
	}
	if s.rcv.applied > s.rcv.ackSent {
		s.rcv.ackSince = now
	}
	s.rmu.Unlock()
}

// recvSettled reports whether the peer's records ended (its DONE or FIN
// arrived) and every one of them was applied and the ack for it written:
// a half-closed stream's condition for its FIN. Called by the writer loop.
func (s *RecordStream) recvSettled() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.rcv.eof && s.rcv.applied == s.rcv.received && s.rcv.ackSent == s.rcv.applied && len(s.rcv.errFrames) == 0
}

// acksDrained reports whether every ack and rejection was written, the
// receive direction's condition for the FIN. Called by the writer loop.
func (s *RecordStream) acksDrained() bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.rcv.applied == s.rcv.ackSent && len(s.rcv.errFrames) == 0
}

// Apply runs the receive loop: it calls fn for each record in order and
// acknowledges the records fn accepts; a record for which fn returns an
// error is rejected: with the code and reason of an *[ApplicationError]
// in the error's chain, or with CodeRejected and the reason "rejected by
// the application" for any other error, whose text stays on this side
// (logged at debug level with Config.Logger). Acks are sent once per
// received batch. Apply returns nil after the peer finished the
// stream and every record was applied, ctx's error when ctx is done, and
// the stream's error if it fails.
//
// The Data of the record passed to fn is valid only until fn returns: Apply
// reuses its buffers. Copy what must be kept.
//
// Apply is the stream's one receiver while it runs: another Apply or a
// Recv (fn's included) fails with [ErrConcurrentReceive], and so does
// Apply while another receiver runs.
func (s *RecordStream) Apply(ctx context.Context, fn func(Record) error) error {
	if !s.receiving.CompareAndSwap(false, true) {
		return misuse(ErrConcurrentReceive, "Apply: another Recv or Apply of stream %d is running", s.id)
	}
	defer s.receiving.Store(false)
	for {
		// A batch already queued is returned even if ctx is done (see
		// takeBatch), so check ctx between batches: a busy stream must
		// not keep Apply from returning.
		if ctx.Err() != nil {
			return ctxError(ctx)
		}
		b, err := s.takeBatch(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.applyBatch(&b, fn); err != nil {
			return err
		}
		if err := s.Ack(b.last); err != nil {
			return err
		}
		s.conn.putRecvBuf(b.pooled)
		s.acct.release(b.charge)
	}
}

// applyBatch calls fn for each record of b and rejects those it fails.
// Within a long batch it acks every batchTime of applying, so that a
// slow application's acks, and the window they open, come in a steady
// stream rather than once per batch. It looks at the clock every few
// records, as few as keep the looks about a quarter of batchTime apart.
func (s *RecordStream) applyBatch(b *inBatch, fn func(Record) error) error {
	lastAck := time.Now()
	lastLook := lastAck
	every, n := s.applyEvery, 0
	defer func() { s.applyEvery = every }()
	for {
		seq, data, ok := b.it.Next()
		if !ok {
			return nil
		}
		if ferr := fn(Record{Seq: seq, Data: data}); ferr != nil {
			if err := s.rejectFor(seq, ferr); err != nil {
				return err
			}
		}
		if n++; n < every || seq == b.last {
			continue
		}
		n = 0
		now := time.Now()
		switch since := now.Sub(lastLook); {
		case since > batchTime/4 && every > 1:
			every /= 2
		case since < batchTime/16 && every < 64:
			every *= 2
		}
		lastLook = now
		if now.Sub(lastAck) >= batchTime {
			if err := s.Ack(seq); err != nil {
				return err
			}
			lastAck = now
		}
	}
}

// takeBatch removes the head batch (what is left of it) from the queue
// and marks its records delivered.
func (s *RecordStream) takeBatch(ctx context.Context) (inBatch, error) {
	s.rmu.Lock()
	for {
		if s.queuedLocked() && s.deliverableLocked() {
			s.startBatchLocked(&s.rcv.q[s.rcv.qHead])
			b := s.rcv.q[s.rcv.qHead]
			s.popBatchLocked()
			s.rcv.delivered = b.last
			if s.rsm != nil {
				s.rsm.delivered.Store(b.last)
			}
			s.rmu.Unlock()
			return b, nil
		}
		if err := s.recvEndLocked(); err != nil {
			s.rmu.Unlock()
			return inBatch{}, err
		}
		if err := sleepLocked(ctx, &s.rmu, &s.rcv.wait, nil); err != nil {
			s.rmu.Unlock()
			return inBatch{}, err
		}
	}
}

// rejectFor rejects record seq for the error fn, Apply's function,
// returned for it (see callbackCode).
func (s *RecordStream) rejectFor(seq uint64, ferr error) error {
	code, reason := callbackCode(ferr, CodeRejected, reasonRejected)
	if s.log != nil {
		s.log.Debug("record rejected", "seq", seq, "code", code.String(), "err", ferr)
	}
	return s.Reject(seq, code, reason)
}
