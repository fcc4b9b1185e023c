package quicrecord

import (
	"context"
	"errors"
	"time"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/compress"
)

// writer is the state the writer loop owns alone: the buffers it writes
// from and recycles, its timer, and whether its stream is still between
// frames.
type writer struct {
	cur   []segment // segments taken from sendState, being written
	spare []segment // the other segment slice, handed back to sendState
	ctl   []byte    // control frames of the current pass
	errs  []frames.ErrorFrame

	timer       *time.Timer
	lingerUntil time.Time // zero: no linger pending
	ackUntil    time.Time // zero: no held ack
	lastBatch   time.Time // when the last BATCH was written

	// broken is set when a Write or the FIN failed: the stream may end
	// inside a frame, so no ERROR frame can follow.
	broken bool

	writeRate float64   // moving average of the bytes per second BATCH Writes move
	lastAck   time.Time // when the last ack was written
	// doneSent is set once the DONE of a half-close is written: from then
	// on only acks and rejections leave, then the FIN.
	doneSent bool

	// enc compresses batches (nil: they go plain), into buffers of the
	// connection's pool (see compressBatch). It is made once the
	// negotiation is final (encReady): an optimistic open sends its early
	// batches plain, and the reader loop sets the peer's codecs when the
	// reply arrives.
	enc      *compress.Encoder
	encReady bool

	live livenessState // the liveness probes' schedule (liveness.go)
}

// ending says how the send direction is to end, once everything queued is
// written.
type ending uint8

const (
	endingNone    ending = iota // not ending
	endingRecords               // CloseWrite: DONE, then acks, then the FIN once both directions are done
	endingAll                   // Close: the FIN
)

// passNext says what the writer loop does after a pass.
type passNext uint8

const (
	passSleep passNext = iota // everything queued is written: wait for the doorbell
	passAgain                 // ending, and work remains: pass again at once
	passFin                   // the FIN was written after everything else
	passStop                  // the send direction ended (the pass's error says why)
)

// errAborting stops a pass between two frames when an abort handed the
// writer its final frame; it never leaves the writer.
var errAborting = errors.New("quicrecord: stream aborting")

// abortTimeout bounds the wait of an abort for the frame the writer is
// writing when it comes, and for the ERROR frame after it: a peer that
// does not take them in time (it is not reading, flow control is blocked)
// gets the reset without the ERROR.
const abortTimeout = time.Second

// writeLoop is the stream's only writer. It owns the write side of the
// QUIC stream: every outbound frame (batches, acks, rejections, the FIN
// and the final ERROR of an abort) is written here, one whole frame after
// another. Other goroutines queue work under smu or rmu and ring s.wake;
// an abort queues its final frame (see RecordStream.abort), which the
// loop writes after the frame it is writing, instead of the rest.
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
		if s.aborting.Load() || s.ctx.Err() != nil {
			// The stream ended; an abort's final frame goes out now.
			s.writerStop(w, context.Cause(s.ctx), false)
			return
		}
		if sendCtx.Err() != nil {
			// The peer stopped reading (STOP_SENDING), or the stream
			// was reset locally. Acknowledge the reset to quic-go, or the
			// stream never completes and its credit is never returned to
			// the peer.
			w.broken = true
			s.writerStop(w, s.streamErr(context.Cause(sendCtx)), true)
			return
		}
		if s.drain(w) {
			return
		}
		s.armTimer(w)
	}
}

// drain passes until the work queued is written. It reports whether the
// loop ended. Work queued during a pass rings the doorbell (takeRecords
// and takeAckWork clear the notified flags before the pass writes), so
// the loop need not look again before it sleeps.
func (s *RecordStream) drain(w *writer) bool {
	for {
		next, err := s.pass(w)
		switch next {
		case passAgain:
			continue
		case passFin:
			s.writerStop(w, nil, false)
			return true
		case passStop:
			s.writerStop(w, err, true)
			return true
		}
		return false
	}
}

