package wire_test

import (
	"encoding/hex"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// codec is package frames' format, built from its exported API as
// package quicrecord builds it.
type codec struct{}

func (codec) ParseHeader(b []byte, maxFrameSize uint64) (uint64, uint64, int, error) {
	t, length, n, err := frames.ParseHeader(b, maxFrameSize)
	return uint64(t), length, n, err
}

func (codec) Known(t uint64) bool { return frames.Type(t).Known() }

func (codec) Truncated(t uint64) error {
	return &frames.Error{Code: frames.CodeFrameEncoding, Frame: frames.Type(t), Reason: "truncated frame", Err: io.ErrUnexpectedEOF}
}

// newReader returns a Reader of frames with the given initial buffer.
func newReader(r io.Reader, initial int, maxFrameSize uint64) *wire.Reader {
	return wire.NewReader(r, initial, maxFrameSize, codec{})
}

// readFrame is frames.Reader.ReadFrame over a wire.Reader.
func readFrame(r *wire.Reader) (frames.Type, []byte, error) {
	f, err := r.Next()
	return frames.Type(f.Type), f.Payload, err
}

// unhex decodes a hex string; spaces are allowed for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	clean := make([]byte, 0, len(s))
	for i := range len(s) {
		if s[i] != ' ' {
			clean = append(clean, s[i])
		}
	}
	b, err := hex.DecodeString(string(clean))
	require.NoError(t, err)
	return b
}

// splitFrame returns the type and payload of the single frame in b.
func splitFrame(t testing.TB, b []byte) (frames.Type, []byte) {
	t.Helper()
	typ, payload, n, err := frames.ParseFrame(b, frames.MaxSeq)
	require.NoError(t, err)
	require.Equal(t, len(b), n, "bytes after the frame")
	return typ, payload
}

// requireCode asserts that err is an *frames.Error with the given code.
func requireCode(t testing.TB, err error, code frames.ErrorCode) {
	t.Helper()
	var fe *frames.Error
	require.ErrorAs(t, err, &fe, "error %v (%T) is not a *frames.Error", err, err)
	require.Equal(t, code, fe.Code, "error: %v", err)
}

// chunkReader returns data in chunks whose sizes cycle through sizes (a
// size of 0 counts as 1); no sizes means everything in one Read. It
// returns io.EOF once the data is consumed, and err instead when err is
// set.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
	err   error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = max(1, int(r.sizes[r.i%len(r.sizes)]))
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// loopReader returns data over and over without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// direct returns direct reads of BATCH payloads of at least minLen bytes
// with a first step larger than any test frame, so that alloc is called
// once per frame, with the payload length.
func direct(minLen int, alloc func(n int) ([]byte, any)) wire.Direct {
	return wire.Direct{
		Type:   uint64(frames.TypeBatch),
		MinLen: minLen,
		Step:   wire.MaxFrameSize,
		Alloc: func(n, _ int) ([]byte, any, error) {
			b, tok := alloc(n)
			return b, tok, nil
		},
	}
}
