package quicrecord

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/recordmux/recordmux/frames"
)

// ErrorCode is the numeric code of a stream or record error. It is the
// same code space as the wire protocol's (see docs/PROTOCOL.md): codes
// below [CodeApplicationMin] belong to the protocol, applications use the
// rest for their own rejections and resets. [CodeOf] returns the code of
// any error.
type ErrorCode = frames.ErrorCode

// Error codes. See docs/PROTOCOL.md for when each is used.
const (
	CodeNoError           = frames.CodeNoError
	CodeInternal          = frames.CodeInternal
	CodeProtocolViolation = frames.CodeProtocolViolation
	CodeFrameEncoding     = frames.CodeFrameEncoding
	CodeFrameTooLarge     = frames.CodeFrameTooLarge
	CodeVersionMismatch   = frames.CodeVersionMismatch
	CodeRefused           = frames.CodeRefused
	CodeHelloTimeout      = frames.CodeHelloTimeout
	CodeAckOutOfRange     = frames.CodeAckOutOfRange
	CodeAckRegression     = frames.CodeAckRegression
	CodeSequenceGap       = frames.CodeSequenceGap
	CodeRecordTooLarge    = frames.CodeRecordTooLarge
	CodeUnexpectedFrame   = frames.CodeUnexpectedFrame
	CodeCancelled         = frames.CodeCancelled
	CodeResumeUnknown     = frames.CodeResumeUnknown
	CodeWindowExceeded    = frames.CodeWindowExceeded
	CodeRejected          = frames.CodeRejected
	CodeCompression       = frames.CodeCompression
	CodeSuperseded        = frames.CodeSuperseded
	CodeApplicationMin    = frames.CodeApplicationMin
)

// Features is a set of optional protocol capabilities (see [Negotiated]).
type Features = frames.Features

// Feature bits.
const (
	// FeaturePiggybackAck lets acks ride in BATCH headers (protocol
	// version 2 and later).
	FeaturePiggybackAck = frames.FeaturePiggybackAck
	// FeatureResume lets a stream resume on a new connection (protocol
	// version 2 and later).
	FeatureResume = frames.FeatureResume
	// FeatureWindowUpdate lets a receiver announce a smaller (or again a
	// larger) window than its HELLO's, with WINDOW frames: how a slow
	// application makes its producer's Send block (protocol version 2 and
	// later).
	FeatureWindowUpdate = frames.FeatureWindowUpdate
	// FeatureHalfClose lets a side end its records with a DONE frame and
	// keep acking the peer's records (RecordStream.CloseWrite; protocol
	// version 2 and later).
	FeatureHalfClose = frames.FeatureHalfClose
	// FeatureResumeEpoch orders the openers of a resume key by their
	// epoch (ResumeOptions.Epoch): a newer opener takes the key over, an
	// older one is refused, and the superseded one ends with
	// CodeSuperseded and does not reconnect (protocol version 2 and
	// later, with FeatureResume).
	FeatureResumeEpoch = frames.FeatureResumeEpoch
	// FeatureCompression lets a side send batches compressed with a codec
	// the peer accepts (StreamConfig.Compression; protocol version 2 and
	// later). Disabling it makes a side neither send nor accept them.
	FeatureCompression = frames.FeatureCompression
	// FeatureEarlyRecords lets an opener send records right behind its
	// HELLO, before the acceptor's reply (StreamOptions.OptimisticOpen),
	// on a connection whose acceptor announced it (protocol version 2 and
	// later).
	FeatureEarlyRecords = frames.FeatureEarlyRecords
	// FeatureResumeEarly lets a ResumableStream that reconnects send the
	// records it holds right behind its resume HELLO, in the same flight
	// (0-RTT with ResumeOptions.ZeroRTT), before the acceptor's reply; the
	// acceptor drops those it already applied. An opener uses it on an
	// acceptor that announced it to the stream's previous connection
	// (protocol version 2 and later, with FeatureResume and
	// FeatureEarlyRecords).
	FeatureResumeEarly = frames.FeatureResumeEarly
)

