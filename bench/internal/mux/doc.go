// Package mux is a minimal multiplexer that carries several logical record
// streams over ONE ordered byte stream, the way a TCP-style muxer such as
// yamux or smux would carry them over one TCP connection. The benchmarks
// run it over a single quic-go stream to show head-of-line blocking: a lost
// packet of any logical stream delays every logical stream behind it,
// which recordmux avoids by giving each record stream its own QUIC stream.
//
// It is meant to be an honest, competent baseline rather than a strawman:
// one writer goroutine owns the byte stream, sends acks ahead of data,
// takes one frame per logical stream in turn (round robin, as smux's
// shaper does) and coalesces frames into writes of at most
// [Config.MaxWrite] bytes; each logical stream has its own in-flight
// window, like yamux's per-stream windows, so a bulk stream cannot queue
// unbounded data ahead of others.
//
// # Wire format
//
// Both directions carry the same frames, back to back:
//
//	DATA: 0x00 || varint(stream) || varint(len) || record
//	ACK:  0x01 || varint(stream) || varint(seq)
//	OPEN: 0x02 || varint(stream)
//	FIN:  0x03 || varint(stream)
//
// varint is QUIC's variable-length integer (quicvarint). Records of a
// stream are numbered from 1 in each direction; an ACK carries the highest
// sequence number of the peer's records the application has applied
// (cumulative). OPEN announces a stream that [Session.Accept] returns to
// the peer; FIN follows a stream's last DATA ([Stream.CloseSend]), after
// which the peer's Recv returns io.EOF. There is no open handshake: both
// ends name streams by the same number (the opener picks it), and a stream
// also exists once either end uses it with [Session.Stream]. A frame type
// other than these four ends the session: the format has no extension
// point.
//
// # Usage
//
//	s := mux.New(quicStream, nil)
//	bulk, lat := s.Stream(1), s.Stream(2) // or s.Open(id) and, on the peer, s.Accept(ctx)
//	seq, err := lat.Send(ctx, rec)
//	err = lat.WaitAcked(ctx, seq)
//	// peer:
//	seq, rec, err := peerLat.Recv(ctx)
//	err = peerLat.Ack(seq)
//
// # Cancellation
//
// Blocking calls take a context and prefer a ready result over a done
// context. [Session.Close] flushes, finishes the write direction and waits
// for the peer to finish its own; closing the underlying connection aborts
// everything.
//
// # Concurrency
//
// All methods are safe for concurrent use. A session runs two goroutines
// (reader and writer) until it is closed or the byte stream fails.
//
// # Limitations
//
// No rejection, no resumption, no stream reset, and the whole session
// fails on the first error. A session never forgets a stream, finished or
// not. Records are copied once into a frame
// on Send and once more into a write buffer.
package mux
