package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
)

// Transport carries record streams from a client to a server. Records
// flow from the client, which opens streams and sends, to the server,
// which accepts streams, applies the records and acknowledges them
// cumulatively. Each implementation is one file of this package.
type Transport interface {
	// Name identifies the transport in flags, output and the control
	// protocol.
	Name() string
	// Describe says in a few words what the transport is.
	Describe() string
	// QUIC reports whether the transport runs on quic-go, and so over a
	// simulated network ([SimNet]).
	QUIC() bool
	// With returns the transport with t applied; zero fields of t keep
	// the transport's own values.
	With(t Tuning) Transport
	// Listen starts a server at addr of n that presents id.
	Listen(ctx context.Context, n Network, addr string, id *Identity) (Listener, error)
	// Dial connects to the server at addr of n, which must present the
	// identity pin names.
	Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error)
}

// Listener is the server end: it accepts the streams clients open, from
// any of their connections.
type Listener interface {
	// Addr is the address clients dial.
	Addr() net.Addr
	// Accept returns the next stream a client opened.
	Accept(ctx context.Context) (Receiver, error)
	// Close stops the server and closes every connection and stream it
	// accepted; when it returns, the transport's server goroutines have
	// ended.
	Close() error
}

// Conn is a client connection.
type Conn interface {
	// Open opens a stream to send records on; the server's Accept
	// returns its other end.
	Open(ctx context.Context) (Sender, error)
	// Close closes the connection and every stream on it; when it
	// returns, the connection's goroutines have ended.
	Close() error
}

// Sender is the sending end of a stream. Send, Flush and Close must be
// called from one goroutine; WaitApplied and Applied from any.
type Sender interface {
	// Send queues one record and returns its sequence number, counted
	// from 1. It may buffer (see Flush) and blocks while the transport's
	// window or flow control is full. rec may be reused once Send
	// returns.
	Send(ctx context.Context, rec []byte) (seq uint64, err error)
	// Flush hands buffered records to the connection. Transports that do
	// not buffer return nil at once.
	Flush() error
	// WaitApplied returns once the receiver acknowledged seq (or a later
	// record) as applied, preferring an ack that arrived over a done ctx.
	WaitApplied(ctx context.Context, seq uint64) error
	// Applied returns the highest sequence number acknowledged so far.
	Applied() uint64
	// Close flushes and finishes the stream: the receiver's Recv returns
	// io.EOF after the last record. It does not wait for acks (use
	// WaitApplied first); when it returns, the stream's goroutines on
	// this side have ended.
	Close() error
}

// Receiver is the receiving end of a stream. Its methods must be called
// from one goroutine.
type Receiver interface {
	// Recv returns the next record and its sequence number; rec is valid
	// until the next Recv. It returns io.EOF after the sender finished
	// the stream and every record was returned. Transports whose reads
	// cannot take a context end a blocked Recv only when the stream or
	// connection ends.
	Recv(ctx context.Context) (seq uint64, rec []byte, err error)
	// Ack acknowledges every record up to seq as applied. The ack leaves
	// by the transport's own policy (see the transport's Describe and
	// the package doc).
	Ack(seq uint64) error
	// Close sends the last acks and finishes this end of the stream.
	Close() error
}

// Applier is implemented by receivers with a receive loop of their own
// (recordmux's RecordStream.Apply); [Apply] uses it.
type Applier interface {
	// Apply calls fn for each record in order and acknowledges it once fn
	// returns, until the sender finishes the stream (nil) or it fails.
	Apply(ctx context.Context, fn func(rec []byte)) error
}

// WireCounter is implemented by client connections that can tell the
// bytes they put on the wire (recordmux, from quic-go's connection
// statistics).
type WireCounter interface {
	// WireBytesSent returns the bytes sent on the connection so far,
	// transport overhead included.
	WireBytesSent() uint64
}

