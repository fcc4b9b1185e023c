package frames

import (
	"strconv"

	"github.com/quic-go/quic-go/quicvarint"
)

// Type is a frame type, the first varint of every frame.
type Type uint64

// Frame types of protocol versions 1 and 2. WINDOW is sent only on
// streams that negotiated [FeatureWindowUpdate], DONE only on streams that
// negotiated [FeatureHalfClose]; a receiver that does not know them skips
// them like any unknown type.
const (
	TypeHello  Type = 0x01
	TypeBatch  Type = 0x02
	TypeAck    Type = 0x03
	TypeError  Type = 0x04
	TypeWindow Type = 0x05
	TypeDone   Type = 0x06
)

// Known reports whether t is a frame type this package parses. A receiver
// skips every other type by its length (see [Reader.ReadFrame]).
func (t Type) Known() bool { return t >= TypeHello && t <= TypeDone }

// IsReserved reports whether t is one of the reserved types 0x1f*N+0x21
// that no version will ever assign. Senders may put them on the wire to
// exercise the unknown-frame rule; receivers treat them as unknown.
func (t Type) IsReserved() bool { return t >= 0x21 && (t-0x21)%0x1f == 0 }

// String returns the type's name from the specification.
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeBatch:
		return "BATCH"
	case TypeAck:
		return "ACK"
	case TypeError:
		return "ERROR"
	case TypeWindow:
		return "WINDOW"
	case TypeDone:
		return "DONE"
	}
	return "UNKNOWN(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// Protocol-wide limits. They are part of the wire specification.
const (
	// MaxSeq is the largest sequence number: 2^62-1, the largest varint.
	MaxSeq = quicvarint.Max
	// MaxHeaderLen is the longest frame header: two 8-byte varints.
	MaxHeaderLen = 16
	// MaxHelloSize caps a HELLO payload regardless of any negotiated limit,
	// because HELLO is read before the limits are known.
	MaxHelloSize = 16 << 10
	// MaxReasonLen caps the reason of an ERROR frame a sender sends, so
	// that the largest ERROR payload (two 8-byte varints, the reason
	// length and the reason: 1018 bytes) fits the smallest maximum frame
	// size, MinFrameSize.
	MaxReasonLen = 1000
	// MaxReasonLenAccepted caps the reason of an ERROR frame a receiver
	// accepts: the 1024 bytes earlier revisions of the specification let
	// senders use.
	MaxReasonLenAccepted = 1 << 10
	// MinFrameSize is the smallest maximum frame size a peer may announce.
	MinFrameSize = 1 << 10
)

// Protocol versions this package encodes and parses. The frame layout is
// the same in both; version 2 adds the piggybacked ack in the BATCH header,
// gated by [FeaturePiggybackAck].
const (
	Version1 uint64 = 1
	Version2 uint64 = 2
)

// Features is a set of optional capabilities announced in HELLO. The
// effective set of a stream is the intersection of both peers' sets; bits a
// receiver does not know are ignored.
type Features uint64

// Feature bits.
const (
	// FeaturePiggybackAck lets a BATCH carry a cumulative ack in its
	// header. It takes effect only at protocol version 2 or later.
	FeaturePiggybackAck Features = 1 << 0
	// FeatureResume allows a stream to be resumed on a new connection.
	FeatureResume Features = 1 << 1
	// FeatureWindowUpdate lets a receiver announce a smaller (or again a
	// larger) receive window than its HELLO's with WINDOW frames.
	FeatureWindowUpdate Features = 1 << 2
	// FeatureHalfClose lets a sender end its records with a DONE frame
	// and keep its direction open for acks and errors, so that its peer
	// can go on sending (a half-close).
	FeatureHalfClose Features = 1 << 3
	// FeatureResumeEpoch orders the openers of a resume key: the opener
	// sends its epoch in the [ExtResumeEpoch] extension, the acceptor
	// lets only an equal or newer epoch take the key over and ends the
	// superseded stream with [CodeSuperseded]. It takes effect only with
	// [FeatureResume].
	FeatureResumeEpoch Features = 1 << 4
	// FeatureCompression lets a sender compress the record section of a
	// BATCH with a codec the receiver listed in its HELLO's [ExtCodecs]
	// extension (BATCH flag 0x02).
	FeatureCompression Features = 1 << 5
	// FeatureEarlyRecords announces that an acceptor takes records right
	// behind the opener's HELLO, before its reply, within the early
	// profile (docs/PROTOCOL.md §5.5); an opener learns it from a reply.
	FeatureEarlyRecords Features = 1 << 6
	// FeatureResumeEarly announces that an acceptor takes the records of
	// a resumed stream right behind the opener's resume HELLO, before its
	// reply, and drops those it already applied (docs/PROTOCOL.md §6.5).
	// It takes effect only with [FeatureResume] and [FeatureEarlyRecords].
	FeatureResumeEarly Features = 1 << 7
)

// ReservedFeatures are feature bits that no version will ever assign
// (bits 56 to 61). An endpoint may announce them to exercise its peer's
// rule that unknown bits are ignored; they are never effective.
const ReservedFeatures Features = 0x3f << 56

// Has reports whether every bit of g is in f.
func (f Features) Has(g Features) bool { return f&g == g }

// featureNames names the known features, in bit order.
var featureNames = [...]struct {
	bit  Features
	name string
}{
	{FeaturePiggybackAck, "piggyback-ack"},
	{FeatureResume, "resume"},
	{FeatureWindowUpdate, "window-update"},
	{FeatureHalfClose, "half-close"},
	{FeatureResumeEpoch, "resume-epoch"},
	{FeatureCompression, "compression"},
	{FeatureEarlyRecords, "early-records"},
	{FeatureResumeEarly, "resume-early"},
}

