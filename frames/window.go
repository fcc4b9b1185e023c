package frames

import "github.com/quic-go/quic-go/quicvarint"

// WindowFrame announces the receive window the sender of the frame
// accepts from now on: at most Records records and Bytes record bytes sent
// to it and not yet acknowledged. It is sent only on streams that
// negotiated [FeatureWindowUpdate]. Both values are at least 1 and at most
// what the sender's HELLO announced (WindowRecords, WindowBytes); a
// smaller window binds a conforming peer from its arrival on, while the
// receiver keeps accepting what its HELLO allowed (records sent under a
// larger window may still be in flight).
//
// The payload layout is: records (varint), bytes (varint).
type WindowFrame struct {
	Records uint64
	Bytes   uint64
}

func (f WindowFrame) payloadLen() int {
	return quicvarint.Len(f.Records) + quicvarint.Len(f.Bytes)
}

// Len returns the encoded length of the frame, header included.
func (f WindowFrame) Len() int {
	pl := f.payloadLen()
	return HeaderLen(TypeWindow, pl) + pl
}

// Append appends the encoded frame to b.
func (f WindowFrame) Append(b []byte) []byte {
	b = AppendHeader(b, TypeWindow, f.payloadLen())
	b = quicvarint.Append(b, f.Records)
	return quicvarint.Append(b, f.Bytes)
}

// ParseWindow parses a WINDOW payload and returns the frame and the bytes
// consumed. A zero window is an error; it does not allocate otherwise.
func ParseWindow(payload []byte) (WindowFrame, int, error) {
	p := parser{b: payload, t: TypeWindow}
	var f WindowFrame
	f.Records = p.varint("records")
	f.Bytes = p.varint("bytes")
	n, err := p.finish()
	if err != nil {
		return WindowFrame{}, 0, err
	}
	if f.Records == 0 || f.Bytes == 0 {
		return WindowFrame{}, 0, errEncoding(TypeWindow, "zero window")
	}
	return f, n, nil
}
