package frames

import (
	"iter"
	"slices"

	"github.com/quic-go/quic-go/quicvarint"
)

// Flags of a BATCH header.
const (
	// batchFlagAck marks a BATCH whose header carries a piggybacked ack.
	batchFlagAck = 0x01
	// batchFlagCompressed marks a BATCH whose record section is
	// compressed: the header names the codec and the section's length
	// before compression.
	batchFlagCompressed = 0x02
)

// BatchHeader is the fixed part of a BATCH payload.
//
// The payload layout is: flags (varint; bit 0x01 = ack present, bit 0x02
// = compressed, every other bit must be zero), the cumulative ack (varint,
// only with 0x01), the first sequence number (varint), the record count
// (varint), with 0x02 the codec (varint, not 0) and the length of the
// record section before compression (varint), then the record section:
// Count records, each a varint length and that many bytes, or with 0x02
// their encoding by the codec, up to the end of the payload.
type BatchHeader struct {
	HasAck   bool   // a piggybacked cumulative ack follows the flags
	Ack      uint64 // highest sequence number of the reverse direction the sender has applied
	FirstSeq uint64 // sequence number of the first record, >= 1
	Count    int    // number of records, >= 1

	// Codec is 0 for a plain batch. Otherwise the record section is
	// compressed with this codec (an id of the [ExtCodecs] registry) and
	// RawLen is its length before compression, >= Count.
	Codec  uint64
	RawLen uint64
}

// Compressed reports whether the record section is compressed.
func (h *BatchHeader) Compressed() bool { return h.Codec != 0 }

func (h *BatchHeader) prefixLen() int {
	n := 1 + quicvarint.Len(h.FirstSeq) + quicvarint.Len(uint64(h.Count))
	if h.HasAck {
		n += quicvarint.Len(h.Ack)
	}
	if h.Codec != 0 {
		n += quicvarint.Len(h.Codec) + quicvarint.Len(h.RawLen)
	}
	return n
}

// LastSeq returns the sequence number of the last record.
func (h *BatchHeader) LastSeq() uint64 { return h.FirstSeq + uint64(h.Count) - 1 }

// BatchHeaderLen returns the length of a BATCH frame header plus batch header
// for a batch whose record section (compressed, if h.Codec is set) takes
// recordsLen bytes. A BATCH frame is exactly BatchHeaderLen(h, recordsLen)
// + recordsLen bytes long.
func BatchHeaderLen(h BatchHeader, recordsLen int) int {
	pl := h.prefixLen() + recordsLen
	return HeaderLen(TypeBatch, pl) + h.prefixLen()
}

// AppendBatchHeader appends a BATCH frame header and batch header for
// records already encoded with [AppendRecord] and taking recordsLen bytes.
// The caller writes those records right after it. This is how a sender
// that keeps records pre-encoded builds a frame without copying them again.
// With h.Codec set, recordsLen is the length of the compressed section
// the caller writes after the header, and h.RawLen its length before.
func AppendBatchHeader(b []byte, h BatchHeader, recordsLen int) []byte {
	b = AppendHeader(b, TypeBatch, h.prefixLen()+recordsLen)
	var flags byte
	if h.HasAck {
		flags |= batchFlagAck
	}
	if h.Codec != 0 {
		flags |= batchFlagCompressed
	}
	b = append(b, flags)
	if h.HasAck {
		b = quicvarint.Append(b, h.Ack)
	}
	b = quicvarint.Append(b, h.FirstSeq)
	b = quicvarint.Append(b, uint64(h.Count))
	if h.Codec != 0 {
		b = quicvarint.Append(b, h.Codec)
		b = quicvarint.Append(b, h.RawLen)
	}
	return b
}

// RecordLen returns the encoded length of a record of n bytes.
func RecordLen(n int) int { return quicvarint.Len(uint64(n)) + n }

// AppendRecord appends one encoded record (varint length, bytes).
func AppendRecord(b, rec []byte) []byte {
	// The one- and two-byte lengths are written here: quicvarint.Append is
	// not inlined and builds the two bytes through a temporary slice.
	switch n := len(rec); {
	case n <= maxVarint1:
		b = append(b, byte(n))
	case n <= maxVarint2:
		b = append(b, byte(n>>8)|0x40, byte(n))
	default:
		b = quicvarint.Append(b, uint64(n))
	}
	return append(b, rec...)
}

