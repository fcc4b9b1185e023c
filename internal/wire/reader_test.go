package wire_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
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
			r := newReader(&chunkReader{data: stream, sizes: tc.sizes}, 512, 64<<10)
			r.SetDirect(direct(minLen, func(n int) ([]byte, any) {
				b := make([]byte, n, n+16)
				allocs = append(allocs, b)
				return b, len(allocs)
			}))
			direct := 0
			for i := range want {
				n := len(allocs)
				f, err := r.Next()
				require.NoError(t, err, "frame %d", i)
				require.Equal(t, want[i], frames.Type(f.Type), "frame %d", i)
				require.Equal(t, payloads[i], f.Payload, "frame %d", i)
				require.Equal(t, len(allocs) > n, f.Direct, "frame %d: Direct says whether alloc was called", i)
				if !f.Direct {
					require.Nil(t, f.Token, "frame %d", i)
					continue
				}
				direct++
				p := f.Payload
				require.Equal(t, frames.TypeBatch, frames.Type(f.Type))
				require.GreaterOrEqual(t, len(p), minLen)
				require.Same(t, &allocs[n][0], &p[0], "the payload is the caller's buffer")
				require.Equal(t, len(p), cap(p), "capped at the payload")
				require.Equal(t, n+1, f.Token, "the token alloc returned with the buffer")
			}
			_, _, err := readFrame(r)
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
	r := newReader(bytes.NewReader(stream), 64<<10, 64<<10)
	r.SetDirect(direct(1<<10, func(int) ([]byte, any) {
		t.Fatal("alloc called for a buffered frame")
		return nil, nil
	}))
	for i := range want {
		f, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, want[i], frames.Type(f.Type))
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
			for _, useDirect := range []bool{false, true} {
				r := newReader(&chunkReader{data: cut, sizes: []byte{100}, err: tc.err}, 512, 64<<10)
				if useDirect {
					r.SetDirect(direct(1<<10, func(n int) ([]byte, any) { return make([]byte, n), "token" }))
				}
				for range 2 {
					_, _, err := readFrame(r)
					require.NoError(t, err)
				}
				f, err := r.Next()
				// The buffer of a failed direct read comes back with its
				// token, for the caller to recycle.
				require.Equal(t, useDirect, f.Direct)
				require.Nil(t, f.Payload)
				if useDirect {
					require.Equal(t, "token", f.Token)
				}
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err, "direct %v", useDirect)
				} else {
					requireCode(t, err, frames.CodeFrameEncoding)
					require.ErrorIs(t, err, io.ErrUnexpectedEOF, "direct %v", useDirect)
				}
			}
		})
	}

	r := newReader(&chunkReader{data: stream[third:], sizes: []byte{10}}, 512, 1<<10)
	r.SetDirect(direct(16, func(int) ([]byte, any) {
		t.Fatal("alloc called for a frame over the maximum")
		return nil, nil
	}))
	_, _, err := readFrame(r)
	requireCode(t, err, frames.CodeFrameTooLarge)

	// Turning direct reads off again reads into the Reader's buffer.
	r = newReader(&chunkReader{data: stream[third:], sizes: []byte{10}}, 512, 64<<10)
	r.SetDirect(direct(16, func(int) ([]byte, any) {
		t.Fatal("alloc called after SetDirect(nil)")
		return nil, nil
	}))
	r.SetDirect(wire.Direct{})
	_, _, err = readFrame(r)
	require.NoError(t, err)
	require.Greater(t, r.BufferSize(), 512)
}

