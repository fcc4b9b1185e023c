package frames_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/compress"
)

// goldenHex holds the worked examples of docs/PROTOCOL.md ("Worked
// examples"), one whole frame each, in the order the document shows them.
// The document annotates every byte of these strings; the spaces split the
// same fields. Change both or neither.
var goldenHex = []struct{ name, hex string }{
	{"hello-opener", "01 31 01 02 01 80100000 80010000 4400 80400000 06 6f7264657273 412c 02 03 666d74 04 6a736f6e 04 7a6f6e65 03 657531 3f 02 cafe"},
	{"hello-reply", "01 14 01 02 01 80010000 80004000 4100 80100000 00 00 00"},
	{"batch", "02 0f 00 01 02 05 68656c6c6f 05 776f726c64"},
	{"batch-ack", "02 0b 01 412c 4064 02 00 03 616263"},
	{"ack", "03 02 43e8"},
	{"error-record", "04 0c 07 4100 08 626164206a736f6e"},
	{"error-stream", "04 0d 00 05 0a 312d3220767320332d34"},
	{"window", "05 06 4400 80100000"},
	{"done", "06 02 43e8"},
	{"reserved", "21 03 000102"},
	{"hello-codecs", "01 17 01 02 21 80010000 80004000 4100 80100000 00 00 00 03 01 06"},
	{"batch-s2", "02 2e 02 01 03 01 404e 4e 6419686f73743d6131206c6576656c3d696e666f206d73673d6f6b 0d1a0032150011003315000a"},
	{"batch-zstd", "02 36 02 01 03 02 404e 28b52ffd 204e 3d0100c40119686f73743d6131206c6576656c3d696e666f206d73673d6f6b3233031004ed49af6b6763"},
	{"hello-resume", "01 20 01 02 13 80010000 80004000 4100 80100000 00 00 00 01 02 6b31 02 02 4065 04 02 43e8"},
	{"hello-resume-early", "01 21 01 02 40d3 80010000 80004000 4100 80100000 00 00 00 01 02 6b31 02 02 4065 04 02 43e8"},
	{"batch-resume-early", "02 0e 00 4065 02 04 743d3231 04 743d3232"},
}

// goldenBatch and goldenUnknown describe the BATCH and unknown vectors.
type goldenBatch struct {
	header  frames.BatchHeader
	records [][]byte
}

type goldenUnknown struct {
	typ     frames.Type
	payload []byte
}

type goldenAck uint64

type goldenDone uint64

