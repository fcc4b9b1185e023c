package compress

import (
	"slices"

	"github.com/klauspost/compress/s2"
)

// DefaultMinSize is the default [EncoderOptions.MinSize]: batches smaller
// than 1 KiB go uncompressed. Below it S2 saves little on record data (a
// lone 200–1,500 byte JSON record of the telemetry corpus in
// bench/internal/corpus shrinks by about 12 %, 1 KiB of them by about
// 26 %, 4 KiB by 46 %) while each compressed batch costs both ends a codec
// call on the latency path.
const DefaultMinSize = 1 << 10

// A batch pays when its compressed form is at most 7/8 of its size: it
// saves at least 12.5 %. Less than that is not worth the receiver's
// decoding, and it is what random or already-compressed data gives (S2
// and zstd grow such data by a few bytes).
const minSavingShift = 3

// The adaptive skip: after missLimit batches in a row that did not pay,
// the encoder sends the next initialBackoff batches uncompressed without
// trying, then tries one (a probe). A probe that pays ends the skip; one
// that does not doubles the number of batches skipped before the next,
// up to maxBackoff. At 64 KiB batches the longest skip is 16 MiB of data,
// and a probe costs one codec call per 256 batches (S2 gives up on random
// data at several GB/s).
const (
	missLimit      = 3
	initialBackoff = 8
	maxBackoff     = 256
)

// compareEvery is how many batches Auto compresses between two
// comparisons of S2 and zstd, once it knows the link rate.
const compareEvery = 32

// CPU cost of each codec, encode plus decode, in nanoseconds per input
// byte, on 64 KiB batches of the telemetry corpus (BenchmarkCompress and
// BenchmarkDecompress in bench/internal/corpus on the 2-core development
// VM: S2 1.29 + 0.55, zstd 3.18 + 0.74; rounded up). Auto's cost model
// compares them with the wire time each codec's output takes.
var cpuNsPerByte = [numCodecs]float64{S2: 2.0, Zstd: 4.0}

// EncoderOptions configure an [Encoder].
type EncoderOptions struct {
	// Mode is the compression setting. The zero value is [Off].
	Mode Mode
	// Peer is the set of codecs the peer accepts: what it announced,
	// when the compression feature is effective; empty otherwise, which
	// sends every batch uncompressed.
	Peer CodecSet
	// MinSize is the smallest batch worth compressing, in bytes. 0 means
	// [DefaultMinSize]; a negative value tries every batch.
	MinSize int
}

// EncoderStats counts what an [Encoder] did with its batches. Every
// counter only grows.
type EncoderStats struct {
	Batches    uint64            // calls to Compress
	Compressed [numCodecs]uint64 // batches sent compressed, by codec (index None unused)
	Disabled   uint64            // sent plain: Off, or no codec the mode allows is accepted
	Small      uint64            // sent plain: below MinSize
	Skipped    uint64            // sent plain without trying, during a back-off
	NoGain     uint64            // compressed, but saved less than 12.5 %: sent plain
	Probes     uint64            // batches tried at the end of a back-off (counted in Compressed or NoGain too)
	Compares   uint64            // batches Auto compressed with both S2 and zstd
	BytesIn    uint64            // bytes of the batches sent compressed, before
	BytesOut   uint64            // and after compression
}

// Encoder compresses the batches of one stream direction and decides,
// batch by batch, whether compressing pays. It is owned by one goroutine
// (the stream's writer loop): none of its methods may be called
// concurrently. It keeps its buffers and state across calls, so a caller
// that reuses dst compresses without allocating.
type Encoder struct {
	codecs  *Codecs
	mode    Mode
	peer    CodecSet
	minSize int

	// The adaptive skip. misses counts batches in a row that did not pay;
	// backoff is the current skip length (0: not skipping), skipLeft the
	// batches still to skip before the next probe.
	misses, backoff, skipLeft int

	// Auto. current is the codec in use; linkRate the link's rate in
	// bytes/s as last told (0: unknown, S2 stays); sinceCompare counts
	// the batches compressed since S2 and zstd were last compared.
	current      Codec
	linkRate     float64
	sinceCompare int

	scratch []byte // the losing codec's output during a comparison
	stats   EncoderStats
}

// NewEncoder returns an encoder for one stream direction. Its zstd work
// goes through c's shared zstd encoder.
func (c *Codecs) NewEncoder(o EncoderOptions) *Encoder {
	e := &Encoder{codecs: c, mode: o.Mode, peer: o.Peer.Intersect(Supported), minSize: o.MinSize}
	if e.minSize == 0 {
		e.minSize = DefaultMinSize
	}
	switch {
	case e.mode == ModeS2 && e.peer.Has(S2), e.mode == Auto && e.peer.Has(S2):
		e.current = S2
	case e.mode == ModeZstd && e.peer.Has(Zstd), e.mode == Auto && e.peer.Has(Zstd):
		e.current = Zstd
	}
	return e
}

// Codec returns the codec the encoder uses for the batches it compresses
// now: None when it never compresses (Off, or no allowed codec accepted).
// In Auto it may change after [Encoder.SetLinkRate].
func (e *Encoder) Codec() Codec { return e.current }

// Stats returns the encoder's counters. Call it from the owning goroutine.
func (e *Encoder) Stats() EncoderStats { return e.stats }

