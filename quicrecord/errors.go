package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/frames"
)

// ErrorCode is the numeric code of a stream or record error. It is the
// same code space as the wire protocol's (see docs/PROTOCOL.md): codes
// below [CodeApplicationMin] belong to the protocol, applications use the
// rest for their own rejections and resets.
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
)

// allFeatures is every feature this library implements.
const allFeatures = FeaturePiggybackAck | FeatureResume

// MaxResumeKeyLen caps the length of a resume key.
const MaxResumeKeyLen = 64

// StreamError reports that a record stream failed or was refused. Code
// says why; Remote says whether the peer chose the code (it sent an ERROR
// frame or reset the stream) or this side did (a local CloseWithError, or
// a protocol violation this side detected).
//
// errors.Is matches a *StreamError against any *StreamError with the same
// Code, so the exported sentinels such as [ErrRefused] match whether the
// error was local or decoded from the peer. Every StreamError also matches
// net.ErrClosed: the stream is unusable after it. A CodeHelloTimeout error
// matches os.ErrDeadlineExceeded.
type StreamError struct {
	Code   ErrorCode
	Reason string
	Remote bool
	// StreamID is the QUIC stream, when known.
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
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *StreamError) Unwrap() error { return e.Err }

// Is matches a *StreamError with the same Code, net.ErrClosed, and for a
// hello timeout os.ErrDeadlineExceeded.
func (e *StreamError) Is(target error) bool {
	switch t := target.(type) {
	case *StreamError:
		return t.Code == e.Code
	case *RecordError:
		return t.Code == e.Code
	}
	return target == net.ErrClosed || (e.Code == CodeHelloTimeout && target == os.ErrDeadlineExceeded)
}

// Sentinels for errors.Is; each matches every error carrying its code.
var (
	ErrRefused          = &StreamError{Code: CodeRefused, Reason: "stream refused"}
	ErrVersionMismatch  = &StreamError{Code: CodeVersionMismatch, Reason: "no common protocol version"}
	ErrHelloTimeout     = &StreamError{Code: CodeHelloTimeout, Reason: "no HELLO in time"}
	ErrCancelled        = &StreamError{Code: CodeCancelled, Reason: "stream cancelled"}
	ErrAckOutOfRange    = &StreamError{Code: CodeAckOutOfRange, Reason: "ack out of range"}
	ErrAckRegression    = &StreamError{Code: CodeAckRegression, Reason: "ack regression"}
	ErrSequenceGap      = &StreamError{Code: CodeSequenceGap, Reason: "sequence gap"}
	ErrUnexpectedFrame  = &StreamError{Code: CodeUnexpectedFrame, Reason: "unexpected frame"}
	ErrFrameEncoding    = &StreamError{Code: CodeFrameEncoding, Reason: "frame encoding error"}
	ErrFrameTooLarge    = &StreamError{Code: CodeFrameTooLarge, Reason: "frame too large"}
	ErrRecordTooLarge   = &StreamError{Code: CodeRecordTooLarge, Reason: "record too large"}
	ErrWindowExceeded   = &StreamError{Code: CodeWindowExceeded, Reason: "window exceeded"}
	ErrResumeUnknown    = &StreamError{Code: CodeResumeUnknown, Reason: "resume state unknown"}
	ErrRecordRejected   = &RecordError{Code: CodeRejected, Reason: "record rejected"}
	ErrProtocolInternal = &StreamError{Code: CodeInternal, Reason: "internal error"}
)

// RecordError reports one record the peer's application failed to apply
// (or, for Remote == false, that this side rejected). errors.Is matches a
// *RecordError or *StreamError with the same Code.
type RecordError struct {
	Seq    uint64
	Code   ErrorCode
	Reason string
	Remote bool
	// More counts further rejections in the same Barrier range that this
	// error does not describe.
	More int
}

