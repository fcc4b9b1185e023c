package frames_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// The round-trip fuzz targets take a frame payload (the bytes after the
// frame header), as the parsers do. When the parser accepts it they check
// that it consumed exactly the payload, that Len() == len(Append(nil)), and
// that the encoding is canonical: parsing Append's output and appending
// again gives the same bytes (2nd == 3rd encoding, and the 1st equals the
// 2nd), and an input written with minimal varints (the only way to be as
// short as its re-encoding) re-encodes to itself. When the parser rejects
// the input the error must be an *frames.Error with a code that parser
// uses.

// goldenPayloads adds the payloads of the golden vectors of type typ.
func goldenPayloads(f *testing.F, typ frames.Type) [][]byte {
	var out [][]byte
	for _, g := range goldenHex {
		t, payload := splitFrame(f, unhex(f, g.hex))
		if t == typ {
			out = append(out, payload)
		}
	}
	require.NotEmpty(f, out)
	return out
}

// requireParseError checks a rejected input: a typed error, one of codes.
func requireParseError(t testing.TB, err error, n int, codes ...frames.ErrorCode) {
	t.Helper()
	var fe *frames.Error
	require.ErrorAs(t, err, &fe, "error %v (%T) is not a *frames.Error", err, err)
	require.Contains(t, codes, fe.Code, "error: %v", err)
	require.ErrorIs(t, err, sentinelFor(fe.Code))
	require.Zero(t, n, "bytes consumed by a failed parse")
}

// requireCanonical checks the encodings of an accepted payload. enc is
// Append of the parsed frame, length its Len(); reencode parses a payload
// and appends the result. sameOrder is false when the input lists HELLO
// metadata in another order than Append's (sorted by key), the one
// difference besides varint lengths that a re-encoding may introduce.
func requireCanonical(t testing.TB, typ frames.Type, input, enc []byte, length int,
	reencode func(payload []byte) ([]byte, error), sameOrder bool,
) {
	t.Helper()
	require.Len(t, enc, length, "Len() and len(Append(nil)) differ")

	gotType, p2 := splitFrame(t, enc)
	require.Equal(t, typ, gotType)
	enc2, err := reencode(p2)
	require.NoError(t, err, "the parser rejects the encoder's output")
	require.Equal(t, enc, enc2, "2nd encoding differs from the 1st")
	_, p3 := splitFrame(t, enc2)
	enc3, err := reencode(p3)
	require.NoError(t, err)
	require.Equal(t, enc2, enc3, "3rd encoding differs from the 2nd")

	inputFrame := append(frames.AppendHeader(nil, typ, len(input)), input...)
	require.LessOrEqual(t, len(enc), len(inputFrame), "re-encoding is longer than the input")
	if len(enc) == len(inputFrame) && sameOrder {
		require.Equal(t, inputFrame, enc, "a minimal-varint input does not re-encode to itself")
	}
}

func checkHello(t testing.TB, payload []byte) {
	h, n, err := frames.ParseHello(payload)
	if err != nil {
		if len(payload) > frames.MaxHelloSize {
			requireParseError(t, err, n, frames.CodeFrameTooLarge)
		} else {
			requireParseError(t, err, n, frames.CodeFrameEncoding)
		}
		return
	}
	require.Equal(t, len(payload), n)
	require.LessOrEqual(t, len(payload), frames.MaxHelloSize)
	require.GreaterOrEqual(t, h.MinVersion, uint64(1))
	require.GreaterOrEqual(t, h.MaxVersion, h.MinVersion)
	require.GreaterOrEqual(t, h.MaxFrameSize, uint64(frames.MinFrameSize))
	require.LessOrEqual(t, len(h.Scope), frames.MaxScopeLen)
	require.LessOrEqual(t, len(h.Metadata), frames.MaxMetadataEntries)
	require.LessOrEqual(t, len(h.Extensions), frames.MaxExtensions)
	for k, v := range h.Metadata {
		require.LessOrEqual(t, len(k), frames.MaxMetadataKeyLen)
		require.LessOrEqual(t, len(v), frames.MaxMetadataValueLen)
	}
	ids := map[uint64]bool{}
	for _, e := range h.Extensions {
		require.LessOrEqual(t, len(e.Value), frames.MaxExtensionLen)
		require.False(t, ids[e.ID], "duplicate extension id %d", e.ID)
		ids[e.ID] = true
		v, ok := h.Extension(e.ID)
		require.True(t, ok)
		require.Equal(t, e.Value, v)
	}
	requireCanonical(t, frames.TypeHello, payload, h.Append(nil), h.Len(), func(p []byte) ([]byte, error) {
		h2, _, err := frames.ParseHello(p)
		return h2.Append(nil), err
	}, metadataSorted(payload, &h))
}