// TestReaderSkipsUnknown interleaves unknown and reserved frames, some
// larger than the Reader's buffer, with known ones and reads them in
// chunks of many sizes: unknown frames come back as a type with a nil
// payload, in order, and are never buffered whole.
func TestReaderSkipsUnknown(t *testing.T) {
	const maxFrame = 4 << 10
	const initial = 64
	type frame struct {
		typ     frames.Type
		payload []byte
	}
	small := frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1}, [][]byte{[]byte("abc"), []byte("de")})
	want := []frame{
		{0x21, bytes.Repeat([]byte{0xaa}, 3000)},
		{frames.TypeAck, quicvarint.Append(nil, 9)},
		{0x40, nil},
		{0x1f*7 + 0x21, bytes.Repeat([]byte{0xbb}, 1000)},
		{0x1e, bytes.Repeat([]byte{0xcc}, maxFrame)},
		{frames.TypeBatch, small[2:]},
		{1 << 40, []byte{1}},
		{0x21, bytes.Repeat([]byte{0xdd}, initial)},
		{0x21, bytes.Repeat([]byte{0xee}, initial-2)},
		{frames.TypeAck, quicvarint.Append(nil, 10)},
		{0x22, nil},
	}
	var stream []byte
	for _, f := range want {
		stream = frames.AppendHeader(stream, f.typ, len(f.payload))
		stream = append(stream, f.payload...)
	}
	for _, sizes := range [][]byte{nil, {0}, {1, 2, 3}, {7, 13, 1}, {63}, {64}, {65}, {200, 255}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			r := newReader(&chunkReader{data: stream, sizes: sizes}, initial, maxFrame)
			for i, f := range want {
				typ, payload, err := readFrame(r)
				require.NoError(t, err, "frame %d", i)
				require.Equal(t, f.typ, typ, "frame %d", i)
				if typ.Known() {
					require.Equal(t, f.payload, payload, "frame %d", i)
				} else {
					require.Nil(t, payload, "frame %d", i)
				}
			}
			_, _, err := readFrame(r)
			require.Equal(t, io.EOF, err)
			require.Equal(t, initial, r.BufferSize(), "the buffer grew for an unknown frame")
		})
	}
}

// TestReaderBuffer: the buffer starts at the initial size, is replaced
// once by max+MaxHeaderLen when a frame does not fit, and a frame of
// exactly the maximum with the longest header fits.
func TestReaderBuffer(t *testing.T) {
	const maxFrame = 1 << 10
	payload := bytes.Repeat([]byte{0}, maxFrame)
	payload[0], payload[1], payload[2] = 0, 1, 1 // BATCH: no ack, seq 1, one record
	payload = append(payload[:3], quicvarint.Append(nil, maxFrame-5)...)
	payload = append(payload, make([]byte, maxFrame-5)...)
	require.Len(t, payload, maxFrame)
	longest := append(unhex(t, "c000000000000002 c000000000000400"), payload...)
	require.Len(t, longest, maxFrame+frames.MaxHeaderLen)

	var stream []byte
	stream = frames.AppendAck(stream, 1)
	stream = append(stream, longest...)
	stream = frames.AppendAck(stream, 2)
	stream = append(stream, longest...)

	for _, sizes := range [][]byte{nil, {1}, {100}} {
		r := newReader(&chunkReader{data: stream, sizes: sizes}, 0, maxFrame)
		require.Equal(t, uint64(maxFrame), r.MaxFrameSize())
		require.Zero(t, r.BufferSize())
		for i := range 2 {
			typ, p, err := readFrame(r)
			require.NoError(t, err)
			require.Equal(t, frames.TypeAck, typ)
			seq, _, err := frames.ParseAck(p)
			require.NoError(t, err)
			require.Equal(t, uint64(i+1), seq)
			if i == 0 {
				require.Equal(t, frames.MaxHeaderLen, r.BufferSize(), "initial size below MaxHeaderLen")
			}
			typ, p, err = readFrame(r)
			require.NoError(t, err)
			require.Equal(t, frames.TypeBatch, typ)
			require.Equal(t, payload, p)
			b, _, err := frames.ParseBatch(p, maxFrame)
			require.NoError(t, err)
			require.Equal(t, 1, b.Count)
			require.Equal(t, maxFrame+frames.MaxHeaderLen, r.BufferSize())
		}
		_, _, err := readFrame(r)
		require.Equal(t, io.EOF, err)
	}
}

func TestReaderSetMaxFrameSize(t *testing.T) {
	var stream []byte
	big := frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1}, [][]byte{make([]byte, 2000)})
	stream = append(stream, big...)
	stream = append(stream, big...)
	stream = append(stream, big...)
	r := newReader(&chunkReader{data: stream}, 16, 4<<10)
	_, _, err := readFrame(r)
	require.NoError(t, err)
	require.Equal(t, 2048, r.BufferSize(), "doubled from 16 until the frame fit")

	r.SetMaxFrameSize(8 << 10)
	require.Equal(t, uint64(8<<10), r.MaxFrameSize())
	_, _, err = readFrame(r)
	require.NoError(t, err)
	require.Equal(t, 2048, r.BufferSize(), "no frame needed a larger buffer")

	r.SetMaxFrameSize(1 << 10)
	_, _, err = readFrame(r)
	requireCode(t, err, frames.CodeFrameTooLarge)
}

