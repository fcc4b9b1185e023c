package compress

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Codecs is the codec state that is expensive to build and safe to share:
// one zstd encoder and one zstd decoder, each created on first use. S2
// needs no shared state. Share one Codecs per connection, or better per
// endpoint (all the connections of a listener or dialer): its memory is
// bounded by its concurrency, not by the number of streams.
//
// Decompress may be called from any number of goroutines at once; at most
// [Codecs.Concurrency] zstd decodes (and, separately, zstd encodes) run in
// parallel, the others wait for a free slot. Encoders made by
// [Codecs.NewEncoder] share the zstd encoder the same way.
type Codecs struct {
	conc int

	encOnce sync.Once
	zenc    *zstd.Encoder // created by encOnce; needs no Close (EncodeAll only)

	// mu guards closed and the life of zdec: Decompress holds it for
	// reading, Close for writing, so Close never pulls the decoder from
	// under a decode in progress.
	mu      sync.RWMutex
	closed  bool
	decOnce sync.Once
	zdec    *zstd.Decoder // created by decOnce
}

// maxConcurrency is the default cap on the parallel zstd encodes and
// decodes of a Codecs: each slot keeps its own block buffers.
const maxConcurrency = 4

// NewCodecs returns codec state for up to concurrency parallel zstd
// encodes and as many decodes; 0 or less means min(GOMAXPROCS, 4). It
// allocates no zstd state and starts no goroutine.
func NewCodecs(concurrency int) *Codecs {
	if concurrency <= 0 {
		concurrency = min(runtime.GOMAXPROCS(0), maxConcurrency)
	}
	return &Codecs{conc: concurrency}
}

// Concurrency returns how many zstd encodes and how many zstd decodes run
// in parallel at most.
func (c *Codecs) Concurrency() int { return c.conc }

// Close releases the zstd decoder. It waits for decodes in progress; later
// calls to Decompress return [ErrClosed]. Encoders keep working: the zstd
// encoder holds no goroutine or resource beyond memory. Close is
// idempotent.
func (c *Codecs) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.zdec != nil {
		c.zdec.Close()
	}
}

// zstdEncoder returns the shared zstd encoder, creating it on first use.
// The frames it writes are in the profile Decompress accepts: single
// segment, content size present, no dictionary, no checksum (QUIC's AEAD
// already protects the bytes in transit).
func (c *Codecs) zstdEncoder() *zstd.Encoder {
	c.encOnce.Do(func() {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(c.conc),
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false),
			zstd.WithSingleSegment(true),
			zstd.WithLowerEncoderMem(true),
		)
		if err != nil {
			panic("compress: zstd encoder options rejected: " + err.Error()) // constant options: unreachable
		}
		c.zenc = e
	})
	return c.zenc
}

// zstdDecoder returns the shared zstd decoder, creating it on first use.
// Called with mu held for reading.
func (c *Codecs) zstdDecoder() *zstd.Decoder {
	c.decOnce.Do(func() {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(c.conc),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(math.MaxInt32),
		)
		if err != nil {
			panic("compress: zstd decoder options rejected: " + err.Error()) // constant options: unreachable
		}
		c.zdec = d
	})
	return c.zdec
}

// zstdBlockMax is the most one zstd block decodes to (the format's
// Block_Maximum_Size), and zstdSlack the spare capacity the decoder's
// fast copies may touch past its output.
const (
	zstdBlockMax = 128 << 10
	zstdSlack    = 64
)

