package frames

import (
	"unicode/utf8"

	"github.com/quic-go/quic-go/quicvarint"
)

// AckLen returns the encoded length of an ACK frame for seq.
func AckLen(seq uint64) int {
	pl := quicvarint.Len(seq)
	return HeaderLen(TypeAck, pl) + pl
}

// AppendAck appends an ACK frame: the cumulative sequence number the sender
// of the frame has applied. Its payload is that one varint.
func AppendAck(b []byte, seq uint64) []byte {
	b = AppendHeader(b, TypeAck, quicvarint.Len(seq))
	return quicvarint.Append(b, seq)
}

// ParseAck parses an ACK payload and returns the acked sequence number and
// the bytes consumed. It does not allocate.
func ParseAck(payload []byte) (seq uint64, n int, err error) {
	p := parser{b: payload, t: TypeAck}
	seq = p.varint("seq")
	n, err = p.finish()
	if err != nil {
		return 0, 0, err
	}
	return seq, n, nil
}

// DoneLen returns the encoded length of a DONE frame for lastSeq.
func DoneLen(lastSeq uint64) int {
	pl := quicvarint.Len(lastSeq)
	return HeaderLen(TypeDone, pl) + pl
}

// AppendDone appends a DONE frame: the sender of the frame sends no more
// records, and lastSeq is the last one it sent (0 if none). Its payload is
// that one varint. Only [FeatureHalfClose] streams carry it.
func AppendDone(b []byte, lastSeq uint64) []byte {
	b = AppendHeader(b, TypeDone, quicvarint.Len(lastSeq))
	return quicvarint.Append(b, lastSeq)
}

// ParseDone parses a DONE payload and returns the last sequence number of
// the direction and the bytes consumed. It does not allocate.
func ParseDone(payload []byte) (lastSeq uint64, n int, err error) {
	p := parser{b: payload, t: TypeDone}
	lastSeq = p.varint("last seq")
	n, err = p.finish()
	if err != nil {
		return 0, 0, err
	}
	return lastSeq, n, nil
}

// ErrorFrame reports a failure to the peer. Seq 0 concerns the whole
// stream; any other value names one record the sender of the frame failed
// to apply.
//
// The payload layout is: seq (varint), code (varint), reason (varint
// length, at most [MaxReasonLen] bytes from this package's encoder and at
// most [MaxReasonLenAccepted] bytes from a peer).
type ErrorFrame struct {
	Seq    uint64
	Code   ErrorCode
	Reason string
}

func (f *ErrorFrame) payloadLen() int {
	return quicvarint.Len(f.Seq) + quicvarint.Len(uint64(f.Code)) + bytesLen(len(f.reason()))
}

func (f *ErrorFrame) reason() string { return TruncateReason(f.Reason) }

// TruncateReason returns reason cut to at most [MaxReasonLen] bytes, the
// reason an ERROR frame carries for it. The cut is moved back (by at most
// three bytes) to the start of a UTF-8 sequence, so valid text stays
// valid. A reason within the limit is returned as it is.
func TruncateReason(reason string) string {
	if len(reason) <= MaxReasonLen {
		return reason
	}
	for n := MaxReasonLen; n > MaxReasonLen-utf8.UTFMax; n-- {
		if utf8.RuneStart(reason[n]) {
			return reason[:n]
		}
	}
	return reason[:MaxReasonLen]
}

// Len returns the encoded length of the frame, header included.
func (f *ErrorFrame) Len() int {
	pl := f.payloadLen()
	return HeaderLen(TypeError, pl) + pl
}

// Append appends the encoded frame to b. A Reason longer than
// [MaxReasonLen] bytes is truncated to that length, or up to three bytes
// less so that a UTF-8 sequence is not cut in two.
func (f *ErrorFrame) Append(b []byte) []byte {
	b = AppendHeader(b, TypeError, f.payloadLen())
	b = quicvarint.Append(b, f.Seq)
	b = quicvarint.Append(b, uint64(f.Code))
	return appendBytes(b, f.reason())
}

// ParseError parses an ERROR payload and returns the frame and the bytes
// consumed. A reason longer than [MaxReasonLenAccepted] is an error.
func ParseError(payload []byte) (ErrorFrame, int, error) {
	p := parser{b: payload, t: TypeError}
	var f ErrorFrame
	f.Seq = p.varint("seq")
	f.Code = ErrorCode(p.varint("code"))
	reason := p.bytes("reason", MaxReasonLenAccepted)
	n, err := p.finish()
	if err != nil {
		return ErrorFrame{}, 0, err
	}
	f.Reason = string(reason)
	return f, n, nil
}
