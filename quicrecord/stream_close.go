package quicrecord

import (
	"context"
	"os"
	"time"

	"github.com/recordmux/recordmux/frames"
)

// The ends of a stream: Close, CloseWrite and CloseWithError, the abort
// of a failed stream, and the bookkeeping when it is over. The wire side
// of each is in docs/PROTOCOL.md §8.

// Close ends the stream gracefully, bounded by ctx and by the stream's
// CloseTimeout, whichever ends first. Records already sent are handed to
// QUIC, pending acks and rejections go out, and the send direction is
// finished with a FIN, so the peer's Recv returns io.EOF after the last
// record. Close does not wait for the peer to apply the records; call
// Barrier first for that.
//
// Close also stops receiving: records from the peer that Recv or Apply
// has not returned are discarded and never acked, later ones are refused
// (STOP_SENDING with CodeNoError), and the peer's pending Barrier fails.
// To finish sending but keep receiving and acking, use CloseWrite.
//
// If the flush cannot complete in time (the peer does not read), Close
// resets the stream with CodeCancelled and returns a *StreamError with
// that code wrapping os.ErrDeadlineExceeded, or ctx's cause if ctx ended
// first. When Close returns, the stream's goroutines have ended. Close
// after Close or CloseWithError does nothing and returns nil, so a
// deferred Close is always safe.
func (s *RecordStream) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() { err = s.close(ctx) })
	return err
}

func (s *RecordStream) close(ctx context.Context) error {
	s.smu.Lock()
	s.snd.closing = true
	s.snd.flushReq = true
	writerDone := s.snd.done
	s.smu.Unlock()
	var err error
	if !writerDone {
		s.wakeWriter()
		err = s.awaitWriter(ctx)
	}
	s.qs.CancelRead(resetCode(CodeNoError))
	s.end(ErrClosed)
	s.waitLoops()
	return err
}

// awaitWriter waits until the writer loop ended, ctx ended, or the close
// timeout passed. In the last two cases it resets the send direction with
// CodeCancelled and returns why.
func (s *RecordStream) awaitWriter(ctx context.Context) error {
	select {
	case <-s.writerDone:
		return nil // done already: a done ctx does not undo it
	default:
	}
	t := time.NewTimer(s.set.closeTimeout)
	defer t.Stop()
	var cause error
	select {
	case <-s.writerDone:
		return nil
	case <-t.C:
		cause = os.ErrDeadlineExceeded
	case <-ctx.Done():
		cause = ctxError(ctx)
	}
	s.qs.CancelWrite(resetCode(CodeCancelled))
	return &StreamError{Code: CodeCancelled, Reason: "close cut short flushing", StreamID: s.id, Err: cause}
}

// CloseWrite ends this side's records and keeps the stream open for the
// peer's (a half-close): records already sent are handed to QUIC, then
// the peer's Recv returns io.EOF (its Apply nil) after the last of them,
// while this side goes on receiving the peer's records and acking them,
// and Barrier goes on waiting for the peer's acks. The stream ends
// gracefully once the peer closed too (CloseWrite or Close) and every
// record of both directions was acked. Send fails after CloseWrite with
// an error matching ErrClosed.
//
// CloseWrite returns once the end of the records was handed to QUIC, or
// with ctx's error (the end still goes out after), or the stream's error
// if it failed. On a peer without FeatureHalfClose (an older version, or
// one that disabled it) the end of the records is a FIN: this side can
// send no acks after it, so the peer's records that arrive later are
// delivered but never acked, and the peer's Barrier on them fails.
// CloseWrite after Close returns ErrClosed; a second CloseWrite waits for
// the first.
func (s *RecordStream) CloseWrite(ctx context.Context) error {
	s.smu.Lock()
	if s.snd.closing {
		s.smu.Unlock()
		return ErrClosed
	}
	s.snd.ending = true
	s.snd.flushReq = true
	for !s.snd.doneSent {
		if err := s.snd.err; err != nil {
			s.smu.Unlock()
			return err
		}
		ch := waitChan(&s.snd.flushWait)
		s.smu.Unlock()
		s.wakeWriter()
		select {
		case <-ch:
		case <-s.ctx.Done():
			return s.ctxCause()
		case <-ctx.Done():
			return ctxError(ctx)
		}
		s.smu.Lock()
	}
	s.smu.Unlock()
	return nil
}

// finish closes the stream after the peer acknowledged the end: it writes
// the FIN, waits until the peer ends its direction too (or ctx is done),
// then closes. Closing the connection right after Close can overtake the
// FIN; finish cannot.
func (s *RecordStream) finish(ctx context.Context) error {
	s.smu.Lock()
	s.snd.closing = true
	s.snd.flushReq = true
	s.smu.Unlock()
	s.wakeWriter()
	select {
	case <-s.readerDone:
	case <-ctx.Done():
	}
	return s.Close(context.WithoutCancel(ctx))
}

// waitLoops returns when both loops have returned.
func (s *RecordStream) waitLoops() {
	<-s.writerDone
	<-s.readerDone
}

