package compress

import (
	"fmt"
	"strings"
)

// Codec identifies a compression codec on the wire. Its values are stable:
// the wire format carries them as varints.
type Codec uint8

const (
	// None is no compression: the records travel as they are.
	None Codec = 0
	// S2 is an S2 block (github.com/klauspost/compress/s2, the block
	// format of s2.Encode: a uvarint of the decoded length, then the
	// compressed data; it also decodes Snappy blocks).
	S2 Codec = 1
	// Zstd is one Zstandard frame (RFC 8878) with the single-segment flag
	// set, the frame content size present and no dictionary.
	Zstd Codec = 2
)

// numCodecs is one above the largest Codec this package knows.
const numCodecs = 3

// Known reports whether c is a codec this package can encode and decode,
// or None.
func (c Codec) Known() bool { return c < numCodecs }

// String returns "none", "s2", "zstd", or "codec(N)" for an unknown value.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case S2:
		return "s2"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// CodecSet is a set of codecs: the codecs one side of a stream accepts
// from its peer. Bit c is set when codec c is in the set; None is always
// acceptable and never stored. The zero value is the empty set: nothing
// compressed is accepted.
type CodecSet uint8

// Supported is the set of every codec this package decodes.
const Supported = CodecSet(1<<S2 | 1<<Zstd)

// SetOf returns the set holding codecs; None and unknown codecs are left
// out.
func SetOf(codecs ...Codec) CodecSet {
	var s CodecSet
	for _, c := range codecs {
		s = s.With(c)
	}
	return s
}

// CodecSetFromBits returns the set whose bit c is set in bits, keeping only
// known codecs: unknown bits, as a newer peer may announce, are dropped.
// It is the decoding of the wire form, [CodecSet.Bits].
func CodecSetFromBits(bits uint64) CodecSet { return CodecSet(bits) & Supported }

// Bits returns the set as a bit mask, bit c for codec c: its wire form.
func (s CodecSet) Bits() uint64 { return uint64(s) }

// With returns s with c added. None and unknown codecs leave s unchanged.
func (s CodecSet) With(c Codec) CodecSet {
	if c == None || !c.Known() {
		return s
	}
	return s | 1<<c
}

// Has reports whether c is in s. None is in every set: an uncompressed
// batch is always acceptable.
func (s CodecSet) Has(c Codec) bool {
	if c == None {
		return true
	}
	return c.Known() && s&(1<<c) != 0
}

// Intersect returns the codecs in both s and o.
func (s CodecSet) Intersect(o CodecSet) CodecSet { return s & o }

// Empty reports whether s holds no codec.
func (s CodecSet) Empty() bool { return s&Supported == 0 }

// String lists the codecs comma-separated ("s2,zstd"), or "none" for the
// empty set.
func (s CodecSet) String() string {
	var b strings.Builder
	for c := Codec(1); c < numCodecs; c++ {
		if s.Has(c) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(c.String())
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// Mode is a sender's compression setting. The zero value is [Off].
type Mode uint8

const (
	// Off sends every batch uncompressed.
	Off Mode = iota
	// ModeS2 compresses with S2 when the peer accepts it, and sends
	// uncompressed otherwise.
	ModeS2
	// ModeZstd compresses with zstd when the peer accepts it, and sends
	// uncompressed otherwise.
	ModeZstd
	// Auto picks the codec: S2 when the peer accepts it (zstd when it
	// accepts only zstd), and zstd instead of S2 where the encoder was told
	// the link is slow enough for zstd's smaller output to pay for its
	// CPU time ([Encoder.SetLinkRate]).
	Auto
)

var modeNames = [...]string{Off: "off", ModeS2: "s2", ModeZstd: "zstd", Auto: "auto"}

// String returns "off", "s2", "zstd", "auto", or "mode(N)".
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode returns the mode [Mode.String] prints as s.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if name == s {
			return Mode(m), nil
		}
	}
	return Off, fmt.Errorf("compress: unknown mode %q (want off, s2, zstd or auto)", s)
}