// SetLinkRate tells an Auto encoder the rate, in bytes per second, at
// which its stream's bytes leave the machine when the sender is
// backlogged (the bottleneck: link, congestion or flow control). 0 or less
// means unknown. With a rate, and a peer accepting both codecs, Auto
// compares S2 and zstd on one batch every 32 compressed ones and keeps the
// codec with the smaller cost per input byte: CPU time (encode and decode)
// plus the wire time of its output. On the telemetry corpus (S2 3.3×,
// zstd 4.9×) zstd wins below about 48 MB/s (385 Mbit/s), S2 above.
// Other modes ignore it.
func (e *Encoder) SetLinkRate(bytesPerSecond float64) {
	if e.mode != Auto || !(bytesPerSecond > 0) {
		e.linkRate = 0
		if e.mode == Auto && e.current != None {
			e.current = Zstd
			if e.peer.Has(S2) {
				e.current = S2
			}
		}
		return
	}
	e.linkRate = bytesPerSecond
	e.sinceCompare = compareEvery // compare on the next batch
}

// Compress appends the compressed form of src to dst and returns the
// extended slice with the codec used, or returns dst unchanged and None
// when the batch goes uncompressed: compression is off or not accepted,
// src is below MinSize, the encoder is skipping an incompressible stretch
// of the stream, or the batch did not shrink by 12.5 %. dst and src must
// not overlap. When dst has spare capacity for the compressed form (about
// len(src) + len(src)/6 + 64 bytes) it does not allocate.
func (e *Encoder) Compress(dst, src []byte) ([]byte, Codec) {
	e.stats.Batches++
	switch {
	case e.current == None:
		e.stats.Disabled++
		return dst, None
	case len(src) < e.minSize || len(src) == 0:
		e.stats.Small++
		return dst, None
	}
	probe := false
	if e.backoff > 0 {
		if e.skipLeft > 0 {
			e.skipLeft--
			e.stats.Skipped++
			return dst, None
		}
		probe = true
		e.stats.Probes++
	}
	start := len(dst)
	dst, codec, ok := e.encode(dst, src)
	if ok && len(dst)-start <= len(src)-len(src)>>minSavingShift {
		e.misses, e.backoff, e.skipLeft = 0, 0, 0
		e.stats.Compressed[codec]++
		e.stats.BytesIn += uint64(len(src))
		e.stats.BytesOut += uint64(len(dst) - start)
		return dst, codec
	}
	e.stats.NoGain++
	e.misses++
	switch {
	case probe:
		e.backoff = min(2*e.backoff, maxBackoff)
		e.skipLeft = e.backoff
	case e.misses >= missLimit:
		e.backoff = initialBackoff
		e.skipLeft = e.backoff
	}
	return dst[:start], None
}

// encode appends src compressed with the current codec, or, when Auto is
// due for a comparison, with the cheaper of S2 and zstd. ok is false when
// the codec cannot encode src (above 4 GiB for S2).
func (e *Encoder) encode(dst, src []byte) (_ []byte, _ Codec, ok bool) {
	if e.mode == Auto && e.linkRate > 0 && e.peer.Has(S2) && e.peer.Has(Zstd) {
		if e.sinceCompare++; e.sinceCompare > compareEvery {
			e.sinceCompare = 0
			return e.compare(dst, src)
		}
	}
	if e.current == S2 {
		dst, ok = appendS2(dst, src)
		return dst, S2, ok
	}
	return e.codecs.appendZstd(dst, src), Zstd, true
}

// compare compresses src with both codecs, appends the output of the one
// with the smaller cost per input byte at the current link rate and makes
// it the current codec.
func (e *Encoder) compare(dst, src []byte) ([]byte, Codec, bool) {
	e.stats.Compares++
	start := len(dst)
	dst, ok := appendS2(dst, src)
	e.scratch = e.codecs.appendZstd(e.scratch[:0], src)
	if !ok {
		e.current = Zstd
		return append(dst[:start], e.scratch...), Zstd, true
	}
	in := float64(len(src))
	costS2 := cpuNsPerByte[S2]*1e-9 + float64(len(dst)-start)/in/e.linkRate
	costZstd := cpuNsPerByte[Zstd]*1e-9 + float64(len(e.scratch))/in/e.linkRate
	if costZstd < costS2 {
		e.current = Zstd
		return append(dst[:start], e.scratch...), Zstd, true
	}
	e.current = S2
	return dst, S2, true
}

// appendS2 appends the S2 block encoding of src; ok is false when src is
// too large for an S2 block.
func appendS2(dst, src []byte) ([]byte, bool) {
	n := s2.MaxEncodedLen(len(src))
	if n < 0 {
		return dst, false
	}
	start := len(dst)
	dst = slices.Grow(dst, n)
	// With the capacity for the worst case, s2.Encode writes in place.
	out := s2.Encode(dst[start:start+n], src)
	return dst[:start+len(out)], true
}

// appendZstd appends src as one zstd frame.
func (c *Codecs) appendZstd(dst, src []byte) []byte {
	// Room for the worst case (stored blocks: 3 bytes per 128 KiB block
	// plus the frame header), so EncodeAll never reallocates.
	dst = slices.Grow(dst, len(src)+len(src)>>10+32)
	return c.zstdEncoder().EncodeAll(src, dst)
}

// Encode appends src compressed with codec, whether that pays or not, and
// returns the extended slice: the form Decompress takes back. It returns
// dst unchanged for None, an unknown codec, or S2 input above 4 GiB. It
// is for tests, benchmarks and golden vectors; a sender uses an [Encoder],
// which decides what to compress. Safe for concurrent use.
func (c *Codecs) Encode(dst, src []byte, codec Codec) []byte {
	switch codec {
	case S2:
		dst, _ = appendS2(dst, src)
	case Zstd:
		dst = c.appendZstd(dst, src)
	}
	return dst
}
