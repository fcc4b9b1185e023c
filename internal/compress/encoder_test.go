package compress

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Batch kinds for the adaptive tests, 8 KiB each.
const batchLen = 8 << 10

var (
	textBatch   = compressible(1, batchLen)
	randomBatch = random(1, batchLen)
)

// trace feeds batches to e and returns one letter per batch, from the
// counter Compress moved: c compressed, n tried and sent plain (no gain),
// s skipped during a back-off, m below MinSize, d disabled. It checks that
// a compressed batch decodes to the input and that a plain one left dst
// untouched.
func trace(t *testing.T, c *Codecs, e *Encoder, batches ...[]byte) string {
	t.Helper()
	var b strings.Builder
	var dst, back []byte
	for _, src := range batches {
		before := e.Stats()
		var codec Codec
		dst, codec = e.Compress(dst[:0], src)
		after := e.Stats()
		require.Equal(t, before.Batches+1, after.Batches)
		switch {
		case after.Compressed[S2]+after.Compressed[Zstd] > before.Compressed[S2]+before.Compressed[Zstd]:
			require.NotEqual(t, None, codec)
			require.LessOrEqual(t, len(dst), len(src)-len(src)/8)
			var err error
			back, err = c.Decompress(back[:0], dst, codec, len(src), len(src))
			require.NoError(t, err)
			require.Equal(t, src, back)
			b.WriteByte('c')
			continue
		case after.NoGain > before.NoGain:
			b.WriteByte('n')
		case after.Skipped > before.Skipped:
			b.WriteByte('s')
		case after.Small > before.Small:
			b.WriteByte('m')
		case after.Disabled > before.Disabled:
			b.WriteByte('d')
		default:
			t.Fatalf("batch %d moved no counter", after.Batches)
		}
		require.Equal(t, None, codec)
		require.Empty(t, dst, "a plain batch leaves dst as it was")
	}
	return b.String()
}

func repeat(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func seq(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestAdaptiveSkip(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	r := strings.Repeat
	// The back-off doubles from 8: skips of 8, 16, 32, 64, 128, 256, 256.
	longSkip := "nnn" + r("s", 8) + "n" + r("s", 16) + "n" + r("s", 32) + "n" + r("s", 64) + "n" +
		r("s", 128) + "n" + r("s", 256) + "n" + r("s", 256) + "n"
	tests := []struct {
		name    string
		batches [][]byte
		want    string
	}{
		{name: "compressible data compresses", batches: repeat(textBatch, 6), want: "cccccc"},
		{name: "random data stops after three tries", batches: repeat(randomBatch, 12), want: "nnn" + r("s", 8) + "n"},
		{name: "the back-off doubles up to 256", batches: repeat(randomBatch, len(longSkip)), want: longSkip},
		{
			name:    "random then compressible: the next probe notices",
			batches: seq(repeat(randomBatch, 20), repeat(textBatch, 12)),
			// 20 random: 3 tries, 8 skips, a probe, 8 of the 16 skips;
			// then the remaining 8 skips, a probe that pays, and on.
			want: "nnn" + r("s", 8) + "n" + r("s", 8) + r("s", 8) + "ccc" + "c",
		},
		{
			name:    "a paying batch resets the miss count",
			batches: seq(repeat(randomBatch, 2), repeat(textBatch, 1), repeat(randomBatch, 2), repeat(textBatch, 1), repeat(randomBatch, 3)),
			want:    "nncnncnnn",
		},
		{
			name:    "alternating data never backs off",
			batches: seq(repeat(randomBatch, 1), repeat(textBatch, 1), repeat(randomBatch, 1), repeat(textBatch, 1), repeat(randomBatch, 1), repeat(textBatch, 1)),
			want:    "ncncnc",
		},
		{
			name:    "small batches do not count",
			batches: seq(repeat(randomBatch, 2), repeat(randomBatch[:100], 5), repeat(textBatch, 1)),
			want:    "nnmmmmmc",
		},
	}
	for _, mode := range []Mode{ModeS2, ModeZstd, Auto} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				e := c.NewEncoder(EncoderOptions{Mode: mode, Peer: Supported})
				require.Equal(t, tt.want, trace(t, c, e, tt.batches...))
			})
		}
	}
}

func TestMinSize(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	text := compressible(2, 2*DefaultMinSize)
	tests := []struct {
		name    string
		minSize int
		n       int
		want    string
	}{
		{name: "default, one below", n: DefaultMinSize - 1, want: "m"},
		{name: "default, at the threshold", n: DefaultMinSize, want: "c"},
		{name: "custom, below", minSize: 2000, n: 1999, want: "m"},
		{name: "custom, at", minSize: 2000, n: 2000, want: "c"},
		{name: "negative tries every size", minSize: -1, n: 200, want: "c"},
		{name: "an empty batch is never compressed", minSize: -1, n: 0, want: "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []Mode{ModeS2, ModeZstd} {
				e := c.NewEncoder(EncoderOptions{Mode: mode, Peer: Supported, MinSize: tt.minSize})
				require.Equal(t, tt.want, trace(t, c, e, text[:tt.n]), "mode %v", mode)
			}
		})
	}
}