// metadataSorted reports whether the metadata of a HELLO payload with
// minimal varints is listed in key order, as Append writes it.
func metadataSorted(payload []byte, h *frames.Hello) bool {
	off := quicvarint.Len(h.MinVersion) + quicvarint.Len(h.MaxVersion) +
		quicvarint.Len(uint64(h.Features)) + quicvarint.Len(h.MaxFrameSize) +
		quicvarint.Len(h.MaxRecordSize) + quicvarint.Len(h.WindowRecords) +
		quicvarint.Len(h.WindowBytes) + quicvarint.Len(uint64(len(h.Scope))) + len(h.Scope) +
		quicvarint.Len(h.DataID) + quicvarint.Len(uint64(len(h.Metadata)))
	var keys []string
	for range len(h.Metadata) {
		var fields [2]string
		for i := range fields {
			if off >= len(payload) {
				return false // non-minimal input; not compared anyway
			}
			l, n, err := quicvarint.Parse(payload[off:])
			if err != nil || uint64(len(payload)-off-n) < l {
				return false
			}
			fields[i] = string(payload[off+n : off+n+int(l)])
			off += n + int(l)
		}
		keys = append(keys, fields[0])
	}
	return slices.IsSorted(keys)
}

func checkBatch(t testing.TB, payload []byte, maxRecord uint64) {
	b, n, err := frames.ParseBatch(payload, maxRecord)
	if err != nil {
		requireParseError(t, err, n, frames.CodeFrameEncoding, frames.CodeRecordTooLarge)
		return
	}
	require.Equal(t, len(payload), n)
	require.GreaterOrEqual(t, b.FirstSeq, uint64(1))
	require.GreaterOrEqual(t, b.Count, 1)
	require.LessOrEqual(t, b.LastSeq(), uint64(frames.MaxSeq))
	require.GreaterOrEqual(t, b.LastSeq(), b.FirstSeq)
	if !b.HasAck {
		require.Zero(t, b.Ack)
	}
	require.Equal(t, payload[len(payload)-len(b.Records):], b.Records)
	if b.Compressed() {
		checkCompressedBatch(t, payload, maxRecord, &b)
		return
	}
	require.Zero(t, b.RawLen)

	var records [][]byte
	total := 0
	want := b.FirstSeq
	it := b.Iter()
	for seq, rec, ok := it.Next(); ok; seq, rec, ok = it.Next() {
		require.Equal(t, want, seq)
		require.LessOrEqual(t, uint64(len(rec)), maxRecord)
		require.Equal(t, len(rec), cap(rec), "a record's capacity reaches into the next")
		records = append(records, rec)
		total += len(rec)
		want++
	}
	require.Empty(t, it.Remaining())
	require.Len(t, records, b.Count)
	require.Equal(t, b.DataBytes, total)
	i := 0
	for seq, rec := range b.All() {
		require.Equal(t, b.FirstSeq+uint64(i), seq)
		require.Equal(t, records[i], rec)
		i++
	}
	require.Equal(t, b.Count, i)

	// Append keeps the records as they came, so it matches AppendBatch
	// when their lengths are minimal varints.
	enc := b.Append(nil)
	minimal := 0
	for _, rec := range records {
		minimal += frames.RecordLen(len(rec))
	}
	require.LessOrEqual(t, minimal, len(b.Records))
	if minimal == len(b.Records) {
		require.Equal(t, enc, frames.AppendBatch(nil, b.BatchHeader, records))
		require.Equal(t, len(enc), frames.BatchLen(b.BatchHeader, records))
	}
	requireCanonical(t, frames.TypeBatch, payload, enc, b.Len(), func(p []byte) ([]byte, error) {
		b2, _, err := frames.ParseBatch(p, maxRecord)
		return b2.Append(nil), err
	}, true)
}

