package frames_test

import (
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// unhex decodes a golden vector; spaces are allowed for readability.
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

// requireCode asserts that err is an *frames.Error with the given code and
// that errors.Is matches it by code.
func requireCode(t testing.TB, err error, code frames.ErrorCode) {
	t.Helper()
	require.Error(t, err)
	var fe *frames.Error
	require.ErrorAs(t, err, &fe, "error %v (%T) is not a *frames.Error", err, err)
	require.Equal(t, code, fe.Code, "error: %v", err)
	require.ErrorIs(t, err, &frames.Error{Code: code})
	require.NotEmpty(t, err.Error())
}

// sentinelFor returns the exported sentinel for a code, or nil.
func sentinelFor(code frames.ErrorCode) error {
	switch code {
	case frames.CodeFrameEncoding:
		return frames.ErrFrameEncoding
	case frames.CodeFrameTooLarge:
		return frames.ErrFrameTooLarge
	case frames.CodeRecordTooLarge:
		return frames.ErrRecordTooLarge
	case frames.CodeUnexpectedFrame:
		return frames.ErrUnexpectedFrame
	}
	return nil
}

// allocated returns the bytes f allocates, measured with
// runtime.MemStats.TotalAlloc around f; runtime.ReadMemStats runs outside
// the measured region. The count is global to the process, so a
// background allocation (fmt refilling a sync.Pool the GC emptied, a
// lazily built table) can land in it. When the count is above limit, f
// runs again, up to twice more, and the smallest count is returned: a real
// over-allocation happens on every run, the noise does not. f must be
// repeatable.
func allocated(limit uint64, f func()) uint64 {
	var least uint64
	for i := range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		n := after.TotalAlloc - before.TotalAlloc
		if i == 0 || n < least {
			least = n
		}
		if least <= limit {
			break
		}
	}
	return least
}

// chunkReader returns data in chunks whose sizes cycle through sizes (a
// size of 0 counts as 1, so a {0} or {1} reader goes one byte at a time);
// no sizes means everything in one Read. It returns io.EOF once the data
// is consumed, and err instead when err is set.
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

// strictReader hands out data and fails the test if the caller reads
// past it: a Reader must decide from a frame header alone that a frame is
// too large, without reading any of its payload.
type strictReader struct {
	t     testing.TB
	data  []byte
	chunk int // bytes per Read; 0 is all at once
}

func (r *strictReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.t.Errorf("Read called after the frame header; the payload must not be read")
		return 0, errors.New("read past the frame header")
	}
	if r.chunk > 0 && len(p) > r.chunk {
		p = p[:r.chunk]
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// loopReader returns data over and over without allocating, for
// steady-state Reader benchmarks and allocation tests.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}