// TestReaderNoReservation: a header that declares a large payload makes
// the Reader hold memory only for the bytes that arrived. A peer sends a
// BATCH header declaring the maximum and then part of the payload before
// its stream ends: the Reader's buffer, and with direct reads the
// caller's buffers, stay within twice the bytes that arrived (or the
// first step), and every buffer it outgrew is released.
func TestReaderNoReservation(t *testing.T) {
	const maxFrame = 1 << 20
	const step = 4 << 10
	hdr := frames.AppendHeader(nil, frames.TypeBatch, maxFrame)
	for _, sent := range []int{0, 1, 100, step - 1, step, step + 1, 50 << 10, maxFrame - 1} {
		t.Run(fmt.Sprint(sent), func(t *testing.T) {
			stream := append(append([]byte(nil), hdr...), make([]byte, sent)...)
			arrived := len(stream)

			r := newReader(&chunkReader{data: stream, sizes: []byte{200}}, 64, maxFrame)
			_, err := r.Next()
			requireCode(t, err, frames.CodeFrameEncoding)
			require.LessOrEqual(t, r.BufferSize(), max(64, 2*arrived))

			var held, peak, allocs int
			live := map[any]int{}
			r = newReader(&chunkReader{data: stream, sizes: []byte{200}}, 64, maxFrame)
			r.SetDirect(wire.Direct{Type: uint64(frames.TypeBatch), MinLen: 1, Step: step,
				Alloc: func(n, total int) ([]byte, any, error) {
					require.Equal(t, maxFrame, total)
					allocs++
					held += n
					peak = max(peak, held)
					live[allocs] = n
					return make([]byte, n), allocs, nil
				},
				Release: func(tok any) {
					held -= live[tok]
					delete(live, tok)
				}})
			f, err := r.Next()
			requireCode(t, err, frames.CodeFrameEncoding)
			require.LessOrEqual(t, len(live), 1, "every outgrown buffer was released")
			if sent == 0 && f.Token == nil {
				require.Zero(t, held)
				return
			}
			require.True(t, f.Direct)
			require.Contains(t, live, f.Token, "the failed frame hands back the buffer it holds")
			require.LessOrEqual(t, held, max(step, 2*sent), "buffer held for %d payload bytes", sent)
			// While growing, the old and the new buffer are both live for one copy.
			require.LessOrEqual(t, peak, max(step, 3*sent))
		})
	}
}

// TestReaderPerTypeMaximum: a known type's header that declares more than
// its layout allows is FRAME_TOO_LARGE before any payload byte is read,
// even when the frame size limit would allow it.
func TestReaderPerTypeMaximum(t *testing.T) {
	for _, tc := range []struct {
		typ frames.Type
		ok  uint64
	}{
		{frames.TypeAck, 8}, {frames.TypeDone, 8}, {frames.TypeWindow, 16},
		{frames.TypeError, 24 + frames.MaxReasonLenAccepted}, {frames.TypeHello, frames.MaxHelloSize},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			require.Equal(t, tc.ok, tc.typ.MaxPayload())
			// Only the header: the error must not wait for the payload.
			r := newReader(&chunkReader{data: frames.AppendHeader(nil, tc.typ, int(tc.ok)+1), err: io.ErrNoProgress}, 64, 1<<20)
			_, err := r.Next()
			requireCode(t, err, frames.CodeFrameTooLarge)
			require.Equal(t, 64, r.BufferSize())

			r = newReader(&chunkReader{data: frames.AppendHeader(nil, tc.typ, int(tc.ok))}, 64, 1<<20)
			_, err = r.Next()
			requireCode(t, err, frames.CodeFrameEncoding) // truncated, not too large
		})
	}
	require.Equal(t, uint64(frames.MaxSeq), frames.TypeBatch.MaxPayload())
	require.Equal(t, uint64(frames.MaxSeq), frames.Type(0x21).MaxPayload())
}

// TestReaderClamp: huge maxima are clamped.
func TestReaderClamp(t *testing.T) {
	r := newReader(nil, wire.DefaultBuffer, 1<<62)
	require.Equal(t, uint64(wire.MaxFrameSize), r.MaxFrameSize())
	r = newReader(nil, wire.DefaultBuffer, 1<<10)
	r.SetMaxFrameSize(1 << 62)
	require.Equal(t, uint64(wire.MaxFrameSize), r.MaxFrameSize())
}
