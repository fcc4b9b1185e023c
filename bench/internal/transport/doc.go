// Package transport is the one interface through which the benchmark
// suite drives every way of carrying record streams, and its
// implementations, one file each:
//
//   - recordmux (recordmux.go): quicrecord, the system under test, with
//     its default Config, the fixed-window variants recordmux-w1024 and
//     recordmux-w32768, and the compressing variants recordmux-s2,
//     recordmux-zstd and recordmux-auto (configurations of the same type,
//     whose client connections report the bytes quic-go sent,
//     [WireCounter]);
//   - framer and raw (streams.go): the hand-written baseline of
//     bench/internal/framer on quic-go, and its fixed-size format without a
//     per-record header, the ceiling of the framer-style transports;
//   - mux (mux.go): every stream of a connection on ONE QUIC stream
//     (bench/internal/mux), the head-of-line behaviour of TCP
//     multiplexers on a network that simnet can simulate;
//   - grpc (grpc.go), yamux (yamux.go), smux (smux.go): the alternatives
//     teams run today, over TLS 1.3 over TCP.
//
// # The record contract
//
// The client opens streams and sends records; the server accepts them,
// applies each record and acknowledges cumulatively: an ack of n says
// that records 1..n were applied. recordmux and mux carry their own
// frames. The others carry the framer's (bench/internal/framer):
// uvarint length-prefixed records (raw: the size once, then fixed-size
// records) through a 64 KiB write buffer, and uvarint cumulative acks on
// the reverse direction, flushed whenever no complete record is left in
// the receiver's read buffer (and every Tuning.AckEvery records when set). Every transport uses
// the same quic-go configuration or, over TCP, windows raised to quic-go's
// maxima where the library has them.
//
// # Usage
//
//	id, _ := transport.NewIdentity()
//	tr, _ := transport.Spec{Name: "yamux"}.Build()
//	ln, _ := tr.Listen(ctx, transport.Sockets, "127.0.0.1:0", id)
//	go func() { r, _ := ln.Accept(ctx); transport.Apply(ctx, r, func([]byte) {}) }()
//	c, _ := tr.Dial(ctx, transport.Sockets, ln.Addr().String(), id.Pin())
//	s, _ := c.Open(ctx)
//	seq, _ := s.Send(ctx, rec)
//	_ = s.Flush()
//	_ = s.WaitApplied(ctx, seq)
//	_ = s.Close(); _ = c.Close(); _ = ln.Close()
//
// # Security
//
// A server presents an in-memory self-signed [Identity]; clients pin the
// SHA-256 of its public key ([Pin]) and check it in the TLS handshake
// (see [Pin.ClientTLS]). No configuration here skips verification.
//
// # Concurrency
//
// Transports, Listeners and Conns are safe for concurrent use. A Sender's
// Send, Flush and Close belong to one goroutine, its WaitApplied and
// Applied to any; a Receiver belongs to one goroutine. A Listener runs
// one goroutine accepting connections and one per connection accepting
// streams, until Close.
//
// # Limitations
//
// [SimNet] carries UDP only, so grpc, yamux and smux cannot run over the
// simulated lossy link; mux stands in for their head-of-line blocking.
// Receivers of framer-style transports block in reads that take no
// context: they end when the stream or connection does.
package transport