// pass takes all queued work and writes it, control frames first: take
// the records, take the ack and rejections, decide how the ack leaves,
// write the control frames, write the batches, and, while ending, write
// the DONE or the FIN once nothing is left.
func (s *RecordStream) pass(w *writer) (passNext, error) {
	now := time.Now()
	take, end, err := s.takeRecords(w, now)
	if err != nil {
		return passStop, err
	}
	acks := s.takeAckWork(w.errs[:0])
	w.errs = acks.errs
	plan := s.planAck(w, &acks, take, end != endingNone, now)
	if err := s.writeControl(w, &acks, plan); err != nil {
		return passStop, err
	}
	if plan == ackStandalone {
		s.ackWritten(acks.ack, now)
		w.lastAck = now
	}
	if take {
		if err := s.writeBatches(w, plan == ackPiggybacked, acks.ack, now); err != nil {
			return passStop, err
		}
	}
	if take || plan != ackNone || len(acks.errs) > 0 || acks.windowDue {
		s.ctr.touch(now)
	}
	if end == endingNone {
		if err := s.probeLiveness(w, now); err != nil {
			return passStop, err
		}
	}
	if end != endingNone && s.replyPending.Load() {
		// How the direction ends depends on the reply (§5.5); the reply
		// rings the doorbell.
		return passSleep, nil
	}
	switch end {
	case endingAll:
		return s.finishIfDrained(w)
	case endingRecords:
		return s.endRecords(w)
	}
	return passSleep, nil
}

