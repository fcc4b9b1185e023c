package quicrecord

import (
	"context"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/flow"
)

// Optimistic open (docs/PROTOCOL.md §5.5). An acceptor announces
// FeatureEarlyRecords in every reply (an offer); an opener announces it
// only in the HELLO of an optimistic open, so the feature is effective
// exactly on the streams that carry early records. An opener whose
// connection has learned the offer (learnEarly) may open a stream without waiting for
// the reply: OpenRecordStream writes the HELLO and returns, and the
// stream's records follow the HELLO in the same flight. Until the reply
// the stream assumes the early profile: version 1 (BATCH without an
// ack, no feature), and the early limits as the acceptor's receive
// limits. The reader loop reads the reply first (readReply); it either
// upgrades the stream to what was negotiated, or ends it with the
// acceptor's refusal, which Send, Flush and Barrier then return. An
// acceptor applies none of a refused stream's records: it refuses before
// its reader starts.

// The early window: what an opener may send before the acceptor's reply,
// and the floor of the receive limits an acceptor that offers
// early-records announces to such an opener.
const (
	// EarlyWindowRecords is the most records an optimistic opener has
	// in flight before the acceptor's reply.
	EarlyWindowRecords = 16
	// EarlyWindowBytes is the most record bytes an optimistic opener has
	// in flight before the acceptor's reply, and the largest record it
	// sends before it.
	EarlyWindowBytes = 16 << 10
)

// earlyLimits are the receive limits an optimistic opener assumes of the
// acceptor until its reply.
func earlyLimits() Limits {
	return Limits{
		MaxFrameSize:       EarlyWindowBytes + frameOverhead,
		MaxRecordSize:      EarlyWindowBytes,
		MaxInFlightRecords: EarlyWindowRecords,
		MaxInFlightBytes:   EarlyWindowBytes,
	}
}

// earlyNegotiated is the negotiation an optimistic opener assumes until
// the reply: what every version and feature set accepts.
func (s *settings) earlyNegotiated() Negotiated {
	return Negotiated{
		Version:    frames.Version1,
		Local:      VersionRange{s.minVersion, s.maxVersion},
		PeerLimits: earlyLimits(),
	}
}

// withEarlyFloor returns the settings of a stream whose opener may have
// sent early records: the receive limits raised to the early profile
// where they are below it (s itself when none is).
func (s *settings) withEarlyFloor() *settings {
	if s.maxRecordSize >= EarlyWindowBytes && s.maxBacklogRecs >= EarlyWindowRecords && s.maxBacklogBytes >= EarlyWindowBytes {
		return s
	}
	n := *s
	n.maxRecordSize = max(n.maxRecordSize, EarlyWindowBytes)
	n.maxBacklogRecs = max(n.maxBacklogRecs, EarlyWindowRecords)
	n.maxBacklogBytes = max(n.maxBacklogBytes, EarlyWindowBytes)
	return &n
}

// coversEarly reports whether limits announced in a reply admit
// everything the early profile let the opener send.
func coversEarly(l Limits) bool {
	e := earlyLimits()
	return l.MaxFrameSize >= e.MaxFrameSize && l.MaxRecordSize >= e.MaxRecordSize &&
		l.MaxInFlightRecords >= e.MaxInFlightRecords && l.MaxInFlightBytes >= e.MaxInFlightBytes
}

// canOpenEarly reports whether a stream with options opts opens
// optimistically on c.
func (c *Conn) canOpenEarly(opts StreamOptions, ro *resumeOpen) bool {
	return opts.OptimisticOpen && ro == nil && c.peerEarly.Load() &&
		c.set.features.Has(FeatureEarlyRecords) && !opts.DisableFeatures.Has(FeatureEarlyRecords) &&
		(opts.MaxProtocolVersion == 0 || opts.MaxProtocolVersion >= frames.Version2) && c.set.maxVersion >= frames.Version2
}

// openEarly writes the HELLO h on qs and launches the stream without
// waiting for the reply; its reader loop reads the reply first. ro is
// nil for a plain stream, else the optimistic resume's (resume_early.go).
func (c *Conn) openEarly(ctx context.Context, qs *quic.Stream, set *settings, opts StreamOptions, h *frames.Hello, ro *resumeOpen) (*RecordStream, error) {
	announce := FeatureEarlyRecords
	if ro != nil {
		announce |= FeatureResumeEarly
	}
	early := *set
	early.features |= announce
	set = &early
	h.Features |= announce
	stop := context.AfterFunc(ctx, func() { resetStream(qs, CodeCancelled) })
	err := writeHello(qs, h, time.Now().Add(set.helloTimeout))
	if err == nil && !stop() {
		err = ctxError(ctx)
	}
	if err != nil {
		return nil, c.abandonOpen(ctx, qs, stop, err)
	}
	s := newStream(c, set, qs, newFrameReader(qs), set.earlyNegotiated(), streamInfo{
		role: RoleOpener, scope: opts.Scope, dataID: opts.DataID, metadata: opts.Metadata,
		remote: c.qc.RemoteAddr(), openedAt: time.Now(),
	})
	if ro != nil {
		s.setBases(ro.first-1, 0)
		s.onAck, s.resumeKey, s.earlyResume = ro.onAck, ro.key, ro
	}
	s.replyPending.Store(true)
	s.ctr.frameOut(kindHello)
	if err := c.launch(s); err != nil {
		return nil, err
	}
	return s, nil
}