// allFeatures is every feature this library implements.
const allFeatures = FeaturePiggybackAck | FeatureResume | FeatureWindowUpdate | FeatureHalfClose | FeatureResumeEpoch | FeatureCompression | FeatureEarlyRecords | FeatureResumeEarly

// resumeFeatures are the features that only a side with resumption
// (a ResumeStore, or a resumable stream's opener) announces.
const resumeFeatures = FeatureResume | FeatureResumeEpoch | FeatureResumeEarly

// MaxResumeKeyLen caps the length of a resume key.
const MaxResumeKeyLen = 64

// The error families. errors.Is matches an error only against sentinels
// of its own family, so a code means one thing per family:
//
//   - *StreamError (a stream reset or refused) matches the *StreamError
//     sentinels with its Code, net.ErrClosed, and for CodeHelloTimeout
//     os.ErrDeadlineExceeded;
//   - *RecordError (one record the peer rejected) matches the
//     *RecordError sentinels with its Code;
//   - *ConnError (the connection ended) matches net.ErrClosed, the
//     *ConnError sentinels ([ErrConnClosedByPeer]), and for timeouts
//     os.ErrDeadlineExceeded; never a stream sentinel, whatever its code.
//
// Local mistakes (a record too large for Send, an Ack beyond what was
// delivered, an invalid Config) are plain sentinels such as
// [ErrRecordTooLarge], wrapped with the numbers involved. [CodeOf] gives
// the code of any error, for a switch over codes.

// StreamError reports that a record stream failed or was refused. Code
// says why; Remote says whether the peer chose the code (it sent an ERROR
// frame or reset the stream) or this side did (a local CloseWithError, or
// a protocol violation this side detected).
//
// errors.Is matches a *StreamError against the *StreamError sentinels
// with the same Code, such as [ErrRefused], whether the error was local
// or decoded from the peer. Every StreamError also matches net.ErrClosed:
// the stream is unusable after it. A CodeHelloTimeout error matches
// os.ErrDeadlineExceeded.
type StreamError struct {
	Code   ErrorCode
	Reason string
	Remote bool
	// StreamID is the stream, when known.
	StreamID StreamID
	// Err is the underlying cause, such as a *frames.Error for a
	// malformed frame; may be nil.
	Err error
}

func (e *StreamError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	s := fmt.Sprintf("quicrecord: stream %d: %s error %s", e.StreamID, side, e.Code)
	if e.Reason != "" {
		s += ": " + reasonText(e.Reason, e.Remote)
	}
	return s
}

// reasonText formats a reason for an error's text: a reason the peer
// sent is untrusted (it may hold newlines or terminal escapes meant for
// a log reader), so it is quoted, as %q does; a local one is as it is.
func reasonText(reason string, remote bool) string {
	if remote {
		return strconv.Quote(reason)
	}
	return reason
}

// Unwrap returns the underlying cause.
func (e *StreamError) Unwrap() error { return e.Err }

// Is matches a *StreamError with the same Code, net.ErrClosed, and for a
// hello timeout os.ErrDeadlineExceeded.
func (e *StreamError) Is(target error) bool {
	if t, ok := target.(*StreamError); ok {
		return t.Code == e.Code
	}
	return target == net.ErrClosed || (e.Code == CodeHelloTimeout && target == os.ErrDeadlineExceeded)
}