// BatchLen returns the encoded length of a BATCH frame holding records.
// h.Count is ignored; the count is len(records). h.Codec must be 0: a
// compressed batch is built with [AppendBatchHeader].
func BatchLen(h BatchHeader, records [][]byte) int {
	h.Count = len(records)
	rl := 0
	for _, r := range records {
		rl += RecordLen(len(r))
	}
	return BatchHeaderLen(h, rl) + rl
}

// AppendBatch appends a complete BATCH frame holding records. h.Count is
// ignored; the count is len(records). It does not allocate when b has the
// capacity for [BatchLen] more bytes. h.Codec must be 0: a compressed
// batch is built with [AppendBatchHeader].
func AppendBatch(b []byte, h BatchHeader, records [][]byte) []byte {
	h.Count = len(records)
	rl := 0
	for _, r := range records {
		rl += RecordLen(len(r))
	}
	b = AppendBatchHeader(b, h, rl)
	// Grow once, then write the records in place: no capacity check and
	// no call per record.
	b = slices.Grow(b, rl)
	off := len(b)
	b = b[:off+rl]
	for _, r := range records {
		switch n := len(r); {
		case n <= maxVarint1:
			b[off] = byte(n)
			off++
		case n <= maxVarint2:
			b[off] = byte(n>>8) | 0x40
			b[off+1] = byte(n)
			off += 2
		default:
			off += len(quicvarint.Append(b[off:off], uint64(n)))
		}
		off += copy(b[off:], r)
	}
	return b
}

// Batch is a parsed BATCH frame. Records aliases the payload it was parsed
// from: when that payload came from a [Reader], the batch is valid only
// until the next call to [Reader.ReadFrame]. Copy what must live longer.
type Batch struct {
	BatchHeader
	// Records holds the record section: the Count encoded records,
	// validated by ParseBatch, or, when the batch is compressed, the
	// compressed section, not validated (decode it to RawLen bytes and
	// check those with [ParseRecords]).
	Records []byte
	// DataBytes is the sum of the record lengths (not encoded on the
	// wire); 0 for a compressed batch.
	DataBytes int
}

// Len returns the encoded length of the frame, header included.
func (b *Batch) Len() int { return BatchHeaderLen(b.BatchHeader, len(b.Records)) + len(b.Records) }

// Append appends the encoded frame to dst.
func (b *Batch) Append(dst []byte) []byte {
	dst = AppendBatchHeader(dst, b.BatchHeader, len(b.Records))
	return append(dst, b.Records...)
}

// Iter returns an iterator over the records of a plain batch. It does not
// allocate. On a compressed batch it yields nothing meaningful: iterate the
// decoded section with [NewRecordIter].
func (b *Batch) Iter() RecordIter { return RecordIter{b: b.Records, seq: b.FirstSeq} }

// All returns the records with their sequence numbers, for range loops.
func (b *Batch) All() iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		it := b.Iter()
		for {
			seq, rec, ok := it.Next()
			if !ok || !yield(seq, rec) {
				return
			}
		}
	}
}

// RecordIter walks the encoded records of a [Batch] or any buffer of records
// encoded with [AppendRecord] that has been validated.
type RecordIter struct {
	b   []byte
	seq uint64
}

// NewRecordIter returns an iterator over validated encoded records whose first
// sequence number is firstSeq.
func NewRecordIter(records []byte, firstSeq uint64) RecordIter {
	return RecordIter{b: records, seq: firstSeq}
}

// Next returns the next record and its sequence number; ok is false at the
// end. The record aliases the batch.
func (it *RecordIter) Next() (seq uint64, rec []byte, ok bool) {
	b := it.b
	// recordLen inlined by hand for the one- and two-byte lengths.
	var l uint64
	var n int
	switch {
	case len(b) > 0 && b[0] <= maxVarint1:
		l, n = uint64(b[0]), 1
	case len(b) > 1 && b[0]>>6 == 1:
		l, n = uint64(b[0]&0x3f)<<8|uint64(b[1]), 2
	default:
		l, n = recordLen(b)
	}
	if n == 0 || uint64(len(b)-n) < l {
		// The end, or invalid input (unreachable for a validated
		// batch): stop rather than panic.
		it.b = nil
		return 0, nil, false
	}
	end := n + int(l)
	it.b = b[end:]
	seq = it.seq
	it.seq++
	return seq, b[n:end:end], true
}

