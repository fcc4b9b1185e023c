package compress

import (
	"fmt"
	"net"
)

// ErrorKind says why [Codecs.Decompress] refused its input.
type ErrorKind uint8

const (
	// KindTooLarge: the declared uncompressed length is negative or above
	// the limit. Decided before any allocation or decoding.
	KindTooLarge ErrorKind = iota + 1
	// KindCorrupt: the compressed bytes are not a valid encoding in the
	// codec's accepted profile.
	KindCorrupt
	// KindLengthMismatch: the input decodes, or says it decodes, to a
	// length other than the declared one.
	KindLengthMismatch
	// KindUnknownCodec: the codec is None or one this package does not
	// know.
	KindUnknownCodec
	// KindClosed: the [Codecs] was closed.
	KindClosed
)

var kindNames = [...]string{
	KindTooLarge:       "declared length too large",
	KindCorrupt:        "corrupt input",
	KindLengthMismatch: "length mismatch",
	KindUnknownCodec:   "unknown codec",
	KindClosed:         "closed",
}

// String returns a short description of the kind.
func (k ErrorKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is the error [Codecs.Decompress] returns. Match its kind with
// errors.Is and the sentinels ([ErrTooLarge], [ErrCorrupt],
// [ErrLengthMismatch], [ErrUnknownCodec], [ErrClosed]); errors.As gives
// the details. It unwraps to the codec library's error where there is one,
// and [ErrClosed] also matches net.ErrClosed.
type Error struct {
	Kind     ErrorKind
	Codec    Codec
	Declared int   // the declared uncompressed length
	Limit    int   // the limit it was checked against
	Got      int   // KindLengthMismatch: the length the input decodes or claims to decode to; else 0
	Err      error // the codec library's error, if any
}

// Sentinels for errors.Is; each matches every *Error of its kind.
var (
	ErrTooLarge       = &Error{Kind: KindTooLarge}
	ErrCorrupt        = &Error{Kind: KindCorrupt}
	ErrLengthMismatch = &Error{Kind: KindLengthMismatch}
	ErrUnknownCodec   = &Error{Kind: KindUnknownCodec}
	ErrClosed         = &Error{Kind: KindClosed}
)

// Error describes the failure.
func (e *Error) Error() string {
	s := "compress: " + e.Codec.String() + ": " + e.Kind.String()
	switch e.Kind {
	case KindTooLarge:
		s += fmt.Sprintf(": %d bytes declared, limit %d", e.Declared, e.Limit)
	case KindLengthMismatch:
		s += fmt.Sprintf(": %d bytes declared, input gives %d", e.Declared, e.Got)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is matches a sentinel *Error of the same kind, and net.ErrClosed for
// [KindClosed].
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t.Kind == e.Kind
	}
	return e.Kind == KindClosed && target == net.ErrClosed
}

// Unwrap returns the codec library's error, or nil.
func (e *Error) Unwrap() error { return e.Err }