// takeRecords takes the segments Send filled, unless the only one should
// linger for more records (see lingerLocked). It reports whether it took
// any and how the send direction is ending; an error is the end of the
// send direction.
func (s *RecordStream) takeRecords(w *writer, now time.Time) (take bool, end ending, err error) {
	w.lingerUntil = time.Time{}
	s.smu.Lock()
	if s.snd.err != nil {
		err := s.snd.err
		s.smu.Unlock()
		return false, endingNone, err
	}
	s.snd.notified = false
	switch {
	case s.snd.closing:
		end = endingAll
	case s.snd.ending:
		end = endingRecords
	}
	if len(s.snd.segs) > 0 {
		if s.lingerLocked(now, end != endingNone) {
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
	return take, end, nil
}

// lingerLocked reports whether the pending records wait for more
// (StreamConfig.FlushDelay): one segment, not full, waiting less than the
// delay, and no Flush, Barrier, Close or CloseWrite asking for it. Called
// with smu held and at least one segment pending.
func (s *RecordStream) lingerLocked(now time.Time, closing bool) bool {
	if s.set.flushDelay == 0 || s.snd.flushReq || closing || len(s.snd.segs) != 1 {
		return false
	}
	sg := &s.snd.segs[0]
	return sg.count < s.set.maxBatchRecords && sg.bytes < int(s.batchBytes.Load()) && now.Sub(s.snd.pendAt) < s.set.flushDelay
}

// ackPlan says how a pass conveys the pending ack.
type ackPlan uint8

const (
	ackNone        ackPlan = iota // none due, or held for a batch (writer.ackUntil)
	ackPiggybacked                // in the header of the pass's first batch
	ackStandalone                 // in an ACK frame
)

// planAck decides how the pending ack leaves: in the first batch's header
// when the pass writes batches and piggybacking is effective; held for up
// to AckDelay for a batch to ride in while the other direction is busy;
// otherwise at once in an ACK frame.
func (s *RecordStream) planAck(w *writer, a *ackWork, take, closing bool, now time.Time) ackPlan {
	w.ackUntil = time.Time{}
	switch {
	case !a.due:
		return ackNone
	case take && s.piggyback.Load():
		return ackPiggybacked
	case s.piggyback.Load() && s.set.ackDelay > 0 && !closing &&
		now.Sub(w.lastBatch) < s.set.ackDelay && now.Sub(a.since) < s.set.ackDelay:
		w.ackUntil = a.since.Add(s.set.ackDelay)
		return ackNone
	}
	return ackStandalone
}

// writeControl writes the pass's control frames, ahead of its batches:
// a WINDOW, the rejections, then a standalone ack. The rejections go
// before the ack that covers their records.
func (s *RecordStream) writeControl(w *writer, a *ackWork, plan ackPlan) error {
	ctl := w.ctl[:0]
	if a.windowDue {
		ctl = a.window.Append(ctl)
		s.ctr.frameOut(kindWindow)
	}
	for i := range a.errs {
		ctl = a.errs[i].Append(ctl)
	}
	if len(a.errs) > 0 {
		s.ctr.outFrames[kindError].Add(uint64(len(a.errs)))
	}
	if plan == ackStandalone {
		ctl = frames.AppendAck(ctl, a.ack)
		s.ctr.acksSoloOut.Add(1)
		s.ctr.frameOut(kindAck)
	}
	w.ctl = ctl
	if len(ctl) == 0 {
		return nil
	}
	if err := s.write(w, ctl); err != nil {
		return err
	}
	return s.abortWaiting()
}

// writeBatches writes the segments taken, one BATCH each, and records
// each as handed to QUIC as soon as its Write returns. The first carries
// ack when piggy; before each later one the writer takes the acks,
// rejections and WINDOW the receive side produced meanwhile (see
// ackBetween), so that they never wait behind the rest of the pass. It
// gives the segments' buffers back to the pool.
func (s *RecordStream) writeBatches(w *writer, piggy bool, ack uint64, now time.Time) error {
	for i, sg := range w.cur {
		if i > 0 {
			var err error
			if piggy, ack, err = s.ackBetween(w); err != nil {
				return err
			}
		}
		h := frames.BatchHeader{FirstSeq: sg.first, Count: sg.count}
		if piggy {
			h.HasAck, h.Ack = true, ack
		}
		frame, zb := s.compressBatch(w, &w.cur[i], h)
		t0 := time.Now()
		err := s.write(w, frame)
		s.conn.putZBuf(zb)
		if err != nil {
			return err
		}
		// The write rate counts record bytes, as the batch limit does.
		s.noteWrite(w, len(sg.buf), time.Since(t0))
		s.conn.putSegBuf(sg.pooled)
		w.cur[i].buf, w.cur[i].pooled = nil, nil
		s.ctr.outBatches.Add(1)
		s.ctr.outFrames[kindBatch].Add(1)
		if piggy {
			s.ctr.acksPiggyOut.Add(1)
			s.ackWritten(ack, now)
			w.lastAck = time.Now()
		}
		s.batchWritten(sg.first + uint64(sg.count) - 1)
		if err := s.abortWaiting(); err != nil {
			return err
		}
	}
	last := w.cur[len(w.cur)-1]
	s.flushed(last.first + uint64(last.count) - 1)
	w.lastBatch = now
	if cap(w.cur) <= 64 {
		w.spare = w.cur[:0]
	}
	w.cur = nil
	return nil
}

// ackBetween takes, between two batches of a pass, what the receive side
// produced since the pass began, once batchTime has passed since an ack
// last left: a WINDOW and rejections are written at once, and a new ack
// rides in the next batch (or, without piggybacking, leaves in an ACK
// frame now). So nothing waits behind more than about batchTime of data,
// and a long pass does not turn into an ack per batch, each of which
// wakes the peer's sender. It reports whether the next batch carries an
// ack, and which.
func (s *RecordStream) ackBetween(w *writer) (piggy bool, ack uint64, err error) {
	if !s.ackRung.Load() {
		return false, 0, nil
	}
	now := time.Now()
	if now.Sub(w.lastAck) < batchTime {
		return false, 0, nil
	}
	a := s.takeAckWork(w.errs[:0])
	w.errs = a.errs
	plan := ackNone
	if a.due {
		plan = ackStandalone
		if s.piggyback.Load() {
			plan = ackPiggybacked
		}
	}
	if err := s.writeControl(w, &a, plan); err != nil {
		return false, 0, err
	}
	if plan == ackStandalone {
		s.ackWritten(a.ack, now)
		w.lastAck = now
	}
	return plan == ackPiggybacked, a.ack, nil
}

// write writes b, one or more whole frames. A failed Write breaks the
// stream: it may now end inside a frame.
func (s *RecordStream) write(w *writer, b []byte) error {
	if _, err := s.qs.Write(b); err != nil {
		w.broken = true
		return s.streamErr(err)
	}
	return nil
}

// abortWaiting returns errAborting if an abort handed the writer its
// final frame. The writer asks after every whole frame, so that the ERROR
// follows the frame being written when the abort came, not the rest of
// the pass. One atomic load per frame.
func (s *RecordStream) abortWaiting() error {
	if s.aborting.Load() {
		return errAborting
	}
	return nil
}

// batchWritten records that the records up to seq, the end of one batch,
// were handed to QUIC: at once for the snapshots' FlushedSeq, and, while
// a Flush or Barrier waits, for them too (see flushed); otherwise they
// learn it from the flushed call at the end of the pass, which saves the
// lock per batch.
func (s *RecordStream) batchWritten(seq uint64) {
	if s.flushWatch.Load() > 0 {
		s.flushed(seq)
		return
	}
	s.ctr.flushedSeq.Store(seq)
}

// flushed records that the records up to seq were handed to QUIC: Flush
// waiters wake, and the Barriers waiting for them get their flush time.
func (s *RecordStream) flushed(seq uint64) {
	s.smu.Lock()
	s.snd.flushedSeq = seq
	s.ctr.flushedSeq.Store(seq)
	s.stampFlushMarksLocked(seq)
	notifyLocked(&s.snd.flushWait)
	s.smu.Unlock()
}

// endRecords ends the records of a stream whose CloseWrite was called.
// With half-close negotiated it writes DONE after the last record, then
// goes on writing acks and rejections, and writes the FIN once the peer's
// records ended too and every one of them was acked (docs/PROTOCOL.md
// §8.4). Without it, the FIN goes out once nothing is left to write, and
// no ack can follow it.
func (s *RecordStream) endRecords(w *writer) (passNext, error) {
	if !s.halfClose.Load() {
		return s.finishIfDrained(w)
	}
	if !w.doneSent {
		s.smu.Lock()
		empty, last := len(s.snd.segs) == 0, s.snd.nextSeq-1
		s.smu.Unlock()
		if !empty {
			return passAgain, nil
		}
		if err := s.abortWaiting(); err != nil {
			return passStop, err
		}
		w.ctl = frames.AppendDone(w.ctl[:0], last)
		if err := s.write(w, w.ctl); err != nil {
			return passStop, err
		}
		s.ctr.frameOut(kindDone)
		w.doneSent = true
		s.recordsEnded()
	}
	if !s.recvSettled() {
		return passSleep, nil // the peer's records, or our acks of them, are not over
	}
	return s.finishIfDrained(w)
}

// recordsEnded records that the send direction's records ended (DONE or
// FIN written) and wakes CloseWrite.
func (s *RecordStream) recordsEnded() {
	s.smu.Lock()
	s.snd.doneSent = true
	notifyLocked(&s.snd.flushWait)
	s.smu.Unlock()
}

// finishIfDrained writes the FIN of an ending stream once nothing is left
// to write: no records, no ack or rejection owed. An abort waiting takes
// the FIN's place.
func (s *RecordStream) finishIfDrained(w *writer) (passNext, error) {
	s.smu.Lock()
	empty := len(s.snd.segs) == 0
	s.smu.Unlock()
	if !empty || !s.acksDrained() {
		return passAgain, nil
	}
	if err := s.abortWaiting(); err != nil {
		return passStop, err
	}
	if err := s.qs.Close(); err != nil {
		w.broken = true
		return passStop, s.streamErr(err)
	}
	return passFin, nil
}

// armTimer sets the timer for the earliest pending deadline. The timer
// rings the doorbell; a stale ring only costs an empty pass.
func (s *RecordStream) armTimer(w *writer) {
	var at time.Time
	for _, t := range []time.Time{w.lingerUntil, w.ackUntil, w.live.at} {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if !at.IsZero() {
		w.timer.Reset(max(time.Until(at), 0))
	}
}

// writerStop ends the writer loop and records the end of the send
// direction. err says why; nil means the FIN was written after everything
// else (or an abort took over). An abort's final frame, if one waits, goes
// out now: its ERROR after the last whole frame unless the stream is
// broken, then the reset of both directions with its code. Without one, a
// writer that failed (reset set) resets its direction with the error's
// code.
func (s *RecordStream) writerStop(w *writer, err error, reset bool) {
	if err == errAborting {
		err, reset = nil, false
	}
	s.smu.Lock()
	final := s.snd.final
	s.snd.final = nil
	if s.snd.err == nil {
		if err != nil {
			s.snd.err = err
		} else {
			s.snd.err = ErrClosed
			s.snd.doneSent = true // the FIN ended the records
		}
	}
	s.snd.done = true
	s.notifySendLocked()
	s.smu.Unlock()
	switch {
	case final != nil:
		s.sendFinal(final, !w.broken)
	case reset && err != nil:
		s.qs.CancelWrite(resetCode(writerCode(err)))
	}
	s.maybeEnd()
}

// sendFinal writes an abort's ERROR frame if the stream is between
// frames, marks it reliable so that the reset delivers it
// (RESET_STREAM_AT), and resets both directions with its code. The Write
// is bounded by the deadline the abort set.
func (s *RecordStream) sendFinal(f *frames.ErrorFrame, clean bool) {
	if clean {
		if _, err := s.qs.Write(f.Append(nil)); err == nil {
			s.qs.SetReliableBoundary()
		}
	}
	resetStream(s.qs, f.Code)
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
	return streamCode(err, CodeInternal)
}