// Sentinels of the *StreamError family, for errors.Is; each matches every
// *StreamError carrying its code, local or remote. A stream reset with
// CodeRecordTooLarge (the peer sent a record above this side's limit) has
// no sentinel of its own, as [ErrRecordTooLarge] is Send's local error:
// match it with [CodeOf].
var (
	ErrInternal          = &StreamError{Code: CodeInternal, Reason: "internal error"}
	ErrProtocolViolation = &StreamError{Code: CodeProtocolViolation, Reason: "protocol violation"}
	ErrFrameEncoding     = &StreamError{Code: CodeFrameEncoding, Reason: "frame encoding error"}
	ErrFrameTooLarge     = &StreamError{Code: CodeFrameTooLarge, Reason: "frame too large"}
	ErrVersionMismatch   = &StreamError{Code: CodeVersionMismatch, Reason: "no common protocol version"}
	ErrRefused           = &StreamError{Code: CodeRefused, Reason: "stream refused"}
	ErrHelloTimeout      = &StreamError{Code: CodeHelloTimeout, Reason: "no HELLO in time"}
	ErrAckOutOfRange     = &StreamError{Code: CodeAckOutOfRange, Reason: "ack out of range"}
	ErrAckRegression     = &StreamError{Code: CodeAckRegression, Reason: "ack regression"}
	ErrSequenceGap       = &StreamError{Code: CodeSequenceGap, Reason: "sequence gap"}
	ErrUnexpectedFrame   = &StreamError{Code: CodeUnexpectedFrame, Reason: "unexpected frame"}
	ErrCancelled         = &StreamError{Code: CodeCancelled, Reason: "stream cancelled"}
	ErrResumeUnknown     = &StreamError{Code: CodeResumeUnknown, Reason: "resume state unknown"}
	ErrWindowExceeded    = &StreamError{Code: CodeWindowExceeded, Reason: "window exceeded"}
	ErrCompression       = &StreamError{Code: CodeCompression, Reason: "compressed batch not decodable"}
	ErrSuperseded        = &StreamError{Code: CodeSuperseded, Reason: "superseded by a newer opener of the resume key"}
)

// RecordError reports one record that the peer's application rejected:
// its Apply callback returned an error for it, or it called Reject. The
// stream goes on; the record counts as applied.
//
// errors.Is matches a *RecordError against the *RecordError sentinels
// with the same Code ([ErrRecordRejected] for CodeRejected).
type RecordError struct {
	// Seq is the record's sequence number.
	Seq uint64
	// Code is the code the peer chose: CodeRejected, or an application
	// code (at least CodeApplicationMin).
	Code ErrorCode
	// Reason is the peer's text, at most 1 KiB.
	Reason string
}

func (e *RecordError) Error() string {
	s := fmt.Sprintf("quicrecord: record %d rejected by the peer: %s", e.Seq, e.Code)
	if e.Reason != "" {
		s += ": " + reasonText(e.Reason, true)
	}
	return s
}

// Is matches a *RecordError with the same Code.
func (e *RecordError) Is(target error) bool {
	t, ok := target.(*RecordError)
	return ok && t.Code == e.Code
}

// ErrRecordRejected matches every *RecordError with CodeRejected: the
// peer's application rejected a record without choosing a code.
var ErrRecordRejected = &RecordError{Code: CodeRejected, Reason: "record rejected"}

// MaxReportedRejections is the most rejections a [RejectedError] lists
// one by one.
const MaxReportedRejections = 64

// RejectedError is what [RecordStream.Barrier] and
// [ResumableStream.Barrier] return when the peer rejected records in the
// range they waited for: every record was applied, some of them by
// rejecting it. Each rejection is reported once, to the first Barrier
// that returns covering it.
//
// errors.As finds the first rejection as a *RecordError, and errors.Is
// matches the *RecordError sentinels of any listed rejection.
type RejectedError struct {
	// Records are the first rejections in the range, in sequence order,
	// at most MaxReportedRejections of them.
	Records []RecordError
	// Count is the number of rejections in the range, listed or not.
	Count int
}

func (e *RejectedError) Error() string {
	if len(e.Records) == 0 {
		return fmt.Sprintf("quicrecord: %d records rejected by the peer", e.Count)
	}
	first := e.Records[0].Error()
	if e.Count == 1 {
		return first
	}
	return fmt.Sprintf("%s (and %d more)", first, e.Count-1)
}