func TestEncoderCodecChoice(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	tests := []struct {
		mode Mode
		peer CodecSet
		want Codec
	}{
		{Off, Supported, None},
		{ModeS2, Supported, S2},
		{ModeS2, SetOf(Zstd), None},
		{ModeZstd, Supported, Zstd},
		{ModeZstd, SetOf(S2), None},
		{Auto, Supported, S2},
		{Auto, SetOf(Zstd), Zstd},
		{Auto, 0, None},
		{ModeS2, 0, None},
		{Mode(99), Supported, None},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String()+"/"+tt.peer.String(), func(t *testing.T) {
			e := c.NewEncoder(EncoderOptions{Mode: tt.mode, Peer: tt.peer})
			require.Equal(t, tt.want, e.Codec())
			out, codec := e.Compress(nil, textBatch)
			require.Equal(t, tt.want, codec)
			if tt.want == None {
				require.Empty(t, out)
				require.Equal(t, uint64(1), e.Stats().Disabled)
				return
			}
			back, err := c.Decompress(nil, out, codec, len(textBatch), len(textBatch))
			require.NoError(t, err)
			require.Equal(t, textBatch, back)
		})
	}
}

func TestAutoLinkRate(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	tests := []struct {
		name string
		peer CodecSet
		rate float64
		want Codec
	}{
		{name: "unknown rate keeps s2", peer: Supported, rate: 0, want: S2},
		{name: "fast link keeps s2", peer: Supported, rate: 400e6, want: S2},
		{name: "slow link takes zstd", peer: Supported, rate: 2e6, want: Zstd},
		{name: "slow link, peer without zstd", peer: SetOf(S2), rate: 2e6, want: S2},
		{name: "fast link, peer without s2", peer: SetOf(Zstd), rate: 400e6, want: Zstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := c.NewEncoder(EncoderOptions{Mode: Auto, Peer: tt.peer})
			e.SetLinkRate(tt.rate)
			var dst []byte
			for i := range 2 * compareEvery {
				var codec Codec
				dst, codec = e.Compress(dst[:0], textBatch)
				require.Equal(t, tt.want, codec, "batch %d", i)
				back, err := c.Decompress(nil, dst, codec, len(textBatch), len(textBatch))
				require.NoError(t, err)
				require.Equal(t, textBatch, back)
			}
			require.Equal(t, tt.want, e.Codec())
			if tt.rate > 0 && tt.peer == Supported {
				require.Equal(t, uint64(2), e.Stats().Compares, "a comparison on the first batch and every 32 after")
			} else {
				require.Zero(t, e.Stats().Compares)
			}
		})
	}

	t.Run("forgetting the rate goes back to s2", func(t *testing.T) {
		e := c.NewEncoder(EncoderOptions{Mode: Auto, Peer: Supported})
		e.SetLinkRate(1e6)
		_, codec := e.Compress(nil, textBatch)
		require.Equal(t, Zstd, codec)
		e.SetLinkRate(0)
		require.Equal(t, S2, e.Codec())
		_, codec = e.Compress(nil, textBatch)
		require.Equal(t, S2, codec)
	})
	t.Run("other modes ignore the rate", func(t *testing.T) {
		e := c.NewEncoder(EncoderOptions{Mode: ModeS2, Peer: Supported})
		e.SetLinkRate(1e6)
		_, codec := e.Compress(nil, textBatch)
		require.Equal(t, S2, codec)
		require.Zero(t, e.Stats().Compares)
	})
}

func TestEncoderStats(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	e := c.NewEncoder(EncoderOptions{Mode: ModeS2, Peer: Supported})
	var dst []byte
	var out uint64
	for range 3 {
		dst, _ = e.Compress(dst[:0], textBatch)
		out += uint64(len(dst))
	}
	for range 12 {
		e.Compress(dst[:0], randomBatch)
	}
	e.Compress(dst[:0], textBatch[:10])
	require.Equal(t, EncoderStats{
		Batches:    16,
		Compressed: [numCodecs]uint64{S2: 3},
		Small:      1,
		Skipped:    8,
		NoGain:     4,
		Probes:     1,
		BytesIn:    3 * batchLen,
		BytesOut:   out,
	}, e.Stats())
}

// TestCompressZeroAllocs pins that a steady encoder reusing its dst
// allocates nothing per call, on each path: compressed, no gain, skipped,
// small, and Auto's comparison.
func TestCompressZeroAllocs(t *testing.T) {
	c := NewCodecs(1)
	defer c.Close()
	tests := []struct {
		name string
		mode Mode
		rate float64
		src  []byte
	}{
		{name: "s2", mode: ModeS2, src: textBatch},
		{name: "zstd", mode: ModeZstd, src: textBatch},
		{name: "auto", mode: Auto, src: textBatch},
		{name: "auto comparing", mode: Auto, rate: 1e6, src: textBatch},
		{name: "s2 random", mode: ModeS2, src: randomBatch},
		{name: "zstd random", mode: ModeZstd, src: randomBatch},
		{name: "small", mode: ModeS2, src: textBatch[:100]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := c.NewEncoder(EncoderOptions{Mode: tt.mode, Peer: Supported})
			dst := make([]byte, 0, 2*len(tt.src)+1024)
			for range 3 { // warm up: the zstd encoder and Auto's scratch buffer
				e.SetLinkRate(tt.rate)
				dst, _ = e.Compress(dst[:0], tt.src)
			}
			n := testing.AllocsPerRun(100, func() {
				e.SetLinkRate(tt.rate) // a comparison every call when set
				dst, _ = e.Compress(dst[:0], tt.src)
			})
			require.Zero(t, n)
		})
	}
}
