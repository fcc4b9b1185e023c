package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// Optimistic resume (docs/PROTOCOL.md §6.5). A ResumableStream that
// reconnects knows where its acknowledgements stopped (G, its acked
// position) but not how far the acceptor got: acks may have been lost
// with the connection. Without this, it sends its resume HELLO and waits
// a round trip for the acceptor's position A before it sends A+1 on.
// With it, on an acceptor that announced FeatureResumeEarly in its reply
// to the stream's previous connection, it opens the stream optimistically
// (openEarly): the resume HELLO, then its held records from G+1 on, in
// the early profile of §5.5 and in the same flight (0-RTT on an early
// connection). The acceptor drops the records up to A as they arrive,
// acknowledging them as applied, and delivers A+1 on: so the opener's
// numbering stays the one it started with, and every record it sent gets
// its ack. If the opener's records start beyond A+1 (the acceptor lost
// records it had acknowledged), the acceptor replies with A and then
// refuses the stream with CodeResumeUnknown, applying nothing; the opener
// reports those records in doubt, as without the feature.
//
// The cost: records the acceptor applied but whose acks were lost (at
// most one window) are sent again instead of being dropped by the
// opener. The replay safety is §6.4's: a replayed flight applies nothing
// twice, because the records up to A are dropped, and a replayed resume
// HELLO takes no key from a live stream.

// canResumeEarly reports whether a resumable stream with options opts
// may open optimistically on c: nothing it needs is disabled.
func (c *Conn) canResumeEarly(opts StreamOptions) bool {
	off := c.set.disabled | opts.DisableFeatures
	return off&(FeatureResume|FeatureEarlyRecords|FeatureResumeEarly) == 0 &&
		(opts.MaxProtocolVersion == 0 || opts.MaxProtocolVersion >= frames.Version2) && c.set.maxVersion >= frames.Version2
}

// resumeEarlyOffered reports whether the acceptor that negotiated neg
// with a resumable stream's ordinary open offers optimistic resumes.
func resumeEarlyOffered(neg Negotiated) bool {
	return neg.Version >= frames.Version2 && neg.Features.Has(FeatureResume) &&
		neg.PeerFeatures.Has(FeatureEarlyRecords|FeatureResumeEarly)
}

// resumeReply checks the reply to an optimistic resume before the stream
// upgrades: that it made resume-early effective with limits that admit
// the early records, and the acceptor's position, which the
// ResumableStream is told. Called by the reader loop.
func (s *RecordStream) resumeReply(peer *frames.Hello, neg Negotiated) error {
	ro := s.earlyResume
	if !neg.Features.Has(FeatureResumeEarly) {
		// The acceptor (another build, or another configuration, since
		// the previous connection) does not take the records: open the
		// stream again without them.
		_ = ro.onReply(0, neg, false)
		return &StreamError{Code: CodeCancelled, Reason: "the acceptor does not take records before its reply to a resume"}
	}
	if !coversEarly(neg.PeerLimits) {
		return &StreamError{Code: CodeProtocolViolation, Reason: "the reply to an optimistic resume does not take early records"}
	}
	applied, err := replyPosition(peer, ro)
	if err != nil {
		return err
	}
	return ro.onReply(applied, neg, true)
}

// startEarlyResume prepares the acceptor's stream of an optimistic
// resume: the key applied every record up to applied, the opener sends
// from first on. The records up to applied are dropped as they arrive
// (duplicates); first beyond applied+1 returns the refusal to send after
// the reply. Called before the loops start.
func (s *RecordStream) startEarlyResume(first, applied uint64) error {
	if first > applied+1 {
		return &StreamError{Code: CodeResumeUnknown, Reason: fmt.Sprintf(
			"resumed at %d, but the opener's records start at %d: records %d to %d are lost", applied, first, applied+1, first-1)}
	}
	s.setBases(0, first-1)
	s.ctr.appliedSeq.Store(applied)
	s.resumeDups = applied
	return nil
}

// duplicates returns how many records at the head of b the key of an
// optimistic resume applied before the stream.
func (s *RecordStream) duplicates(b *frames.Batch) uint64 {
	if b.FirstSeq > s.resumeDups {
		return 0
	}
	return min(b.LastSeq(), s.resumeDups) - b.FirstSeq + 1
}

// dropDuplicates consumes a batch of records all applied before the
// stream: it gives back its buffers and acknowledges them.
func (s *RecordStream) dropDuplicates(f *wire.Frame, b *frames.Batch, own *[]byte, ownCharge int64) {
	s.conn.putRecvBuf(own)
	s.acct.release(ownCharge)
	s.dropDirect(f)
	s.rmu.Lock()
	wake := s.duplicatesAppliedLocked(b.LastSeq())
	s.rmu.Unlock()
	if wake {
		s.wakeWriter()
	}
}

