package quicrecord

import (
	"context"
	"time"

	"github.com/recordmux/recordmux/frames"
)

// writer is the state the writer loop owns alone: the buffers it writes
// from and recycles, and its timer.
type writer struct {
	cur   []segment // segments taken from sendState, being written
	spare []segment // the other segment slice, handed back to sendState
	ctl   []byte    // control frames of the current pass
	errs  []frames.ErrorFrame

	timer       *time.Timer
	lingerUntil time.Time // zero: no linger pending
	ackUntil    time.Time // zero: no held ack
	lastBatch   time.Time // when the last BATCH was written
}

// writeLoop is the stream's only writer. It owns the write side of the
// QUIC stream: every outbound frame (batches, acks, errors, the FIN) is
// written here, apart from the final ERROR frame of an abort, which is
// written with TryWriteAll and so never interleaves with a frame of this
// loop. Other goroutines queue work under smu or rmu and ring s.wake.
//
// The loop sleeps on s.wake alone: the end of the stream's context, a
// STOP_SENDING from the peer (the QUIC stream's context) and its own
// timer ring the same doorbell, so a wake-up costs one channel receive
// rather than a four-way select. Each wake-up checks the contexts first.
func (s *RecordStream) writeLoop() {
	defer s.conn.wg.Done()
	defer close(s.writerDone)
	w := &writer{timer: time.AfterFunc(time.Hour, s.wakeWriter)}
	w.timer.Stop()
	defer w.timer.Stop()
	sendCtx := s.qs.Context()
	defer context.AfterFunc(s.ctx, s.wakeWriter)()
	defer context.AfterFunc(sendCtx, s.wakeWriter)()
	for {
		<-s.wake
		if s.ctx.Err() != nil {
			s.writerExit(context.Cause(s.ctx))
			return
		}
		if sendCtx.Err() != nil {
			// The peer stopped reading (STOP_SENDING), or the stream
			// was reset locally. Acknowledge the reset to quic-go, or the
			// stream never completes and its credit is never returned to
			// the peer.
			err := s.streamErr(context.Cause(sendCtx))
			s.qs.CancelWrite(resetCode(writerCode(err)))
			s.writerExit(err)
			return
		}
		for {
			more, fin, err := s.pass(w)
			if err != nil {
				s.qs.CancelWrite(resetCode(writerCode(err)))
				s.writerExit(err)
				return
			}
			if fin {
				s.writerExit(nil)
				return
			}
			if !more {
				break
			}
		}
		s.armTimer(w)
	}
}