// checkCompressedBatch checks a compressed BATCH that ParseBatch
// accepted: its section is not empty, RawLen covers a byte per record, and
// the frame re-encodes to itself; its records are not looked at (the
// section is opaque to ParseBatch), so ParseRecords is fuzzed on it as on
// any decoded section: it either fails with a frame error or accounts for
// every byte.
func checkCompressedBatch(t testing.TB, payload []byte, maxRecord uint64, b *frames.Batch) {
	require.NotEmpty(t, b.Records)
	require.NotZero(t, b.Codec)
	require.GreaterOrEqual(t, b.RawLen, uint64(b.Count))
	require.Zero(t, b.DataBytes)
	requireCanonical(t, frames.TypeBatch, payload, b.Append(nil), b.Len(), func(p []byte) ([]byte, error) {
		b2, _, err := frames.ParseBatch(p, maxRecord)
		return b2.Append(nil), err
	}, true)
	data, err := frames.ParseRecords(b.Records, b.Count, maxRecord)
	if err != nil {
		requireParseError(t, err, 0, frames.CodeFrameEncoding, frames.CodeRecordTooLarge)
		return
	}
	require.LessOrEqual(t, data+b.Count, len(b.Records))
}

func checkAck(t testing.TB, payload []byte) {
	seq, n, err := frames.ParseAck(payload)
	if err != nil {
		requireParseError(t, err, n, frames.CodeFrameEncoding)
		return
	}
	require.Equal(t, len(payload), n)
	requireCanonical(t, frames.TypeAck, payload, frames.AppendAck(nil, seq), frames.AckLen(seq), func(p []byte) ([]byte, error) {
		seq2, _, err := frames.ParseAck(p)
		return frames.AppendAck(nil, seq2), err
	}, true)
}

func checkDone(t testing.TB, payload []byte) {
	last, n, err := frames.ParseDone(payload)
	if err != nil {
		requireParseError(t, err, n, frames.CodeFrameEncoding)
		return
	}
	require.Equal(t, len(payload), n)
	requireCanonical(t, frames.TypeDone, payload, frames.AppendDone(nil, last), frames.DoneLen(last), func(p []byte) ([]byte, error) {
		last2, _, err := frames.ParseDone(p)
		return frames.AppendDone(nil, last2), err
	}, true)
}

func checkError(t testing.TB, payload []byte) {
	e, n, err := frames.ParseError(payload)
	if err != nil {
		requireParseError(t, err, n, frames.CodeFrameEncoding)
		return
	}
	require.Equal(t, len(payload), n)
	require.LessOrEqual(t, len(e.Reason), frames.MaxReasonLen)
	requireCanonical(t, frames.TypeError, payload, e.Append(nil), e.Len(), func(p []byte) ([]byte, error) {
		e2, _, err := frames.ParseError(p)
		return e2.Append(nil), err
	}, true)
}

func FuzzHello(f *testing.F) {
	for _, p := range goldenPayloads(f, frames.TypeHello) {
		f.Add(p)
	}
	f.Add(rawHello(2, "01 62 00 01 61 00")(f))                             // unsorted metadata
	f.Add(rawHello(1, "00 00 3f 00 40 40 01 ff")(f))                       // empty key, two extensions
	f.Add(unhex(f, "01 02 01 80010000 80004000 4100 80100000 4000 00 00")) // non-minimal scope length
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkHello(t, payload)
	})
}

func FuzzBatch(f *testing.F) {
	for _, p := range goldenPayloads(f, frames.TypeBatch) {
		f.Add(p, uint64(1<<10))
		f.Add(p, uint64(3))
	}
	f.Add(unhex(f, "4000 4001 c000000000000001 4000"), uint64(1<<10)) // non-minimal varints
	f.Add(unhex(f, "00 ffffffffffffffff 01 00"), uint64(0))           // last seq 2^62-1
	f.Add(unhex(f, "02 01 02 01 02 ff"), uint64(1<<10))               // compressed, opaque section
	f.Add(unhex(f, "03 05 01 02 07 4002 0101"), uint64(1<<10))        // compressed with ack, unknown codec
	f.Add(unhex(f, "02 01 03 01 02 ff"), uint64(1<<10))               // RawLen below Count
	f.Add(unhex(f, "02 01 01 00 02 ff"), uint64(1<<10))               // codec 0
	f.Fuzz(func(t *testing.T, payload []byte, maxRecord uint64) {
		checkBatch(t, payload, maxRecord)
	})
}

