package frames_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/wire"
)

// maxErrAlloc bounds what a parser may allocate while rejecting input: the
// *Error and its formatted reason. Nothing may be sized from a length or
// count the input declares, and several cases declare 2^62-1.
const maxErrAlloc = 1 << 10

// maxHelloErrAlloc is the same bound for ParseHello, which has copied the
// fields it parsed before the one it rejects: at most MaxExtensions
// extension entries (a slice grown to 64*32 bytes, 4 KiB in all) or a map
// of a few metadata entries. It is still far below every declared size in
// the table.
const maxHelloErrAlloc = 8 << 10

// badCase is malformed input for one parser and the code it must give.
type badCase struct {
	name  string
	parse func(t testing.TB) error
	code  frames.ErrorCode
}

// Parse helpers for the table: each decodes the hex at run time (outside
// the allocation measurement) and returns the parser's error.
func header(h string, maxFrame uint64) func(testing.TB) error {
	return func(t testing.TB) error {
		b := unhex(t, h)
		return measured(t, maxErrAlloc, func() error {
			_, _, _, err := frames.ParseFrame(b, maxFrame)
			return err
		})
	}
}

func batch(h string, maxRecord uint64) func(testing.TB) error {
	return rawBatch(func(t testing.TB) []byte { return unhex(t, h) }, maxRecord)
}

func rawBatch(payload func(testing.TB) []byte, maxRecord uint64) func(testing.TB) error {
	return func(t testing.TB) error {
		b := payload(t)
		return measured(t, maxErrAlloc, func() error {
			_, _, err := frames.ParseBatch(b, maxRecord)
			return err
		})
	}
}

func ack(h string) func(testing.TB) error {
	return func(t testing.TB) error {
		b := unhex(t, h)
		return measured(t, maxErrAlloc, func() error {
			_, _, err := frames.ParseAck(b)
			return err
		})
	}
}

func done(h string) func(testing.TB) error {
	return func(t testing.TB) error {
		b := unhex(t, h)
		return measured(t, maxErrAlloc, func() error {
			_, _, err := frames.ParseDone(b)
			return err
		})
	}
}

func errorFrame(payload func(testing.TB) []byte) func(testing.TB) error {
	return func(t testing.TB) error {
		b := payload(t)
		return measured(t, maxErrAlloc, func() error {
			_, _, err := frames.ParseError(b)
			return err
		})
	}
}

func hello(payload func(testing.TB) []byte) func(testing.TB) error {
	return func(t testing.TB) error {
		b := payload(t)
		return measured(t, maxHelloErrAlloc, func() error {
			_, _, err := frames.ParseHello(b)
			return err
		})
	}
}

// measured runs a parse and, if it fails, fails the test when it
// allocated more than limit bytes. A successful parse may allocate what it
// copies.
func measured(t testing.TB, limit uint64, parse func() error) error {
	t.Helper()
	var err error
	alloc := allocated(limit, func() { err = parse() })
	if err != nil {
		require.LessOrEqual(t, alloc, limit, "bytes allocated while rejecting the input")
	}
	return err
}

func hexPayload(h string) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return unhex(t, h) }
}

// validHello is the golden HELLO reply, the base of the HELLO cases.
func validHello() frames.Hello {
	return goldenValues["hello-reply"].(frames.Hello)
}

// helloPayload encodes validHello changed by mod and returns the payload.
// Append does not validate, so mod may break any rule.
func helloPayload(mod func(h *frames.Hello)) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		h := validHello()
		mod(&h)
		_, payload := splitFrame(t, h.Append(nil))
		return payload
	}
}

// rawHello returns the fixed fields of validHello, an empty scope and data
// ID, then the metadata count and whatever raw bytes follow.
func rawHello(count uint64, rest string) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		b := unhex(t, "01 02 01 80010000 80004000 4100 80100000 00 00")
		b = quicvarint.Append(b, count)
		return append(b, unhex(t, rest)...)
	}
}

func metadata(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprint("k", i)] = "v"
	}
	return m
}

func extensions(n, size int) []frames.Extension {
	e := make([]frames.Extension, n)
	for i := range e {
		e[i] = frames.Extension{ID: uint64(0x40 + i), Value: make([]byte, size)}
	}
	return e
}