// armTimer sets the timer for the earliest pending deadline. The timer
// rings the doorbell; a stale ring only costs an empty pass.
func (s *RecordStream) armTimer(w *writer) {
	var at time.Time
	for _, t := range []time.Time{w.lingerUntil, w.ackUntil} {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if !at.IsZero() {
		w.timer.Reset(max(time.Until(at), 0))
	}
}

// writerExit records the end of the send direction. err nil means the FIN
// was written after everything else.
func (s *RecordStream) writerExit(err error) {
	s.smu.Lock()
	if s.snd.err == nil {
		if err != nil {
			s.snd.err = err
		} else {
			s.snd.err = ErrClosed
		}
	}
	s.snd.done = true
	s.notifySendLocked()
	s.smu.Unlock()
	s.maybeEnd()
}

// pass takes all queued work and writes it. It reports whether the loop
// should pass again at once (only while closing: until the FIN is
// written) and whether the FIN was written. Work queued during a pass
// rings the doorbell (pass clears the notified flags before it writes),
// so the loop need not look again before it sleeps.
func (s *RecordStream) pass(w *writer) (more, fin bool, err error) {
	now := time.Now()
	w.lingerUntil = time.Time{}

	// Take pending records.
	s.smu.Lock()
	if s.snd.err != nil {
		err := s.snd.err
		s.smu.Unlock()
		return false, false, err
	}
	s.snd.notified = false
	closing := s.snd.closing
	take := false
	if n := len(s.snd.segs); n > 0 {
		lingering := s.set.flushDelay > 0 && !s.snd.flushReq && !closing && n == 1 &&
			s.snd.segs[0].count < s.set.maxBatchRecords && s.snd.segs[0].bytes < s.batchBytes &&
			now.Sub(s.snd.pendAt) < s.set.flushDelay
		if lingering {
			w.lingerUntil = s.snd.pendAt.Add(s.set.flushDelay)
		} else {
			take = true
			w.cur = s.snd.segs
			s.snd.segs, w.spare = w.spare[:0], nil
			last := w.cur[len(w.cur)-1]
			s.snd.writingSeq = last.first + uint64(last.count) - 1
			s.publishSendLocked()
		}
	}
	if take || len(s.snd.segs) == 0 {
		s.snd.flushReq = false
	}
	s.smu.Unlock()

	// Take pending acks and rejections.
	s.rmu.Lock()
	s.rcv.notified = false
	ack := s.rcv.applied
	ackDue := ack > s.rcv.ackSent
	since := s.rcv.ackSince
	errs := s.rcv.errFrames
	s.rcv.errFrames = w.errs[:0]
	s.rmu.Unlock()

	ctl := w.ctl[:0]
	for i := range errs {
		ctl = errs[i].Append(ctl)
	}
	w.errs = errs
	if len(errs) > 0 {
		s.ctr.outFrames[kindError].Add(uint64(len(errs)))
	}
	piggy := false
	ackSent := false
	w.ackUntil = time.Time{}
	if ackDue {
		switch {
		case take && s.piggyback:
			piggy, ackSent = true, true
		case s.piggyback && s.set.ackDelay > 0 && !closing &&
			now.Sub(w.lastBatch) < s.set.ackDelay && now.Sub(since) < s.set.ackDelay:
			// The other direction is busy: hold the ack for a batch.
			w.ackUntil = since.Add(s.set.ackDelay)
		default:
			ctl = frames.AppendAck(ctl, ack)
			ackSent = true
			s.ctr.acksSoloOut.Add(1)
			s.ctr.frameOut(kindAck)
		}
	}
	w.ctl = ctl
	if len(ctl) > 0 {
		if _, err := s.qs.Write(ctl); err != nil {
			return false, false, s.streamErr(err)
		}
	}

	if take {
		for i, sg := range w.cur {
			h := frames.BatchHeader{FirstSeq: sg.first, Count: sg.count}
			if i == 0 && piggy {
				h.HasAck, h.Ack = true, ack
			}
			start := hdrReserve - frames.BatchHeaderLen(h, sg.bytes)
			frames.AppendBatchHeader(sg.buf[start:start], h, sg.bytes)
			if _, err := s.qs.Write(sg.buf[start:]); err != nil {
				return false, false, s.streamErr(err)
			}
			s.conn.putSegBuf(sg.pooled)
			w.cur[i].buf, w.cur[i].pooled = nil, nil
		}
		nb := uint64(len(w.cur))
		s.ctr.outBatches.Add(nb)
		s.ctr.outFrames[kindBatch].Add(nb)
		if piggy {
			s.ctr.acksPiggyOut.Add(1)
		}
		w.lastBatch = now
		last := w.cur[len(w.cur)-1]
		flushed := last.first + uint64(last.count) - 1
		s.smu.Lock()
		s.snd.flushedSeq = flushed
		s.ctr.flushedSeq.Store(flushed)
		s.stampFlushMarksLocked(flushed)
		notifyLocked(&s.snd.flushWait)
		s.smu.Unlock()
		if cap(w.cur) <= 64 {
			w.spare = w.cur[:0]
		}
		w.cur = nil
	}
	if take || ackSent || len(errs) > 0 {
		s.ctr.touch(now)
	}

	if ackSent {
		s.rmu.Lock()
		if ack > s.rcv.ackSent {
			s.rcv.ackSent = ack
		}
		if s.rcv.applied > s.rcv.ackSent {
			s.rcv.ackSince = now
		}
		s.rmu.Unlock()
	}

	if closing {
		s.smu.Lock()
		empty := len(s.snd.segs) == 0
		s.smu.Unlock()
		s.rmu.Lock()
		acksDone := s.rcv.applied == s.rcv.ackSent && len(s.rcv.errFrames) == 0
		s.rmu.Unlock()
		if empty && acksDone {
			if err := s.qs.Close(); err != nil {
				return false, false, s.streamErr(err)
			}
			return false, true, nil
		}
		return true, false, nil
	}
	return false, false, nil
}

// stampFlushMarksLocked records now as the flush time of the Barriers
// whose records up to flushed were just written. Called with smu held.
func (s *RecordStream) stampFlushMarksLocked(flushed uint64) {
	var now time.Time
	for i := range s.snd.flushMarks {
		m := &s.snd.flushMarks[i]
		if m.at.IsZero() && m.target <= flushed {
			if now.IsZero() {
				now = time.Now()
			}
			m.at = now
		}
	}
}

// wakeWriter rings the writer loop's doorbell without blocking.
func (s *RecordStream) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writerCode is the code the writer resets its stream with when it fails.
func writerCode(err error) ErrorCode {
	code, _ := codeOf(err, CodeInternal)
	return code
}
