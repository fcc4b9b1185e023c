package quicrecord

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// The HELLO exchange of docs/PROTOCOL.md §5.1, both sides. The opener
// (openStream) writes its HELLO and reads the reply; the acceptor
// (handshake) reads the opener's HELLO, decides, and replies or refuses.
// Both are short scripts over the helpers below; every failure is a typed
// error (*StreamError, *ConnError, or a context's end), and the QUIC
// stream of a failed exchange is reset.

// resumeOpen describes the resumption of a stream: its key, and the
// records its opener still holds (first up to last; last < first when
// none).
type resumeOpen struct {
	key         []byte
	first, last uint64
	epoch       uint64 // the opener's resume epoch (ResumeOptions.Epoch)
	// onAck is installed on the stream before its loops start.
	onAck func(uint64)
	// early asks for an optimistic resume (resume_early.go); openStream
	// clears it when the connection's settings do not allow one. onReply
	// is then told of the acceptor's reply, on the reader goroutine:
	// resumeEarly says whether the reply made resume-early effective, and
	// applied is its position; an error ends the stream.
	early   bool
	onReply func(applied uint64, neg Negotiated, resumeEarly bool) error
}

// exchange is what one side learned from the peer's HELLO.
type exchange struct {
	fr      *wire.Reader // reads the peer's frames; the stream's reader from now on
	peer    frames.Hello
	unknown uint64 // frames of unknown types before the peer's HELLO
	neg     Negotiated
}

// openStream opens a stream and runs the opener's side of the exchange.
// ro is nil for a plain stream. A resumable stream opened in 0-RTT that
// the server rejected is opened again once the handshake completed
// (rejected0RTT).
func (c *Conn) openStream(ctx context.Context, opts StreamOptions, ro *resumeOpen) (*RecordStream, error) {
	s, err := c.openStreamOnce(ctx, opts, ro)
	if err != nil && ro != nil && ctx.Err() == nil && c.rejected0RTT(ctx) {
		s, err = c.openStreamOnce(ctx, opts, ro)
	}
	return s, err
}

func (c *Conn) openStreamOnce(ctx context.Context, opts StreamOptions, ro *resumeOpen) (*RecordStream, error) {
	if c.ctx.Err() != nil {
		return nil, c.connErr()
	}
	set, err := c.set.forOpen(opts, ro != nil)
	if err != nil {
		return nil, err
	}
	h, err := openerHello(set, opts, ro)
	if err != nil {
		return nil, err
	}
	if ro == nil {
		// Nothing of a plain stream travels in 0-RTT (zerortt.go).
		if err := c.waitHandshake(ctx); err != nil {
			return nil, err
		}
	}
	qs, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, c.openFailed(ctx, err)
	}
	if c.canOpenEarly(opts, ro) {
		return c.openEarly(ctx, qs, set, opts, &h, nil)
	}
	if ro != nil && ro.early {
		if ro.early = c.canResumeEarly(opts); ro.early {
			return c.openEarly(ctx, qs, set, opts, &h, ro)
		}
	}
	// Until the exchange is over, ctx's end resets the stream.
	stop := context.AfterFunc(ctx, func() { resetStream(qs, CodeCancelled) })
	x, sendBase, err := openerExchange(qs, set, &h, ro)
	if err == nil && !stop() {
		err = ctxError(ctx)
	}
	if err != nil {
		return nil, c.abandonOpen(ctx, qs, stop, err)
	}
	s := newStream(c, set, qs, x.fr, x.neg, streamInfo{
		role: RoleOpener, scope: opts.Scope, dataID: opts.DataID, metadata: opts.Metadata,
		remote: c.qc.RemoteAddr(), openedAt: time.Now(),
	})
	s.setBases(sendBase, 0)
	c.learnEarly(&x.peer, x.neg)
	if ro != nil {
		s.onAck = ro.onAck
		if x.neg.Features.Has(FeatureResume) {
			s.resumeKey = ro.key
		}
	}
	s.countHellos(x.unknown)
	if err := c.launch(s); err != nil {
		return nil, err
	}
	c.opened.Add(1)
	return s, nil
}

