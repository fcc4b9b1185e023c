package transport

import "context"

// alpnFramer is the ALPN protocol of the framer transport.
const alpnFramer = "recordbench-framer"

// Framer is the hand-written baseline (bench/internal/framer) on quic-go:
// one QUIC stream per record stream, uvarint length-prefixed records
// through a 64 KiB buffer, cumulative acks flushed whenever no complete
// record is left in the receiver's read buffer.
type Framer struct{ tuning Tuning }

// Name returns "framer".
func (Framer) Name() string { return "framer" }

// Describe says what the transport is.
func (Framer) Describe() string {
	return "hand-written framer on quic-go, one QUIC stream per stream, length-prefixed records, cumulative acks"
}

// QUIC returns true.
func (Framer) QUIC() bool { return true }

// With applies t.
func (f Framer) With(t Tuning) Transport { f.tuning = f.tuning.merge(t); return f }

func (f Framer) framing() framing { return framing{ackEvery: f.tuning.AckEvery} }

// Listen serves framer streams.
func (f Framer) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	return listenQUICStreams(n, addr, id.ServerTLS(alpnFramer), quicConfig(n, f.tuning), f.framing())
}

// Dial connects to a framer server.
func (f Framer) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	return dialQUICStreams(ctx, n, addr, pin.ClientTLS(alpnFramer), quicConfig(n, f.tuning), f.framing())
}
