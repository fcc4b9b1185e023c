package frames

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrorCode is a numeric error code carried on the wire in ERROR frames and
// in QUIC stream and connection resets. Codes below 0x100 are reserved for
// the protocol; applications pick codes from [CodeApplicationMin] upwards
// for their own record rejections and resets. The table is part of the wire
// specification (docs/PROTOCOL.md) and never changes meaning.
type ErrorCode uint64

// Protocol error codes. Their values are stable.
const (
	// CodeNoError is a graceful close.
	CodeNoError ErrorCode = 0x00
	// CodeInternal is a local failure unrelated to the peer's behaviour.
	CodeInternal ErrorCode = 0x01
	// CodeProtocolViolation is a peer behaviour the protocol forbids that
	// has no more specific code.
	CodeProtocolViolation ErrorCode = 0x02
	// CodeFrameEncoding is a malformed frame: truncated, inconsistent
	// lengths, trailing bytes, a bad varint or an out-of-range field.
	CodeFrameEncoding ErrorCode = 0x03
	// CodeFrameTooLarge is a frame whose declared length exceeds the
	// receiver's maximum frame size (or, for HELLO, [MaxHelloSize]).
	CodeFrameTooLarge ErrorCode = 0x04
	// CodeVersionMismatch refuses a stream whose peers share no protocol
	// version.
	CodeVersionMismatch ErrorCode = 0x05
	// CodeRefused refuses a stream at open (the acceptor's application said no).
	CodeRefused ErrorCode = 0x06
	// CodeHelloTimeout resets a stream that sent no valid HELLO in time.
	CodeHelloTimeout ErrorCode = 0x07
	// CodeAckOutOfRange is an ack for a sequence number that was never sent.
	CodeAckOutOfRange ErrorCode = 0x08
	// CodeAckRegression is a cumulative ack lower than an earlier one.
	CodeAckRegression ErrorCode = 0x09
	// CodeSequenceGap is a BATCH whose first sequence number does not
	// follow the previous record (a gap or a repeat).
	CodeSequenceGap ErrorCode = 0x0a
	// CodeRecordTooLarge is a record larger than the receiver's maximum
	// record size.
	CodeRecordTooLarge ErrorCode = 0x0b
	// CodeUnexpectedFrame is a known frame type at the wrong time: a BATCH,
	// ACK or ERROR before HELLO, a second HELLO, or a flag or frame the
	// peer did not negotiate.
	CodeUnexpectedFrame ErrorCode = 0x0c
	// CodeCancelled resets a stream whose local context was cancelled.
	CodeCancelled ErrorCode = 0x0d
	// CodeResumeUnknown refuses the resumption of a stream whose receive
	// state the acceptor no longer has.
	CodeResumeUnknown ErrorCode = 0x0e
	// CodeWindowExceeded is a peer that sent more unacknowledged records or
	// bytes than the window the receiver announced.
	CodeWindowExceeded ErrorCode = 0x0f
	// CodeRejected is the default code for a record the application failed
	// to apply.
	CodeRejected ErrorCode = 0x10
	// CodeCompression is a compressed BATCH the receiver cannot decode:
	// a codec it did not list in its HELLO, a record section that is
	// not a valid encoding, or one that decodes to a length other than
	// the declared one.
	CodeCompression ErrorCode = 0x11
	// CodeSuperseded ends a resumed stream, or refuses its resumption,
	// because an opener with a newer resume epoch holds its key (sent
	// only on streams that negotiated [FeatureResumeEpoch]). The
	// superseded opener does not reconnect.
	CodeSuperseded ErrorCode = 0x12

	// CodeApplicationMin is the first code available to applications.
	CodeApplicationMin ErrorCode = 0x100
)

