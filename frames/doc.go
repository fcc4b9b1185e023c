// Package frames is the wire codec of the recordmux protocol: pure
// functions over byte slices that encode and parse the frames exchanged on
// every record stream, plus a [Reader] that cuts a byte stream into frames.
// It depends on the standard library and quicvarint only; docs/PROTOCOL.md
// is the specification it implements.
//
// # Usage
//
// Every frame is a type (varint), a payload length (varint) and the
// payload. Encoders append to a caller's buffer and have an exact length
// function: [AppendBatch] and [BatchLen], [AppendAck] and [AckLen],
// [AppendDone] and [DoneLen], [Hello.Append] and [Hello.Len],
// [ErrorFrame.Append] and [ErrorFrame.Len].
// A sender that keeps records pre-encoded ([AppendRecord]) writes the
// header alone with [AppendBatchHeader].
//
// A compressed BATCH (flag 0x02, with [FeatureCompression]) carries its
// record section encoded by a codec: its header names the codec and the
// section's uncompressed length ([BatchHeader.Codec],
// [BatchHeader.RawLen]). This package does not compress or decompress:
// [ParseBatch] returns such a section as it is, and the caller, having
// checked the declared length against its limits and decoded it, validates
// the records with [ParseRecords]. The codecs a side accepts travel in
// the [ExtCodecs] HELLO extension.
//
// Parsers take a payload (the bytes after the frame header) and return the
// frame and the bytes consumed: [ParseHello], [ParseBatch], [ParseAck],
// [ParseDone], [ParseError]. [ParseFrame] splits a whole frame off a
// buffer; [Reader.ReadFrame] reads one from an io.Reader.
//
//	r := frames.NewReader(stream, maxFrameSize)
//	for {
//		t, payload, err := r.ReadFrame()
//		if err != nil { ... }
//		switch t {
//		case frames.TypeBatch:
//			b, _, err := frames.ParseBatch(payload, maxRecordSize)
//			if err != nil { ... }
//			it := b.Iter()
//			for seq, rec, ok := it.Next(); ok; seq, rec, ok = it.Next() { ... }
//		case frames.TypeAck: ...
//		default: // unknown type, already skipped; count it
//		}
//	}
//
// # Lifetimes
//
// A payload returned by [Reader.ReadFrame], and anything parsed from it
// without a copy (a [Batch], its records, [Extension] values), aliases
// the Reader's buffer and is valid only until the next read. [ParseHello]
// and [ParseError] copy their strings.
//
// # Safety against hostile input
//
// Every declared length is compared with the bytes present and with the
// applicable maximum before it is used, and no allocation is ever sized
// from a count the peer declared. A Reader's buffer never exceeds the
// maximum frame size plus [MaxHeaderLen]. Unknown frame types are skipped
// by length without buffering their payload, and never beyond the maximum
// frame size. Malformed input yields an [*Error] whose [ErrorCode] is the
// code the layers above send to the peer.
//
// # Allocation
//
// Parsing a BATCH, iterating its records, parsing an ACK, appending a
// BATCH or ACK into a buffer with enough capacity, and [Reader.ReadFrame]
// once its buffer has grown do not allocate (TestZeroAllocs pins this).
//
// # Concurrency
//
// The functions are safe for concurrent use. A [Reader] is not.
//
// # Limitations
//
// Sequence numbers and all integers are QUIC varints, so values above
// [MaxSeq] (2^62-1) cannot be encoded; the encoders panic on them and the
// parsers never produce them.
package frames
