package transport

import "context"

// Streams is a transport that carries each record stream on its own QUIC
// stream of quic-go in the framer's format. Its two configurations:
//
//   - framer: the hand-written baseline (bench/internal/framer), uvarint
//     length-prefixed records through a 64 KiB buffer, cumulative acks
//     flushed whenever no complete record is left in the receiver's read
//     buffer;
//   - raw: the least a record stream with application acks needs on
//     quic-go: fixed-size records back to back (the size once, at the
//     start), 64 KiB writes and reads, the same acks. It is the ceiling of
//     the framer-style transports: no per-record header to write or
//     parse. Every record of a stream must have the size of its first.
type Streams struct {
	name, alpn, desc string
	fixed            bool
	tuning           Tuning
}

// Framer returns the framer transport.
func Framer() Streams {
	return Streams{name: "framer", alpn: "recordbench-framer",
		desc: "hand-written framer on quic-go, one QUIC stream per stream, length-prefixed records, cumulative acks"}
}

// Raw returns the raw transport.
func Raw() Streams {
	return Streams{name: "raw", alpn: "recordbench-raw", fixed: true,
		desc: "quic-go, one QUIC stream per stream, fixed-size records with no header, cumulative acks"}
}

// Name returns "framer" or "raw".
func (s Streams) Name() string { return s.name }

// Describe says what the transport is.
func (s Streams) Describe() string { return s.desc }

// QUIC returns true.
func (Streams) QUIC() bool { return true }

// With applies t.
func (s Streams) With(t Tuning) Transport { s.tuning = s.tuning.merge(t); return s }

func (s Streams) framing() framing { return framing{fixed: s.fixed, ackEvery: s.tuning.AckEvery} }

// Listen serves the transport's streams.
func (s Streams) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	return listenQUICStreams(n, addr, id.ServerTLS(s.alpn), quicConfig(n, s.tuning), s.framing())
}

// Dial connects to a server of the transport.
func (s Streams) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	return dialQUICStreams(ctx, n, addr, pin.ClientTLS(s.alpn), quicConfig(n, s.tuning), s.framing())
}
