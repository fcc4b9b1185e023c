package compress

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// zstdFrame encodes src as the shared encoder does, or with opts.
func zstdFrame(t testing.TB, src []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	if len(opts) == 0 {
		c := NewCodecs(1)
		defer c.Close()
		return c.zstdEncoder().EncodeAll(src, nil)
	}
	e, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithEncoderConcurrency(1)}, opts...)...)
	require.NoError(t, err)
	return e.EncodeAll(src, nil)
}

// withFCS returns a copy of a single-segment zstd frame whose content size
// field says n instead; n must fit the frame's field width.
func withFCS(t testing.TB, frame []byte, n int) []byte {
	t.Helper()
	var h zstd.Header
	require.NoError(t, h.Decode(frame))
	require.True(t, h.SingleSegment)
	out := append([]byte(nil), frame...)
	desc := out[4]
	require.Zero(t, desc&0x03, "no dictionary id field")
	pos := 5 // magic, descriptor; single segment: no window byte
	switch desc >> 6 {
	case 0:
		require.Less(t, n, 256)
		out[pos] = byte(n)
	case 1:
		require.GreaterOrEqual(t, n, 256)
		require.Less(t, n, 256+65536)
		out[pos], out[pos+1] = byte(n-256), byte((n-256)>>8)
	default:
		t.Fatalf("test helper handles 1- and 2-byte content sizes only")
	}
	var h2 zstd.Header
	require.NoError(t, h2.Decode(out))
	require.Equal(t, uint64(n), h2.FrameContentSize)
	return out
}

// rleFrame builds a single-segment zstd frame whose header says fcs
// (256 <= fcs < 65792) and whose body is n RLE blocks of size bytes of
// 'x' each: n*size bytes of output from 4 bytes per block, a bomb when
// n*size is above fcs.
func rleFrame(fcs, n, size int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x60, byte(fcs - 256), byte((fcs - 256) >> 8)}
	for i := range n {
		h := uint32(size)<<3 | 1<<1 // type RLE
		if i == n-1 {
			h |= 1 // last block
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'x')
	}
	return b
}

func requireKind(t testing.TB, err error, sentinel *Error) {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, sentinel.Kind, e.Kind, "error: %v", err)
	require.ErrorIs(t, err, sentinel)
	for _, other := range []*Error{ErrTooLarge, ErrCorrupt, ErrLengthMismatch, ErrUnknownCodec, ErrClosed} {
		if other != sentinel {
			require.NotErrorIs(t, err, other)
		}
	}
	require.NotEmpty(t, err.Error())
}

func TestDecompressRoundTrip(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	for _, src := range [][]byte{nil, {0}, compressible(3, 100), compressible(4, 70_000), random(3, 5000), compressible(5, 300_000), compressible(14, 9<<20)} {
		for name, enc := range map[Codec][]byte{
			S2:   s2.Encode(nil, src),
			Zstd: zstdFrame(t, src),
		} {
			prefix := []byte("keep")
			out, err := c.Decompress(prefix, enc, name, len(src), len(src))
			require.NoError(t, err, "%v, %d bytes", name, len(src))
			require.Equal(t, "keep", string(out[:4]), "dst is appended to")
			require.Equal(t, len(src), len(out)-4)
			if len(src) > 0 {
				require.Equal(t, src, out[4:])
			}
		}
	}

	t.Run("other encoders' output in the profile", func(t *testing.T) {
		src := compressible(6, 20_000)
		for name, enc := range map[string][]byte{
			"s2 better":        s2.EncodeBetter(nil, src),
			"s2 best":          s2.EncodeBest(nil, src),
			"snappy":           s2.EncodeSnappy(nil, src),
			"zstd checksum":    zstdFrame(t, src, zstd.WithEncoderCRC(true), zstd.WithSingleSegment(true)),
			"zstd best":        zstdFrame(t, src, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithSingleSegment(true)),
			"zstd auto-single": zstdFrame(t, src, zstd.WithEncoderLevel(zstd.SpeedDefault)),
		} {
			codec := S2
			if name[0] == 'z' {
				codec = Zstd
			}
			out, err := c.Decompress(nil, enc, codec, len(src), len(src))
			require.NoError(t, err, name)
			require.Equal(t, src, out, name)
		}
	})
}