// readReply reads the acceptor's reply of an optimistic open, before any
// other frame: a HELLO upgrades the stream to what was negotiated, a
// refusal ends it with the acceptor's error. Called by the reader loop;
// nothing to do for other streams.
func (s *RecordStream) readReply() error {
	if !s.replyPending.Load() {
		return nil
	}
	_ = s.qs.SetReadDeadline(time.Now().Add(s.set.helloTimeout))
	peer, unknown, err := readHello(s.fr, RoleOpener, s.id)
	var neg Negotiated
	if err == nil {
		_ = s.qs.SetReadDeadline(time.Time{})
		neg, err = negotiate(s.set, &peer, RoleOpener)
	}
	if err == nil && s.earlyResume != nil {
		err = s.resumeReply(&peer, neg)
	}
	if err == nil && (!neg.Features.Has(FeatureEarlyRecords) || !coversEarly(neg.PeerLimits)) {
		err = &StreamError{Code: CodeProtocolViolation, Reason: "the reply to an optimistic open does not take early records"}
	}
	if err != nil {
		return s.replyFailed(err)
	}
	s.ctr.frameIn(kindHello)
	s.ctr.inFrames[kindUnknown].Add(unknown)
	s.upgrade(neg)
	s.conn.opened.Add(1)
	s.conn.learnEarly(&peer, neg) // an optimistic resume's reply carries the offer too
	return nil
}

// upgrade moves an optimistic stream from the early profile to what was
// negotiated: its send limits and window caps, and its announced window's
// mode. Called by the reader loop before it reads any record.
func (s *RecordStream) upgrade(neg Negotiated) {
	s.smu.Lock()
	s.applyNegotiated(neg)
	s.snd.win.SetCaps(int64(s.windowRecs), int64(s.windowBytes))
	// The batch bound stays what initWindows and the writer made it (it
	// grows once the writer has a rate; see noteWrite), within the
	// negotiated batch size.
	s.batchLimit.Store(min(s.batchLimit.Load(), s.batchBytes.Load()))
	s.ctr.peerWinRecs.Store(neg.PeerLimits.MaxInFlightRecords)
	s.ctr.peerWinBytes.Store(neg.PeerLimits.MaxInFlightBytes)
	s.publishWindowLocked()
	s.replyPending.Store(false)
	s.snd.wait.notify()
	s.smu.Unlock()
	if neg.Features.Has(FeatureWindowUpdate) && !s.set.fixedWindow {
		s.rmu.Lock()
		s.rcv.backlog = flow.NewBacklog(flow.BacklogParams{
			Target:     s.set.queueTarget,
			MaxRecords: int64(s.set.maxBacklogRecs),
			MaxBytes:   int64(s.set.maxBacklogBytes),
		})
		s.rmu.Unlock()
	}
	s.wakeWriter()
}

// replyFailed ends an optimistic stream whose reply failed: with the
// acceptor's refusal as it came, or with a failure detected here, which
// the acceptor is told.
func (s *RecordStream) replyFailed(err error) error {
	err = typedErr(err)
	se, ok := err.(*StreamError)
	if !ok {
		// The connection ended: the stream's context ends with it.
		return err
	}
	se.StreamID = s.id
	if !se.Remote && isViolation(se.Code) {
		s.ctr.violations.Add(1)
	}
	s.abort(se, !se.Remote)
	return se
}

// waitReply waits until the reply of an optimistic open arrived, the
// stream failed, or ctx ended.
func (s *RecordStream) waitReply(ctx context.Context) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	for s.replyPending.Load() && s.snd.err == nil {
		if err := sleepLocked(ctx, &s.smu, &s.snd.wait, s.ctx.Done()); err != nil {
			return err
		}
	}
	return s.snd.err
}

// learnEarly notes a reply's offer of early records on the connection.
func (c *Conn) learnEarly(reply *frames.Hello, neg Negotiated) {
	if neg.Version >= frames.Version2 && reply.Features.Has(FeatureEarlyRecords) {
		c.peerEarly.Store(true)
	}
}
