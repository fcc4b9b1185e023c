package frames

import (
	"slices"

	"github.com/quic-go/quic-go/quicvarint"
)

// Limits on the fields of a HELLO: the opener's stream description and the
// extensions of either side. A field above its limit is a
// [CodeFrameEncoding] error.
const (
	MaxScopeLen         = 1 << 10
	MaxMetadataEntries  = 64
	MaxMetadataKeyLen   = 256
	MaxMetadataValueLen = 4 << 10
	MaxExtensionLen     = 4 << 10
	// MaxExtensions caps the extensions of one HELLO, so that a 16 KiB
	// HELLO of two-byte extensions cannot cost the receiver thousands of
	// entries and a quadratic duplicate check.
	MaxExtensions = 64
)

// Hello is the first frame in each direction of a stream. The opener's HELLO
// describes the stream (Scope, DataID, Metadata); the acceptor's reply
// leaves those empty. Both announce the versions they speak, their feature
// bits and their receive limits.
//
// The payload layout is, in order: min version, max version, features, max
// frame size, max record size, window records, window bytes (varints);
// scope (varint length, bytes); data ID (varint); metadata count (varint)
// then that many key/value pairs (each a varint length and bytes);
// then extensions up to the end of the payload, each an id (varint) and a
// value (varint length, bytes). Receivers ignore extension ids they do not
// know, which is how later versions add fields.
type Hello struct {
	MinVersion uint64   // lowest protocol version the sender speaks, >= 1
	MaxVersion uint64   // highest protocol version the sender speaks, >= MinVersion
	Features   Features // capabilities the sender offers

	// Receive limits of the sender of this HELLO, which its peer must respect.
	MaxFrameSize  uint64 // largest frame payload it accepts, >= MinFrameSize
	MaxRecordSize uint64 // largest record it accepts, >= 1
	WindowRecords uint64 // most unacknowledged records it accepts in flight, >= 1
	WindowBytes   uint64 // most unacknowledged record bytes it accepts in flight, >= 1

	Scope    string            // opener only: application namespace of the stream
	DataID   uint64            // opener only: application identifier of the data
	Metadata map[string]string // opener only: small key/value description

	// Extensions in wire order. Ids must be unique.
	Extensions []Extension
}

// Extension is a HELLO field added after version 1: an id and an opaque
// value. Parsed values alias the parsed payload.
type Extension struct {
	ID    uint64
	Value []byte
}

// Extension ids defined so far.
const (
	// ExtResumeKey carries a resumable stream's key (opener only).
	ExtResumeKey uint64 = 0x01
	// ExtResumePosition carries a varint: the opener's first unacked seq
	// (opener) or the acceptor's last applied seq (acceptor).
	ExtResumePosition uint64 = 0x02
	// ExtCodecs carries a varint bit set: bit c is set when the sender
	// accepts BATCH record sections compressed with codec c (both sides,
	// with [FeatureCompression]). Codec 1 is S2, codec 2 zstd.
	ExtCodecs uint64 = 0x03
	// ExtResumeEpoch carries a varint: the resume epoch of the opener of
	// a resumable stream (opener only; meaningful with
	// [FeatureResumeEpoch]).
	ExtResumeEpoch uint64 = 0x04
)

// IsReservedExtension reports whether id is one of the reserved extension
// ids 0x1f*N+0x21 that no version will ever assign. An endpoint may send
// them, with any value, to exercise its peer's rule that unknown
// extensions are ignored.
func IsReservedExtension(id uint64) bool { return id >= 0x21 && (id-0x21)%0x1f == 0 }

// Extension returns the value of the extension with the given id.
func (h *Hello) Extension(id uint64) ([]byte, bool) {
	for _, e := range h.Extensions {
		if e.ID == id {
			return e.Value, true
		}
	}
	return nil, false
}

// payloadLen returns the encoded payload length.
func (h *Hello) payloadLen() int {
	n := quicvarint.Len(h.MinVersion) + quicvarint.Len(h.MaxVersion) +
		quicvarint.Len(uint64(h.Features)) + quicvarint.Len(h.MaxFrameSize) +
		quicvarint.Len(h.MaxRecordSize) + quicvarint.Len(h.WindowRecords) +
		quicvarint.Len(h.WindowBytes) +
		bytesLen(len(h.Scope)) + quicvarint.Len(h.DataID) +
		quicvarint.Len(uint64(len(h.Metadata)))
	for k, v := range h.Metadata {
		n += bytesLen(len(k)) + bytesLen(len(v))
	}
	for _, e := range h.Extensions {
		n += quicvarint.Len(e.ID) + bytesLen(len(e.Value))
	}
	return n
}