// String lists the known features by name and any other bits in hex.
func (f Features) String() string {
	if f == 0 {
		return "none"
	}
	var s string
	add := func(name string) {
		if s != "" {
			s += "|"
		}
		s += name
	}
	for _, n := range featureNames {
		if f.Has(n.bit) {
			add(n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		add("0x" + strconv.FormatUint(uint64(f), 16))
	}
	return s
}

// maxVarintLen is the longest varint encoding, which receivers accept for
// every field.
const maxVarintLen = 8

// MaxPayload returns the largest payload the layout of a frame of type t
// allows, counting every varint at its longest encoding: MaxHelloSize for
// HELLO, 8 bytes for ACK and DONE, 16 for WINDOW, 24 plus
// MaxReasonLenAccepted for ERROR. BATCH and unknown types have no maximum
// of their own (MaxSeq): the receiver's maximum frame size bounds them.
// [ParseHeader] rejects a longer declared length with
// [CodeFrameTooLarge], before any payload is read.
func (t Type) MaxPayload() uint64 {
	switch t {
	case TypeHello:
		return MaxHelloSize
	case TypeAck, TypeDone:
		return maxVarintLen
	case TypeWindow:
		return 2 * maxVarintLen
	case TypeError:
		return 3*maxVarintLen + MaxReasonLenAccepted
	}
	return MaxSeq
}

// HeaderLen returns the length of a frame header for type t and a payload
// of payloadLen bytes.
func HeaderLen(t Type, payloadLen int) int {
	return quicvarint.Len(uint64(t)) + quicvarint.Len(uint64(payloadLen))
}

// AppendHeader appends a frame header: the type and the payload length.
func AppendHeader(b []byte, t Type, payloadLen int) []byte {
	b = quicvarint.Append(b, uint64(t))
	return quicvarint.Append(b, uint64(payloadLen))
}

// ParseHeader parses a frame header from b. It returns the type, the
// declared payload length and the number of bytes consumed. A declared
// length above maxFrameSize, or above the type's own maximum
// ([Type.MaxPayload]), is an error ([ErrFrameTooLarge]); nothing is
// allocated either way.
func ParseHeader(b []byte, maxFrameSize uint64) (t Type, length uint64, n int, err error) {
	v, l, err := quicvarint.Parse(b)
	if err != nil {
		return 0, 0, 0, errVarint(0, "frame type", err)
	}
	t = Type(v)
	length, l2, err := quicvarint.Parse(b[l:])
	if err != nil {
		return 0, 0, 0, errVarint(t, "frame length", err)
	}
	if length > maxFrameSize {
		return 0, 0, 0, errTooLarge(t, "frame", length, maxFrameSize)
	}
	if m := t.MaxPayload(); length > m {
		return 0, 0, 0, errTooLarge(t, "frame", length, m)
	}
	return t, length, l + l2, nil
}

// ParseFrame splits one complete frame off the front of b. It returns the
// type, the payload (aliasing b) and the bytes consumed. If b holds less
// than a whole frame the error wraps io.ErrUnexpectedEOF.
func ParseFrame(b []byte, maxFrameSize uint64) (t Type, payload []byte, n int, err error) {
	t, length, hn, err := ParseHeader(b, maxFrameSize)
	if err != nil {
		return 0, nil, 0, err
	}
	if uint64(len(b)-hn) < length {
		return 0, nil, 0, errTruncated(t, "payload")
	}
	end := hn + int(length)
	return t, b[hn:end:end], end, nil
}

// Varint boundaries of RFC 9000 §16: the largest values of a one- and a
// two-byte varint.
const (
	maxVarint1 = 63
	maxVarint2 = 16383
)

// recordLen parses the length varint of an encoded record. n is 0 when b
// does not start with a whole varint. The record loops (ParseBatch,
// RecordIter.Next) decode the one- and two-byte forms themselves, which
// covers every record up to 16 KiB, and call this for the rest:
// quicvarint.Parse is not inlined, and a call per record costs measurably.
func recordLen(b []byte) (l uint64, n int) {
	l, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, 0
	}
	return l, n
}

// parser reads varints and byte strings from a frame payload, remembering
// the first error. Every length is checked against the bytes left before it
// is used, so a parse never reads past, or allocates from, what the peer
// declared.
type parser struct {
	b   []byte
	off int
	t   Type
	err error
}

func (p *parser) varint(what string) uint64 {
	if p.err != nil {
		return 0
	}
	v, n, err := quicvarint.Parse(p.b[p.off:])
	if err != nil {
		p.err = errVarint(p.t, what, err)
		return 0
	}
	p.off += n
	return v
}

// bytes returns the next length-prefixed byte string, aliasing the
// payload. A declared length above limit is a [CodeFrameEncoding] error
// (an out-of-range field), reported before the bytes present are looked at.
func (p *parser) bytes(what string, limit uint64) []byte {
	if p.err != nil {
		return nil
	}
	l, n, err := quicvarint.Parse(p.b[p.off:])
	if err != nil {
		p.err = errVarint(p.t, what+" length", err)
		return nil
	}
	p.off += n
	if l > limit {
		p.err = errLimit(CodeFrameEncoding, p.t, what, l, limit)
		return nil
	}
	if l > uint64(len(p.b)-p.off) {
		p.err = errTruncated(p.t, what)
		return nil
	}
	s := p.b[p.off : p.off+int(l) : p.off+int(l)]
	p.off += int(l)
	return s
}

func (p *parser) rest() int { return len(p.b) - p.off }

// finish reports trailing bytes as an error and returns the consumed count.
func (p *parser) finish() (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.off != len(p.b) {
		return 0, errEncoding(p.t, "trailing bytes in frame")
	}
	return p.off, nil
}