// CloseWithError resets the stream in both directions with code, after
// sending an ERROR frame with code and reason so the peer sees both. The
// ERROR leaves through the stream's writer after the frame it is writing;
// if that frame and the ERROR cannot be handed to QUIC within a second
// (the peer is not reading, flow control is blocked) the stream is reset
// without the ERROR, and the peer sees the code alone. Records not yet
// handed to QUIC are dropped. The peer's pending and future calls fail
// with a *StreamError carrying code; local ones fail at once with one
// that has Remote == false. When CloseWithError returns, the stream's
// goroutines have ended. After Close or an earlier CloseWithError it
// sends nothing and returns ErrClosed: the code can no longer reach the
// peer.
func (s *RecordStream) CloseWithError(code ErrorCode, reason string) error {
	closed := true
	s.closeOnce.Do(func() {
		closed = false
		s.abort(&StreamError{Code: code, Reason: reason, StreamID: s.id}, true)
		s.waitLoops()
	})
	if closed {
		return ErrClosed
	}
	return nil
}

// abort ends the stream at once with err: its context is cancelled with
// err as the cause, and Send, Barrier, Recv and the others fail with it
// from now on. Only the first abort of a stream that has not ended acts on
// the QUIC stream. With tell set it sends ERROR(seq 0, code, reason)
// before resetting both directions with err.Code; without, it resets at
// once (the peer's own ERROR or reset ended the stream).
//
// The ERROR goes through the writer loop, like every outbound frame: a
// running writer gets it as its final frame (sendState.final) and writes
// it after the frame it is writing, never inside one, then resets. A
// write deadline of abortTimeout bounds that frame and the ERROR. When
// the writer has not started or has already finished, nothing else
// writes, and abort writes the frame itself.
func (s *RecordStream) abort(err *StreamError, tell bool) {
	if tell && s.ctx.Err() == nil {
		_ = s.qs.SetWriteDeadline(time.Now().Add(abortTimeout))
	}
	s.smu.Lock()
	first := !s.snd.aborted && s.ctx.Err() == nil
	s.snd.aborted = true
	handOff := first && tell && s.snd.started && !s.snd.done
	if handOff {
		s.snd.final = &frames.ErrorFrame{Code: err.Code, Reason: err.Reason}
		s.aborting.Store(true)
	}
	if s.snd.err == nil {
		s.snd.err = err
	}
	s.notifySendLocked()
	s.smu.Unlock()
	switch {
	case handOff:
		// Counted now, before end freezes the stream's snapshot.
		s.ctr.frameOut(kindError)
		s.wakeWriter()
	case first && tell:
		if endStream(s.qs, err.Code, err.Reason) {
			s.ctr.frameOut(kindError)
		}
	case first:
		resetStream(s.qs, err.Code)
	}
	s.failRecv(err)
	s.end(err)
}

// violation handles a protocol violation by the peer: nothing of the
// offending frame has been applied; the stream is aborted with the code.
func (s *RecordStream) violation(code ErrorCode, reason string, cause error) {
	s.ctr.violations.Add(1)
	if s.log != nil {
		s.log.Warn("protocol violation", "code", code.String(), "reason", reason, "err", cause)
	}
	s.abort(&StreamError{Code: code, Reason: reason, StreamID: s.id, Err: cause}, true)
}

// failRecv ends the receive direction with err if it has not ended.
func (s *RecordStream) failRecv(err error) {
	s.rmu.Lock()
	if s.rcv.err == nil {
		s.rcv.err = err
	}
	s.rcv.wait.notify()
	notifyLocked(&s.rcv.readerWait)
	s.rmu.Unlock()
}

// end marks the stream done with cause: its context is cancelled and its
// final snapshot frozen. Only the first cause counts.
func (s *RecordStream) end(cause error) {
	s.cancel(cause)
	s.freeze()
	if !s.ended.CompareAndSwap(false, true) {
		return
	}
	// Records still queued stay deliverable, but no longer count against
	// the connection's receive budget.
	s.acct.close()
	if s.rsm != nil {
		s.rmu.Lock()
		graceful := s.rcv.eof
		s.rmu.Unlock()
		s.store.release(s.rsm, s, graceful)
	}
	if s.log != nil {
		s.log.Debug("record stream ended", "cause", context.Cause(s.ctx))
	}
}

// freeze stores the final snapshot once the stream's context is done,
// whoever cancelled it (this stream, or its connection).
func (s *RecordStream) freeze() *RecordSnapshot {
	if f := s.final.Load(); f != nil {
		return f
	}
	if s.ctx.Err() == nil {
		return nil
	}
	snap := s.snapshot()
	s.final.CompareAndSwap(nil, &snap)
	return s.final.Load()
}

// maybeEnd ends the stream once both directions finished on their own:
// the peer sent FIN and this side's writer stopped.
func (s *RecordStream) maybeEnd() {
	s.smu.Lock()
	sendDone, sendErr := s.snd.done, s.snd.err
	s.smu.Unlock()
	s.rmu.Lock()
	recvDone, recvErr := s.rcv.done, s.rcv.err
	s.rmu.Unlock()
	if !sendDone || !recvDone {
		return
	}
	cause := sendErr
	if cause == nil {
		cause = recvErr
	}
	if cause == nil {
		cause = ErrClosed
	}
	s.end(cause)
}
