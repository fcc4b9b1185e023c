package quicrecord

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/recordmux/recordmux/frames"
)

// Send queues a copy of data as the next record and returns its sequence
// number. It blocks while the in-flight window (records sent but not yet
// acknowledged as applied) is full, until there is room or ctx is done.
// Send does not wait for the record to be written; see [RecordStream.Flush]
// and [RecordStream.Barrier]. A record larger than [RecordStream.MaxRecordSize]
// fails at once with an error matching [ErrRecordTooLarge], and the
// stream goes on. After the stream ends Send returns its terminal error.
func (s *RecordStream) Send(ctx context.Context, data []byte) (uint64, error) {
	if len(data) > int(s.maxSendRec.Load()) && s.replyPending.Load() {
		// Above the early profile's record limit: wait for the reply.
		if err := s.waitReply(ctx); err != nil {
			return 0, err
		}
	}
	if limit := int(s.maxSendRec.Load()); len(data) > limit {
		return 0, errTooLarge(len(data), limit)
	}
	s.smu.Lock()
	for {
		if s.snd.err != nil {
			err := s.snd.err
			s.smu.Unlock()
			return 0, err
		}
		if s.snd.closing {
			s.smu.Unlock()
			return 0, ErrClosed
		}
		if s.snd.ending {
			s.smu.Unlock()
			return 0, misuse(ErrClosed, "Send after CloseWrite")
		}
		if s.ctx.Err() != nil {
			// The stream or its connection ended; the loops have not
			// recorded it yet.
			s.smu.Unlock()
			return 0, context.Cause(s.ctx)
		}
		if s.roomLocked(len(data)) {
			break
		}
		if err := sleepLocked(ctx, &s.smu, &s.snd.wait, s.ctx.Done()); err != nil {
			s.smu.Unlock()
			return 0, err
		}
	}
	seq := s.snd.nextSeq
	s.snd.nextSeq++
	rl := frames.RecordLen(len(data))
	n := len(s.snd.segs)
	if n == 0 || s.snd.segs[n-1].count >= s.set.maxBatchRecords || s.snd.segs[n-1].bytes+rl > int(s.batchLimit.Load()) {
		now := time.Now()
		if n == 0 && s.set.flushDelay > 0 {
			s.snd.pendAt = now
		}
		buf, pooled := s.conn.segBuf(hdrReserve + max(rl, int(s.batchBytes.Load())))
		s.snd.segs = append(s.snd.segs, segment{buf: buf, pooled: pooled, first: seq})
		s.snd.win.OnBatch(seq, s.snd.sentBytes, now)
		n++
	}
	sg := &s.snd.segs[n-1]
	sg.count++
	sg.bytes += rl
	sg.buf = frames.AppendRecord(sg.buf, data)
	s.snd.sentBytes += uint64(len(data))
	s.snd.cum.push(s.snd.sentBytes)
	// The writer publishes the send counters when it takes the records,
	// which keeps atomic stores off this path.
	// Ring the writer for the first record it has not seen, and again when
	// a lingering batch fills up.
	wake := !s.snd.notified || (s.set.flushDelay > 0 && n > 1)
	s.snd.notified = true
	s.smu.Unlock()
	if wake {
		s.wakeWriter()
	}
	return seq, nil
}

// Flush waits until every record sent before the call has been handed to
// the QUIC stream, skipping any FlushDelay linger. It does not wait for the
// peer; see [RecordStream.Barrier]. On a stream opened optimistically
// (StreamOptions.OptimisticOpen) that the acceptor refused, it fails with
// the refusal.
func (s *RecordStream) Flush(ctx context.Context) error {
	s.smu.Lock()
	target := s.snd.nextSeq - 1
	s.smu.Unlock()
	return s.waitFlushed(ctx, target)
}

func (s *RecordStream) waitFlushed(ctx context.Context, target uint64) error {
	s.smu.Lock()
	if s.snd.err != nil && s.replyPending.Load() {
		// An optimistic open that ended without a reply (a refusal): what
		// was handed to QUIC went nowhere (early.go).
		err := s.snd.err
		s.smu.Unlock()
		return err
	}
	for s.snd.flushedSeq < target {
		if s.snd.err != nil {
			err := s.snd.err
			s.smu.Unlock()
			return err
		}
		s.snd.flushReq = true
		ch := waitChan(&s.snd.flushWait)
		s.smu.Unlock()
		s.wakeWriter()
		s.flushWatch.Add(1)
		select {
		case <-ch:
		case <-s.ctx.Done():
			s.flushWatch.Add(-1)
			return context.Cause(s.ctx)
		case <-ctx.Done():
			s.flushWatch.Add(-1)
			return ctxError(ctx)
		}
		s.flushWatch.Add(-1)
		s.smu.Lock()
	}
	s.smu.Unlock()
	return nil
}