// goldenValues are the frames the vectors encode.
var goldenValues = map[string]any{
	"hello-opener": frames.Hello{
		MinVersion:    frames.Version1,
		MaxVersion:    frames.Version2,
		Features:      frames.FeaturePiggybackAck,
		MaxFrameSize:  1 << 20,
		MaxRecordSize: 64 << 10,
		WindowRecords: 1024,
		WindowBytes:   4 << 20,
		Scope:         "orders",
		DataID:        300,
		Metadata:      map[string]string{"zone": "eu1", "fmt": "json"},
		Extensions:    []frames.Extension{{ID: 0x3f, Value: []byte{0xca, 0xfe}}},
	},
	"hello-reply": frames.Hello{
		MinVersion:    frames.Version1,
		MaxVersion:    frames.Version2,
		Features:      frames.FeaturePiggybackAck,
		MaxFrameSize:  64 << 10,
		MaxRecordSize: 16 << 10,
		WindowRecords: 256,
		WindowBytes:   1 << 20,
	},
	"batch": goldenBatch{
		header:  frames.BatchHeader{FirstSeq: 1},
		records: [][]byte{[]byte("hello"), []byte("world")},
	},
	"batch-ack": goldenBatch{
		header:  frames.BatchHeader{HasAck: true, Ack: 300, FirstSeq: 100},
		records: [][]byte{{}, []byte("abc")},
	},
	"ack": goldenAck(1000),
	"error-record": frames.ErrorFrame{
		Seq:    7,
		Code:   frames.CodeApplicationMin,
		Reason: "bad json",
	},
	"error-stream": frames.ErrorFrame{
		Code:   frames.CodeVersionMismatch,
		Reason: "1-2 vs 3-4",
	},
	"window":   frames.WindowFrame{Records: 1024, Bytes: 1 << 20},
	"done":     goldenDone(1000),
	"reserved": goldenUnknown{typ: 0x21, payload: []byte{0, 1, 2}},
	"hello-codecs": frames.Hello{
		MinVersion:    frames.Version1,
		MaxVersion:    frames.Version2,
		Features:      frames.FeaturePiggybackAck | frames.FeatureCompression,
		MaxFrameSize:  64 << 10,
		MaxRecordSize: 16 << 10,
		WindowRecords: 256,
		WindowBytes:   1 << 20,
		Extensions:    []frames.Extension{{ID: frames.ExtCodecs, Value: []byte{0x06}}},
	},
	"hello-resume": frames.Hello{
		MinVersion:    frames.Version1,
		MaxVersion:    frames.Version2,
		Features:      frames.FeaturePiggybackAck | frames.FeatureResume | frames.FeatureResumeEpoch,
		MaxFrameSize:  64 << 10,
		MaxRecordSize: 16 << 10,
		WindowRecords: 256,
		WindowBytes:   1 << 20,
		Extensions: []frames.Extension{
			{ID: frames.ExtResumeKey, Value: []byte("k1")},
			{ID: frames.ExtResumePosition, Value: []byte{0x40, 0x65}},
			{ID: frames.ExtResumeEpoch, Value: []byte{0x43, 0xe8}},
		},
	},
	"hello-resume-early": frames.Hello{
		MinVersion: frames.Version1,
		MaxVersion: frames.Version2,
		Features: frames.FeaturePiggybackAck | frames.FeatureResume | frames.FeatureResumeEpoch |
			frames.FeatureEarlyRecords | frames.FeatureResumeEarly,
		MaxFrameSize:  64 << 10,
		MaxRecordSize: 16 << 10,
		WindowRecords: 256,
		WindowBytes:   1 << 20,
		Extensions: []frames.Extension{
			{ID: frames.ExtResumeKey, Value: []byte("k1")},
			{ID: frames.ExtResumePosition, Value: []byte{0x40, 0x65}},
			{ID: frames.ExtResumeEpoch, Value: []byte{0x43, 0xe8}},
		},
	},
	"batch-resume-early": goldenBatch{
		header:  frames.BatchHeader{FirstSeq: 101},
		records: [][]byte{[]byte("t=21"), []byte("t=22")},
	},
	"batch-s2":   goldenCompressed{codec: compress.S2, records: goldenTelemetry},
	"batch-zstd": goldenCompressed{codec: compress.Zstd, records: goldenTelemetry},
}

// goldenCompressed is a compressed BATCH vector: records 1..3 compressed
// with codec.
type goldenCompressed struct {
	codec   compress.Codec
	records [][]byte
}

var goldenTelemetry = [][]byte{
	[]byte("host=a1 level=info msg=ok"),
	[]byte("host=a2 level=info msg=ok"),
	[]byte("host=a3 level=info msg=ok"),
}