// forOpen returns the settings of a stream this side opens: its
// StreamConfig over the connection's, capped by the stream's options, and
// offering resumption only for a resumable stream (whether or not this
// side accepts resumed streams itself).
func (s *settings) forOpen(opts StreamOptions, resumable bool) (*settings, error) {
	s, err := s.withStream(opts.Config, "StreamOptions.Config.")
	if err != nil {
		return nil, err
	}
	// Only an optimistic open announces early-records (early.go), and
	// only an optimistic resume resume-early (resume_early.go).
	disable := opts.DisableFeatures | FeatureEarlyRecords | FeatureResumeEarly
	if !resumable {
		disable |= resumeFeatures
	}
	set := s.narrow(opts.MaxProtocolVersion, disable)
	if resumable && !set.features.Has(FeatureResume) && !opts.DisableFeatures.Has(FeatureResume) {
		withResume := *set
		withResume.features |= (FeatureResume | FeatureResumeEpoch) &^ (s.disabled | opts.DisableFeatures)
		set = &withResume
	}
	return set, nil
}

// openerHello returns the opener's HELLO, checked against the limits the
// acceptor would refuse it for.
func openerHello(set *settings, opts StreamOptions, ro *resumeOpen) (frames.Hello, error) {
	h := set.localHello()
	h.Scope, h.DataID, h.Metadata = opts.Scope, opts.DataID, opts.Metadata
	if ro != nil {
		h.Extensions = append(h.Extensions,
			frames.Extension{ID: frames.ExtResumeKey, Value: ro.key},
			frames.Extension{ID: frames.ExtResumePosition, Value: quicvarint.Append(nil, ro.first)})
		if set.features.Has(FeatureResumeEpoch) {
			h.Extensions = append(h.Extensions, frames.Extension{ID: frames.ExtResumeEpoch, Value: quicvarint.Append(nil, ro.epoch)})
		}
	}
	return h, checkOptions(&h)
}

// openerExchange writes the opener's HELLO h, reads the acceptor's reply
// and negotiates. For a resumable stream that the acceptor resumes it
// also returns the acceptor's position: the sequence number the stream's
// records follow.
func openerExchange(qs *quic.Stream, set *settings, h *frames.Hello, ro *resumeOpen) (exchange, uint64, error) {
	deadline := time.Now().Add(set.helloTimeout)
	if err := writeHello(qs, h, deadline); err != nil {
		return exchange{}, 0, err
	}
	x, err := readPeerHello(qs, set, deadline, RoleOpener)
	if err != nil || ro == nil || !x.neg.Features.Has(FeatureResume) {
		return x, 0, err
	}
	sendBase, err := replyPosition(&x.peer, ro)
	return x, sendBase, err
}

// openFailed converts the failure to open a QUIC stream.
func (c *Conn) openFailed(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctxError(ctx)
	case c.ctx.Err() != nil:
		return c.connErr()
	}
	return typedErr(convertQUICError(err, 0))
}

// abandonOpen ends the QUIC stream of a failed exchange and returns the
// error OpenRecordStream reports. A failure this side detected is sent to
// the acceptor (ERROR and a reset with its code); after the acceptor's
// own refusal or reset the stream is reset with CodeCancelled. If ctx
// ended, its AfterFunc has reset the stream already.
func (c *Conn) abandonOpen(ctx context.Context, qs *quic.Stream, stop func() bool, err error) error {
	if !stop() && ctx.Err() != nil {
		return ctxError(ctx)
	}
	err = typedErr(err)
	var se *StreamError
	if errors.As(err, &se) && !se.Remote {
		endStream(qs, se.Code, se.Reason)
	} else {
		resetStream(qs, CodeCancelled)
	}
	if se != nil {
		se.StreamID = streamID(qs)
	}
	if c.ctx.Err() != nil {
		return c.connErr()
	}
	return err
}

// typedErr returns err if it is a *StreamError, a *ConnError or a
// context's end, and otherwise a local *StreamError with CodeInternal
// that wraps it.
func typedErr(err error) error {
	var se *StreamError
	var ce *ConnError
	if errors.As(err, &se) || errors.As(err, &ce) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &StreamError{Code: CodeInternal, Reason: err.Error(), Err: err}
}

