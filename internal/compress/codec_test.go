package compress

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCodecString(t *testing.T) {
	for c, want := range map[Codec]string{None: "none", S2: "s2", Zstd: "zstd", 3: "codec(3)", 255: "codec(255)"} {
		require.Equal(t, want, c.String())
	}
	require.True(t, None.Known())
	require.True(t, S2.Known())
	require.True(t, Zstd.Known())
	require.False(t, Codec(3).Known())
}

func TestCodecSet(t *testing.T) {
	tests := []struct {
		name     string
		set      CodecSet
		s2, zstd bool
		str      string
		bits     uint64
		empty    bool
	}{
		{name: "empty", set: 0, str: "none", bits: 0, empty: true},
		{name: "s2", set: SetOf(S2), s2: true, str: "s2", bits: 0b010},
		{name: "zstd", set: SetOf(Zstd), zstd: true, str: "zstd", bits: 0b100},
		{name: "both", set: SetOf(Zstd, S2), s2: true, zstd: true, str: "s2,zstd", bits: 0b110},
		{name: "none and unknown are left out", set: SetOf(None, 3, 200), str: "none", bits: 0, empty: true},
		{name: "supported", set: Supported, s2: true, zstd: true, str: "s2,zstd", bits: 0b110},
		{name: "from wire bits, unknown dropped", set: CodecSetFromBits(1<<61 | 1<<5 | 0b111), s2: true, zstd: true, str: "s2,zstd", bits: 0b110},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, tt.set.Has(None), "None is always acceptable")
			require.Equal(t, tt.s2, tt.set.Has(S2))
			require.Equal(t, tt.zstd, tt.set.Has(Zstd))
			require.False(t, tt.set.Has(3))
			require.Equal(t, tt.str, tt.set.String())
			require.Equal(t, tt.bits, tt.set.Bits())
			require.Equal(t, tt.empty, tt.set.Empty())
			require.Equal(t, tt.set, CodecSetFromBits(tt.set.Bits()), "the wire form round-trips")
		})
	}
	require.Equal(t, SetOf(S2), SetOf(S2, Zstd).Intersect(SetOf(S2)))
	require.True(t, SetOf(S2).Intersect(SetOf(Zstd)).Empty())
}

func TestMode(t *testing.T) {
	for m, want := range map[Mode]string{Off: "off", ModeS2: "s2", ModeZstd: "zstd", Auto: "auto", 9: "mode(9)"} {
		require.Equal(t, want, m.String())
		got, err := ParseMode(want)
		if m > Auto {
			require.Error(t, err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	_, err := ParseMode("lz4")
	require.Error(t, err)
	require.Equal(t, Off, Mode(0), "the zero value is Off")
}