// WaitAcked waits until the peer's application has applied (acked or
// rejected) record seq and every record before it, without forcing a
// flush or consuming rejections as Barrier does. It returns nil at once
// for a seq already acked, an error matching [ErrNotSent] for a seq not
// sent yet, and a *BarrierError if the stream can no longer get there or
// ctx ends. It is the per-record way to measure the time from Send to
// applied.
func (s *RecordStream) WaitAcked(ctx context.Context, seq uint64) error {
	s.smu.Lock()
	if seq >= s.snd.nextSeq {
		s.smu.Unlock()
		return misuse(ErrNotSent, "WaitAcked(%d): the last record sent is %d", seq, s.snd.nextSeq-1)
	}
	err := s.waitAckedLocked(ctx, seq)
	s.smu.Unlock()
	if err != nil {
		return s.barrierFailed(seq, err)
	}
	return nil
}

// waitAckedLocked waits until the peer acked target, the stream can no
// longer get there, or ctx ends. It is called, and returns, with smu held.
func (s *RecordStream) waitAckedLocked(ctx context.Context, target uint64) error {
	for s.snd.ackedSeq < target {
		if err := s.ackWaitErr(); err != nil {
			return err
		}
		if s.snd.done && s.snd.flushedSeq < target {
			// The writer ended before it wrote the target: no ack for
			// it can come.
			return s.snd.err
		}
		if err := sleepLockedFor(ctx, &s.smu, &s.snd.wait, s.ctx.Done(), target); err != nil {
			return err
		}
	}
	return nil
}

// AckedSeq returns the last sequence number the peer acknowledged as
// applied.
func (s *RecordStream) AckedSeq() uint64 {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.snd.ackedSeq
}

// Barrier waits until the peer's application has applied (acked or
// rejected) every record sent before the call. If the peer rejected
// records in that range, it returns a *[RejectedError] listing them (the
// first ones, with their count); errors.As finds the first as a
// *RecordError. Each rejection is reported to exactly one Barrier: the
// first that returns covering it, so of concurrent Barriers the one that
// returns first takes the rejections of its range and the others get
// only what is left of theirs. If the barrier can no longer succeed,
// because the stream or connection failed or ctx ended, it returns a
// *[BarrierError] carrying the last acked sequence number.
//
// The time spent is recorded in the stream's diagnostics, split into
// flush-wait (until the records were handed to QUIC) and ack-wait (until
// the peer acknowledged them).
func (s *RecordStream) Barrier(ctx context.Context) error {
	start := time.Now()
	s.smu.Lock()
	target := s.snd.nextSeq - 1
	s.snd.rejects.wait(target)
	// The Barrier waits for the ack alone: the writer does not wake it
	// when it writes the records, it stamps a mark with the time instead.
	marked := s.snd.flushedSeq < target
	if marked {
		s.addFlushMarkLocked(target)
		s.snd.flushReq = true // skip any FlushDelay linger
		s.smu.Unlock()
		s.wakeWriter()
		s.smu.Lock()
	}
	err := s.waitAckedLocked(ctx, target)
	flushedAt := start
	if marked {
		flushedAt = s.takeFlushMarkLocked(target)
	}
	var rerr *RejectedError
	if err == nil {
		rerr = s.snd.rejects.take(target)
	} else {
		s.snd.rejects.abandon(target)
	}
	s.smu.Unlock()
	if err != nil {
		return s.barrierFailed(target, err)
	}
	end := time.Now()
	if flushedAt.IsZero() {
		// The ack overtook the writer's bookkeeping: the records were
		// handed to QUIC no later than now.
		flushedAt = end
	}
	s.ctr.barrier(flushedAt.Sub(start), end.Sub(flushedAt))
	if rerr != nil {
		return rerr
	}
	return nil
}

// addFlushMarkLocked registers a Barrier waiting for target to be
// written. Called with smu held.
func (s *RecordStream) addFlushMarkLocked(target uint64) {
	s.flushWatch.Add(1)
	for i := range s.snd.flushMarks {
		if s.snd.flushMarks[i].target == target {
			s.snd.flushMarks[i].refs++
			return
		}
	}
	s.snd.flushMarks = append(s.snd.flushMarks, flushMark{target: target, refs: 1})
}