func FuzzAck(f *testing.F) {
	for _, p := range goldenPayloads(f, frames.TypeAck) {
		f.Add(p)
	}
	f.Add(unhex(f, "ffffffffffffffff"))
	f.Add(unhex(f, "4005"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkAck(t, payload)
	})
}

func checkWindow(t testing.TB, payload []byte) {
	w, n, err := frames.ParseWindow(payload)
	if err != nil {
		requireParseError(t, err, n, frames.CodeFrameEncoding)
		return
	}
	require.Equal(t, len(payload), n)
	require.NotZero(t, w.Records)
	require.NotZero(t, w.Bytes)
	requireCanonical(t, frames.TypeWindow, payload, w.Append(nil), w.Len(), func(p []byte) ([]byte, error) {
		w2, _, err := frames.ParseWindow(p)
		return w2.Append(nil), err
	}, true)
}

func FuzzWindow(f *testing.F) {
	for _, p := range goldenPayloads(f, frames.TypeWindow) {
		f.Add(p)
	}
	f.Add(unhex(f, "00 01"))     // zero records
	f.Add(unhex(f, "4001 4000")) // non-minimal, zero bytes
	f.Add(unhex(f, "01 01 00"))  // trailing byte
	f.Add(unhex(f, "ffffffffffffffff ffffffffffffffff"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkWindow(t, payload)
	})
}

func FuzzDone(f *testing.F) {
	for _, p := range goldenPayloads(f, frames.TypeDone) {
		f.Add(p)
	}
	f.Add(unhex(f, "00"))
	f.Add(unhex(f, "4005"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkDone(t, payload)
	})
}

func FuzzError(f *testing.F) {
	for _, p := range goldenPayloads(f, frames.TypeError) {
		f.Add(p)
	}
	f.Add(errorPayload(1<<40, 1<<20, frames.MaxReasonLen)(f))
	f.Add(unhex(f, "00 4002 4000"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkError(t, payload)
	})
}

// FuzzBatchRecords is the structure-aware BATCH fuzz: it builds a batch
// from fuzzed records and header with AppendBatch and checks that
// ParseBatch returns exactly those records and sequence numbers, that
// BatchLen and the pre-encoded path (AppendBatchHeader, AppendRecord)
// agree, and that a record limit one below the largest record rejects it.
// lens holds big-endian uint16 record lengths (so one-, two- and
// four-byte length varints all occur); data is the record bytes, reused
// cyclically.
func FuzzBatchRecords(f *testing.F) {
	f.Add(false, uint64(0), uint64(1), []byte{0, 5, 0, 5}, []byte("helloworld"))
	f.Add(true, uint64(300), uint64(100), []byte{0, 0, 0, 3}, []byte("abc"))
	f.Add(true, uint64(frames.MaxSeq), uint64(frames.MaxSeq), []byte{0x40, 0x00, 0, 64, 0, 63}, []byte{1, 2, 3})
	f.Add(false, uint64(0), uint64(1<<40), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, hasAck bool, ack, firstSeq uint64, lens, data []byte) {
		var records [][]byte
		pos := 0
		// At most 256 records and 64 KiB (plus one record), to keep
		// the executions fast.
		for i := 0; i+1 < len(lens) && len(records) < 256 && pos <= 64<<10; i += 2 {
			l := int(binary.BigEndian.Uint16(lens[i:])) % 20000
			rec := make([]byte, l)
			for j := range rec {
				if len(data) > 0 {
					rec[j] = data[(pos+j)%len(data)]
				}
			}
			pos += l
			records = append(records, rec)
		}
		if len(records) == 0 {
			records = append(records, data)
		}
		count := uint64(len(records))
		firstSeq &= frames.MaxSeq
		firstSeq = max(firstSeq, 1)
		firstSeq = min(firstSeq, frames.MaxSeq-count+1)
		h := frames.BatchHeader{HasAck: hasAck, FirstSeq: firstSeq}
		if hasAck {
			h.Ack = ack & frames.MaxSeq
		}
		maxRecord := 0
		for _, r := range records {
			maxRecord = max(maxRecord, len(r))
		}

		frame := frames.AppendBatch(nil, h, records)
		require.Len(t, frame, frames.BatchLen(h, records))
		var pre []byte
		for _, r := range records {
			before := len(pre)
			pre = frames.AppendRecord(pre, r)
			require.Equal(t, frames.RecordLen(len(r)), len(pre)-before)
		}
		hc := h
		hc.Count = len(records)
		require.Equal(t, frame, append(frames.AppendBatchHeader(nil, hc, len(pre)), pre...))
		require.Equal(t, len(frame), frames.BatchHeaderLen(hc, len(pre))+len(pre))

		typ, payload := splitFrame(t, frame)
		require.Equal(t, frames.TypeBatch, typ)
		b, n, err := frames.ParseBatch(payload, uint64(maxRecord))
		require.NoError(t, err)
		require.Equal(t, len(payload), n)
		require.Equal(t, hc, b.BatchHeader)
		require.Equal(t, pre, b.Records)
		i := 0
		it := b.Iter()
		for seq, rec, ok := it.Next(); ok; seq, rec, ok = it.Next() {
			require.Equal(t, firstSeq+uint64(i), seq)
			require.Equal(t, records[i], rec)
			i++
		}
		require.Equal(t, len(records), i)
		checkBatch(t, payload, uint64(maxRecord))

		if maxRecord > 0 {
			_, _, err := frames.ParseBatch(payload, uint64(maxRecord-1))
			requireCode(t, err, frames.CodeRecordTooLarge)
		}

		// The same frame through a Reader, in chunks taken from lens.
		r := frames.NewReader(&chunkReader{data: frame, sizes: lens}, uint64(len(payload)))
		typ, got, err := r.ReadFrame()
		require.NoError(t, err)
		require.Equal(t, frames.TypeBatch, typ)
		require.Equal(t, payload, got)
		_, _, err = r.ReadFrame()
		require.Equal(t, io.EOF, err)
	})
}