func TestDecompressErrors(t *testing.T) {
	text := compressible(7, 1000)
	s2Text := s2.Encode(nil, text)
	zText := zstdFrame(t, text)
	zeros := withFCS(t, zstdFrame(t, make([]byte, 60_000)), 1000)
	tests := []struct {
		name     string
		src      []byte
		codec    Codec
		declared int
		limit    int
		want     *Error
	}{
		{name: "codec none", src: s2Text, codec: None, declared: 1000, limit: 1000, want: ErrUnknownCodec},
		{name: "codec 3", src: s2Text, codec: 3, declared: 1000, limit: 1000, want: ErrUnknownCodec},
		{name: "codec 255 before the length check", src: nil, codec: 255, declared: -1, limit: 0, want: ErrUnknownCodec},

		{name: "s2 declared above the limit", src: s2Text, codec: S2, declared: 1000, limit: 999, want: ErrTooLarge},
		{name: "zstd declared above the limit", src: zText, codec: Zstd, declared: 1000, limit: 999, want: ErrTooLarge},
		{name: "declared negative", src: s2Text, codec: S2, declared: -1, limit: 1000, want: ErrTooLarge},
		{name: "negative limit", src: s2Text, codec: S2, declared: 0, limit: -1, want: ErrTooLarge},
		{name: "declared huge", src: s2Text, codec: Zstd, declared: 1 << 50, limit: 1 << 20, want: ErrTooLarge},

		{name: "s2 empty input", src: nil, codec: S2, declared: 0, limit: 10, want: ErrCorrupt},
		{name: "s2 garbage", src: []byte{0x0a, 0xff, 0xff, 0xff}, codec: S2, declared: 10, limit: 10, want: ErrCorrupt},
		{name: "s2 truncated", src: s2Text[:len(s2Text)/2], codec: S2, declared: 1000, limit: 1000, want: ErrCorrupt},
		{name: "s2 bad length varint", src: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, codec: S2, declared: 1, limit: 1, want: ErrCorrupt},
		{name: "s2 header says more", src: s2Text, codec: S2, declared: 999, limit: 5000, want: ErrLengthMismatch},
		{name: "s2 header says less", src: s2Text, codec: S2, declared: 1001, limit: 5000, want: ErrLengthMismatch},
		{name: "s2 header claims 1 GiB", src: append([]byte{0x80, 0x80, 0x80, 0x80, 0x04}, s2Text[2:]...), codec: S2, declared: 1000, limit: 1000, want: ErrLengthMismatch},

		{name: "zstd empty input", src: nil, codec: Zstd, declared: 0, limit: 10, want: ErrCorrupt},
		{name: "zstd garbage", src: []byte("not a zstd frame at all"), codec: Zstd, declared: 10, limit: 100, want: ErrCorrupt},
		{name: "zstd truncated", src: zText[:len(zText)-5], codec: Zstd, declared: 1000, limit: 1000, want: ErrCorrupt},
		{name: "zstd body flipped", src: flip(zText, len(zText)/2), codec: Zstd, declared: 1000, limit: 1000, want: ErrCorrupt},
		{name: "zstd trailing bytes", src: append(append([]byte(nil), zText...), 1, 2, 3, 4, 5, 6, 7, 8), codec: Zstd, declared: 1000, limit: 1000, want: ErrCorrupt},
		{name: "zstd not single segment", src: zstdFrame(t, text, zstd.WithSingleSegment(false)), codec: Zstd, declared: 1000, limit: 1000, want: ErrCorrupt},
		{name: "zstd skippable frame", src: []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}, codec: Zstd, declared: 0, limit: 10, want: ErrCorrupt},
		{name: "zstd header says more", src: zText, codec: Zstd, declared: 999, limit: 5000, want: ErrLengthMismatch},
		{name: "zstd header says less", src: zText, codec: Zstd, declared: 1001, limit: 5000, want: ErrLengthMismatch},
		{name: "zstd content larger than its header", src: withFCS(t, zText, 900), codec: Zstd, declared: 900, limit: 5000, want: ErrLengthMismatch},
		{name: "zstd content smaller than its header", src: withFCS(t, zText, 1100), codec: Zstd, declared: 1100, limit: 5000, want: ErrLengthMismatch},
		{name: "zstd block larger than the window", src: zeros, codec: Zstd, declared: 1000, limit: 1 << 20, want: ErrCorrupt},
		{name: "zstd bomb of small blocks", src: rleFrame(1000, 2000, 1000), codec: Zstd, declared: 1000, limit: 1 << 20, want: ErrLengthMismatch},
		{name: "zstd rle blocks, exact", src: rleFrame(3000, 3, 1000), codec: Zstd, declared: 3000, limit: 3000, want: nil},
	}
	c := NewCodecs(1)
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("prefix")
			out, err := c.Decompress(dst, tt.src, tt.codec, tt.declared, tt.limit)
			if tt.want == nil {
				require.NoError(t, err)
				require.Len(t, out, len("prefix")+tt.declared)
				return
			}
			requireKind(t, err, tt.want)
			require.Equal(t, "prefix", string(out), "a failed call returns dst as it was")
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.codec, e.Codec)
			require.Equal(t, tt.declared, e.Declared)
			require.Equal(t, tt.limit, e.Limit)
		})
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0xff
	return out
}