var codeNames = [...]string{
	CodeNoError:           "NO_ERROR",
	CodeInternal:          "INTERNAL",
	CodeProtocolViolation: "PROTOCOL_VIOLATION",
	CodeFrameEncoding:     "FRAME_ENCODING",
	CodeFrameTooLarge:     "FRAME_TOO_LARGE",
	CodeVersionMismatch:   "VERSION_MISMATCH",
	CodeRefused:           "REFUSED",
	CodeHelloTimeout:      "HELLO_TIMEOUT",
	CodeAckOutOfRange:     "ACK_OUT_OF_RANGE",
	CodeAckRegression:     "ACK_REGRESSION",
	CodeSequenceGap:       "SEQUENCE_GAP",
	CodeRecordTooLarge:    "RECORD_TOO_LARGE",
	CodeUnexpectedFrame:   "UNEXPECTED_FRAME",
	CodeCancelled:         "CANCELLED",
	CodeResumeUnknown:     "RESUME_UNKNOWN",
	CodeWindowExceeded:    "WINDOW_EXCEEDED",
	CodeRejected:          "REJECTED",
	CodeCompression:       "COMPRESSION_ERROR",
	CodeSuperseded:        "SUPERSEDED",
}

// String returns the code's name from the specification, or a hex number
// for codes without one.
// IsReserved reports whether c is one of the reserved protocol codes
// 0x1f*N+0x21 below CodeApplicationMin (0x21, 0x40, …, 0xfa) that no
// version will ever assign. An endpoint may use them in ERROR frames and
// resets to exercise its peer's rule for unknown codes.
func (c ErrorCode) IsReserved() bool {
	return c >= 0x21 && c < CodeApplicationMin && (c-0x21)%0x1f == 0
}

func (c ErrorCode) String() string {
	if c < ErrorCode(len(codeNames)) && codeNames[c] != "" {
		return codeNames[c]
	}
	if c >= CodeApplicationMin {
		return "APPLICATION(0x" + strconv.FormatUint(uint64(c), 16) + ")"
	}
	return "0x" + strconv.FormatUint(uint64(c), 16)
}

// Error is a codec error: a frame that cannot be parsed or must not be
// accepted. Code says which rule of the specification it broke; errors.Is
// matches two *Error values by Code, so the exported sentinels below work
// as targets.
type Error struct {
	Code   ErrorCode
	Frame  Type   // the frame type being parsed; 0 when unknown
	Reason string // human-readable detail; never match on it
	Err    error  // underlying cause, such as io.ErrUnexpectedEOF; may be nil
}

// Sentinels for errors.Is. Each matches every *Error with the same Code.
var (
	ErrFrameEncoding   = &Error{Code: CodeFrameEncoding, Reason: "frame encoding error"}
	ErrFrameTooLarge   = &Error{Code: CodeFrameTooLarge, Reason: "frame too large"}
	ErrRecordTooLarge  = &Error{Code: CodeRecordTooLarge, Reason: "record too large"}
	ErrUnexpectedFrame = &Error{Code: CodeUnexpectedFrame, Reason: "unexpected frame"}
)

func (e *Error) Error() string {
	var s string
	if e.Frame != 0 {
		s = "frames: " + e.Frame.String() + ": " + e.Code.String() + ": " + e.Reason
	} else {
		s = "frames: " + e.Code.String() + ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func errEncoding(t Type, reason string) error {
	return &Error{Code: CodeFrameEncoding, Frame: t, Reason: reason}
}

func errTruncated(t Type, what string) error {
	return &Error{Code: CodeFrameEncoding, Frame: t, Reason: "truncated " + what, Err: io.ErrUnexpectedEOF}
}

func errTooLarge(t Type, what string, n, limit uint64) error {
	return errLimit(CodeFrameTooLarge, t, what, n, limit)
}

// errLimit reports a declared length n above limit with the given code.
func errLimit(code ErrorCode, t Type, what string, n, limit uint64) error {
	return &Error{Code: code, Frame: t, Reason: fmt.Sprintf("%s of %d bytes exceeds the limit of %d", what, n, limit)}
}

// errVarint maps a quicvarint parse failure to a typed error.
func errVarint(t Type, what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated(t, what)
	}
	return &Error{Code: CodeFrameEncoding, Frame: t, Reason: "bad varint in " + what, Err: err}
}
