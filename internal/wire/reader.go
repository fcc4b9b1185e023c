package wire

import "io"

// DefaultBuffer is the initial buffer size of a Reader made with it.
const DefaultBuffer = 4 << 10

// MidBuffer is the buffer size a [Reader] grows to first: enough for a
// BATCH of 64 KiB of records with its headers. Only a frame larger than
// that makes it grow to the maximum frame size.
const MidBuffer = 80 << 10

// MaxFrameSize caps the maximum frame size a Reader accepts (1 GiB);
// larger values given to [NewReader] or [Reader.SetMaxFrameSize] are
// clamped to it.
const MaxFrameSize = 1 << 30

// MaxHeaderLen is the longest frame header: two 8-byte varints.
const MaxHeaderLen = 16

// Codec is the frame format a Reader cuts a stream into.
type Codec interface {
	// ParseHeader parses the frame header at the start of b, which holds
	// a whole header. It returns the type, the declared payload length
	// and the header's length; a declared length above maxFrameSize is
	// an error, returned as it is.
	ParseHeader(b []byte, maxFrameSize uint64) (typ, length uint64, n int, err error)
	// Known reports whether frames of type typ are returned with their
	// payload; others are skipped by their length.
	Known(typ uint64) bool
	// Truncated is the error for a stream that ends inside a frame of
	// type typ (0 when it ends inside a header).
	Truncated(typ uint64) error
}

// Reader reads frames from a byte stream into one reusable buffer.
//
// The buffer starts at the initial size given to [NewReader]. When a
// frame does not fit, it is replaced by a buffer of [MidBuffer] bytes if
// the frame fits that, else by one of the maximum frame size plus
// [MaxHeaderLen]; at most two replacements ever happen. It never grows
// beyond the maximum frame size plus MaxHeaderLen, so the memory a peer
// can make a Reader hold is bounded by the maximum it was given, whatever
// the peer sends, and a stream that only carries small frames keeps a
// small buffer. The maximum is enforced from the frame header, before any
// payload byte is read.
type Reader struct {
	r     io.Reader
	codec Codec
	buf   []byte // buf[start:end] holds bytes read but not yet returned
	// start and end index buf; see above.
	start, end int
	max        uint64 // maximum frame payload size
	err        error  // sticky error from r, returned once the buffer is drained
	init       int    // initial buffer size

	// Direct reads; see SetDirect. alloc is nil when they are off.
	directType uint64
	directMin  int
	alloc      func(n int) ([]byte, any)
}

// NewReader returns a Reader of codec's frames with an initial buffer of
// initial bytes (at least MaxHeaderLen) that accepts frame payloads of at
// most maxFrameSize bytes.
func NewReader(r io.Reader, initial int, maxFrameSize uint64, codec Codec) *Reader {
	return &Reader{r: r, codec: codec, max: min(maxFrameSize, MaxFrameSize), init: max(initial, MaxHeaderLen)}
}

// SetMaxFrameSize changes the maximum frame payload size, for example once
// a negotiation has settled it. A buffer larger than the new limit is kept.
func (r *Reader) SetMaxFrameSize(n uint64) { r.max = min(n, MaxFrameSize) }

// SetDirect makes the Reader read the payload of a frame of type t that
// is at least minLen bytes long, and not buffered whole yet, into a buffer
// of the caller's instead of its own: it calls alloc(n) with the payload
// length n, copies the part already buffered into the returned buffer and
// reads the rest from the underlying reader straight into it. A large
// frame so costs one copy (the underlying reader's) instead of two, and
// the Reader's own buffer never has to grow for it.
//
// alloc returns the buffer, of length at least n, and a token of the
// caller's choosing (a pool handle, say) that [Reader.Next] hands back
// with the frame, so the caller knows which payloads it owns and how to
// recycle them. alloc is called only after the header was checked
// against the maximum frame size, so n never exceeds it. A nil alloc
// turns direct reads off.
func (r *Reader) SetDirect(t uint64, minLen int, alloc func(n int) (buf []byte, token any)) {
	r.directType, r.directMin, r.alloc = t, minLen, alloc
}

// MaxFrameSize returns the maximum frame payload size.
func (r *Reader) MaxFrameSize() uint64 { return r.max }

// Buffered returns the number of bytes read from the underlying reader but
// not yet returned as frames.
func (r *Reader) Buffered() int { return r.end - r.start }

// BufferSize returns the current capacity of the Reader's buffer.
func (r *Reader) BufferSize() int { return len(r.buf) }

// Frame is one frame returned by [Reader.Next].
type Frame struct {
	Type uint64
	// Payload is the frame's payload; nil for a frame of an unknown type,
	// which the Reader skipped.
	Payload []byte
	// Direct reports that Payload was read into a buffer from the
	// [Reader.SetDirect] allocator: the caller owns it, and Token is what
	// the allocator returned with it. Otherwise Payload aliases the
	// Reader's buffer, is valid only until the next read, and Token is
	// nil.
	Direct bool
	Token  any
}