// replyPosition reads the acceptor's last applied sequence number from its
// resume reply and checks it against what the opener sent.
func replyPosition(reply *frames.Hello, ro *resumeOpen) (uint64, error) {
	v, ok := reply.Extension(frames.ExtResumePosition)
	if !ok {
		return 0, &StreamError{Code: CodeProtocolViolation, Reason: "resume reply without a position"}
	}
	a, ok := parsePosition(v)
	if !ok {
		return 0, errBadPosition()
	}
	if sent := max(ro.last, ro.first-1); a > sent {
		return 0, &StreamError{Code: CodeAckOutOfRange, Reason: fmt.Sprintf("acceptor claims record %d applied; the last sent was %d", a, sent)}
	}
	return a, nil
}

// parsePosition parses the value of a resume position extension: one
// varint that fills it.
func parsePosition(v []byte) (uint64, bool) {
	a, n, err := quicvarint.Parse(v)
	return a, err == nil && n == len(v)
}

func errBadPosition() error {
	return &StreamError{Code: CodeFrameEncoding, Reason: "malformed resume position"}
}

// checkOptions validates what the acceptor would refuse, so the caller
// gets a clear local error instead: a *StreamError with the code the
// acceptor would send (FRAME_ENCODING for a field over its limit,
// FRAME_TOO_LARGE for a HELLO over MaxHelloSize).
func checkOptions(h *frames.Hello) error {
	invalid := func(format string, args ...any) error {
		return &StreamError{Code: CodeFrameEncoding, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case len(h.Scope) > frames.MaxScopeLen:
		return invalid("scope of %d bytes exceeds %d", len(h.Scope), frames.MaxScopeLen)
	case len(h.Metadata) > frames.MaxMetadataEntries:
		return invalid("%d metadata entries exceed %d", len(h.Metadata), frames.MaxMetadataEntries)
	}
	for k, v := range h.Metadata {
		if len(k) > frames.MaxMetadataKeyLen || len(v) > frames.MaxMetadataValueLen {
			return invalid("metadata entry %q exceeds the size limits", k)
		}
	}
	if n := h.Len(); n > frames.MaxHelloSize {
		return &StreamError{Code: CodeFrameTooLarge, Reason: fmt.Sprintf("stream description of %d bytes exceeds %d", n, frames.MaxHelloSize)}
	}
	return nil
}

// writeHello writes a HELLO, within deadline.
func writeHello(qs *quic.Stream, h *frames.Hello, deadline time.Time) error {
	_ = qs.SetWriteDeadline(deadline)
	if _, err := qs.Write(h.Append(nil)); err != nil {
		return helloIOErr(err, streamID(qs))
	}
	_ = qs.SetWriteDeadline(time.Time{})
	return nil
}

// readPeerHello reads the peer's HELLO, within deadline, and negotiates.
func readPeerHello(qs *quic.Stream, set *settings, deadline time.Time, role Role) (exchange, error) {
	_ = qs.SetReadDeadline(deadline)
	x := exchange{fr: newFrameReader(qs)}
	var err error
	if x.peer, x.unknown, err = readHello(x.fr, role, streamID(qs)); err != nil {
		return x, err
	}
	_ = qs.SetReadDeadline(time.Time{})
	x.neg, err = negotiate(set, &x.peer, role)
	return x, err
}

// readHello reads frames until the peer's HELLO, skipping unknown types.
// An opener also accepts an ERROR frame: the acceptor's refusal.
func readHello(fr *wire.Reader, role Role, id StreamID) (frames.Hello, uint64, error) {
	var unknown uint64
	for {
		f, err := fr.Next()
		t, payload := frames.Type(f.Type), f.Payload
		if err != nil {
			return frames.Hello{}, unknown, helloIOErr(err, id)
		}
		switch t {
		case frames.TypeHello:
			h, _, err := frames.ParseHello(payload)
			if err != nil {
				return frames.Hello{}, unknown, codecErr(err)
			}
			return h, unknown, nil
		case frames.TypeError:
			if role == RoleOpener {
				f, _, err := frames.ParseError(payload)
				if err != nil {
					return frames.Hello{}, unknown, codecErr(err)
				}
				return frames.Hello{}, unknown, &StreamError{Code: f.Code, Reason: f.Reason, Remote: true}
			}
			return frames.Hello{}, unknown, &StreamError{Code: CodeUnexpectedFrame, Reason: "ERROR before HELLO"}
		case frames.TypeBatch, frames.TypeAck, frames.TypeDone:
			return frames.Hello{}, unknown, &StreamError{Code: CodeUnexpectedFrame, Reason: t.String() + " before HELLO"}
		default:
			unknown++
		}
	}
}

func codecErr(err error) error {
	var fe *frames.Error
	if errors.As(err, &fe) {
		return &StreamError{Code: fe.Code, Reason: fe.Reason, Err: err}
	}
	return err
}

// helloIOErr converts the failure to read or write a HELLO: a timeout is
// CodeHelloTimeout; the peer's direction ending (FIN) before its HELLO is
// CodeProtocolViolation (PROTOCOL.md §5.1); a malformed frame has its
// codec code; QUIC errors are converted.
func helloIOErr(err error, id StreamID) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &StreamError{Code: CodeHelloTimeout, Reason: "no HELLO within the hello timeout", Err: err}
	case err == io.EOF:
		return &StreamError{Code: CodeProtocolViolation, Reason: "stream ended before HELLO"}
	case errors.Is(err, frames.ErrFrameEncoding) || errors.Is(err, frames.ErrFrameTooLarge):
		return codecErr(err)
	}
	return convertQUICError(err, id)
}