// Len returns the encoded length of the frame, header included.
func (h *Hello) Len() int {
	pl := h.payloadLen()
	return HeaderLen(TypeHello, pl) + pl
}

// Append appends the encoded frame to b. Metadata is written in key order
// so the encoding is deterministic. Append does not validate; a peer
// rejects what [ParseHello] would reject.
func (h *Hello) Append(b []byte) []byte {
	b = AppendHeader(b, TypeHello, h.payloadLen())
	b = quicvarint.Append(b, h.MinVersion)
	b = quicvarint.Append(b, h.MaxVersion)
	b = quicvarint.Append(b, uint64(h.Features))
	b = quicvarint.Append(b, h.MaxFrameSize)
	b = quicvarint.Append(b, h.MaxRecordSize)
	b = quicvarint.Append(b, h.WindowRecords)
	b = quicvarint.Append(b, h.WindowBytes)
	b = appendBytes(b, h.Scope)
	b = quicvarint.Append(b, h.DataID)
	b = quicvarint.Append(b, uint64(len(h.Metadata)))
	keys := make([]string, 0, len(h.Metadata))
	for k := range h.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendBytes(b, k)
		b = appendBytes(b, h.Metadata[k])
	}
	for _, e := range h.Extensions {
		b = quicvarint.Append(b, e.ID)
		b = appendBytes(b, e.Value)
	}
	return b
}

// ParseHello parses a HELLO payload (the bytes after the frame header). It
// returns the bytes consumed, which on success is len(payload). The
// payload must not exceed [MaxHelloSize]. Scope, metadata keys and values
// are copied; extension values alias payload.
func ParseHello(payload []byte) (Hello, int, error) {
	var h Hello
	if len(payload) > MaxHelloSize {
		return h, 0, errTooLarge(TypeHello, "HELLO", uint64(len(payload)), MaxHelloSize)
	}
	p := parser{b: payload, t: TypeHello}
	h.MinVersion = p.varint("min version")
	h.MaxVersion = p.varint("max version")
	h.Features = Features(p.varint("features"))
	h.MaxFrameSize = p.varint("max frame size")
	h.MaxRecordSize = p.varint("max record size")
	h.WindowRecords = p.varint("window records")
	h.WindowBytes = p.varint("window bytes")
	scope := p.bytes("scope", MaxScopeLen)
	h.DataID = p.varint("data ID")
	count := p.varint("metadata count")
	if p.err != nil {
		return Hello{}, 0, p.err
	}
	switch {
	case h.MinVersion == 0 || h.MaxVersion < h.MinVersion:
		return Hello{}, 0, errEncoding(TypeHello, "invalid version range")
	case h.MaxFrameSize < MinFrameSize:
		return Hello{}, 0, errEncoding(TypeHello, "max frame size below the protocol minimum")
	case h.MaxRecordSize == 0 || h.WindowRecords == 0 || h.WindowBytes == 0:
		return Hello{}, 0, errEncoding(TypeHello, "zero record size or window")
	case count > MaxMetadataEntries:
		return Hello{}, 0, errEncoding(TypeHello, "too many metadata entries")
	case count*2 > uint64(p.rest()):
		return Hello{}, 0, errTruncated(TypeHello, "metadata")
	}
	h.Scope = string(scope)
	// The map grows as entries parse; its size never comes from count.
	for i := uint64(0); i < count; i++ {
		k := p.bytes("metadata key", MaxMetadataKeyLen)
		v := p.bytes("metadata value", MaxMetadataValueLen)
		if p.err != nil {
			return Hello{}, 0, p.err
		}
		if h.Metadata == nil {
			h.Metadata = make(map[string]string)
		}
		if _, dup := h.Metadata[string(k)]; dup {
			return Hello{}, 0, errEncoding(TypeHello, "duplicate metadata key")
		}
		h.Metadata[string(k)] = string(v)
	}
	for p.err == nil && p.rest() > 0 {
		id := p.varint("extension id")
		v := p.bytes("extension", MaxExtensionLen)
		if p.err != nil {
			break
		}
		if len(h.Extensions) == MaxExtensions {
			return Hello{}, 0, errEncoding(TypeHello, "too many extensions")
		}
		for _, e := range h.Extensions {
			if e.ID == id {
				return Hello{}, 0, errEncoding(TypeHello, "duplicate extension id")
			}
		}
		h.Extensions = append(h.Extensions, Extension{ID: id, Value: v})
	}
	n, err := p.finish()
	if err != nil {
		return Hello{}, 0, err
	}
	return h, n, nil
}

func bytesLen(n int) int { return quicvarint.Len(uint64(n)) + n }

func appendBytes[S ~string | ~[]byte](b []byte, s S) []byte {
	b = quicvarint.Append(b, uint64(len(s)))
	return append(b, s...)
}
