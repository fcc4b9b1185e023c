package quicrecord

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/recordmux/recordmux/frames"
)

// The connection loop of a ResumableStream: connect dials and opens the
// stream, run serves each connection and reconnects after losing one.

// connect dials and opens the stream, resuming after the last applied
// record. Errors that retrying cannot fix come back as *ResumeError.
func (r *ResumableStream) connect(ctx context.Context) (*Conn, *RecordStream, error) {
	conn, err := r.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := r.open(ctx, conn, true)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, s, nil
}

// open opens the stream on conn, resuming after the last applied record:
// optimistically (resume_early.go) when mayEarly and the acceptor of the
// previous connection offered it, and then without waiting for the
// reply, which the reader loop checks. Errors that retrying cannot fix
// come back as *ResumeError.
func (r *ResumableStream) open(ctx context.Context, conn *Conn, mayEarly bool) (*RecordStream, error) {
	r.mu.Lock()
	ro := &resumeOpen{key: r.key, first: r.acked + 1, last: r.written, epoch: r.opts.Epoch, onAck: r.onAck}
	if r.stats.Connects == 0 {
		// A new ResumableStream may continue a key an earlier process
		// used: it cannot know how far that process got, so the acceptor
		// may be ahead of FirstSeq by any amount.
		ro.last = frames.MaxSeq
	}
	ro.early = mayEarly && r.stats.Connects > 0 && r.peerResumeEarly
	if ro.early {
		ro.onReply = r.earlyReply(ro)
	}
	r.mu.Unlock()
	s, err := conn.openStream(ctx, r.opts.Stream, ro)
	if err != nil {
		if errors.Is(err, ErrResumeUnknown) || errors.Is(err, ErrRefused) || errors.Is(err, ErrSuperseded) {
			return nil, &ResumeError{Key: r.Key(), FirstUnknown: ro.first, LastUnknown: ro.last, Err: err}
		}
		return nil, err
	}
	s.SetRejectHandler(r.onReject)
	r.mu.Lock()
	defer r.mu.Unlock()
	if mayEarly {
		r.stats.Connects++ // not again for a stream reopened on the same connection (settleEarly)
	}
	if ro.early {
		return s, nil // the reply is checked when it arrives (earlyReply)
	}
	return s, r.resumedLocked(s, ro)
}

// resumedLocked checks the acceptor's reply to the ordinary open of s
// with ro, and drops the held records it reports applied. Called with mu
// held.
func (r *ResumableStream) resumedLocked(s *RecordStream, ro *resumeOpen) error {
	r.maxRecord = s.MaxRecordSize()
	neg := s.Negotiated()
	r.peerResumeEarly = resumeEarlyOffered(neg)
	if !neg.Features.Has(FeatureResume) {
		if ro.first > 1 || r.stats.Connects > 1 {
			_ = s.CloseWithError(CodeResumeUnknown, "resumption unavailable")
			return &ResumeError{Key: r.Key(), FirstUnknown: ro.first, LastUnknown: ro.last,
				Err: &StreamError{Code: CodeResumeUnknown, Reason: "the acceptor does not offer resumption", Remote: true}}
		}
		r.noResume = true
		return nil
	}
	applied := s.sendBase // the acceptor's position, set by openStream
	if applied+1 < ro.first {
		// The acceptor lost records it had acknowledged.
		_ = s.CloseWithError(CodeResumeUnknown, "acceptor state is behind its acknowledgements")
		return r.behind(applied, ro)
	}
	if applied > r.acked {
		// Held records up to applied were applied already (their acks
		// were lost, or an earlier process sent them): drop them, and
		// drop later Sends up to applied as they come.
		held := min(applied, r.log.next-1)
		if held > r.acked {
			r.stats.DuplicatesDropped += held - r.acked
		}
		r.log.dropThrough(applied)
		r.acked = applied
		r.written = max(r.written, applied)
		r.notifyLocked()
	}
	if r.stats.Connects > 1 {
		r.stats.Resumes++
	}
	return nil
}

// behind is the error of a resumption whose acceptor reported its
// position at applied, behind the records up to ro.first-1 it had
// acknowledged: those are in doubt.
func (r *ResumableStream) behind(applied uint64, ro *resumeOpen) *ResumeError {
	return &ResumeError{Key: r.Key(), FirstUnknown: applied + 1, LastUnknown: ro.first - 1,
		Err: &StreamError{Code: CodeResumeUnknown, Reason: behindReason(applied, ro), Remote: true}}
}

// behindReason says what behind reports.
func behindReason(applied uint64, ro *resumeOpen) string {
	return fmt.Sprintf("acceptor resumed at %d but had acknowledged %d", applied, ro.first-1)
}

// superseded reports whether err is the acceptor's word that a newer
// opener took the stream's key over.
func superseded(err error) bool {
	var se *StreamError
	return errors.As(err, &se) && se.Remote && se.Code == CodeSuperseded
}

// run serves each connection and reconnects after losing one.
func (r *ResumableStream) run(conn *Conn, s *RecordStream) {
	defer close(r.done)
	for {
		r.event(ResumeConnected, nil)
		if r.noResume {
			r.event(ResumeUnavailable, nil)
		}
		err := r.serve(conn, s)
		for unconfirmed(s) && r.ctx.Err() == nil {
			if s, err = r.settleEarly(conn, s, err); s == nil {
				break
			}
			err = r.serve(conn, s)
		}
		_ = conn.Close()
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.downSince = time.Now()
		r.cur, r.curConn = nil, nil
		noResume := r.noResume
		first, last := r.acked+1, r.written
		r.mu.Unlock()
		r.event(ResumeDisconnected, err)
		if noResume || superseded(err) {
			// Without resumption the records in doubt stay in doubt;
			// a superseded stream must not reconnect: a newer opener
			// holds its key.
			r.fail(&ResumeError{Key: r.Key(), FirstUnknown: first, LastUnknown: last, Err: err})
			return
		}
		conn, s = r.reconnect()
		if conn == nil {
			return
		}
	}
}

// reconnect dials until it succeeds, the stream is closed, or an error
// that retrying cannot fix.
func (r *ResumableStream) reconnect() (*Conn, *RecordStream) {
	backoff := r.opts.MinBackoff
	for {
		jitter := time.Duration(float64(backoff) * 0.5 * mrand.Float64())
		t := time.NewTimer(backoff + jitter)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return nil, nil
		}
		backoff = min(2*backoff, r.opts.MaxBackoff)
		ctx, cancel := context.WithTimeout(r.ctx, r.set.helloTimeout+r.opts.MaxBackoff)
		conn, s, err := r.connect(ctx)
		cancel()
		var re *ResumeError
		switch {
		case err == nil:
			r.mu.Lock()
			r.stats.Disconnected += time.Since(r.downSince)
			r.downSince = time.Time{}
			r.mu.Unlock()
			return conn, s
		case errors.As(err, &re):
			r.fail(err)
			return nil, nil
		case r.ctx.Err() != nil:
			return nil, nil
		}
	}
}
