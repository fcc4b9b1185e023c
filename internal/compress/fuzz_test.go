package compress

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// FuzzRoundTrip: whatever the data, each codec's output decodes to it,
// with a limit of exactly its length, and is refused with a limit one
// below; and an Encoder in any mode either returns a compressed form that
// decodes to the data or leaves dst as it was.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, uint8(0), int16(-1))
	f.Add([]byte("a"), uint8(1), int16(-1))
	f.Add(bytes.Repeat([]byte("abc"), 1000), uint8(2), int16(0))
	f.Add(compressible(11, 5000), uint8(0), int16(100))
	f.Add(random(11, 3000), uint8(1), int16(-1))
	c := NewCodecs(1)
	f.Cleanup(c.Close)
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, minSize int16) {
		s2Out, ok := appendS2([]byte("hdr"), data)
		require.True(t, ok)
		for codec, enc := range map[Codec][]byte{S2: s2Out[3:], Zstd: c.zstdEncoder().EncodeAll(data, nil)} {
			out, err := c.Decompress([]byte("p"), enc, codec, len(data), len(data))
			require.NoError(t, err, "%v", codec)
			require.Equal(t, "p", string(out[:1]))
			require.Equal(t, data, out[1:], "%v", codec)
			if len(data) > 0 {
				out, err = c.Decompress(nil, enc, codec, len(data), len(data)-1)
				requireKind(t, err, ErrTooLarge)
				require.Empty(t, out)
			}
		}

		m := []Mode{ModeS2, ModeZstd, Auto, Off}[mode%4]
		e := c.NewEncoder(EncoderOptions{Mode: m, Peer: Supported, MinSize: int(minSize)})
		if mode&4 != 0 {
			e.SetLinkRate(1e6) // Auto compares both codecs on the first batch
		}
		for range 2 {
			out, codec := e.Compress([]byte("hdr"), data)
			require.Equal(t, "hdr", string(out[:3]))
			if codec == None {
				require.Len(t, out, 3)
				continue
			}
			require.NotEqual(t, Off, m)
			require.LessOrEqual(t, len(out)-3, len(data)-len(data)/8)
			back, err := c.Decompress(nil, out[3:], codec, len(data), len(data))
			require.NoError(t, err)
			require.Equal(t, data, back)
		}
	})
}

// fuzzLimitMax bounds the limit FuzzDecompress passes, to keep one
// execution's memory small; declared lengths are not bounded.
const fuzzLimitMax = 1 << 20

// FuzzDecompress feeds arbitrary bytes, codec, declared length and limit
// to Decompress. It must not panic; on success it returns exactly the
// declared length, within the limit, the same bytes the codec library
// decodes without limits; on failure a typed error and dst as it was. It
// never allocates more than the declared length (when within the limit)
// plus one zstd block of spare capacity plus a small constant, after the
// zstd decoder's block buffers have grown (a one-time cost bounded by
// zstdScratchMax, allowed on the first run).
func FuzzDecompress(f *testing.F) {
	text := compressible(12, 3000)
	f.Add(s2.Encode(nil, text), uint8(S2), int64(len(text)), uint32(len(text)))
	f.Add(zstdFrame(f, text), uint8(Zstd), int64(len(text)), uint32(len(text)))
	f.Add(zstdFrame(f, text), uint8(Zstd), int64(len(text)), uint32(len(text)-1))
	f.Add(withFCS(f, zstdFrame(f, text), 2000), uint8(Zstd), int64(2000), uint32(fuzzLimitMax))
	f.Add(withFCS(f, zstdFrame(f, make([]byte, 60_000)), 1000), uint8(Zstd), int64(1000), uint32(fuzzLimitMax))
	f.Add(rleFrame(1000, 200, 1000), uint8(Zstd), int64(1000), uint32(fuzzLimitMax))
	f.Add(zstdFrame(f, text, zstd.WithEncoderCRC(true), zstd.WithSingleSegment(true)), uint8(Zstd), int64(len(text)), uint32(len(text)))
	f.Add(zstdFrame(f, text, zstd.WithSingleSegment(false)), uint8(Zstd), int64(len(text)), uint32(len(text)))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x04, 0, 0}, uint8(S2), int64(1<<30), uint32(fuzzLimitMax))
	f.Add([]byte{}, uint8(7), int64(-5), uint32(0))
	c := NewCodecs(1) // one slot: the repeat runs reuse the buffers the first grew
	f.Cleanup(c.Close)
	ref, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	require.NoError(f, err)
	f.Cleanup(ref.Close)

	f.Fuzz(func(t *testing.T, src []byte, codecByte uint8, declared64 int64, limit32 uint32) {
		codec := Codec(codecByte)
		declared := int(declared64)
		limit := int(limit32 % (fuzzLimitMax + 1))

		// Measured: no assertion inside (require boxes its arguments).
		var (
			out []byte
			err error
		)
		dst := make([]byte, 2, 2) // the caller's prefix, no spare capacity
		first, repeat := allocs(func() { out, err = c.Decompress(dst, src, codec, declared, limit) })

		allowance := uint64(16 << 10) // error values, headers, sync.Pool refills
		if raceEnabled {
			allowance += 64 << 10 // pooled zstd table decoders rebuilt (race_on_test.go)
		}
		if declared >= 0 && declared <= limit {
			allowance += uint64(2 + declared + min(declared, zstdBlockMax) + zstdSlack)
		}
		require.LessOrEqual(t, repeat, allowance, "bytes allocated per call")
		require.LessOrEqual(t, first, allowance+zstdScratchMax, "bytes allocated by the first call")

		if err != nil {
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Contains(t, []ErrorKind{KindTooLarge, KindCorrupt, KindLengthMismatch, KindUnknownCodec}, e.Kind, "error: %v", err)
			require.Len(t, out, 2, "a failed call returns dst as it was")
			return
		}
		require.Contains(t, []Codec{S2, Zstd}, codec)
		require.GreaterOrEqual(t, declared, 0)
		require.LessOrEqual(t, declared, limit)
		require.Len(t, out, 2+declared, "exactly the declared length")

		var want []byte
		if codec == S2 {
			want, err = s2.Decode(nil, src)
		} else {
			want, err = ref.DecodeAll(src, nil)
		}
		require.NoError(t, err, "the library rejects what Decompress accepted")
		require.Equal(t, len(want), declared)
		if declared > 0 {
			require.Equal(t, want, out[2:])
		}
	})
}