// skipDuplicatesLocked advances it past the first n records (applied
// before the stream), acknowledges them, and returns their bytes and
// whether the writer must be woken. Called with rmu held.
func (s *RecordStream) skipDuplicatesLocked(it *frames.RecordIter, n uint64) (int, bool) {
	if n == 0 {
		return 0, false
	}
	bytes := 0
	var last uint64
	for range n {
		seq, rec, _ := it.Next()
		bytes += len(rec)
		last = seq
	}
	return bytes, s.duplicatesAppliedLocked(last)
}

// duplicatesAppliedLocked marks the records up to seq, applied before the
// stream, received and applied, and makes their ack due; it reports
// whether the writer must be woken. Called with rmu held, while nothing
// else is received (all the records before seq were duplicates too).
func (s *RecordStream) duplicatesAppliedLocked(seq uint64) bool {
	if s.rcv.applied == s.rcv.ackSent {
		s.rcv.ackSince = time.Now()
	}
	s.rcv.received, s.rcv.delivered, s.rcv.applied = seq, seq, seq
	wake := !s.rcv.notified
	s.rcv.notified = true
	s.ackRung.Store(true)
	return wake
}

// earlyReply is the onReply of an optimistic resume opened with ro: it
// learns whether the acceptor still offers resume-early, and checks the
// acceptor's position: behind ro.first-1, the acceptor lost records it
// had acknowledged, which run then reports in doubt.
func (r *ResumableStream) earlyReply(ro *resumeOpen) func(uint64, Negotiated, bool) error {
	return func(applied uint64, neg Negotiated, resumeEarly bool) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.peerResumeEarly = resumeEarly
		if !resumeEarly {
			r.withdrawn = true
			return nil
		}
		if applied+1 < ro.first {
			r.inDoubt = r.behind(applied, ro)
			return &StreamError{Code: CodeResumeUnknown, Reason: behindReason(applied, ro)}
		}
		// The held records up to applied were applied already: they go
		// out again (they were, or are about to be) and the acceptor
		// drops and acknowledges them.
		r.stats.DuplicatesDropped += applied - (ro.first - 1)
		r.stats.Resumes++
		r.maxRecord = int(r.set.sendRecordLimit(neg.PeerLimits))
		return nil
	}
}

// unconfirmed reports whether s is an optimistic resume that ended
// before its reply confirmed it.
func unconfirmed(s *RecordStream) bool {
	return s.earlyResume != nil && s.replyPending.Load()
}

// settleEarly follows an optimistic resume s on conn that ended, with
// err, before its reply confirmed it. The acceptor's refusal, or records
// it lost, end the ResumableStream as they would without the feature.
// When the optimistic resume itself was the trouble (the server rejected
// the 0-RTT it travelled in, or the acceptor no longer offers
// resume-early) the stream is opened again on conn, the way it is opened
// without the feature; any other end leaves conn, as a failed open
// would. It returns the new stream, or nil when conn is left, with why.
func (r *ResumableStream) settleEarly(conn *Conn, s *RecordStream, err error) (*RecordStream, error) {
	r.mu.Lock()
	lost, withdrawn := r.inDoubt, r.withdrawn
	r.inDoubt, r.withdrawn = nil, false
	first, last := r.acked+1, r.written
	r.mu.Unlock()
	if lost != nil {
		r.fail(lost)
		return nil, lost
	}
	var se *StreamError
	if errors.As(err, &se) && se.Remote && refusal(se) {
		re := &ResumeError{Key: r.Key(), FirstUnknown: first, LastUnknown: last, Err: err}
		r.fail(re)
		return nil, re
	}
	if r.ctx.Err() != nil || conn.ctx.Err() != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.set.helloTimeout)
	defer cancel()
	// A connection whose 0-RTT was rejected takes new streams once
	// rejected0RTT returns.
	if !conn.rejected0RTT(ctx) && !withdrawn {
		return nil, err
	}
	s, err = r.open(ctx, conn, false)
	var re *ResumeError
	if errors.As(err, &re) {
		r.fail(err)
	}
	return s, err
}

// refusal reports whether the acceptor's error se refuses a resume for
// good: the key is unknown, or taken, or the stream refused.
func refusal(se *StreamError) bool {
	return se.Code == CodeResumeUnknown || se.Code == CodeRefused || se.Code == CodeSuperseded
}
