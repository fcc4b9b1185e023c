package wire

import "io"

// DefaultBuffer is the initial buffer size of a Reader made with it.
const DefaultBuffer = 4 << 10

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
// Nothing is reserved from a declared length. The buffer starts at the
// initial size given to [NewReader] and grows only when it is full of
// bytes that arrived and a frame still needs more: each step doubles it,
// up to the maximum frame size plus [MaxHeaderLen]. So the buffer is at
// most twice the bytes a frame really delivered (or the initial size),
// whatever its header declared, and a stream that only carries small
// frames keeps a small buffer. The maximum is enforced from the frame
// header, before any payload byte is read; the codec also enforces each
// type's own maximum payload there.
type Reader struct {
	r     io.Reader
	codec Codec
	buf   []byte // buf[start:end] holds bytes read but not yet returned
	// start and end index buf; see above.
	start, end int
	max        uint64 // maximum frame payload size
	err        error  // sticky error from r, returned once the buffer is drained
	init       int    // initial buffer size

	direct Direct // direct reads; see SetDirect. Off when Alloc is nil.
}

// Direct configures direct reads (see [Reader.SetDirect]).
type Direct struct {
	// Type is the frame type read directly.
	Type uint64
	// MinLen is the smallest payload read directly.
	MinLen int
	// Step is the size of the first buffer asked of Alloc for a payload
	// (less when the payload is shorter, more when more of it is already
	// buffered); each later buffer doubles the one before, as the bytes
	// arrive, until the payload fits. 0 means [DefaultBuffer].
	Step int
	// Alloc returns a buffer of length at least n for a payload of total
	// bytes, and a token of the caller's choosing (a pool handle, say)
	// that comes back with the frame or with Release. It may block, for
	// example until the caller's budget has room for total, and fail: its
	// error ends Next with that error.
	Alloc func(n, total int) (buf []byte, token any, err error)
	// Release gives back the buffer of token, one the Reader outgrew
	// and copied from. nil: the buffer is left to the garbage collector.
	Release func(token any)
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

// SetDirect makes the Reader read the payload of a frame of type d.Type
// that is at least d.MinLen bytes long, and not buffered whole yet, into
// buffers of the caller's instead of its own: it asks d.Alloc for a
// buffer of d.Step bytes (or the payload length, if smaller), copies the
// part already buffered into it and reads the rest from the underlying
// reader straight into it. When that buffer is full and the payload is
// not, it asks for one twice as large (at most the payload length),
// copies what arrived and gives the old one to d.Release. A large frame
// so costs one copy (the underlying reader's) when it fits the first
// step, and the memory it holds grows with the bytes that arrived, never
// from its declared length alone.
//
// Alloc is called only after the header was checked against the maximum
// frame size, so n never exceeds it. A nil d.Alloc turns direct reads
// off.
func (r *Reader) SetDirect(d Direct) {
	if d.Step <= 0 {
		d.Step = DefaultBuffer
	}
	r.direct = d
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
		if r.direct.Alloc != nil && t == r.direct.Type && int(length) >= r.direct.MinLen && total > r.Buffered() {
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
// here; t names the frame for errors. The buffer grows only when it is
// full of bytes read, doubling each time (see [Reader]).
func (r *Reader) fill(n int, boundary bool, t uint64) error {
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if r.buf == nil {
		r.buf = make([]byte, min(r.init, int(r.max)+MaxHeaderLen))
	}
	for r.end-r.start < n {
		if r.end == len(r.buf) {
			r.makeRoom()
		}
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

// makeRoom frees space after buf[end] in a full buffer: it moves the
// unread bytes to the front, or, when they fill the buffer, replaces it by
// one twice as large (at most the maximum frame plus its header).
func (r *Reader) makeRoom() {
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
		return
	}
	nb := make([]byte, min(2*len(r.buf), int(r.max)+MaxHeaderLen))
	r.end = copy(nb, r.buf[r.start:r.end])
	r.start = 0
	r.buf = nb
}

// readDirect reads the next n bytes, the payload of a frame of type t,
// into buffers from r.direct.Alloc, growing them with the bytes read.
func (r *Reader) readDirect(n int, t uint64) (Frame, error) {
	d := &r.direct
	size := min(n, max(d.Step, r.Buffered()))
	buf, token, err := d.Alloc(size, n)
	if err != nil {
		return Frame{}, err
	}
	f := Frame{Type: t, Direct: true, Token: token}
	dst := buf[:size:size]
	got := copy(dst, r.buf[r.start:r.end])
	r.start += got
	for got < n {
		if got == len(dst) {
			size = min(n, 2*size)
			nb, ntoken, err := d.Alloc(size, n)
			if err != nil {
				return f, err
			}
			copy(nb, dst[:got])
			if d.Release != nil {
				d.Release(f.Token)
			}
			dst, f.Token = nb[:size:size], ntoken
		}
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
