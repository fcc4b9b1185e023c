package mux

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFrameGolden(t *testing.T) {
	require.Equal(t, []byte{0x00, 0x02, 0x03, 'a', 'b', 'c'}, AppendData(nil, 2, []byte("abc")))
	require.Equal(t, []byte{0x01, 0x01, 0x40, 0x64}, AppendAck(nil, 1, 100))
	require.Equal(t, 6, DataLen(2, 3))
	require.Equal(t, 4, AckLen(1, 100))
	require.Equal(t, []byte{0x02, 0x40, 0x64}, AppendControl(nil, TypeOpen, 100))
	require.Equal(t, []byte{0x03, 0x05}, AppendControl(nil, TypeFin, 5))
}

func TestFrameRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 70_000)
	var b []byte
	b = AppendData(b, 1, []byte("hello"))
	b = AppendAck(b, 1<<40, 1<<50)
	b = AppendData(b, 7, nil)
	b = AppendData(b, 300, big)
	b = AppendControl(b, TypeOpen, 9)
	b = AppendControl(b, TypeFin, 1<<30)
	want := []Frame{
		{Type: TypeData, Stream: 1, Data: []byte("hello")},
		{Type: TypeAck, Stream: 1 << 40, Seq: 1 << 50},
		{Type: TypeData, Stream: 7, Data: []byte{}},
		{Type: TypeData, Stream: 300, Data: big},
		{Type: TypeOpen, Stream: 9},
		{Type: TypeFin, Stream: 1 << 30},
	}
	for i, w := range want {
		f, n, err := ParseFrame(b, len(big))
		require.NoError(t, err, "frame %d", i)
		require.Equal(t, w.Type, f.Type)
		require.Equal(t, w.Stream, f.Stream)
		require.Equal(t, w.Seq, f.Seq)
		require.Equal(t, len(w.Data), len(f.Data))
		require.True(t, bytes.Equal(w.Data, f.Data))
		b = b[n:]
	}
	require.Empty(t, b)
}

func TestFrameShortAndBad(t *testing.T) {
	full := AppendData(nil, 1000, []byte("payload"))
	for i := range len(full) {
		_, _, err := ParseFrame(full[:i], 100)
		require.ErrorIs(t, err, ErrShort, "prefix of %d bytes", i)
	}
	ack := AppendAck(nil, 1000, 1<<30)
	for i := range len(ack) {
		_, _, err := ParseFrame(ack[:i], 100)
		require.ErrorIs(t, err, ErrShort, "ack prefix of %d bytes", i)
	}
	fin := AppendControl(nil, TypeFin, 1<<30)
	for i := range len(fin) {
		_, _, err := ParseFrame(fin[:i], 100)
		require.ErrorIs(t, err, ErrShort, "fin prefix of %d bytes", i)
	}
	_, _, err := ParseFrame([]byte{0x04, 0x00}, 100)
	require.ErrorIs(t, err, ErrUnknownType)
	// The size check comes before the payload is there.
	_, _, err = ParseFrame(AppendData(nil, 1, make([]byte, 101))[:4], 100)
	require.ErrorIs(t, err, ErrTooLarge)
}

func FuzzParseFrame(f *testing.F) {
	f.Add(AppendData(nil, 1, []byte("x")))
	f.Add(AppendAck(nil, 2, 3))
	f.Add(AppendControl(nil, TypeOpen, 4))
	f.Add(AppendControl(nil, TypeFin, 5))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := ParseFrame(b, 1024)
		if err != nil {
			return
		}
		require.LessOrEqual(t, n, len(b))
		var re []byte
		switch fr.Type {
		case TypeData:
			require.LessOrEqual(t, len(fr.Data), 1024)
			re = AppendData(nil, fr.Stream, fr.Data)
		case TypeAck:
			re = AppendAck(nil, fr.Stream, fr.Seq)
		default: // TypeOpen, TypeFin: the stream only
			re = AppendControl(nil, fr.Type, fr.Stream)
		}
		// Varints may be encoded longer than needed; the re-encoding is
		// minimal, so it is never longer.
		require.LessOrEqual(t, len(re), n)
		fr2, n2, err := ParseFrame(re, 1024)
		require.NoError(t, err)
		require.Equal(t, len(re), n2)
		require.Equal(t, fr.Stream, fr2.Stream)
		require.Equal(t, fr.Seq, fr2.Seq)
		require.True(t, bytes.Equal(fr.Data, fr2.Data))
	})
}
