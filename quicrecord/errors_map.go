package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/quic-go/quic-go"
)

// The mappings between errors and wire codes, each written once: what a
// callback's error puts on the wire (callbackCode), what a failed writer
// resets its stream with (streamCode), and how quic-go's errors become
// this package's (convertQUICError).

// Generic reasons sent for callback errors that chose no code: the
// callback's own text stays on this side.
const (
	reasonRejected = "rejected by the application"
	reasonRefused  = "refused by the application"
)

// callbackCode is the code and reason this side sends for the error of an
// application callback (Apply's function, the accept handler): an
// *ApplicationError's, with a protocol code other than generic replaced
// by generic; for any other error, generic and reason.
func callbackCode(err error, generic ErrorCode, reason string) (ErrorCode, string) {
	var ae *ApplicationError
	if !errors.As(err, &ae) {
		return generic, reason
	}
	if ae.Code < CodeApplicationMin && ae.Code != generic {
		return generic, ae.Reason
	}
	return ae.Code, ae.Reason
}

// streamCode is the code of the *StreamError in err's chain, or fallback.
func streamCode(err error, fallback ErrorCode) ErrorCode {
	var se *StreamError
	if errors.As(err, &se) {
		return se.Code
	}
	return fallback
}

// asStreamError returns the *StreamError in err's chain, or else a local
// one with code fallback and a generic reason that wraps err: its text
// may go to the peer as the reason of an ERROR frame, and err's own text
// stays on this side.
func asStreamError(err error, fallback ErrorCode) *StreamError {
	var se *StreamError
	if errors.As(err, &se) {
		return se
	}
	return &StreamError{Code: fallback, Reason: genericReason(fallback), Err: err}
}

// genericReason is the reason sent for a local failure of code whose own
// text is not for the peer.
func genericReason(code ErrorCode) string {
	switch code {
	case CodeRefused:
		return reasonRefused
	case CodeRejected:
		return reasonRejected
	}
	return "internal error"
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

// isTimeout reports whether a quic-go error is an idle or handshake
// timeout.
func isTimeout(err error) bool {
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	return errors.As(err, &idle) || errors.As(err, &hs)
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
		return &ConnError{Code: ErrorCode(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: ae.Remote, Err: err, app: true}
	}
	var te *quic.TransportError
	var sr *quic.StatelessResetError
	if errors.As(err, &te) || errors.As(err, &sr) || isTimeout(err) {
		ce := &ConnError{Err: err}
		if te != nil {
			ce.Remote = te.Remote
		}
		return ce
	}
	return err
}