// Next reads the next frame and reports who owns its payload.
//
// A payload in the Reader's buffer is valid only until the next call to
// Next; so is anything parsed from it without copying. A payload read
// directly (see [Reader.SetDirect]) belongs to the caller, and the Frame
// says so.
//
// A frame of an unknown type (see [Codec]) is skipped by its length: the
// Reader discards its payload as it arrives, without buffering it whole,
// and returns the type with a nil payload so the caller can count it.
//
// At a clean end of stream between frames Next returns io.EOF. A stream
// that ends inside a frame gives the codec's Truncated error. A declared
// length above the maximum gives the codec's error before the payload is
// read. Other errors of the underlying reader, such as a stream reset,
// are returned as they are. When the stream ends or fails inside a
// payload being read directly, the error comes with a Frame whose Direct
// and Token are set (and Payload nil), so the caller can take its buffer
// back.
func (r *Reader) Next() (Frame, error) {
	for {
		if headerLen(r.buf[r.start:r.end]) == 0 {
			// An incomplete header: read more. This is checked apart
			// from ParseHeader, whose error for it allocates, because
			// it happens whenever the buffer drains at a frame boundary.
			if err := r.fill(r.Buffered()+1, r.Buffered() == 0, 0); err != nil {
				return Frame{}, err
			}
			continue
		}
		t, length, hn, err := r.codec.ParseHeader(r.buf[r.start:r.end], r.max)
		if err != nil {
			return Frame{}, err
		}
		if !r.codec.Known(t) {
			r.start += hn
			if err := r.discard(length, t); err != nil {
				return Frame{}, err
			}
			return Frame{Type: t}, nil
		}
		total := hn + int(length)
		if r.alloc != nil && t == r.directType && int(length) >= r.directMin && total > r.Buffered() {
			r.start += hn
			return r.readDirect(int(length), t)
		}
		if err := r.fill(total, false, t); err != nil {
			return Frame{}, err
		}
		payload := r.buf[r.start+hn : r.start+total : r.start+total]
		r.start += total
		return Frame{Type: t, Payload: payload}, nil
	}
}

// fill makes at least n bytes available in buf[start:end]; n never exceeds
// r.max+MaxHeaderLen. boundary says whether the stream may end cleanly
// here; t names the frame for errors.
func (r *Reader) fill(n int, boundary bool, t uint64) error {
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if len(r.buf)-r.start < n {
		if len(r.buf) < n {
			limit := int(r.max) + MaxHeaderLen
			size := min(r.init, limit)
			if r.buf != nil || size < n {
				size = limit
				if n <= MidBuffer && len(r.buf) < MidBuffer {
					size = min(MidBuffer, limit)
				}
			}
			nb := make([]byte, size)
			r.end = copy(nb, r.buf[r.start:r.end])
			r.start = 0
			r.buf = nb
		} else {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
	}
	for r.end-r.start < n {
		if r.err != nil {
			return r.readErr(boundary, t)
		}
		m, err := r.r.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			r.err = err
		}
	}
	return nil
}

// readDirect reads the next n bytes, the payload of a frame of type t,
// into a buffer from r.alloc.
func (r *Reader) readDirect(n int, t uint64) (Frame, error) {
	buf, token := r.alloc(n)
	f := Frame{Type: t, Direct: true, Token: token}
	dst := buf[:n:n]
	got := copy(dst, r.buf[r.start:r.end])
	r.start += got
	for got < n {
		if r.err != nil {
			return f, r.readErr(false, t)
		}
		m, err := r.r.Read(dst[got:])
		got += m
		if err != nil {
			r.err = err
		}
	}
	f.Payload = dst
	return f, nil
}

// discard drops the next length bytes of the stream, reading them through
// the buffer without keeping them.
func (r *Reader) discard(length uint64, t uint64) error {
	avail := uint64(r.Buffered())
	if length <= avail {
		r.start += int(length)
		return nil
	}
	length -= avail
	r.start, r.end = 0, 0
	if r.buf == nil {
		r.buf = make([]byte, min(uint64(r.init), r.max+MaxHeaderLen))
	}
	for length > 0 {
		if r.err != nil {
			return r.readErr(false, t)
		}
		m, err := r.r.Read(r.buf)
		if err != nil {
			r.err = err
		}
		if uint64(m) > length {
			r.start, r.end = int(length), m
			return nil
		}
		length -= uint64(m)
	}
	return nil
}

// headerLen returns the length of the frame header at the start of b, or
// 0 if b does not hold a whole header yet.
func headerLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	n := 1 << (b[0] >> 6)
	if len(b) <= n {
		return 0
	}
	n += 1 << (b[n] >> 6)
	if len(b) < n {
		return 0
	}
	return n
}

// readErr converts the sticky read error once the buffered bytes cannot
// complete a frame.
func (r *Reader) readErr(boundary bool, t uint64) error {
	if r.err == io.EOF {
		if boundary {
			return io.EOF
		}
		return r.codec.Truncated(t)
	}
	return r.err
}