func (e *RecordError) Error() string {
	s := fmt.Sprintf("quicrecord: record %d rejected: %s", e.Seq, e.Code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.More > 0 {
		s += fmt.Sprintf(" (and %d more)", e.More)
	}
	return s
}

// Is matches a *RecordError or *StreamError with the same Code.
func (e *RecordError) Is(target error) bool {
	switch t := target.(type) {
	case *RecordError:
		return t.Code == e.Code
	case *StreamError:
		return t.Code == e.Code
	}
	return false
}

// BarrierError is returned by [RecordStream.Barrier] when the barrier can
// no longer succeed: the stream or connection failed, or ctx ended. It
// carries how far the peer got. Err is the reason and is what errors.Is
// and errors.As see through Unwrap.
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

// ConnError reports that the QUIC connection under a stream ended. Code is
// the application error code of the CONNECTION_CLOSE, when there was one.
// It matches net.ErrClosed, and os.ErrDeadlineExceeded for idle timeouts.
type ConnError struct {
	Code   ErrorCode
	Reason string
	Remote bool
	// Err is the quic-go error that ended the connection.
	Err error
}

func (e *ConnError) Error() string {
	if e.Err != nil {
		return "quicrecord: connection closed: " + e.Err.Error()
	}
	return "quicrecord: connection closed"
}

// Unwrap returns the quic-go error.
func (e *ConnError) Unwrap() error { return e.Err }

// Is matches net.ErrClosed, and os.ErrDeadlineExceeded for idle timeouts.
func (e *ConnError) Is(target error) bool {
	if target == net.ErrClosed {
		return true
	}
	if target == os.ErrDeadlineExceeded {
		var idle *quic.IdleTimeoutError
		var hs *quic.HandshakeTimeoutError
		return errors.As(e.Err, &idle) || errors.As(e.Err, &hs)
	}
	if t, ok := target.(*StreamError); ok {
		return e.Code == t.Code && e.Code != CodeNoError
	}
	return false
}

// ErrClosed is returned by operations on a stream or connection that this
// side closed. It matches net.ErrClosed.
var ErrClosed = fmt.Errorf("quicrecord: closed: %w", net.ErrClosed)

// ErrLocalAckOutOfRange is returned by [RecordStream.Ack] and
// [RecordStream.Reject] for a sequence number that was not yet returned by
// Recv or Apply.
var ErrLocalAckOutOfRange = errors.New("quicrecord: ack beyond the last delivered record")

// ErrAlreadyConsumed is returned by [RecordStream.Reject] for a record that
// was already acked or rejected.
var ErrAlreadyConsumed = errors.New("quicrecord: record already acked or rejected")

// codeOf is the one mapping from an error to the code and reason this side
// puts on the wire for it: the Code and Reason of a *StreamError or
// *RecordError in err's chain, else fallback and err's text. Each caller
// names its own fallback: Apply rejects a record with CodeRejected, the
// accept handler refuses a stream with CodeRefused, and the writer resets
// its stream with CodeInternal.
func codeOf(err error, fallback ErrorCode) (ErrorCode, string) {
	var se *StreamError
	if errors.As(err, &se) {
		return se.Code, se.Reason
	}
	var re *RecordError
	if errors.As(err, &re) {
		return re.Code, re.Reason
	}
	return fallback, err.Error()
}

// asStreamError returns the *StreamError in err's chain, or else a local
// one with the code and reason of codeOf(err, fallback) that wraps err.
func asStreamError(err error, fallback ErrorCode) *StreamError {
	var se *StreamError
	if errors.As(err, &se) {
		return se
	}
	code, reason := codeOf(err, fallback)
	return &StreamError{Code: code, Reason: reason, Err: err}
}

// isViolation reports whether a code means the peer broke the protocol.
func isViolation(code ErrorCode) bool {
	switch code {
	case CodeProtocolViolation, CodeFrameEncoding, CodeFrameTooLarge, CodeHelloTimeout,
		CodeAckOutOfRange, CodeAckRegression, CodeSequenceGap, CodeRecordTooLarge,
		CodeUnexpectedFrame, CodeWindowExceeded:
		return true
	}
	return false
}

// ctxError converts a context's end into the error a blocking call
// returns: its cause, and for deadlines also os.ErrDeadlineExceeded.
func ctxError(ctx context.Context) error {
	err := context.Cause(ctx)
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return err
}

// convertQUICError maps a quic-go error seen on a stream operation to this
// package's typed errors.
func convertQUICError(err error, id StreamID) error {
	var se *quic.StreamError
	if errors.As(err, &se) {
		reason := "stream reset"
		if se.Remote && se.ErrorCode == 0 {
			reason = "peer closed the stream"
		}
		return &StreamError{Code: ErrorCode(se.ErrorCode), Remote: se.Remote, StreamID: id, Reason: reason, Err: err}
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return &ConnError{Code: ErrorCode(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: ae.Remote, Err: err}
	}
	var te *quic.TransportError
	var idle *quic.IdleTimeoutError
	var sr *quic.StatelessResetError
	var hs *quic.HandshakeTimeoutError
	if errors.As(err, &te) || errors.As(err, &idle) || errors.As(err, &sr) || errors.As(err, &hs) {
		ce := &ConnError{Err: err}
		if te != nil {
			ce.Remote = te.Remote
		}
		return ce
	}
	return err
}