// TestDecompressChecksBeforeAllocating pins that refusals decided from
// the arguments and the codec header allocate no output: only the error
// value.
func TestDecompressChecksBeforeAllocating(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	text := compressible(8, 50_000)
	s2Text, zText := s2.Encode(nil, text), zstdFrame(t, text)
	const errorBytes = 1 << 10
	for name, call := range map[string]func() error{
		"too large":          func() error { _, err := c.Decompress(nil, s2Text, S2, 1<<40, 1<<30); return err },
		"s2 length mismatch": func() error { _, err := c.Decompress(nil, s2Text, S2, 1<<30, 1<<30); return err },
		"zstd length mismatch": func() error {
			_, err := c.Decompress(nil, zText, Zstd, 1<<30, 1<<30)
			return err
		},
		"zstd profile": func() error {
			_, err := c.Decompress(nil, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, 0, 0, 0, 0}, Zstd, 1<<30, 1<<30)
			return err
		},
	} {
		var err error
		first, repeat := allocs(func() { err = call() })
		require.Error(t, err, name)
		require.LessOrEqual(t, repeat, uint64(errorBytes), "%s: %d bytes allocated", name, repeat)
		require.LessOrEqual(t, first, uint64(errorBytes), "%s: %d bytes allocated", name, first)
	}
}

// TestDecompressBombMemory: frames that expand to 2 MB but declare 1000
// bytes are refused having allocated about twice the declared length
// (the output and one block of spare capacity).
func TestDecompressBombMemory(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	for name, bomb := range map[string][]byte{
		"rle blocks":       rleFrame(1000, 2000, 1000),
		"compressed block": withFCS(t, zstdFrame(t, make([]byte, 65_000)), 1000),
	} {
		var err error
		first, repeat := allocs(func() { _, err = c.Decompress(nil, bomb, Zstd, 1000, 1<<20) })
		require.Error(t, err, name)
		require.LessOrEqual(t, repeat, uint64(1000+1000+zstdSlack+4096), name)
		require.LessOrEqual(t, first, uint64(1000+1000+zstdSlack+zstdScratchMax), name)
	}
}

