package wire_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// fuzzMaxFrame is the Reader's maximum frame size in FuzzReader.
const fuzzMaxFrame = 4 << 10

// FuzzReader feeds arbitrary byte streams, in chunk sizes taken from
// sizes, to a Reader with a 4 KiB maximum frame size, with and without
// direct reads of BATCH payloads: both return the same frames and end
// the same way, no payload exceeds the maximum, unknown types come back
// without a payload, alloc is never asked for more than the maximum, and
// the buffer never exceeds the maximum plus a header.
func FuzzReader(f *testing.F) {
	var seed []byte
	seed = frames.AppendBatch(seed, frames.BatchHeader{FirstSeq: 1}, [][]byte{[]byte("hello"), []byte("world")})
	seed = frames.AppendAck(seed, 7)
	seed = append(frames.AppendHeader(seed, 0x21, 3), 1, 2, 3)
	seed = frames.AppendBatch(seed, frames.BatchHeader{FirstSeq: 3, HasAck: true, Ack: 7}, [][]byte{bytes.Repeat([]byte{9}, 3000)})
	seed = (&frames.ErrorFrame{Seq: 3, Code: 0x100, Reason: "no"}).Append(seed)
	f.Add(seed, []byte{})
	f.Add(seed, []byte{1})
	f.Add(seed, []byte{3, 7, 1})
	f.Add(seed[:len(seed)-1], []byte{2})                                   // EOF mid-frame
	f.Add(unhex(f, "21 4fff"), []byte{1})                                  // unknown frame of 4095 bytes, cut short
	f.Add(unhex(f, "02 5001 00"), []byte{})                                // frame above the maximum
	f.Add(append(unhex(f, "4040 5000"), make([]byte, 4096)...), []byte{9}) // reserved type, exactly the maximum
	f.Fuzz(func(t *testing.T, stream, sizes []byte) {
		type frame struct {
			typ     uint64
			payload []byte
		}
		read := func(useDirect bool) ([]frame, error) {
			r := newReader(&chunkReader{data: stream, sizes: sizes}, 64, fuzzMaxFrame)
			if useDirect {
				// A small first step: large payloads grow through
				// several buffers as their bytes arrive.
				r.SetDirect(wire.Direct{Type: uint64(frames.TypeBatch), MinLen: 32, Step: 16,
					Alloc: func(n, total int) ([]byte, any, error) {
						require.LessOrEqual(t, n, total)
						require.LessOrEqual(t, total, fuzzMaxFrame)
						return make([]byte, n), nil, nil
					}})
			}
			var all []frame
			for {
				f, err := r.Next()
				require.LessOrEqual(t, r.BufferSize(), fuzzMaxFrame+wire.MaxHeaderLen)
				if err != nil {
					return all, err
				}
				require.LessOrEqual(t, len(f.Payload), fuzzMaxFrame)
				known := frames.Type(f.Type).Known()
				require.Equal(t, known, f.Payload != nil, "known types have a payload, unknown ones none")
				all = append(all, frame{f.Type, bytes.Clone(f.Payload)})
			}
		}
		plain, perr := read(false)
		direct, derr := read(true)
		require.Equal(t, perr, derr, "direct reads ended differently")
		require.Equal(t, plain, direct, "direct reads returned other frames")
	})
}
