package quicrecord

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/compress"
)

// FuzzCompressedBatch sends one compressed BATCH built from fuzzed parts
// (codec, declared length, record count, section bytes) from a raw peer
// that negotiated compression to this library, whose record limit is 4
// KiB: the stream either delivers records whose bytes, lengths and count
// are those the section decodes to, or ends with one of the codes of
// PROTOCOL.md §4.3.1; it never panics. Sections are taken as they are or,
// when encode is set, encoded by the codec first, so that both valid and
// hostile inputs come up.
func FuzzCompressedBatch(f *testing.F) {
	lines := section(logLine(1), logLine(2))
	f.Add(uint8(compress.S2), uint32(0), uint8(2), true, lines)
	f.Add(uint8(compress.Zstd), uint32(0), uint8(2), true, lines)
	f.Add(uint8(compress.S2), uint32(10), uint8(2), true, lines)
	f.Add(uint8(compress.Zstd), uint32(1<<20), uint8(1), false, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x10})
	f.Add(uint8(7), uint32(5), uint8(1), false, []byte{1, 2, 3})
	f.Add(uint8(compress.S2), uint32(3), uint8(3), false, []byte{0x03, 0x08, 0, 0, 0})
	f.Fuzz(func(t *testing.T, codec uint8, rawLen uint32, count uint8, encode bool, sec []byte) {
		if len(sec) > 16<<10 || len(sec) == 0 || codec == uint8(compress.None) {
			return // codec 0 would make a plain BATCH: FuzzSession's ground
		}
		synctest.Test(t, func(t *testing.T) {
			runCompressedBatch(t, compress.Codec(codec), uint64(rawLen), int(count), encode, sec)
		})
	})
}

func runCompressedBatch(t *testing.T, codec compress.Codec, rawLen uint64, count int, encode bool, sec []byte) {
	z := sec
	if encode {
		z = compress.NewCodecs(1).Encode(nil, sec, codec)
		if len(z) == 0 {
			return
		}
		rawLen = uint64(len(sec))
	}
	count = max(count, 1)
	rawLen = max(rawLen, uint64(count))
	ctx := context.Background()
	cfg := &Config{Stream: StreamConfig{MaxRecordSize: 4096, MaxBatchBytes: 4096}}
	rawConn, qs := newSimQUIC(t, nil, cfg, nil, simRTT/2)
	conn, err := NewConn(qs, cfg)
	require.NoError(t, err)
	defer conn.Close()
	str, err := rawConn.OpenStreamSync(ctx)
	require.NoError(t, err)
	raw := newRawPeer(t, str)
	tc := hostileCase{compression: true}
	s := raw.handshake(ctx, conn, tc.hello())
	h := frames.BatchHeader{FirstSeq: 1, Count: count, Codec: uint64(codec), RawLen: rawLen}
	raw.write(append(frames.AppendBatchHeader(nil, h, len(z)), z...))

	// What the library must deliver if the batch is valid.
	want, decErr := compress.NewCodecs(1).Decompress(nil, z, codec, int(min(rawLen, 1<<16+1)), 1<<16)
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var got [][]byte
	n := 0
	for {
		r, err := s.Recv(rctx)
		if err != nil {
			var se *StreamError
			if errors.As(err, &se) {
				require.Contains(t, []ErrorCode{CodeCompression, CodeFrameEncoding, CodeFrameTooLarge, CodeRecordTooLarge, CodeWindowExceeded}, se.Code, "%v", err)
				require.False(t, se.Remote)
				require.Zero(t, n, "nothing of a bad batch is delivered")
			} else {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.NoError(t, decErr, "the batch was delivered, so it decodes")
				require.Equal(t, count, n)
				// The records the section decodes to (their length
				// varints need not be minimal).
				var recs [][]byte
				it := frames.NewRecordIter(want, 1)
				for _, rec, ok := it.Next(); ok; _, rec, ok = it.Next() {
					recs = append(recs, rec)
				}
				require.Equal(t, recs, got, "delivered records are the decoded section's")
			}
			return
		}
		got = append(got, bytes.Clone(r.Data))
		n++
	}
}