// checkGoldenCompressed checks a compressed BATCH vector: the codec's
// output for the encoded records is the vector's section, the header
// round-trips, and the section decodes to records that ParseRecords
// validates.
func checkGoldenCompressed(t *testing.T, v goldenCompressed, want, payload []byte) {
	var section []byte
	for _, r := range v.records {
		section = frames.AppendRecord(section, r)
	}
	codecs := compress.NewCodecs(1)
	defer codecs.Close()
	z := codecs.Encode(nil, section, v.codec)
	h := frames.BatchHeader{FirstSeq: 1, Count: len(v.records), Codec: uint64(v.codec), RawLen: uint64(len(section))}
	require.True(t, h.Compressed())
	require.Equal(t, want, append(frames.AppendBatchHeader(nil, h, len(z)), z...))
	require.Equal(t, len(want), frames.BatchHeaderLen(h, len(z))+len(z))

	got, n, err := frames.ParseBatch(payload, 1<<10)
	require.NoError(t, err)
	require.Equal(t, len(payload), n)
	require.Equal(t, h, got.BatchHeader)
	require.Equal(t, z, got.Records)
	require.Zero(t, got.DataBytes)
	require.Equal(t, want, got.Append(nil))
	require.Equal(t, len(want), got.Len())

	raw, err := codecs.Decompress(nil, got.Records, compress.Codec(got.Codec), int(got.RawLen), 1<<10)
	require.NoError(t, err)
	require.Equal(t, section, raw)
	data, err := frames.ParseRecords(raw, got.Count, 1<<10)
	require.NoError(t, err)
	var recs [][]byte
	it := frames.NewRecordIter(raw, got.FirstSeq)
	for _, rec, ok := it.Next(); ok; _, rec, ok = it.Next() {
		recs = append(recs, rec)
	}
	require.Equal(t, v.records, recs)
	require.Equal(t, 3*25, data)
}

func TestGolden(t *testing.T) {
	require.Len(t, goldenValues, len(goldenHex))
	for _, g := range goldenHex {
		t.Run(g.name, func(t *testing.T) {
			want := unhex(t, g.hex)
			typ, payload := splitFrame(t, want)
			switch v := goldenValues[g.name].(type) {
			case frames.Hello:
				require.Equal(t, frames.TypeHello, typ)
				require.Equal(t, want, v.Append(nil))
				require.Equal(t, len(want), v.Len())
				got, n, err := frames.ParseHello(payload)
				require.NoError(t, err)
				require.Equal(t, len(payload), n)
				require.Equal(t, v, got)
			case goldenBatch:
				require.Equal(t, frames.TypeBatch, typ)
				require.Equal(t, want, frames.AppendBatch(nil, v.header, v.records))
				require.Equal(t, len(want), frames.BatchLen(v.header, v.records))

				// The same frame, built from pre-encoded records.
				var recs []byte
				for _, r := range v.records {
					recs = frames.AppendRecord(recs, r)
				}
				h := v.header
				h.Count = len(v.records)
				require.Equal(t, want, append(frames.AppendBatchHeader(nil, h, len(recs)), recs...))
				require.Equal(t, len(want), frames.BatchHeaderLen(h, len(recs))+len(recs))

				got, n, err := frames.ParseBatch(payload, 1<<10)
				require.NoError(t, err)
				require.Equal(t, len(payload), n)
				require.Equal(t, h, got.BatchHeader)
				require.Equal(t, recs, got.Records)
				require.Equal(t, want, got.Append(nil))
				require.Equal(t, len(want), got.Len())
				require.Equal(t, h.FirstSeq+uint64(h.Count)-1, got.LastSeq())
				var seqs []uint64
				var data [][]byte
				var total int
				for seq, rec := range got.All() {
					seqs = append(seqs, seq)
					data = append(data, rec)
					total += len(rec)
				}
				require.Equal(t, v.records, data)
				require.Equal(t, total, got.DataBytes)
				for i, seq := range seqs {
					require.Equal(t, h.FirstSeq+uint64(i), seq)
				}
			case goldenCompressed:
				require.Equal(t, frames.TypeBatch, typ)
				checkGoldenCompressed(t, v, want, payload)
			case goldenAck:
				require.Equal(t, frames.TypeAck, typ)
				require.Equal(t, want, frames.AppendAck(nil, uint64(v)))
				require.Equal(t, len(want), frames.AckLen(uint64(v)))
				seq, n, err := frames.ParseAck(payload)
				require.NoError(t, err)
				require.Equal(t, len(payload), n)
				require.Equal(t, uint64(v), seq)
			case goldenDone:
				require.Equal(t, frames.TypeDone, typ)
				require.Equal(t, want, frames.AppendDone(nil, uint64(v)))
				require.Equal(t, len(want), frames.DoneLen(uint64(v)))
				last, n, err := frames.ParseDone(payload)
				require.NoError(t, err)
				require.Equal(t, len(payload), n)
				require.Equal(t, uint64(v), last)
			case frames.ErrorFrame:
				require.Equal(t, frames.TypeError, typ)
				require.Equal(t, want, v.Append(nil))
				require.Equal(t, len(want), v.Len())
				got, n, err := frames.ParseError(payload)
				require.NoError(t, err)
				require.Equal(t, len(payload), n)
				require.Equal(t, v, got)
			case frames.WindowFrame:
				require.Equal(t, frames.TypeWindow, typ)
				require.Equal(t, want, v.Append(nil))
				require.Equal(t, len(want), v.Len())
				got, n, err := frames.ParseWindow(payload)
				require.NoError(t, err)
				require.Equal(t, len(payload), n)
				require.Equal(t, v, got)
			case goldenUnknown:
				require.Equal(t, v.typ, typ)
				require.False(t, typ.Known())
				require.True(t, typ.IsReserved())
				require.Equal(t, want, append(frames.AppendHeader(nil, v.typ, len(v.payload)), v.payload...))
				require.Equal(t, len(want)-len(v.payload), frames.HeaderLen(v.typ, len(v.payload)))
				require.Equal(t, v.payload, payload)
			default:
				t.Fatalf("no value for golden vector %q", g.name)
			}
		})
	}
}