func TestDecompressZeroAllocs(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	text := compressible(9, 64<<10)
	for codec, enc := range map[Codec][]byte{S2: s2.Encode(nil, text), Zstd: zstdFrame(t, text)} {
		dst := make([]byte, 0, 2*len(text))
		for range 2 {
			var err error
			dst, err = c.Decompress(dst[:0], enc, codec, len(text), len(text))
			require.NoError(t, err)
		}
		n := testing.AllocsPerRun(50, func() {
			dst, _ = c.Decompress(dst[:0], enc, codec, len(text), len(text))
		})
		if !raceEnabled { // see race_on_test.go
			require.Zero(t, n, "%v", codec)
		}
		require.Equal(t, text, dst)
	}
}

func TestClose(t *testing.T) {
	text := compressible(10, 5000)
	for _, used := range []bool{false, true} {
		c := NewCodecs(0)
		require.Positive(t, c.Concurrency())
		enc := c.NewEncoder(EncoderOptions{Mode: ModeZstd, Peer: Supported})
		frame, codec := enc.Compress(nil, text)
		require.Equal(t, Zstd, codec)
		if used {
			_, err := c.Decompress(nil, frame, Zstd, len(text), len(text))
			require.NoError(t, err)
		}
		c.Close()
		c.Close()
		for _, codec := range []Codec{S2, Zstd} {
			_, err := c.Decompress(nil, frame, codec, len(text), len(text))
			requireKind(t, err, ErrClosed)
			require.ErrorIs(t, err, net.ErrClosed)
		}
		// The encoders keep working.
		again, codec := enc.Compress(nil, text)
		require.Equal(t, Zstd, codec)
		require.Equal(t, frame, again)
	}
}

// TestConcurrentUse runs decodes and encoders of several streams against
// one Codecs at once, then closes it: for the race detector and goleak.
func TestConcurrentUse(t *testing.T) {
	c := NewCodecs(2)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			mode := []Mode{ModeS2, ModeZstd, Auto}[g%3]
			e := c.NewEncoder(EncoderOptions{Mode: mode, Peer: Supported})
			e.SetLinkRate(float64(g) * 1e6)
			var dst, back []byte
			for i := range 50 {
				src := compressible(uint64(g*100+i), 2000+i*97)
				var codec Codec
				dst, codec = e.Compress(dst[:0], src)
				if codec == None {
					t.Errorf("goroutine %d: batch %d not compressed", g, i)
					return
				}
				var err error
				back, err = c.Decompress(back[:0], dst, codec, len(src), len(src))
				if err != nil || string(back) != string(src) {
					t.Errorf("goroutine %d: batch %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.Close()
}

func TestErrorIs(t *testing.T) {
	inner := errors.New("inner")
	err := error(&Error{Kind: KindCorrupt, Codec: S2, Err: inner})
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, err, inner)
	require.NotErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, &Error{Kind: KindClosed}, net.ErrClosed)
	for k := KindTooLarge; k <= KindClosed; k++ {
		require.NotContains(t, k.String(), "kind(")
	}
	require.Equal(t, "kind(99)", ErrorKind(99).String())
}

func TestEncode(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	text := compressible(13, 3000)
	for _, codec := range []Codec{S2, Zstd} {
		for _, src := range [][]byte{text, random(13, 3000), nil} {
			enc := c.Encode([]byte("h"), src, codec)
			require.Equal(t, "h", string(enc[:1]))
			out, err := c.Decompress(nil, enc[1:], codec, len(src), len(src))
			require.NoError(t, err)
			require.Equal(t, len(src), len(out))
			require.Equal(t, string(src), string(out))
		}
	}
	for _, codec := range []Codec{None, 3} {
		require.Equal(t, "h", string(c.Encode([]byte("h"), text, codec)))
	}
}
