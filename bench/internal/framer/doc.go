// Package framer is the hand-written baseline for the recordmux benchmarks:
// what a competent user would write to carry ordered records over one raw
// quic-go bidirectional stream without recordmux. It runs on any byte
// stream with a half-close ([Stream]), so the benchmarks also use it over
// yamux, smux and gRPC streams.
//
// # Wire format
//
// Data direction (the [Sender] writes, the [Receiver] reads): a sequence of
// records, each
//
//	uvarint(len(record)) || record
//
// where uvarint is [encoding/binary]'s unsigned LEB128 varint. Sequence
// numbers are implicit: the first record in a direction is 1, then 2, 3, …
//
// Ack direction (the Receiver writes, the Sender reads), on the reverse
// direction of the same stream: a sequence of uvarints, each the highest
// sequence number the receiver has applied so far (cumulative acks). Acks
// never decrease and never exceed the number of records sent. A record may
// be at most [MaxRecordSize] bytes.
//
// The fixed-size format ([NewFixedSender], [NewFixedReceiver]) writes the
// size once, as the first uvarint of the stream, and then the records
// back to back with no prefix; every record of the stream has that size
// (at least 1 byte). Acks are the same.
//
// Each side closes its write direction (FIN) when done: the sender after its
// last record, the receiver after its last ack.
//
// # Usage
//
//	s := framer.NewSender(str, 0)
//	seq, err := s.Send(rec) // buffered
//	err = s.Flush()
//	err = s.WaitAcked(ctx, seq)
//	err = s.Close()
//
//	r := framer.NewReceiver(str, 0)
//	for {
//		seq, rec, err := r.Next() // io.EOF once the sender closed
//		...
//		r.AckLazy(seq)
//		if r.Buffered() == 0 {
//			r.FlushAcks()
//		}
//	}
//	r.Close()
//
// # Cancellation
//
// Only [Sender.WaitAcked] takes a context; it returns [context.Cause] of the
// context when the context ends first, but always prefers an ack that has
// already arrived. Everything else blocks in the stream and is ended by closing
// or cancelling the stream or its connection, or by stream deadlines.
//
// # Concurrency
//
// Send, Flush and Close of a [Sender] must be called from one goroutine;
// WaitAcked may be called from any number of goroutines concurrently with
// them. All methods of a [Receiver] must be called from one goroutine. Each
// Sender runs one ack-reader goroutine, which exits when the ack direction of
// the stream ends (the peer closed it, or the stream or connection failed).
//
// # Limitations
//
// One stream, one direction of records: no multiplexing, no retransmission
// beyond what QUIC does, no resumption after a stream failure.
package framer
