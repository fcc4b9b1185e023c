package wire_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// TestZeroAllocs: once its buffer has grown, a Reader returns frames
// without allocating, from its own buffer or read directly into the
// caller's (handed back with a pointer token), and its buffer grew no
// further than the largest frame needed.
func TestZeroAllocs(t *testing.T) {
	records := make([][]byte, 256)
	for i := range records {
		records[i] = bytes.Repeat([]byte{byte(i)}, 64)
	}
	frame := frames.AppendBatch(nil, frames.BatchHeader{HasAck: true, Ack: 1 << 20, FirstSeq: 1 << 30}, records)
	// A stream of batches with an ack and an unknown frame in between,
	// one of them larger than the Reader's initial buffer.
	var stream []byte
	stream = append(stream, frame...)
	stream = frames.AppendAck(stream, 7)
	stream = append(frames.AppendHeader(stream, 0x21, 3), 1, 2, 3)
	stream = frames.AppendBatch(stream, frames.BatchHeader{FirstSeq: 1}, records[:3])

	r := newReader(&loopReader{data: stream}, wire.DefaultBuffer, 64<<10)
	directBuf := make([]byte, len(frame))
	rd := newReader(&loopReader{data: stream}, wire.DefaultBuffer, 64<<10)
	rd.SetDirect(direct(1<<10, func(n int) ([]byte, any) { return directBuf[:n], &directBuf }))
	for range 8 {
		_, err := r.Next()
		require.NoError(t, err)
	}

	var sink, directs int
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Next", func() {
			for range 4 {
				f, err := r.Next()
				if err != nil {
					panic(err)
				}
				sink += len(f.Payload)
			}
		}},
		{"Next direct", func() {
			for range 4 {
				f, err := rd.Next()
				if err != nil {
					panic(err)
				}
				if f.Direct {
					if f.Token != &directBuf {
						panic("direct frame without its token")
					}
					directs++
				}
				sink += len(f.Payload)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(100, tc.f))
		})
	}
	require.NotZero(t, sink)
	require.NotZero(t, directs, "the large batch was read directly")
	want := wire.DefaultBuffer
	for want < len(frame) {
		want *= 2
	}
	require.Equal(t, want, r.BufferSize(), "the Reader's buffer doubled until the largest frame fit, and no more")
	require.Equal(t, wire.DefaultBuffer, rd.BufferSize(), "the direct Reader's buffer never grew")
}