// Unwrap returns the listed rejections, each a *RecordError.
func (e *RejectedError) Unwrap() []error {
	errs := make([]error, len(e.Records))
	for i := range e.Records {
		errs[i] = &e.Records[i]
	}
	return errs
}

// BarrierError is returned by [RecordStream.Barrier] and WaitAcked (and
// by [ResumableStream.Barrier]) when the wait can no longer succeed: the
// stream or connection failed, or ctx ended. It carries how far the peer
// got. Err is the reason and is what errors.Is and errors.As see through
// Unwrap.
type BarrierError struct {
	// Target is the last sequence number the barrier waited for.
	Target uint64
	// Acked is the highest sequence number the peer acknowledged as
	// applied when the barrier gave up.
	Acked uint64
	Err   error
}

func (e *BarrierError) Error() string {
	return fmt.Sprintf("quicrecord: barrier at seq %d failed with seq %d acked: %v", e.Target, e.Acked, e.Err)
}

// Unwrap returns the reason.
func (e *BarrierError) Unwrap() error { return e.Err }

// ResumeError ends a resumable stream whose records may have been lost or
// duplicated if it went on: the acceptor no longer has the state of its
// key (expired, evicted, or never persisted), or the stream could not be
// resumed at all. Records FirstUnknown through LastUnknown were sent but
// not acknowledged: the acceptor may or may not have applied them, and
// the application must decide. FirstUnknown > LastUnknown means none.
type ResumeError struct {
	Key                       []byte
	FirstUnknown, LastUnknown uint64
	// Err is the reason: a *StreamError with CodeResumeUnknown, a refusal,
	// or the loss of a connection that could not be resumed.
	Err error
}

func (e *ResumeError) Error() string {
	if e.FirstUnknown > e.LastUnknown {
		return fmt.Sprintf("quicrecord: resumable stream ended: %v", e.Err)
	}
	return fmt.Sprintf("quicrecord: resumable stream ended with records %d..%d in doubt: %v", e.FirstUnknown, e.LastUnknown, e.Err)
}

// Unwrap returns the reason.
func (e *ResumeError) Unwrap() error { return e.Err }

// ApplicationError is what an Apply callback or Config.AcceptHandler
// returns to choose the code and the reason the peer sees: Apply rejects
// the record with them, the accept handler refuses the stream with them.
// It is found with errors.As, so the application may wrap it.
//
// Code must be at least [CodeApplicationMin], or the callback's own
// protocol code (CodeRejected for Apply, CodeRefused for the accept
// handler); any other protocol code is replaced by that one, so that an
// application cannot send codes that claim a protocol failure. A callback
// error that is not an ApplicationError (nor wraps one) gets that code
// and a generic reason; its own text stays on this side (logged at debug
// level), and a *StreamError or *RecordError of some other stream inside
// it is not looked at.
type ApplicationError struct {
	Code   ErrorCode
	Reason string
}

