package frames_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// directStream is an ACK, a small BATCH, a large BATCH, an ERROR and a
// second large BATCH, with the payloads a reader must return.
func directStream(t *testing.T) (stream []byte, want []frames.Type, payloads [][]byte) {
	t.Helper()
	add := func(frame []byte) {
		typ, p := splitFrame(t, frame)
		stream = append(stream, frame...)
		want = append(want, typ)
		payloads = append(payloads, p)
	}
	add(frames.AppendAck(nil, 7))
	add(frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1}, [][]byte{[]byte("small")}))
	big := make([][]byte, 40)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte(i)}, 250)
	}
	add(frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 2, HasAck: true, Ack: 7}, big))
	add((&frames.ErrorFrame{Seq: 3, Code: 0x100, Reason: "no"}).Append(nil))
	add(frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 42}, big[:30]))
	return stream, want, payloads
}

// TestReaderDirect: with direct reads on, every frame reads back the same
// as without, large BATCH payloads land in the caller's buffers (alloc
// called with their exact length, never for other frames), and the
// Reader's own buffer stays at its initial size.
func TestReaderDirect(t *testing.T) {
	stream, want, payloads := directStream(t)
	const minLen = 1 << 10
	for _, tc := range []struct {
		name  string
		sizes []byte
	}{
		{"whole", nil},
		{"byte at a time", []byte{1}},
		{"odd chunks", []byte{7, 200, 33, 255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var allocs [][]byte
			r := frames.NewReaderSize(&chunkReader{data: stream, sizes: tc.sizes}, 512, 64<<10)
			r.SetDirect(frames.TypeBatch, minLen, func(n int) ([]byte, any) {
				b := make([]byte, n, n+16)
				allocs = append(allocs, b)
				return b, len(allocs)
			})
			direct := 0
			for i := range want {
				n := len(allocs)
				f, err := r.Next()
				require.NoError(t, err, "frame %d", i)
				require.Equal(t, want[i], f.Type, "frame %d", i)
				require.Equal(t, payloads[i], f.Payload, "frame %d", i)
				require.Equal(t, len(allocs) > n, f.Direct, "frame %d: Direct says whether alloc was called", i)
				if !f.Direct {
					require.Nil(t, f.Token, "frame %d", i)
					continue
				}
				direct++
				p := f.Payload
				require.Equal(t, frames.TypeBatch, f.Type)
				require.GreaterOrEqual(t, len(p), minLen)
				require.Same(t, &allocs[n][0], &p[0], "the payload is the caller's buffer")
				require.Equal(t, len(p), cap(p), "capped at the payload")
				require.Equal(t, n+1, f.Token, "the token alloc returned with the buffer")
			}
			_, _, err := r.ReadFrame()
			require.Equal(t, io.EOF, err)
			require.Equal(t, 512, r.BufferSize(), "the Reader's buffer never grew")
			if len(tc.sizes) > 0 {
				// Delivered in chunks smaller than a frame, both large
				// batches arrive partly buffered at most.
				require.Equal(t, 2, direct)
			}
		})
	}
}

// TestReaderDirectBuffered: a large frame already buffered whole is
// returned from the Reader's buffer; alloc is not called.
func TestReaderDirectBuffered(t *testing.T) {
	stream, want, payloads := directStream(t)
	r := frames.NewReaderSize(bytes.NewReader(stream), 64<<10, 64<<10)
	r.SetDirect(frames.TypeBatch, 1<<10, func(int) ([]byte, any) {
		t.Fatal("alloc called for a buffered frame")
		return nil, nil
	})
	for i := range want {
		f, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, want[i], f.Type)
		require.Equal(t, payloads[i], f.Payload)
		require.False(t, f.Direct, "the payload is the Reader's")
		require.Nil(t, f.Token)
	}
}

// TestReaderDirectErrors: a stream that ends or fails inside a direct
// payload gives the same errors as ReadFrame without direct reads, and a
// frame over the maximum fails before alloc is called.
func TestReaderDirectErrors(t *testing.T) {
	stream, _, _ := directStream(t)
	third := len(frames.AppendAck(nil, 7)) + len(frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1}, [][]byte{[]byte("small")}))
	cut := stream[:third+2000] // inside the first large batch
	for _, tc := range []struct {
		name string
		err  error
	}{{"eof", nil}, {"reset", io.ErrClosedPipe}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, direct := range []bool{false, true} {
				r := frames.NewReaderSize(&chunkReader{data: cut, sizes: []byte{100}, err: tc.err}, 512, 64<<10)
				if direct {
					r.SetDirect(frames.TypeBatch, 1<<10, func(n int) ([]byte, any) { return make([]byte, n), "token" })
				}
				for range 2 {
					_, _, err := r.ReadFrame()
					require.NoError(t, err)
				}
				f, err := r.Next()
				// The buffer of a failed direct read comes back with its
				// token, for the caller to recycle.
				require.Equal(t, direct, f.Direct)
				require.Nil(t, f.Payload)
				if direct {
					require.Equal(t, "token", f.Token)
				}
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err, "direct %v", direct)
				} else {
					requireCode(t, err, frames.CodeFrameEncoding)
					require.ErrorIs(t, err, io.ErrUnexpectedEOF, "direct %v", direct)
				}
			}
		})
	}

	r := frames.NewReaderSize(&chunkReader{data: stream[third:], sizes: []byte{10}}, 512, 1<<10)
	r.SetDirect(frames.TypeBatch, 16, func(int) ([]byte, any) {
		t.Fatal("alloc called for a frame over the maximum")
		return nil, nil
	})
	_, _, err := r.ReadFrame()
	requireCode(t, err, frames.CodeFrameTooLarge)

	// Turning direct reads off again reads into the Reader's buffer.
	r = frames.NewReaderSize(&chunkReader{data: stream[third:], sizes: []byte{10}}, 512, 64<<10)
	r.SetDirect(frames.TypeBatch, 16, func(int) ([]byte, any) {
		t.Fatal("alloc called after SetDirect(nil)")
		return nil, nil
	})
	r.SetDirect(0, 0, nil)
	_, _, err = r.ReadFrame()
	require.NoError(t, err)
	require.Greater(t, r.BufferSize(), 512)
}