// resetCode converts an ErrorCode for quic-go.
func resetCode(c ErrorCode) quic.StreamErrorCode { return quic.StreamErrorCode(c) }

// resetStream resets both directions of qs with code.
func resetStream(qs *quic.Stream, code ErrorCode) {
	qs.CancelWrite(resetCode(code))
	qs.CancelRead(resetCode(code))
}

// endStream sends ERROR(seq 0, code, reason) if qs takes it without
// blocking, marks it reliable so that the reset delivers it
// (RESET_STREAM_AT), and resets both directions with code. It is for a
// stream nothing else writes to: before its writer loop starts, or after
// the loop ended. It reports whether the frame was queued.
func endStream(qs *quic.Stream, code ErrorCode, reason string) bool {
	f := frames.ErrorFrame{Code: code, Reason: reason}
	sent := qs.TryWriteAll(f.Append(nil)) == nil
	if sent {
		qs.SetReliableBoundary()
	}
	resetStream(qs, code)
	return sent
}

// countHellos counts the HELLO exchange in the stream's diagnostics: one
// HELLO each way, and the unknown frames before the peer's.
func (s *RecordStream) countHellos(unknown uint64) {
	s.ctr.frameOut(kindHello)
	s.ctr.frameIn(kindHello)
	s.ctr.inFrames[kindUnknown].Add(unknown)
}

// handshake runs the acceptor's side of the exchange for a stream the
// peer opened, and queues the stream for AcceptRecordStream.
func (c *Conn) handshake(qs *quic.Stream) {
	defer c.wg.Done()
	info := AcceptInfo{StreamID: streamID(qs), RemoteAddr: c.qc.RemoteAddr(), TLS: c.qc.ConnectionState().TLS, PeerIdentity: c.peerIdentity()}
	s, err := c.acceptExchange(qs, &info)
	if err != nil {
		c.refuse(qs, &info, err)
		return
	}
	if err := c.launch(s); err != nil {
		return
	}
	c.opened.Add(1)
	select {
	case c.acceptQ <- s:
	case <-c.ctx.Done():
		_ = s.CloseWithError(CodeCancelled, "connection closed before the stream was accepted")
	}
}

