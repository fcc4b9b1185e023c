package frames

import (
	"io"

	"github.com/recordmux/recordmux/internal/wire"
)

// Reader reads frames from a byte stream into one reusable buffer.
//
// The buffer starts at 4 KiB and grows, at most twice, to hold the
// largest frame seen; it never grows beyond the maximum frame size plus
// [MaxHeaderLen], so the memory a peer can make a Reader hold is bounded
// by the maximum it was given, whatever the peer sends. The maximum is
// enforced from the frame header, before any payload byte is read, and
// frames of unknown types are skipped by their length without being
// buffered whole.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	r *wire.Reader
}

// NewReader returns a Reader that accepts frame payloads of at most
// maxFrameSize bytes. A maximum above 1 GiB is clamped to 1 GiB.
func NewReader(r io.Reader, maxFrameSize uint64) *Reader {
	return &Reader{r: wire.NewReader(r, wire.DefaultBuffer, maxFrameSize, codec{})}
}

// SetMaxFrameSize changes the maximum frame payload size, for example once
// a negotiation has settled it. A buffer larger than the new limit is kept.
func (r *Reader) SetMaxFrameSize(n uint64) { r.r.SetMaxFrameSize(n) }

// Buffered returns the number of bytes read from the underlying reader but
// not yet returned as frames.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadFrame reads the next frame and returns its type and payload. The
// payload aliases the Reader's buffer and is valid only until the next
// call; so is anything parsed from it without copying, such as a [Batch].
//
// A frame of an unknown type (see [Type.Known]) is skipped by its length
// and returned as its type with a nil payload, so the caller can count
// it.
//
// At a clean end of stream between frames ReadFrame returns io.EOF. A
// stream that ends inside a frame gives an [*Error] with code
// [CodeFrameEncoding] wrapping io.ErrUnexpectedEOF. A declared length
// above the maximum gives [ErrFrameTooLarge] before the payload is read.
// Other errors of the underlying reader, such as a stream reset, are
// returned as they are.
func (r *Reader) ReadFrame() (Type, []byte, error) {
	f, err := r.r.Next()
	return Type(f.Type), f.Payload, err
}

// codec is the frame format of this package for a wire.Reader.
type codec struct{}

func (codec) ParseHeader(b []byte, maxFrameSize uint64) (uint64, uint64, int, error) {
	t, length, n, err := ParseHeader(b, maxFrameSize)
	return uint64(t), length, n, err
}

func (codec) Known(t uint64) bool { return Type(t).Known() }

func (codec) Truncated(t uint64) error { return errTruncated(Type(t), "frame") }