// Decompress appends to dst the decoding of src, which codec produced
// from declaredLen bytes, and returns the extended slice.
//
// The checks come in this order, each before any allocation or decoding:
// codec must be S2 or Zstd ([ErrUnknownCodec]); declaredLen must be within
// [0, limit] ([ErrTooLarge]); the length src's header states must equal
// declaredLen ([ErrLengthMismatch]), and a zstd frame must be in the
// accepted profile: single segment, content size present, no dictionary
// ([ErrCorrupt]). Only then does dst grow, by declaredLen bytes (zstd:
// plus the spare capacity of one block, at most 128 KiB, so that a frame
// lying about its size is caught without the decoder reallocating), and
// the decoder writes into that space: it never produces more than
// declaredLen bytes. Invalid data is [ErrCorrupt]; data that decodes to
// another length is [ErrLengthMismatch].
//
// On error it returns dst with its original length (its spare capacity
// may hold garbage) and an [*Error]. It never panics. When dst has the
// capacity, it does not allocate.
func (c *Codecs) Decompress(dst, src []byte, codec Codec, declaredLen, limit int) ([]byte, error) {
	if codec == None || !codec.Known() {
		return dst, &Error{Kind: KindUnknownCodec, Codec: codec, Declared: declaredLen, Limit: limit}
	}
	if declaredLen < 0 || declaredLen > limit {
		return dst, &Error{Kind: KindTooLarge, Codec: codec, Declared: declaredLen, Limit: limit}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return dst, &Error{Kind: KindClosed, Codec: codec, Declared: declaredLen, Limit: limit}
	}
	if codec == S2 {
		return decodeS2(dst, src, declaredLen, limit)
	}
	return c.decodeZstd(dst, src, declaredLen, limit)
}

func decodeS2(dst, src []byte, declared, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, &Error{Kind: KindCorrupt, Codec: S2, Declared: declared, Limit: limit, Err: err}
	}
	if n != declared {
		return dst, &Error{Kind: KindLengthMismatch, Codec: S2, Declared: declared, Limit: limit, Got: n}
	}
	start := len(dst)
	dst = slices.Grow(dst, declared)
	// s2.Decode writes into its dst when the capacity holds the decoded
	// length, which it checked against the header: exactly declared bytes.
	out, err := s2.Decode(dst[start:start+declared], src)
	if err != nil {
		return dst[:start], &Error{Kind: KindCorrupt, Codec: S2, Declared: declared, Limit: limit, Err: err}
	}
	if len(out) != declared {
		return dst[:start], &Error{Kind: KindLengthMismatch, Codec: S2, Declared: declared, Limit: limit, Got: len(out)}
	}
	return dst[:start+declared], nil
}

func (c *Codecs) decodeZstd(dst, src []byte, declared, limit int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return dst, zstdError(KindCorrupt, declared, limit, 0, err)
	}
	switch {
	case h.Skippable || !h.SingleSegment || !h.HasFCS || h.DictionaryID != 0:
		return dst, zstdError(KindCorrupt, declared, limit, 0, errProfile)
	case h.FrameContentSize != uint64(declared):
		return dst, zstdError(KindLengthMismatch, declared, limit, int(min(h.FrameContentSize, math.MaxInt32)), nil)
	}
	start := len(dst)
	room := declared + min(declared, zstdBlockMax) + zstdSlack
	dst = slices.Grow(dst, room)
	out, err := c.zstdDecoder().DecodeAll(src, dst[start:start:start+room])
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrFrameSizeExceeded),
		errors.Is(err, zstd.ErrFrameSizeMismatch):
		return dst, zstdError(KindLengthMismatch, declared, limit, len(out), err)
	case err != nil:
		return dst, zstdError(KindCorrupt, declared, limit, 0, err)
	case len(out) != declared:
		return dst, zstdError(KindLengthMismatch, declared, limit, len(out), nil)
	}
	dst = dst[:start+declared]
	if declared > 0 && &out[0] != &dst[start] {
		// The decoder had to reallocate (it never should with the
		// spare capacity given): keep the caller's buffer.
		copy(dst[start:], out)
	}
	return dst, nil
}

func zstdError(kind ErrorKind, declared, limit, got int, err error) error {
	return &Error{Kind: kind, Codec: Zstd, Declared: declared, Limit: limit, Got: got, Err: err}
}

// errProfile is the cause of a zstd frame outside the accepted profile.
var errProfile = errors.New("zstd frame must be single-segment with its content size and no dictionary")