// takeFlushMarkLocked unregisters a Barrier added by addFlushMarkLocked
// and returns when target was written, zero if it was not (yet). Called
// with smu held.
func (s *RecordStream) takeFlushMarkLocked(target uint64) time.Time {
	for i := range s.snd.flushMarks {
		m := &s.snd.flushMarks[i]
		if m.target != target {
			continue
		}
		at := m.at
		s.flushWatch.Add(-1)
		if m.refs--; m.refs == 0 {
			s.snd.flushMarks = slices.Delete(s.snd.flushMarks, i, i+1)
		}
		return at
	}
	return time.Time{}
}

// ackWaitErr returns why acks can no longer arrive, or nil. Acks arrive
// through the reader loop, so a send direction that merely finished (FIN
// written, or the peer stopped reading) still lets a Barrier complete; a
// stream that ended or a reader that stopped does not.
func (s *RecordStream) ackWaitErr() error {
	if s.ctx.Err() != nil {
		return context.Cause(s.ctx)
	}
	if p := s.readerErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *RecordStream) barrierFailed(target uint64, err error) error {
	s.smu.Lock()
	acked := s.snd.ackedSeq
	s.smu.Unlock()
	return &BarrierError{Target: target, Acked: acked, Err: err}
}

// publishSendLocked copies the send direction's counters to the atomics
// snapshots read. Called with smu held, by the writer when it takes
// records and by the reader when an ack arrives.
func (s *RecordStream) publishSendLocked() {
	last := s.snd.nextSeq - 1
	s.ctr.outRecords.Store(last)
	s.ctr.outBytes.Store(s.snd.sentBytes)
	s.ctr.ackedSeq.Store(s.snd.ackedSeq)
	s.ctr.inflightRec.Store(last - s.snd.ackedSeq)
	s.ctr.inflightB.Store(s.snd.sentBytes - s.snd.ackedBytes)
}

// ackUpdate validates and applies a cumulative ack from the peer. It
// returns a non-zero code if the ack breaks the protocol, in which case
// nothing changed. Called by the reader loop.
func (s *RecordStream) ackUpdate(a uint64) (ErrorCode, string) {
	s.smu.Lock()
	defer s.smu.Unlock()
	switch {
	case a > s.snd.writingSeq:
		return CodeAckOutOfRange, fmt.Sprintf("ack %d beyond the highest sequence number sent, %d", a, s.snd.writingSeq)
	case a < s.snd.ackedSeq:
		return CodeAckRegression, fmt.Sprintf("ack %d below the previous ack %d", a, s.snd.ackedSeq)
	case a == s.snd.ackedSeq:
		return 0, ""
	}
	s.snd.ackedBytes = s.snd.cum.pop(int(a - s.snd.ackedSeq))
	s.snd.ackedSeq = a
	s.publishSendLocked()
	s.windowAckLocked(time.Now())
	// Send's window waiters wake for any ack, Barrier and WaitAcked only
	// for one that reaches their target.
	s.snd.wait.notifyUpTo(a)
	return 0, ""
}

// rejectUpdate records the peer's rejection of record seq. Called by the
// reader loop.
func (s *RecordStream) rejectUpdate(f *frames.ErrorFrame) (*RecordError, ErrorCode, string) {
	s.smu.Lock()
	defer s.smu.Unlock()
	switch {
	case f.Seq > s.snd.writingSeq:
		return nil, CodeAckOutOfRange, fmt.Sprintf("rejection of record %d, beyond the highest sequence number sent, %d", f.Seq, s.snd.writingSeq)
	case f.Seq <= s.snd.ackedSeq:
		return nil, CodeProtocolViolation, fmt.Sprintf("rejection of record %d, already acknowledged", f.Seq)
	case f.Seq <= s.snd.lastReject:
		return nil, CodeProtocolViolation, fmt.Sprintf("rejection of record %d out of order", f.Seq)
	}
	s.snd.lastReject = f.Seq
	re := RecordError{Seq: f.Seq, Code: f.Code, Reason: f.Reason}
	s.snd.rejects.add(re)
	return &re, 0, ""
}

// errTooLarge is Send's error for a record of n bytes above limit.
func errTooLarge(n, limit int) error {
	return misuse(ErrRecordTooLarge, "Send: record of %d bytes exceeds the stream's limit of %d", n, limit)
}