// TestGoldenStream reads all vectors back to back through a Reader, whole
// and one byte at a time: known frames come back with their payload, the
// reserved one is skipped with a nil payload, then io.EOF.
func TestGoldenStream(t *testing.T) {
	var stream []byte
	for _, g := range goldenHex {
		stream = append(stream, unhex(t, g.hex)...)
	}
	for _, sizes := range [][]byte{nil, {1}, {2, 5, 3}} {
		r := frames.NewReader(&chunkReader{data: stream, sizes: sizes}, 1<<10)
		for _, g := range goldenHex {
			wantType, wantPayload := splitFrame(t, unhex(t, g.hex))
			typ, payload, err := r.ReadFrame()
			require.NoError(t, err, g.name)
			require.Equal(t, wantType, typ, g.name)
			if typ.Known() {
				require.Equal(t, wantPayload, payload, g.name)
			} else {
				require.Nil(t, payload, g.name)
			}
		}
		_, _, err := r.ReadFrame()
		require.ErrorIs(t, err, io.EOF)
		require.Zero(t, r.Buffered())
	}
}

// TestGoldenInProtocolDoc keeps docs/PROTOCOL.md and goldenHex in step:
// every vector appears in the worked examples, spaced the same way.
func TestGoldenInProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "PROTOCOL.md"))
	require.NoError(t, err)
	for _, g := range goldenHex {
		require.Contains(t, string(doc), "`"+g.hex+"`", "golden vector %q is not in docs/PROTOCOL.md", g.name)
	}
}

func TestTypeNames(t *testing.T) {
	for _, tc := range []struct {
		typ      frames.Type
		name     string
		known    bool
		reserved bool
	}{
		{0x00, "UNKNOWN(0x0)", false, false},
		{frames.TypeHello, "HELLO", true, false},
		{frames.TypeBatch, "BATCH", true, false},
		{frames.TypeAck, "ACK", true, false},
		{frames.TypeError, "ERROR", true, false},
		{frames.TypeWindow, "WINDOW", true, false},
		{frames.TypeDone, "DONE", true, false},
		{0x07, "UNKNOWN(0x7)", false, false},
		{0x20, "UNKNOWN(0x20)", false, false},
		{0x21, "UNKNOWN(0x21)", false, true},
		{0x40, "UNKNOWN(0x40)", false, true},
		{0x5f, "UNKNOWN(0x5f)", false, true},
		{0x1f*1000 + 0x21, "UNKNOWN(0x7939)", false, true},
		{0x1f*1000 + 0x22, "UNKNOWN(0x793a)", false, false},
	} {
		require.Equal(t, tc.name, tc.typ.String())
		require.Equal(t, tc.known, tc.typ.Known(), tc.name)
		require.Equal(t, tc.reserved, tc.typ.IsReserved(), tc.name)
	}
}