// acceptExchange reads the opener's HELLO, negotiates, asks the accept
// handler, takes the stream's resume key over, and replies with this
// side's HELLO.
func (c *Conn) acceptExchange(qs *quic.Stream, info *AcceptInfo) (*RecordStream, error) {
	deadline := time.Now().Add(c.set.helloTimeout)
	if c.set.resume != nil && !c.handshakeDone() && !c.set.resume.offers(c.peerIdentity()) {
		// A HELLO in 0-RTT, before any client certificate is known, on
		// a connection that resumes only for verified identities: the
		// identity comes with the handshake (a replay never completes
		// it).
		if err := c.handshakeBy(deadline); err != nil {
			return nil, err
		}
		info.TLS, info.PeerIdentity = c.qc.ConnectionState().TLS, c.peerIdentity()
	}
	base := c.acceptSettings()
	x, err := readPeerHello(qs, base, deadline, RoleAcceptor)
	info.Scope, info.DataID, info.Metadata = x.peer.Scope, x.peer.DataID, x.peer.Metadata
	if err != nil {
		return nil, err
	}
	info.Negotiated = x.neg
	if c.draining.Load() {
		return nil, &StreamError{Code: CodeRefused, Reason: "the listener is shutting down"}
	}
	claim, err := resumeRequest(&x, info)
	if err != nil {
		return nil, err
	}
	if claim != nil && c.set.resume != nil && !c.handshakeDone() && !c.set.resume.holds(claim.info) {
		// Not held under the identity known before the handshake
		// completed: the client's certificate may name another. Look
		// again under the final identity.
		if err := c.handshakeBy(deadline); err != nil {
			return nil, err
		}
		info.TLS, info.PeerIdentity = c.qc.ConnectionState().TLS, c.peerIdentity()
		claim.info.Peer = info.PeerIdentity
	}
	if claim == nil {
		// A plain stream is never taken from 0-RTT data (zerortt.go).
		if err := c.handshakeBy(deadline); err != nil {
			return nil, err
		}
	} else if err := c.set.resume.check(claim); err != nil {
		// An older opener is refused before the application is asked.
		return nil, err
	}
	set, err := c.authorize(base, info, deadline)
	if err != nil {
		return nil, err
	}
	if x.neg.Features.Has(FeatureEarlyRecords) {
		// The opener may have sent early records (§5.5): announce, and
		// enforce, limits that admit them.
		set = set.withEarlyFloor()
	}
	s := newStream(c, set, qs, x.fr, x.neg, streamInfo{
		role: RoleAcceptor, scope: x.peer.Scope, dataID: x.peer.DataID, metadata: x.peer.Metadata,
		remote: c.qc.RemoteAddr(), openedAt: time.Now(),
	})
	reply := set.localHello()
	var lost error // the records of an optimistic resume start beyond the key's
	if claim != nil {
		if lost, err = c.resumeKeyReply(s, claim, &reply, deadline); err != nil {
			return nil, err
		}
	}
	if err := writeHello(qs, &reply, deadline); err != nil || lost != nil {
		if s.rsm != nil {
			c.set.resume.release(s.rsm, s, false)
		}
		return nil, cmp.Or(err, lost)
	}
	s.countHellos(x.unknown)
	return s, nil
}

// resumeKeyReply takes the resume key of claim over for s, once the
// replay defence allows it, and adds the key's last applied sequence
// number to the reply. For an optimistic resume it returns, as lost, the
// refusal to send after the reply when the opener's records start beyond
// that (resume_early.go).
func (c *Conn) resumeKeyReply(s *RecordStream, claim *resumeClaim, reply *frames.Hello, deadline time.Time) (lost, err error) {
	if err := c.confirmBeforeTakeover(claim.info.Key, deadline); err != nil {
		return nil, err
	}
	applied, err := c.takeResumeKey(s, claim, deadline)
	if err != nil {
		return nil, err
	}
	reply.Extensions = append(reply.Extensions, frames.Extension{ID: frames.ExtResumePosition, Value: quicvarint.Append(nil, applied)})
	if s.negotiated().Features.Has(FeatureResumeEarly) {
		lost = s.startEarlyResume(claim.first, applied)
	}
	return lost, nil
}