// fuzzMaxFrame is the Reader's maximum frame size in FuzzReader.
const fuzzMaxFrame = 4 << 10

// fuzzReaderSlack is what FuzzReader lets a Reader allocate on top of
// fuzzMaxFrame over a whole input, however long: the Reader and the
// test's chunkReader (under 200 bytes); the Reader's initial buffer
// (wire.DefaultBuffer, 4 KiB), which it replaces at most once, by a
// buffer of fuzzMaxFrame+MaxHeaderLen bytes (doubling 4 KiB passes that
// limit, so there is no intermediate step), that the allocator's size classes round
// up by at most 12.5% (0.5 KiB); and the one error that ends the input (an
// *Error and its formatted reason, under 0.5 KiB). That is about 5 KiB; 8
// KiB leaves room for runtime noise but not for a second buffer or
// anything sized from a declared length.
const fuzzReaderSlack = 8 << 10

// parseAllowance is what FuzzReader lets a parser allocate for one
// payload. A rejected payload costs its error (maxErrAlloc). Beyond that:
// nothing for ACK and BATCH; the copied reason for ERROR; for HELLO its
// copied strings plus the metadata map and extension list, both capped by
// count (64 entries each: about 9 KiB for the map as it grows and 4 KiB for
// the list). Everything is proportional to the bytes present, nothing to
// a declared length.
func parseAllowance(typ frames.Type, payload []byte) uint64 {
	n := uint64(maxErrAlloc)
	switch typ {
	case frames.TypeHello:
		n += 2*uint64(len(payload)) + 16<<10
	case frames.TypeError:
		n += 2 * uint64(len(payload))
	}
	return n
}

