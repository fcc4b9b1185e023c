package quicrecord

import (
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go/quicvarint"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/compress"
	"github.com/recordmux/recordmux/internal/wire"
)

// Compression is a stream's batch compression setting: what its writer
// does with the batches it sends. The zero value means "not set": the
// connection's Config.Stream.Compression, else the default,
// [CompressionOff]. Whatever the setting, a stream accepts compressed
// batches from a peer that negotiated [FeatureCompression] (S2 and zstd),
// unless Config.DisableFeatures switches the feature off.
type Compression uint8

// Compression settings.
const (
	// CompressionOff sends every batch uncompressed.
	CompressionOff Compression = iota + 1
	// CompressionS2 compresses batches with S2 when the peer accepts it:
	// fast (about 770 MB/s per core on telemetry, 3.3× smaller), for
	// links that are fast or CPU that is scarce.
	CompressionS2
	// CompressionZstd compresses batches with zstd at its fastest level
	// when the peer accepts it: about 2.5× the CPU of S2 for output
	// about a third smaller, for slow or metered links.
	CompressionZstd
	// CompressionAuto compresses with S2, or with zstd when the peer
	// accepts only zstd. Like the others, it sends a batch plain when
	// it is below 1 KiB or did not shrink by 12.5 %, and after three such
	// batches in a row stops trying for a growing number of batches
	// (random or already-compressed data costs one probe every few
	// hundred batches).
	CompressionAuto
)

// DefaultCompression is the compression of a stream that sets none:
// off, so that no CPU is spent on data that may not compress. Turn it on
// per connection (Config.Stream.Compression) or per stream.
const DefaultCompression = CompressionOff

var compressionNames = [...]string{0: "unset", CompressionOff: "off", CompressionS2: "s2", CompressionZstd: "zstd", CompressionAuto: "auto"}