// Backlogger is implemented by receivers that keep an apply backlog of
// their own (recordmux).
type Backlogger interface {
	// Backlog returns the records received and not yet applied now, and
	// the peaks of records and bytes so far.
	Backlog() Backlog
}

// Backlog is a receiver's apply backlog.
type Backlog struct {
	Records, PeakRecords, PeakBytes uint64
}

// Apply runs r's receive loop: it calls fn for each record in order and
// acknowledges it, until the sender finished the stream, and then closes
// r. It returns nil after a clean end.
func Apply(ctx context.Context, r Receiver, fn func(rec []byte)) error {
	var err error
	if a, ok := r.(Applier); ok {
		err = a.Apply(ctx, fn)
	} else {
		err = applyLoop(ctx, r, fn)
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}

func applyLoop(ctx context.Context, r Receiver, fn func(rec []byte)) error {
	for {
		seq, rec, err := r.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(rec)
		if err := r.Ack(seq); err != nil {
			return err
		}
	}
}

// Tuning is what a benchmark case may impose on a transport. Zero fields
// keep the transport's defaults.
type Tuning struct {
	// WindowRecords and WindowBytes cap a stream's records (bytes) sent
	// and not yet acknowledged, and the receiver's apply backlog, for
	// transports that have such windows (recordmux: MaxInFlight* and
	// MaxApplyBacklog*; mux: its stream window). Others are bounded by
	// their flow control only.
	WindowRecords int `json:"window_records,omitempty"`
	WindowBytes   int `json:"window_bytes,omitempty"`
	// MaxStreams is how many concurrent streams one connection must
	// allow.
	MaxStreams int `json:"max_streams,omitempty"`
	// AckEvery makes framer-style receivers (raw, framer, grpc, yamux,
	// smux) send their acks at least every AckEvery records, not only
	// when their read buffer holds no complete record; a slow consumer
	// rarely sees that.
	AckEvery int `json:"ack_every,omitempty"`
}

// merge returns t with the non-zero fields of o.
func (t Tuning) merge(o Tuning) Tuning {
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&t.WindowRecords, o.WindowRecords)
	set(&t.WindowBytes, o.WindowBytes)
	set(&t.MaxStreams, o.MaxStreams)
	set(&t.AckEvery, o.AckEvery)
	return t
}

// Options configure every transport of a run. They cross the control
// connection, so that both ends of a two-host run use the same.
type Options struct {
	// Recordmux is the batching of every recordmux variant.
	Recordmux RecordmuxOptions `json:"recordmux"`
}

// All returns every transport, configured by o, in the order tables list
// them: recordmux and its fixed-window variants, then the others.
func All(o Options) []Transport {
	return []Transport{
		newRecordmux(o.Recordmux),
		newRecordmuxFixed(o.Recordmux, 1024),
		newRecordmuxFixed(o.Recordmux, 32768),
		newRecordmuxCompressed(o.Recordmux, "s2"),
		newRecordmuxCompressed(o.Recordmux, "zstd"),
		newRecordmuxCompressed(o.Recordmux, "auto"),
		Raw(),
		Framer(),
		Mux{},
		GRPC{},
		Yamux{},
		Smux{},
	}
}

// ErrUnknown is returned for a transport name that [All] does not know.
var ErrUnknown = errors.New("unknown transport")

// Lookup returns the transport called name among ts.
func Lookup(ts []Transport, name string) (Transport, error) {
	for _, t := range ts {
		if t.Name() == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknown, name)
}

// Spec names a transport with everything that configures it. It crosses
// the control connection as JSON, so that the server builds the same
// transport as the client.
type Spec struct {
	Name    string  `json:"name"`
	Options Options `json:"options"`
	Tuning  Tuning  `json:"tuning"`
}

// Build returns the transport s describes.
func (s Spec) Build() (Transport, error) {
	t, err := Lookup(All(s.Options), s.Name)
	if err != nil {
		return nil, err
	}
	return t.With(s.Tuning), nil
}
