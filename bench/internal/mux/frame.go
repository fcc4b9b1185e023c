package mux

import (
	"fmt"
	"net"

	"github.com/quic-go/quic-go/quicvarint"
)

// Frame types.
const (
	TypeData byte = 0x00
	TypeAck  byte = 0x01
	// TypeOpen announces a stream the sender opened with [Session.Open].
	TypeOpen byte = 0x02
	// TypeFin says the sender finished the stream: no DATA follows.
	TypeFin byte = 0x03
)

// Error is the type of this package's sentinel errors. Being a string
// type, its values are constants, matched with [errors.Is].
type Error string

// Error returns the message.
func (e Error) Error() string { return string(e) }

// Is makes [ErrClosed] match [net.ErrClosed].
func (e Error) Is(target error) bool { return e == ErrClosed && target == net.ErrClosed }

// Errors of the codec. ErrShort is not a failure: the buffer holds only a
// prefix of a frame and more bytes are needed.
const (
	ErrShort       Error = "mux: incomplete frame"
	ErrUnknownType Error = "mux: unknown frame type"
	ErrTooLarge    Error = "mux: record too large"
)

// Frame is one parsed frame. For TypeData, Data points into the buffer it
// was parsed from and is valid only as long as that buffer is; for
// TypeAck, Seq is the cumulative ack. TypeOpen and TypeFin carry only the
// stream.
type Frame struct {
	Type   byte
	Stream uint64
	Seq    uint64
	Data   []byte
}

// DataLen returns the encoded length of a DATA frame carrying n bytes.
func DataLen(stream uint64, n int) int {
	return 1 + quicvarint.Len(stream) + quicvarint.Len(uint64(n)) + n
}

// AppendData appends a DATA frame for stream carrying rec.
func AppendData(b []byte, stream uint64, rec []byte) []byte {
	b = append(b, TypeData)
	b = quicvarint.Append(b, stream)
	b = quicvarint.Append(b, uint64(len(rec)))
	return append(b, rec...)
}

// AckLen returns the encoded length of an ACK frame.
func AckLen(stream, seq uint64) int {
	return 1 + quicvarint.Len(stream) + quicvarint.Len(seq)
}

// AppendAck appends an ACK frame for stream acknowledging up to seq.
func AppendAck(b []byte, stream, seq uint64) []byte {
	b = append(b, TypeAck)
	b = quicvarint.Append(b, stream)
	return quicvarint.Append(b, seq)
}

// AppendControl appends an OPEN or FIN frame (typ) for stream.
func AppendControl(b []byte, typ byte, stream uint64) []byte {
	return quicvarint.Append(append(b, typ), stream)
}

// ParseFrame parses the frame at the start of b and returns it with the
// number of bytes it occupies. It returns [ErrShort] when b holds only a
// prefix of a frame, and fails before looking at the payload when a DATA
// frame announces more than maxData bytes.
func ParseFrame(b []byte, maxData int) (Frame, int, error) {
	if len(b) == 0 {
		return Frame{}, 0, ErrShort
	}
	f := Frame{Type: b[0]}
	if f.Type > TypeFin {
		return Frame{}, 0, fmt.Errorf("%w 0x%02x", ErrUnknownType, f.Type)
	}
	off := 1
	sid, n, err := quicvarint.Parse(b[off:])
	if err != nil {
		return Frame{}, 0, ErrShort
	}
	f.Stream = sid
	off += n
	if f.Type == TypeOpen || f.Type == TypeFin {
		return f, off, nil
	}
	v, n, err := quicvarint.Parse(b[off:])
	if err != nil {
		return Frame{}, 0, ErrShort
	}
	off += n
	if f.Type == TypeAck {
		f.Seq = v
		return f, off, nil
	}
	if v > uint64(maxData) {
		return Frame{}, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, v, maxData)
	}
	if uint64(len(b)-off) < v {
		return Frame{}, 0, ErrShort
	}
	end := off + int(v)
	f.Data = b[off:end:end]
	return f, end, nil
}