func TestErrorCodeNames(t *testing.T) {
	for _, tc := range []struct {
		code frames.ErrorCode
		name string
	}{
		{frames.CodeNoError, "NO_ERROR"},
		{frames.CodeInternal, "INTERNAL"},
		{frames.CodeProtocolViolation, "PROTOCOL_VIOLATION"},
		{frames.CodeFrameEncoding, "FRAME_ENCODING"},
		{frames.CodeFrameTooLarge, "FRAME_TOO_LARGE"},
		{frames.CodeVersionMismatch, "VERSION_MISMATCH"},
		{frames.CodeRefused, "REFUSED"},
		{frames.CodeHelloTimeout, "HELLO_TIMEOUT"},
		{frames.CodeAckOutOfRange, "ACK_OUT_OF_RANGE"},
		{frames.CodeAckRegression, "ACK_REGRESSION"},
		{frames.CodeSequenceGap, "SEQUENCE_GAP"},
		{frames.CodeRecordTooLarge, "RECORD_TOO_LARGE"},
		{frames.CodeUnexpectedFrame, "UNEXPECTED_FRAME"},
		{frames.CodeCancelled, "CANCELLED"},
		{frames.CodeResumeUnknown, "RESUME_UNKNOWN"},
		{frames.CodeWindowExceeded, "WINDOW_EXCEEDED"},
		{frames.CodeRejected, "REJECTED"},
		{frames.CodeCompression, "COMPRESSION_ERROR"},
		{frames.CodeSuperseded, "SUPERSEDED"},
		{0x13, "0x13"},
		{0xff, "0xff"},
		{frames.CodeApplicationMin, "APPLICATION(0x100)"},
		{0xbeef, "APPLICATION(0xbeef)"},
	} {
		require.Equal(t, tc.name, tc.code.String())
	}
}

// TestReservedValues: the reserved (grease) values of each registry are
// the ones PROTOCOL.md §11.4 lists, none of them is assigned, and they
// print as unknown values.
func TestReservedValues(t *testing.T) {
	for _, id := range []uint64{0x21, 0x40, 0x5f, 0x1f*100 + 0x21} {
		require.True(t, frames.IsReservedExtension(id), "%#x", id)
	}
	for _, id := range []uint64{0, frames.ExtResumeKey, frames.ExtResumePosition, frames.ExtResumeEpoch, 0x22, 0x3f00} {
		require.False(t, frames.IsReservedExtension(id), "%#x", id)
	}
	var codes []frames.ErrorCode
	for c := frames.ErrorCode(0); c < 0x200; c++ {
		if c.IsReserved() {
			codes = append(codes, c)
			require.Equal(t, fmt.Sprintf("%#x", uint64(c)), c.String(), "a reserved code has no name")
		}
	}
	require.Equal(t, []frames.ErrorCode{0x21, 0x40, 0x5f, 0x7e, 0x9d, 0xbc, 0xdb, 0xfa}, codes)
	require.Equal(t, frames.Features(0x3f<<56), frames.ReservedFeatures)
	for f := frames.Features(1); f <= frames.FeatureResumeEpoch; f <<= 1 {
		require.Zero(t, f&frames.ReservedFeatures, "an assigned feature is reserved")
	}
	require.Equal(t, "piggyback-ack|0x100000000000000", (frames.FeaturePiggybackAck | 1<<56).String())
}