// FuzzReader feeds arbitrary byte streams, in chunk sizes taken from
// sizes (one byte at a time when sizes is {0} or {1}), to a Reader with a
// 4 KiB maximum frame size. It checks that every frame's payload fits the
// maximum, that unknown types come back with a nil payload, that the
// stream ends in io.EOF or a typed error, and that the Reader allocates at
// most fuzzMaxFrame+fuzzReaderSlack bytes whatever the input. Then it
// feeds every payload to the matching parser (the checks of the round-trip
// targets) and bounds what the parsers allocate by parseAllowance. The
// Reader's direct reads are fuzzed in package internal/wire.
func FuzzReader(f *testing.F) {
	var golden []byte
	for _, g := range goldenHex {
		golden = append(golden, unhex(f, g.hex)...)
	}
	f.Add(golden, []byte{})
	f.Add(golden, []byte{1})
	f.Add(golden, []byte{3, 7, 1})
	f.Add(golden[:len(golden)-1], []byte{2})                               // EOF mid-frame
	f.Add(unhex(f, "21 4fff"), []byte{1})                                  // unknown frame of 4095 bytes, cut short
	f.Add(unhex(f, "02 5001 00"), []byte{})                                // frame above the maximum
	f.Add(append(unhex(f, "4040 5000"), make([]byte, 4096)...), []byte{9}) // reserved type, exactly the maximum
	f.Fuzz(func(t *testing.T, stream, sizes []byte) {
		// Pass 1: the Reader alone, measured. No assertion inside the
		// measured region (require boxes its arguments); violations are
		// noted and reported after.
		var (
			nframes   int
			violation string
			endErr    error
		)
		const readerLimit = fuzzMaxFrame + fuzzReaderSlack
		alloc := allocated(readerLimit, func() {
			nframes, violation, endErr = 0, "", nil
			r := frames.NewReader(&chunkReader{data: stream, sizes: sizes}, fuzzMaxFrame)
			for {
				typ, payload, err := r.ReadFrame()
				if err != nil {
					endErr = err
					return
				}
				nframes++
				switch {
				case len(payload) > fuzzMaxFrame:
					violation = "payload above the maximum frame size"
				case !typ.Known() && payload != nil:
					violation = "unknown type with a payload"
				case typ.Known() && payload == nil:
					violation = "known type without a payload"
				}
				if violation != "" {
					return
				}
			}
		})
		require.Empty(t, violation, "frame %d", nframes)
		if endErr != io.EOF {
			var fe *frames.Error
			require.ErrorAs(t, endErr, &fe, "error %v (%T) is neither io.EOF nor a *frames.Error", endErr, endErr)
			switch fe.Code {
			case frames.CodeFrameEncoding:
				require.ErrorIs(t, endErr, io.ErrUnexpectedEOF)
			case frames.CodeFrameTooLarge:
			default:
				t.Fatalf("unexpected code in %v", endErr)
			}
		}
		require.LessOrEqual(t, alloc, uint64(readerLimit), "bytes allocated by the Reader")

		// Pass 2: collect copies of the known frames' payloads.
		type frame struct {
			typ     frames.Type
			payload []byte
		}
		var all []frame
		r := frames.NewReader(&chunkReader{data: stream, sizes: sizes}, fuzzMaxFrame)
		for {
			typ, payload, err := r.ReadFrame()
			if err != nil {
				require.Equal(t, endErr, err, "the second read of the same stream ended differently")
				break
			}
			if typ.Known() {
				all = append(all, frame{typ, bytes.Clone(payload)})
			}
		}

		// Pass 3: every parser on its payloads, measured; then the full
		// checks, unmeasured.
		var allowance uint64
		for _, fr := range all {
			allowance += parseAllowance(fr.typ, fr.payload)
		}
		var untyped error
		alloc = allocated(allowance, func() {
			untyped = nil
			for _, fr := range all {
				var err error
				switch fr.typ {
				case frames.TypeHello:
					_, _, err = frames.ParseHello(fr.payload)
				case frames.TypeBatch:
					_, _, err = frames.ParseBatch(fr.payload, fuzzMaxFrame)
				case frames.TypeAck:
					_, _, err = frames.ParseAck(fr.payload)
				case frames.TypeDone:
					_, _, err = frames.ParseDone(fr.payload)
				case frames.TypeError:
					_, _, err = frames.ParseError(fr.payload)
				case frames.TypeWindow:
					_, _, err = frames.ParseWindow(fr.payload)
				}
				if _, ok := err.(*frames.Error); err != nil && !ok && untyped == nil {
					untyped = err
				}
			}
		})
		require.NoError(t, untyped, "a parser returned an untyped error")
		require.LessOrEqual(t, alloc, allowance, "bytes allocated by the parsers")
		for _, fr := range all {
			switch fr.typ {
			case frames.TypeHello:
				checkHello(t, fr.payload)
			case frames.TypeBatch:
				checkBatch(t, fr.payload, fuzzMaxFrame)
			case frames.TypeAck:
				checkAck(t, fr.payload)
			case frames.TypeDone:
				checkDone(t, fr.payload)
			case frames.TypeError:
				checkError(t, fr.payload)
			case frames.TypeWindow:
				checkWindow(t, fr.payload)
			}
		}
	})
}