func (e *ApplicationError) Error() string {
	s := "quicrecord: application error " + e.Code.String()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// ConnError reports that the QUIC connection under a stream ended. Code
// is the application error code of the CONNECTION_CLOSE, when there was
// one, and Remote says whether the peer closed it.
//
// It matches net.ErrClosed; [ErrConnClosedByPeer] when the peer closed
// the connection with CodeNoError; and os.ErrDeadlineExceeded for idle
// timeouts. It never matches a stream sentinel, whatever its code.
type ConnError struct {
	Code   ErrorCode
	Reason string
	Remote bool
	// Err is the quic-go error that ended the connection.
	Err error
	// app says the connection was closed by an application (ours or the
	// peer's) with Code, not by QUIC.
	app bool
}

func (e *ConnError) Error() string {
	switch {
	case e.app && e.Remote && e.Code == CodeNoError:
		return "quicrecord: connection closed by the peer"
	case e.app && e.Remote:
		s := "quicrecord: connection closed by the peer with code " + e.Code.String()
		if e.Reason != "" {
			s += ": " + reasonText(e.Reason, true)
		}
		return s
	case e.Err != nil:
		return "quicrecord: connection closed: " + e.Err.Error()
	}
	return "quicrecord: connection closed"
}

// Unwrap returns the quic-go error.
func (e *ConnError) Unwrap() error { return e.Err }

// Is matches net.ErrClosed, os.ErrDeadlineExceeded for idle timeouts, and
// a *ConnError sentinel closed by the same side with the same code.
func (e *ConnError) Is(target error) bool {
	switch {
	case target == net.ErrClosed:
		return true
	case target == os.ErrDeadlineExceeded:
		return isTimeout(e.Err)
	}
	t, ok := target.(*ConnError)
	return ok && t.app && e.app && t.Remote == e.Remote && t.Code == e.Code
}

// ErrConnClosedByPeer matches the *ConnError of a connection that the
// peer closed gracefully (Conn.Close, or CloseWithError with
// CodeNoError): what the pending and later calls of a Conn and its
// streams return after a clean close on the other side.
var ErrConnClosedByPeer = &ConnError{Remote: true, Code: CodeNoError, app: true, Reason: "closed by the peer"}

// ErrClosed is returned by operations on a stream or connection that this
// side closed. It matches net.ErrClosed.
var ErrClosed = fmt.Errorf("quicrecord: closed: %w", net.ErrClosed)

// Local misuse and argument errors. Each is returned wrapped with the
// numbers involved ("quicrecord: Ack(42): the last record delivered is
// 7"); match them with errors.Is.
var (
	// ErrRecordTooLarge: Send got a record above the stream's limit, the
	// smaller of this side's MaxRecordSize and the peer's.
	ErrRecordTooLarge = errors.New("quicrecord: record too large")
	// ErrNotDelivered: Ack or Reject named a record that Recv or Apply
	// has not returned yet.
	ErrNotDelivered = errors.New("quicrecord: record not delivered yet")
	// ErrAlreadyApplied: Reject named a record that was already acked or
	// rejected.
	ErrAlreadyApplied = errors.New("quicrecord: record already applied")
	// ErrNotSent: WaitAcked named a record that was not sent yet.
	ErrNotSent = errors.New("quicrecord: record not sent yet")
	// ErrConcurrentReceive: Recv or Apply was called while another Recv
	// or Apply of the same stream was running (see [RecordStream.Recv]).
	ErrConcurrentReceive = errors.New("quicrecord: concurrent Recv or Apply")
)

// usageError is a local misuse error: a sentinel with a message that
// carries the numbers.
type usageError struct {
	sentinel error
	msg      string
}

func (e *usageError) Error() string { return "quicrecord: " + e.msg }
func (e *usageError) Unwrap() error { return e.sentinel }

// misuse returns sentinel wrapped with a message made from format.
func misuse(sentinel error, format string, args ...any) error {
	return &usageError{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the error code of err, for a switch over codes: nil is
// CodeNoError; otherwise the Code of the first *StreamError,
// *RecordError, *ConnError or *ApplicationError in err's chain (for a
// *RejectedError, its first rejection's); any other error is
// CodeInternal. The sentinels and errors.Is remain the way to test for
// one condition.
func CodeOf(err error) ErrorCode {
	if err == nil {
		return CodeNoError
	}
	if code, ok := firstCode(err); ok {
		return code
	}
	return CodeInternal
}

// firstCode walks err's chain depth first and returns the code of the
// first coded error in it.
func firstCode(err error) (ErrorCode, bool) {
	for err != nil {
		switch e := err.(type) {
		case *StreamError:
			return e.Code, true
		case *RecordError:
			return e.Code, true
		case *ConnError:
			return e.Code, true
		case *ApplicationError:
			return e.Code, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if code, ok := firstCode(e); ok {
					return code, true
				}
			}
			return 0, false
		default:
			return 0, false
		}
	}
	return 0, false
}
