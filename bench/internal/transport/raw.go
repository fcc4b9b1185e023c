package transport

import "context"

// alpnRaw is the ALPN protocol of the raw transport.
const alpnRaw = "recordbench-raw"

// Raw is plain quic-go with the least a record stream with application
// acks can do: one QUIC stream per record stream, fixed-size records
// written back to back (the size once, at the start) through a 64 KiB
// buffer, read 64 KiB at a time, and the framer's cumulative acks flushed
// whenever no complete record is left in the reader's buffer. It is the
// ceiling of the framer-style transports: no per-record header to write
// or parse. Every record of a stream must have the size of its first.
type Raw struct{ tuning Tuning }

// Name returns "raw".
func (Raw) Name() string { return "raw" }

// Describe says what the transport is.
func (Raw) Describe() string {
	return "quic-go, one QUIC stream per stream, fixed-size records with no header, cumulative acks"
}

// QUIC returns true.
func (Raw) QUIC() bool { return true }

// With applies t.
func (r Raw) With(t Tuning) Transport { r.tuning = r.tuning.merge(t); return r }

func (r Raw) framing() framing { return framing{fixed: true, ackEvery: r.tuning.AckEvery} }

// Listen serves raw streams.
func (r Raw) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	return listenQUICStreams(n, addr, id.ServerTLS(alpnRaw), quicConfig(n, r.tuning), r.framing())
}

// Dial connects to a raw server.
func (r Raw) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	return dialQUICStreams(ctx, n, addr, pin.ClientTLS(alpnRaw), quicConfig(n, r.tuning), r.framing())
}
