package framer

import (
	"io"

	"github.com/quic-go/quic-go"
)

// Stream is the byte stream a [Sender] or [Receiver] runs on: a
// *quic.Stream, a yamux or smux stream, or any reliable, ordered,
// bidirectional byte stream whose Close finishes the write direction only
// (a FIN), leaving the read direction open until the peer finishes its
// own. A stream that also has CancelRead(quic.StreamErrorCode), as a
// *quic.Stream does, has its read direction stopped when the peer
// misbehaves.
type Stream interface {
	io.Reader
	io.Writer
	// Close finishes the write direction.
	Close() error
}

// readCanceler is the optional method a Sender uses to stop reading a
// misbehaving peer's acks.
type readCanceler interface {
	CancelRead(quic.StreamErrorCode)
}