func TestFeatures(t *testing.T) {
	for _, tc := range []struct {
		f    frames.Features
		name string
	}{
		{0, "none"},
		{frames.FeaturePiggybackAck, "piggyback-ack"},
		{frames.FeatureResume, "resume"},
		{frames.FeaturePiggybackAck | frames.FeatureResume, "piggyback-ack|resume"},
		{frames.FeatureHalfClose, "half-close"},
		{frames.FeatureEarlyRecords, "early-records"},
		{frames.FeatureWindowUpdate, "window-update"},
		{frames.FeaturePiggybackAck | frames.FeatureWindowUpdate | frames.FeatureHalfClose, "piggyback-ack|window-update|half-close"},
		{frames.FeaturePiggybackAck | frames.FeatureHalfClose | 0x100, "piggyback-ack|half-close|0x100"},
		{frames.FeaturePiggybackAck | 0x300, "piggyback-ack|0x300"},
		{frames.FeatureResume | frames.FeatureEarlyRecords | frames.FeatureResumeEarly, "resume|early-records|resume-early"},
		{frames.FeatureCompression | frames.FeatureEarlyRecords, "compression|early-records"},
		{frames.FeatureCompression, "compression"},
		{frames.FeatureHalfClose | frames.FeatureCompression | 0x100, "half-close|compression|0x100"},
		{frames.FeaturePiggybackAck | frames.FeatureHalfClose | frames.FeatureResumeEpoch, "piggyback-ack|half-close|resume-epoch"},
		{0x100, "0x100"},
	} {
		require.Equal(t, tc.name, tc.f.String())
	}
	f := frames.FeaturePiggybackAck | frames.FeatureResume
	require.True(t, f.Has(frames.FeaturePiggybackAck))
	require.True(t, f.Has(f))
	require.False(t, frames.FeaturePiggybackAck.Has(f))
}

func TestErrorMatching(t *testing.T) {
	err := error(&frames.Error{Code: frames.CodeFrameEncoding, Frame: frames.TypeBatch, Reason: "truncated record", Err: io.ErrUnexpectedEOF})
	require.ErrorIs(t, err, frames.ErrFrameEncoding)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NotErrorIs(t, err, frames.ErrFrameTooLarge)
	require.Equal(t, "frames: BATCH: FRAME_ENCODING: truncated record: unexpected EOF", err.Error())
	err = &frames.Error{Code: frames.CodeFrameTooLarge, Reason: "frame of 9 bytes exceeds the limit of 8"}
	require.Equal(t, "frames: FRAME_TOO_LARGE: frame of 9 bytes exceeds the limit of 8", err.Error())
	require.ErrorIs(t, err, frames.ErrFrameTooLarge)
	require.NotErrorIs(t, err, io.EOF)
}

func TestHelloExtension(t *testing.T) {
	h := goldenValues["hello-opener"].(frames.Hello)
	v, ok := h.Extension(0x3f)
	require.True(t, ok)
	require.Equal(t, []byte{0xca, 0xfe}, v)
	_, ok = h.Extension(frames.ExtResumeKey)
	require.False(t, ok)
}

// TestErrorReasonTruncation: Append cuts a Reason longer than MaxReasonLen,
// never in the middle of a UTF-8 sequence, and Len agrees; TruncateReason
// makes the same cut.
func TestErrorReasonTruncation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string
		want   int
	}{
		{"ascii exact", string(make([]byte, frames.MaxReasonLen)), frames.MaxReasonLen},
		{"ascii over", string(make([]byte, frames.MaxReasonLen+5)), frames.MaxReasonLen},
		{"rune across the limit", string(make([]byte, frames.MaxReasonLen-1)) + "€", frames.MaxReasonLen - 1},
		{"rune ending at the limit", string(make([]byte, frames.MaxReasonLen-3)) + "€€", frames.MaxReasonLen},
		// Not text: the cut backs off at most three bytes, to before the
		// last byte that could start a sequence.
		{"invalid utf-8", string(make([]byte, frames.MaxReasonLen-2)) + "\x80\x80\x80\x80\x80", frames.MaxReasonLen - 3},
		{"no sequence start", string(make([]byte, frames.MaxReasonLen-8)) + "\x80\x80\x80\x80\x80\x80\x80\x80\x80", frames.MaxReasonLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := frames.ErrorFrame{Seq: 1, Code: frames.CodeRejected, Reason: tc.reason}
			b := f.Append(nil)
			require.Len(t, b, f.Len())
			_, payload := splitFrame(t, b)
			got, _, err := frames.ParseError(payload)
			require.NoError(t, err)
			require.Len(t, got.Reason, tc.want)
			require.Equal(t, tc.reason[:tc.want], got.Reason)
			require.Equal(t, got.Reason, frames.TruncateReason(tc.reason))
		})
	}
}
