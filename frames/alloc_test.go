package frames_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// TestZeroAllocs pins the hot paths at zero allocations: what a sender
// does per batch and ack, and what a receiver does per frame once its
// Reader's buffer has grown.
func TestZeroAllocs(t *testing.T) {
	records := benchRecords(64, 256)
	h := frames.BatchHeader{HasAck: true, Ack: 1 << 20, FirstSeq: 1 << 30}
	frame := frames.AppendBatch(nil, h, records)
	_, payload := splitFrame(t, frame)

	var preEncoded []byte
	for _, r := range records {
		preEncoded = frames.AppendRecord(preEncoded, r)
	}
	hc := h
	hc.Count = len(records)

	buf := make([]byte, 0, 2*len(frame))

	// A compressed batch's header before an opaque section.
	zh := hc
	zh.Codec, zh.RawLen = 1, uint64(len(preEncoded))
	zFrame := append(frames.AppendBatchHeader(nil, zh, 3), 0xaa, 0xbb, 0xcc)
	_, zPayload := splitFrame(t, zFrame)

	// A stream of batches with an ack and an unknown frame in between,
	// one of them larger than the Reader's initial buffer.
	var stream []byte
	stream = append(stream, frame...)
	stream = frames.AppendAck(stream, 7)
	stream = append(frames.AppendHeader(stream, 0x21, 3), 1, 2, 3)
	stream = frames.AppendBatch(stream, frames.BatchHeader{FirstSeq: 1}, records[:3])
	r := frames.NewReader(&loopReader{data: stream}, 64<<10)
	for range 8 {
		_, _, err := r.ReadFrame()
		require.NoError(t, err)
	}
	var sink int
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"ParseBatch+RecordIter", func() {
			b, _, err := frames.ParseBatch(payload, 1<<10)
			if err != nil {
				panic(err)
			}
			it := b.Iter()
			for seq, rec, ok := it.Next(); ok; seq, rec, ok = it.Next() {
				sink += int(seq) + len(rec)
			}
		}},
		{"ParseBatch+All", func() {
			b, _, err := frames.ParseBatch(payload, 1<<10)
			if err != nil {
				panic(err)
			}
			for seq, rec := range b.All() {
				sink += int(seq) + len(rec)
			}
		}},
		{"ParseBatch compressed+ParseRecords", func() {
			// The header of a compressed batch, then the check of its
			// decoded section (preEncoded stands for the decoder's output).
			b, _, err := frames.ParseBatch(zPayload, 1<<10)
			if err != nil {
				panic(err)
			}
			n, err := frames.ParseRecords(preEncoded, b.Count, 1<<10)
			if err != nil {
				panic(err)
			}
			sink += n
		}},
		{"NewRecordIter", func() {
			it := frames.NewRecordIter(preEncoded, 1)
			for _, rec, ok := it.Next(); ok; _, rec, ok = it.Next() {
				sink += len(rec)
			}
		}},
		{"AppendBatch", func() {
			buf = frames.AppendBatch(buf[:0], h, records)
		}},
		{"BatchLen", func() {
			sink += frames.BatchLen(h, records)
		}},
		{"AppendBatchHeader+AppendRecord", func() {
			buf = frames.AppendBatchHeader(buf[:0], hc, len(preEncoded))
			for _, rec := range records {
				buf = frames.AppendRecord(buf, rec)
			}
		}},
		{"Batch.Append", func() {
			b, _, err := frames.ParseBatch(payload, 1<<10)
			if err != nil {
				panic(err)
			}
			buf = b.Append(buf[:0])
		}},
		{"AppendDone+ParseDone", func() {
			buf = frames.AppendDone(buf[:0], 1<<40)
			seq, _, err := frames.ParseDone(buf[2:])
			if err != nil {
				panic(err)
			}
			sink += int(seq)
		}},
		{"AppendAck+ParseAck", func() {
			buf = frames.AppendAck(buf[:0], 1<<40)
			seq, _, err := frames.ParseAck(buf[2:])
			if err != nil {
				panic(err)
			}
			sink += int(seq)
		}},
		{"WindowFrame.Append+ParseWindow", func() {
			buf = frames.WindowFrame{Records: 1 << 20, Bytes: 1 << 40}.Append(buf[:0])
			w, _, err := frames.ParseWindow(buf[2:])
			if err != nil {
				panic(err)
			}
			sink += int(w.Records)
		}},
		{"ParseFrame", func() {
			_, p, _, err := frames.ParseFrame(frame, 64<<10)
			if err != nil {
				panic(err)
			}
			sink += len(p)
		}},
		{"Reader.ReadFrame+ParseBatch", func() {
			// One pass over the looped stream: 2 batches, an ack and
			// an unknown frame.
			for range 4 {
				typ, p, err := r.ReadFrame()
				if err != nil {
					panic(err)
				}
				if typ == frames.TypeBatch {
					b, _, err := frames.ParseBatch(p, 1<<10)
					if err != nil {
						panic(err)
					}
					it := b.Iter()
					for _, rec, ok := it.Next(); ok; _, rec, ok = it.Next() {
						sink += len(rec)
					}
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(100, tc.f))
		})
	}
	require.NotZero(t, sink)
}