// resumeRequest reads the resume key, position and epoch of an opener's
// HELLO when resumption is effective: it sets info.ResumeKey and returns
// the opener's claim on the key. A plain stream leaves info alone and
// returns nil.
func resumeRequest(x *exchange, info *AcceptInfo) (*resumeClaim, error) {
	if !x.neg.Features.Has(FeatureResume) {
		return nil, nil
	}
	key, ok := x.peer.Extension(frames.ExtResumeKey)
	if !ok {
		return nil, nil
	}
	if len(key) == 0 || len(key) > MaxResumeKeyLen {
		return nil, &StreamError{Code: CodeFrameEncoding, Reason: "resume key of invalid length"}
	}
	pos, _ := x.peer.Extension(frames.ExtResumePosition)
	first, ok := parsePosition(pos)
	if !ok || first == 0 {
		return nil, errBadPosition()
	}
	c := &resumeClaim{first: first, epochs: x.neg.Features.Has(FeatureResumeEpoch)}
	if v, ok := x.peer.Extension(frames.ExtResumeEpoch); ok && c.epochs {
		if c.epoch, ok = parsePosition(v); !ok {
			return nil, &StreamError{Code: CodeFrameEncoding, Reason: "malformed resume epoch"}
		}
	}
	info.ResumeKey, info.ResumeEpoch = bytes.Clone(key), c.epoch
	c.info = ResumeKeyInfo{Key: info.ResumeKey, Peer: info.PeerIdentity, Scope: info.Scope, DataID: info.DataID, Epoch: c.epoch}
	return c, nil
}

// authorize asks the accept handler, until deadline, and returns the
// stream's settings: the StreamConfig it returned over base, the
// connection's. Its error refuses the stream with the code callbackCode
// gives it; an invalid StreamConfig refuses it with CodeInternal.
func (c *Conn) authorize(base *settings, info *AcceptInfo, deadline time.Time) (*settings, error) {
	if c.set.acceptHandler == nil {
		return base, nil
	}
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	sc, err := c.set.acceptHandler(ctx, info)
	if err != nil {
		code, reason := callbackCode(err, CodeRefused, reasonRefused)
		return nil, &StreamError{Code: code, Reason: reason, Err: err}
	}
	set, err := base.withStream(sc, "AcceptHandler StreamConfig.")
	if err != nil {
		return nil, &StreamError{Code: CodeInternal, Reason: "the acceptor chose invalid stream settings", Err: err}
	}
	return set, nil
}

// takeResumeKey makes s the owner of its resume key in the store (waiting,
// until deadline, for the records a previous stream of the key delivered
// to be applied) and returns the last applied sequence number, which the
// stream's records in this direction follow.
func (c *Conn) takeResumeKey(s *RecordStream, claim *resumeClaim, deadline time.Time) (uint64, error) {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	rsm, applied, err := c.set.resume.acquire(ctx, claim, s)
	if err != nil {
		return 0, err
	}
	s.rsm, s.store, s.resumeKey, s.resumeInfo = rsm, c.set.resume, claim.info.Key, claim.info
	s.setBases(0, applied)
	return applied, nil
}

// refuse ends a stream the peer opened that this side does not take: it
// sends the opener the refusal (unless the opener gave up first), counts
// it, logs it and tells Config.OnStreamRefused.
func (c *Conn) refuse(qs *quic.Stream, info *AcceptInfo, err error) {
	se := asStreamError(err, CodeRefused)
	se.StreamID = streamID(qs)
	if se.Remote {
		// The opener gave up; nothing to tell it.
		resetStream(qs, se.Code)
	} else {
		endStream(qs, se.Code, se.Reason)
	}
	c.refused.Add(1)
	if c.set.logger != nil {
		level := slog.LevelDebug
		if isViolation(se.Code) && !se.Remote {
			level = slog.LevelWarn
		}
		c.set.logger.Log(context.Background(), level, "record stream refused", "stream", info.StreamID, "code", se.Code.String(), "err", se, "cause", se.Err)
	}
	if c.set.onRefused != nil {
		c.set.onRefused(info, se)
	}
}