// String returns "off", "s2", "zstd", "auto" or "unset".
func (c Compression) String() string {
	if int(c) < len(compressionNames) {
		return compressionNames[c]
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// ParseCompression returns the setting String prints as s ("off", "s2",
// "zstd", "auto"), for flags and configuration files.
func ParseCompression(s string) (Compression, error) {
	for c, name := range compressionNames {
		if c > 0 && name == s {
			return Compression(c), nil
		}
	}
	return 0, &ConfigError{Field: "Compression", Value: s, Reason: "must be off, s2, zstd or auto"}
}

// mode returns the encoder mode of a resolved setting.
func (c Compression) mode() compress.Mode {
	switch c {
	case CompressionS2:
		return compress.ModeS2
	case CompressionZstd:
		return compress.ModeZstd
	case CompressionAuto:
		return compress.Auto
	}
	return compress.Off
}

// codecOf returns the codec of CompressionS2 or CompressionZstd, None for
// the others.
func codecOf(c Compression) compress.Codec {
	switch c {
	case CompressionS2:
		return compress.S2
	case CompressionZstd:
		return compress.Zstd
	}
	return compress.None
}

// localCodecs is what this side accepts from its peer, announced in the
// codecs extension of its HELLO when it announces FeatureCompression.
const localCodecs = compress.Supported

// codecsExtension returns the HELLO extension listing the codecs this side
// accepts.
func codecsExtension() frames.Extension {
	return frames.Extension{ID: frames.ExtCodecs, Value: []byte{byte(localCodecs.Bits())}}
}

// peerCodecs returns the codecs the peer's HELLO lists, or the empty set
// when its extension is missing or malformed (a peer that accepts
// nothing gets plain batches).
func peerCodecs(h *frames.Hello) compress.CodecSet {
	v, ok := h.Extension(frames.ExtCodecs)
	if !ok {
		return 0
	}
	bits, n, err := quicvarint.Parse(v)
	if err != nil || n != len(v) {
		return 0
	}
	return compress.CodecSetFromBits(bits)
}

// codecsOf lists the compression settings a codec set stands for.
func codecsOf(set compress.CodecSet) []Compression {
	var out []Compression
	if set.Has(compress.S2) {
		out = append(out, CompressionS2)
	}
	if set.Has(compress.Zstd) {
		out = append(out, CompressionZstd)
	}
	return out
}

// zReserve is the room a compressed batch's buffer keeps in front of the
// compressed section for the frame header and batch header.
const zReserve = hdrReserve + 2*8

// zBufSize is the capacity of a pooled compression buffer: room for the
// header and the worst-case compressed form of a full default batch.
func (c *Conn) zBufSize() int { return zReserve + c.segSize + c.segSize/6 + 64 }

// zBuf returns a compression buffer from the connection's pool.
func (c *Conn) zBuf() *[]byte {
	if p, ok := c.zPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, c.zBufSize())
	return &b
}

// putZBuf gives a compression buffer back; one that grew for a larger
// batch is left to the garbage collector. nil is ignored.
func (c *Conn) putZBuf(p *[]byte) {
	if p != nil && cap(*p) == c.zBufSize() {
		c.zPool.Put(p)
	}
}

// newEncoder returns the stream's batch encoder, or nil when its batches
// go plain: compression off, not effective, or no codec accepted.
func (s *RecordStream) newEncoder() *compress.Encoder {
	if s.set.compression == CompressionOff || s.peerCodecs.Empty() {
		return nil
	}
	return s.conn.codecs.NewEncoder(compress.EncoderOptions{Mode: s.set.compression.mode(), Peer: s.peerCodecs})
}

// compressBatch returns the BATCH frame to write for the segment sg whose
// header is h: sg's own buffer, plain, or, when compressing paid, a
// buffer of the connection's pool holding the compressed form, returned
// too (nil otherwise) for the caller to give back (putZBuf) once the
// frame is written. Called by the writer loop.
func (s *RecordStream) compressBatch(w *writer, sg *segment, h frames.BatchHeader) ([]byte, *[]byte) {
	section := sg.buf[hdrReserve:]
	if !w.encReady && !s.replyPending.Load() {
		// The negotiation is final: replyPending's store happens after
		// the reply set the peer's codecs.
		w.enc, w.encReady = s.newEncoder(), true
	}
	if w.enc != nil && len(section) >= compress.DefaultMinSize {
		zb := s.conn.zBuf()
		t0 := time.Now()
		out, codec := w.enc.Compress((*zb)[:zReserve], section)
		s.ctr.zOutNs.Add(uint64(time.Since(t0)))
		if codec != compress.None {
			*zb = out[:0] // the same buffer, or a larger one Compress grew
			z := out[zReserve:]
			h.Codec, h.RawLen = uint64(codec), uint64(len(section))
			start := zReserve - frames.BatchHeaderLen(h, len(z))
			frames.AppendBatchHeader(out[start:start], h, len(z))
			s.ctr.zOutBatches.Add(1)
			s.ctr.zOutRaw.Add(uint64(len(section)))
			s.ctr.zOutWire.Add(uint64(len(z)))
			return out[start:], zb
		}
		s.conn.putZBuf(zb)
	}
	s.ctr.zOutRaw.Add(uint64(len(section)))
	s.ctr.zOutWire.Add(uint64(len(section)))
	start := hdrReserve - frames.BatchHeaderLen(h, sg.bytes)
	frames.AppendBatchHeader(sg.buf[start:start], h, sg.bytes)
	return sg.buf[start:], nil
}

// inflate replaces the compressed section of b by its decoding, in a
// receive buffer of the stream's own that it returns with its pool
// handle, and sets b.DataBytes. The checks come before any allocation:
// the feature, the codec, the declared length against what a plain BATCH
// may carry to this side (MaxFrameSize less the header), then the codec's
// own header; the decoder never writes more than the declared length. A
// frame read directly into a receive buffer is given back here. Called
// by the reader loop.
func (s *RecordStream) inflate(f *wire.Frame, b *frames.Batch) ([]byte, *[]byte, int64, error) {
	codec := compress.Codec(min(b.Codec, 255))
	declared := b.RawLen
	limit := s.set.maxFrameSize() - uint64(len(f.Payload)-len(b.Records))
	switch {
	case !s.compression:
		return nil, nil, 0, s.protocolError(CodeUnexpectedFrame, "compressed BATCH on a stream that did not negotiate compression", nil)
	case b.Codec > 255 || !localCodecs.Has(codec):
		return nil, nil, 0, s.protocolError(CodeCompression, fmt.Sprintf("BATCH compressed with codec %d, which this side did not list", b.Codec), nil)
	case declared > limit:
		return nil, nil, 0, s.protocolError(CodeFrameTooLarge, fmt.Sprintf("compressed BATCH declares %d record bytes, above the %d a BATCH may carry", declared, limit), nil)
	}
	n := int(declared)
	room := n
	if codec == compress.Zstd {
		room += min(n, 128<<10) + 64 // the decoder's spare room (see compress.Codecs.Decompress)
	}
	// The decoded records are charged to the receive budget before their
	// buffer exists: a stream over budget waits here, allocating nothing.
	charge, err := s.acct.acquire(s.ctx, int64(recvBufCap(room)))
	if err != nil {
		return nil, nil, 0, err
	}
	buf, pooled := s.conn.recvBuf(room)
	t0 := time.Now()
	raw, err := s.conn.codecs.Decompress(buf[:0], b.Records, codec, n, int(limit))
	s.ctr.zInNs.Add(uint64(time.Since(t0)))
	if err != nil {
		s.conn.putRecvBuf(pooled)
		s.acct.release(charge)
		return nil, nil, 0, s.compressionError(err)
	}
	if pooled != nil && (cap(raw) != cap(*pooled) || (n > 0 && &raw[0] != &(*pooled)[:1][0])) {
		pooled = nil // the decoder outgrew the pooled buffer: keep its own
	}
	data, err := frames.ParseRecords(raw, b.Count, uint64(s.set.maxRecordSize))
	if err != nil {
		s.conn.putRecvBuf(pooled)
		s.acct.release(charge)
		return nil, nil, 0, s.frameError(err)
	}
	s.ctr.zInBatches.Add(1)
	s.ctr.zInRaw.Add(uint64(n))
	s.ctr.zInWire.Add(uint64(len(b.Records)))
	s.dropDirect(f)
	f.Direct, f.Token = false, nil
	b.Records, b.DataBytes = raw, data
	return raw, pooled, charge, nil
}

// compressionError maps a decoder error to the violation it is.
func (s *RecordStream) compressionError(err error) error {
	var ce *compress.Error
	if !errors.As(err, &ce) {
		return s.protocolError(CodeInternal, err.Error(), err)
	}
	switch ce.Kind {
	case compress.KindTooLarge:
		return s.protocolError(CodeFrameTooLarge, ce.Error(), err)
	case compress.KindClosed:
		return s.protocolError(CodeInternal, ce.Error(), err)
	}
	return s.protocolError(CodeCompression, ce.Error(), err)
}