// helloOfSize returns a valid HELLO payload of exactly size bytes, padded
// with extensions.
func helloOfSize(size int) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		h := validHello()
		_, base := splitFrame(t, h.Append(nil))
		for id := uint64(0x40); ; id++ {
			// An extension with id 0x40.. (2 bytes) and a value of up
			// to 4 KiB (length 2 bytes) costs 4 bytes plus the value.
			left := size - len(base)
			if left == 0 {
				return base
			}
			require.GreaterOrEqual(t, left, 4, "cannot pad to %d", size)
			v := min(frames.MaxExtensionLen, left-4)
			if v < 64 {
				// One-byte length: 3 bytes of overhead.
				v = left - 3
			}
			base = quicvarint.Append(base, id)
			base = quicvarint.Append(base, uint64(v))
			base = append(base, make([]byte, v)...)
		}
	}
}

func errorPayload(seq uint64, code frames.ErrorCode, reasonLen int) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		b := quicvarint.Append(nil, seq)
		b = quicvarint.Append(b, uint64(code))
		b = quicvarint.Append(b, uint64(reasonLen))
		return append(b, strings.Repeat("x", reasonLen)...)
	}
}

var badCases = []badCase{
	// Frame header (ParseFrame with a 1 KiB maximum).
	{"header/empty", header("", 1<<10), frames.CodeFrameEncoding},
	{"header/type truncated", header("40", 1<<10), frames.CodeFrameEncoding},
	{"header/8-byte type truncated", header("c0 00 00 00 00 00 00", 1<<10), frames.CodeFrameEncoding},
	{"header/length missing", header("02", 1<<10), frames.CodeFrameEncoding},
	{"header/length truncated", header("02 80 00 01", 1<<10), frames.CodeFrameEncoding},
	{"header/payload truncated", header("02 05 00 01 01 00", 1<<10), frames.CodeFrameEncoding},
	{"header/length above max", header("02 44 01", 1<<10), frames.CodeFrameTooLarge},
	{"header/8-byte length 2^62-1", header("02 ffffffffffffffff", 1<<10), frames.CodeFrameTooLarge},
	{"header/unknown type above max", header("21 44 01", 1<<10), frames.CodeFrameTooLarge},
	{"header/hello above max", header("01 4401 00", 1<<10), frames.CodeFrameTooLarge},
	// Per-type maxima (Type.MaxPayload), from the header alone, under a
	// frame size limit that would allow them.
	{"header/ack of 9 bytes", header("03 09", 1<<20), frames.CodeFrameTooLarge},
	{"header/ack declaring 1 MiB", header("03 80100000", 1<<20), frames.CodeFrameTooLarge},
	{"header/done of 9 bytes", header("06 09", 1<<20), frames.CodeFrameTooLarge},
	{"header/window of 17 bytes", header("05 11", 1<<20), frames.CodeFrameTooLarge},
	{"header/error of 1049 bytes", header("04 4419", 1<<20), frames.CodeFrameTooLarge},
	{"header/hello of 16385 bytes", header("01 80004001", 1<<20), frames.CodeFrameTooLarge},

	// BATCH payloads (records of at most 1 KiB unless stated).
	{"batch/empty payload", batch("", 1<<10), frames.CodeFrameEncoding},
	{"batch/flags truncated", batch("40", 1<<10), frames.CodeFrameEncoding},
	{"batch/unknown flag 0x02", batch("02 01 01 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/unknown flags 0x03", batch("03 05 01 01 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/unknown flag in 8-byte varint", batch("c000000000000100 01 01 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/ack missing", batch("01", 1<<10), frames.CodeFrameEncoding},
	{"batch/ack truncated", batch("01 80 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/first seq missing", batch("00", 1<<10), frames.CodeFrameEncoding},
	{"batch/first seq truncated", batch("00 c0 00 00 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/first seq 0", batch("00 00 01 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/count missing", batch("00 01", 1<<10), frames.CodeFrameEncoding},
	{"batch/count 0", batch("00 01 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/count above records present", batch("00 01 03 05 68656c6c6f 05 776f726c64", 1<<10), frames.CodeFrameEncoding},
	{"batch/count 2^62-1", batch("00 01 ffffffffffffffff 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/last seq above 2^62-1", batch("00 ffffffffffffffff 02 00 00", 1<<10), frames.CodeFrameEncoding},
	{"batch/last seq far above 2^62-1", batch("00 c000000100000000 ffffffffffffffff", 1<<10), frames.CodeFrameEncoding},
	{"batch/record length truncated", batch("00 01 01 40", 1<<10), frames.CodeFrameEncoding},
	{"batch/record overruns frame", batch("00 01 01 06 68656c6c6f", 1<<10), frames.CodeFrameEncoding},
	{"batch/second record overruns frame", batch("00 01 02 01 61 02 62", 1<<10), frames.CodeFrameEncoding},
	{"batch/8-byte record length overruns frame", batch("00 01 01 ffffffffffffffff 00", frames.MaxSeq), frames.CodeFrameEncoding},
	{"batch/record above max", batch("00 01 01 05 68656c6c6f", 4), frames.CodeRecordTooLarge},
	{"batch/8-byte record length above max", batch("00 01 01 ffffffffffffffff 00", 1<<10), frames.CodeRecordTooLarge},
	{"batch/record above max, not present", batch("00 01 01 4401", 1<<10), frames.CodeRecordTooLarge},
	{"batch/trailing byte", batch("00 01 01 00 ff", 1<<10), frames.CodeFrameEncoding},
	{"batch/trailing record", batch("00 01 01 01 61 01 62", 1<<10), frames.CodeFrameEncoding},
	{"batch/ack and trailing byte", batch("01 05 01 01 00 00", 1<<10), frames.CodeFrameEncoding},

	// ACK payloads.
	{"ack/empty", ack(""), frames.CodeFrameEncoding},
	{"ack/truncated", ack("43"), frames.CodeFrameEncoding},
	{"ack/8-byte truncated", ack("c0 00 00 00 00 00 00"), frames.CodeFrameEncoding},
	{"ack/trailing byte", ack("05 00"), frames.CodeFrameEncoding},
	{"done/empty", done(""), frames.CodeFrameEncoding},
	{"done/truncated", done("43"), frames.CodeFrameEncoding},
	{"done/8-byte truncated", done("c0 00 00 00 00 00 00"), frames.CodeFrameEncoding},
	{"done/trailing byte", done("05 00"), frames.CodeFrameEncoding},

	// ERROR payloads.
	{"error/empty", errorFrame(hexPayload("")), frames.CodeFrameEncoding},
	{"error/code missing", errorFrame(hexPayload("07")), frames.CodeFrameEncoding},
	{"error/code truncated", errorFrame(hexPayload("07 41")), frames.CodeFrameEncoding},
	{"error/reason length missing", errorFrame(hexPayload("07 10")), frames.CodeFrameEncoding},
	{"error/reason truncated", errorFrame(hexPayload("07 10 05 6162")), frames.CodeFrameEncoding},
	{"error/reason of 1025 bytes", errorFrame(errorPayload(0, frames.CodeInternal, frames.MaxReasonLenAccepted+1)), frames.CodeFrameEncoding},
	{"error/reason length 2^62-1", errorFrame(hexPayload("07 10 ffffffffffffffff 00")), frames.CodeFrameEncoding},
	{"error/trailing byte", errorFrame(hexPayload("07 10 00 00")), frames.CodeFrameEncoding},

	// HELLO payloads.
	{"hello/empty", hello(hexPayload("")), frames.CodeFrameEncoding},
	{"hello/above MaxHelloSize", hello(helloOfSize(frames.MaxHelloSize + 1)), frames.CodeFrameTooLarge},
	{"hello/min version 0", hello(helloPayload(func(h *frames.Hello) { h.MinVersion = 0 })), frames.CodeFrameEncoding},
	{"hello/max version below min", hello(helloPayload(func(h *frames.Hello) { h.MinVersion, h.MaxVersion = 3, 2 })), frames.CodeFrameEncoding},
	{"hello/versions 0-0", hello(helloPayload(func(h *frames.Hello) { h.MinVersion, h.MaxVersion = 0, 0 })), frames.CodeFrameEncoding},
	{"hello/max frame size below minimum", hello(helloPayload(func(h *frames.Hello) { h.MaxFrameSize = frames.MinFrameSize - 1 })), frames.CodeFrameEncoding},
	{"hello/max record size 0", hello(helloPayload(func(h *frames.Hello) { h.MaxRecordSize = 0 })), frames.CodeFrameEncoding},
	{"hello/window records 0", hello(helloPayload(func(h *frames.Hello) { h.WindowRecords = 0 })), frames.CodeFrameEncoding},
	{"hello/window bytes 0", hello(helloPayload(func(h *frames.Hello) { h.WindowBytes = 0 })), frames.CodeFrameEncoding},
	{"hello/scope of 1025 bytes", hello(helloPayload(func(h *frames.Hello) { h.Scope = strings.Repeat("s", frames.MaxScopeLen+1) })), frames.CodeFrameEncoding},
	{"hello/scope length 2^62-1", hello(hexPayload("01 02 01 80010000 80004000 4100 80100000 ffffffffffffffff")), frames.CodeFrameEncoding},
	{"hello/duplicate metadata key", hello(rawHello(2, "01 61 01 31 01 61 01 32")), frames.CodeFrameEncoding},
	{"hello/65 metadata entries", hello(helloPayload(func(h *frames.Hello) { h.Metadata = metadata(frames.MaxMetadataEntries + 1) })), frames.CodeFrameEncoding},
	{"hello/metadata count 2^62-1", hello(rawHello(frames.MaxSeq, "01 61 01 31")), frames.CodeFrameEncoding},
	{"hello/metadata count above entries present", hello(rawHello(5, "01 61 01 31 01 62 01 32")), frames.CodeFrameEncoding},
	{"hello/metadata value missing", hello(rawHello(1, "01 61")), frames.CodeFrameEncoding},
	{"hello/metadata key of 257 bytes", hello(helloPayload(func(h *frames.Hello) {
		h.Metadata = map[string]string{strings.Repeat("k", frames.MaxMetadataKeyLen+1): ""}
	})), frames.CodeFrameEncoding},
	{"hello/metadata value of 4097 bytes", hello(helloPayload(func(h *frames.Hello) {
		h.Metadata = map[string]string{"k": strings.Repeat("v", frames.MaxMetadataValueLen+1)}
	})), frames.CodeFrameEncoding},
	{"hello/extension of 4097 bytes", hello(helloPayload(func(h *frames.Hello) { h.Extensions = extensions(1, frames.MaxExtensionLen+1) })), frames.CodeFrameEncoding},
	{"hello/extension length 2^62-1", hello(rawHello(0, "3f ffffffffffffffff 00")), frames.CodeFrameEncoding},
	{"hello/extension value missing", hello(rawHello(0, "3f")), frames.CodeFrameEncoding},
	{"hello/extension value truncated", hello(rawHello(0, "3f 03 0102")), frames.CodeFrameEncoding},
	{"hello/duplicate extension id", hello(rawHello(0, "3f 00 01 00 3f 01 ff")), frames.CodeFrameEncoding},
	{"hello/65 extensions", hello(helloPayload(func(h *frames.Hello) { h.Extensions = extensions(frames.MaxExtensions+1, 0) })), frames.CodeFrameEncoding},
}

func TestBadInput(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tc.parse(t) })
			requireCode(t, err, tc.code)
			require.ErrorIs(t, err, sentinelFor(tc.code))
		})
	}
}

// TestLimitsAccepted is the other side of the limits in TestBadInput:
// each value at its limit parses.
func TestLimitsAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(testing.TB) error
	}{
		{"batch/record of max size", batch("00 01 01 05 68656c6c6f", 5)},
		{"batch/empty record", batch("00 01 01 00", 0)},
		{"batch/last seq 2^62-1", batch("00 ffffffffffffffff 01 00", 1<<10)},
		{"batch/count as large as the records allow", batch("00 01 03 00 00 00", 1<<10)},
		{"batch/non-minimal varints", batch("4000 4001 c000000000000001 4000", 1<<10)},
		{"ack/2^62-1", ack("ffffffffffffffff")},
		{"ack/0", ack("00")},
		{"done/2^62-1", done("ffffffffffffffff")},
		{"done/0", done("00")},
		{"error/reason of MaxReasonLen bytes", errorFrame(errorPayload(0, frames.CodeInternal, frames.MaxReasonLen))},
		{"error/reason of 1024 bytes (an earlier revision's limit)", errorFrame(errorPayload(0, frames.CodeInternal, frames.MaxReasonLenAccepted))},
		{"hello/MaxHelloSize", hello(helloOfSize(frames.MaxHelloSize))},
		{"hello/min frame size", hello(helloPayload(func(h *frames.Hello) { h.MaxFrameSize = frames.MinFrameSize }))},
		{"hello/version 1 only", hello(helloPayload(func(h *frames.Hello) { h.MinVersion, h.MaxVersion = 1, 1 }))},
		{"hello/unknown future versions", hello(helloPayload(func(h *frames.Hello) { h.MinVersion, h.MaxVersion = 7, 1<<40 }))},
		{"hello/unknown feature bits", hello(helloPayload(func(h *frames.Hello) { h.Features = 1<<62 - 1 }))},
		{"hello/scope of 1024 bytes", hello(helloPayload(func(h *frames.Hello) { h.Scope = strings.Repeat("s", frames.MaxScopeLen) }))},
		{"hello/64 metadata entries", hello(helloPayload(func(h *frames.Hello) { h.Metadata = metadata(frames.MaxMetadataEntries) }))},
		{"hello/metadata key and value at limits", hello(helloPayload(func(h *frames.Hello) {
			h.Metadata = map[string]string{strings.Repeat("k", frames.MaxMetadataKeyLen): strings.Repeat("v", frames.MaxMetadataValueLen)}
		}))},
		{"hello/64 extensions", hello(helloPayload(func(h *frames.Hello) { h.Extensions = extensions(frames.MaxExtensions, 1) }))},
		{"hello/extension of 4096 bytes", hello(helloPayload(func(h *frames.Hello) { h.Extensions = extensions(1, frames.MaxExtensionLen) }))},
		{"hello/empty metadata key and value", hello(rawHello(1, "00 00"))},
		{"hello/unsorted metadata", hello(rawHello(2, "01 62 00 01 61 00"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(t)
			require.NoError(t, err)
		})
	}
}

// TestTruncatedPayload cuts every golden payload at every byte. Each
// proper prefix is a FRAME_ENCODING error, except a HELLO without its
// extension, which is itself a valid HELLO, and a compressed BATCH cut
// inside its section, which the codec rejects, not ParseBatch (the
// section is opaque to it; quicrecord's tests cover that path).
func TestTruncatedPayload(t *testing.T) {
	for _, g := range goldenHex {
		frame := unhex(t, g.hex)
		typ, payload := splitFrame(t, frame)
		if !typ.Known() {
			continue
		}
		t.Run(g.name, func(t *testing.T) {
			for cut := range len(payload) {
				p := bytes.Clone(payload[:cut])
				var err error
				switch typ {
				case frames.TypeHello:
					_, _, err = frames.ParseHello(p)
					// Extensions run to the end of the payload: a cut
					// between two of them leaves a valid HELLO.
					if helloExtensionCut(g.name, len(payload)-cut) {
						require.NoError(t, err, "HELLO without its last extensions")
						continue
					}
				case frames.TypeBatch:
					var b frames.Batch
					b, _, err = frames.ParseBatch(p, 1<<10)
					if err == nil && b.Compressed() {
						require.Less(t, len(b.Records), len(payload), "a cut inside the compressed section")
						continue
					}
				case frames.TypeAck:
					_, _, err = frames.ParseAck(p)
				case frames.TypeDone:
					_, _, err = frames.ParseDone(p)
				case frames.TypeError:
					_, _, err = frames.ParseError(p)
				case frames.TypeWindow:
					_, _, err = frames.ParseWindow(p)
				}
				requireCode(t, err, frames.CodeFrameEncoding)
			}
		})
	}
}

// TestTruncatedStream cuts every golden frame at every byte and reads it
// with a Reader, whole and a byte at a time: nothing is a clean io.EOF,
// a cut frame is FRAME_ENCODING wrapping io.ErrUnexpectedEOF.
func TestTruncatedStream(t *testing.T) {
	for _, g := range goldenHex {
		frame := unhex(t, g.hex)
		t.Run(g.name, func(t *testing.T) {
			for cut := range len(frame) {
				for _, sizes := range [][]byte{nil, {1}} {
					r := frames.NewReader(&chunkReader{data: frame[:cut], sizes: sizes}, 1<<10)
					_, _, err := r.ReadFrame()
					if cut == 0 {
						require.Equal(t, io.EOF, err)
						continue
					}
					requireCode(t, err, frames.CodeFrameEncoding)
					require.ErrorIs(t, err, io.ErrUnexpectedEOF)

					_, _, _, err = frames.ParseFrame(frame[:cut], 1<<10)
					requireCode(t, err, frames.CodeFrameEncoding)
					require.ErrorIs(t, err, io.ErrUnexpectedEOF)
				}
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	errReset := errors.New("stream reset")
	for _, tc := range []struct {
		name   string
		stream string
		err    error // reader error after the stream; nil is io.EOF
		frames int   // frames before the error
		want   error
		eof    bool // the error wraps io.ErrUnexpectedEOF
	}{
		{name: "empty stream", want: io.EOF},
		{name: "EOF after a frame", stream: "03 01 05", frames: 1, want: io.EOF},
		{name: "EOF after an unknown frame", stream: "21 02 0000", frames: 1, want: io.EOF},
		{name: "EOF in type", stream: "03 01 05 40", frames: 1, want: frames.ErrFrameEncoding, eof: true},
		{name: "EOF in length", stream: "03", want: frames.ErrFrameEncoding, eof: true},
		{name: "EOF in 8-byte length", stream: "03 c0 00 00", want: frames.ErrFrameEncoding, eof: true},
		{name: "EOF in payload", stream: "02 05 00 01", want: frames.ErrFrameEncoding, eof: true},
		{name: "EOF in unknown payload", stream: "21 05 00", want: frames.ErrFrameEncoding, eof: true},
		{name: "EOF in large unknown payload", stream: "21 4400" + strings.Repeat("00", 1000), want: frames.ErrFrameEncoding, eof: true},
		{name: "reset at boundary", stream: "03 01 05", err: errReset, frames: 1, want: errReset},
		{name: "reset in payload", stream: "02 05 00 01", err: errReset, want: errReset},
		{name: "reset in unknown payload", stream: "21 05 00", err: errReset, want: errReset},
		{name: "frame above max", stream: "02 5001", want: frames.ErrFrameTooLarge},
		{name: "unknown frame above max", stream: "21 5001", want: frames.ErrFrameTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sizes := range [][]byte{nil, {1}, {3}} {
				r := frames.NewReader(&chunkReader{data: unhex(t, tc.stream), sizes: sizes, err: tc.err}, 4<<10)
				for range tc.frames {
					_, _, err := r.ReadFrame()
					require.NoError(t, err)
				}
				_, _, err := r.ReadFrame()
				require.ErrorIs(t, err, tc.want)
				if tc.want == io.EOF || tc.want == errReset {
					require.Equal(t, tc.want, err, "returned as is")
				}
				require.Equal(t, tc.eof, errors.Is(err, io.ErrUnexpectedEOF))
			}
		})
	}
}

// TestReaderTooLargeBeforePayload: a frame whose header declares more than
// the maximum is rejected from the header alone; the strict reader fails
// the test if the Reader asks for a byte more.
func TestReaderTooLargeBeforePayload(t *testing.T) {
	for _, tc := range []struct {
		name, header string
	}{
		{"batch", "02 4401"},
		{"hello", "01 5000"},
		{"8-byte length", "02 ffffffffffffffff"},
		{"8-byte type and length", "c000000000000002 c000000000000401"},
		{"unknown", "21 4401"},
		{"reserved 2-byte type", "4040 4401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1} {
				header := unhex(t, tc.header)
				// The Reader, its initial buffer and the error; nothing
				// sized from the header.
				const limit = wire.DefaultBuffer + maxErrAlloc
				var err error
				alloc := allocated(limit, func() {
					r := frames.NewReader(&strictReader{t: t, data: header, chunk: chunk}, 1<<10)
					_, _, err = r.ReadFrame()
				})
				requireCode(t, err, frames.CodeFrameTooLarge)
				require.ErrorIs(t, err, frames.ErrFrameTooLarge)
				require.LessOrEqual(t, alloc, uint64(limit))
			}
		})
	}
}

// TestReaderSetMaxFrameSize: a Reader takes frames up to the maximum it
// was last given.
func TestReaderSetMaxFrameSize(t *testing.T) {
	big := frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1}, [][]byte{make([]byte, 2000)})
	stream := append(append(append([]byte(nil), big...), big...), big...)
	r := frames.NewReader(&chunkReader{data: stream}, 4<<10)
	_, _, err := r.ReadFrame()
	require.NoError(t, err)
	r.SetMaxFrameSize(8 << 10)
	_, _, err = r.ReadFrame()
	require.NoError(t, err)
	r.SetMaxFrameSize(1 << 10)
	_, _, err = r.ReadFrame()
	requireCode(t, err, frames.CodeFrameTooLarge)
}

// helloExtensionCut reports whether cutting the last n bytes of the named
// golden HELLO removes whole extensions (each of those vectors' extensions
// is 4 bytes long).
func helloExtensionCut(name string, n int) bool {
	switch name {
	case "hello-opener":
		return n == 4
	case "hello-resume", "hello-resume-early":
		return n == 4 || n == 8 || n == 12
	case "hello-codecs":
		return n == 3
	}
	return false
}