// Remaining returns the bytes of the records not yet returned.
func (it *RecordIter) Remaining() []byte { return it.b }

// ParseBatch parses a BATCH payload (the bytes after the frame header). It
// validates every record length against maxRecordSize and the payload
// before returning, so a batch it accepts iterates without error; a
// record count or lengths that do not add up to the payload are an error.
// A compressed batch (flag 0x02) is validated up to its section: codec
// not 0, RawLen at least Count and the section not empty; its records are
// checked once decoded, by [ParseRecords]. It returns the bytes consumed,
// which on success is len(payload). It does not allocate.
func ParseBatch(payload []byte, maxRecordSize uint64) (Batch, int, error) {
	p := parser{b: payload, t: TypeBatch}
	var h BatchHeader
	flags := p.varint("flags")
	if p.err == nil && flags&^(batchFlagAck|batchFlagCompressed) != 0 {
		return Batch{}, 0, errEncoding(TypeBatch, "unknown flags")
	}
	if flags&batchFlagAck != 0 {
		h.HasAck = true
		h.Ack = p.varint("ack")
	}
	h.FirstSeq = p.varint("first seq")
	count := p.varint("record count")
	if flags&batchFlagCompressed != 0 {
		h.Codec = p.varint("codec")
		h.RawLen = p.varint("uncompressed length")
	}
	if p.err != nil {
		return Batch{}, 0, p.err
	}
	// Every record takes at least one byte of the section.
	sectionLen := uint64(p.rest())
	if h.Codec != 0 {
		sectionLen = h.RawLen
	}
	switch {
	case h.FirstSeq == 0:
		return Batch{}, 0, errEncoding(TypeBatch, "first seq is 0")
	case count == 0:
		return Batch{}, 0, errEncoding(TypeBatch, "empty batch")
	case count > sectionLen:
		return Batch{}, 0, errEncoding(TypeBatch, "record count exceeds the record section")
	case count-1 > MaxSeq-h.FirstSeq:
		return Batch{}, 0, errEncoding(TypeBatch, "sequence number out of range")
	case flags&batchFlagCompressed != 0 && h.Codec == 0:
		return Batch{}, 0, errEncoding(TypeBatch, "compressed with codec 0")
	case h.Codec != 0 && p.rest() == 0:
		return Batch{}, 0, errEncoding(TypeBatch, "empty compressed section")
	}
	h.Count = int(count)
	records := payload[p.off:len(payload):len(payload)]
	if h.Codec != 0 {
		return Batch{BatchHeader: h, Records: records}, len(payload), nil
	}
	data, err := ParseRecords(records, h.Count, maxRecordSize)
	if err != nil {
		return Batch{}, 0, err
	}
	return Batch{BatchHeader: h, Records: records, DataBytes: data}, len(payload), nil
}

// ParseRecords validates a record section: exactly count records, each a
// varint length up to maxRecordSize and that many bytes, filling records
// exactly. It returns the sum of the record lengths. ParseBatch calls it
// for a plain batch; a receiver calls it on the decoded section of a
// compressed one. It does not allocate.
func ParseRecords(records []byte, count int, maxRecordSize uint64) (dataBytes int, err error) {
	// The record loop is the hot path of every receiver: it checks each
	// length against the limit and the bytes left, nothing else.
	rest := records
	data := 0
	for range count {
		// recordLen inlined by hand for the one- and two-byte lengths.
		var l uint64
		var n int
		switch {
		case len(rest) > 0 && rest[0] <= maxVarint1:
			l, n = uint64(rest[0]), 1
		case len(rest) > 1 && rest[0]>>6 == 1:
			l, n = uint64(rest[0]&0x3f)<<8|uint64(rest[1]), 2
		default:
			l, n = recordLen(rest)
		}
		switch {
		case n == 0:
			return 0, errTruncated(TypeBatch, "record length")
		case l > maxRecordSize:
			return 0, errLimit(CodeRecordTooLarge, TypeBatch, "record", l, maxRecordSize)
		case l > uint64(len(rest)-n):
			return 0, errTruncated(TypeBatch, "record")
		}
		rest = rest[n+int(l):]
		data += int(l)
	}
	if len(rest) != 0 {
		return 0, errEncoding(TypeBatch, "trailing bytes in frame")
	}
	return data, nil
}
