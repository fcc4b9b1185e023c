package quicrecord

import (
	"fmt"
	"time"
)

// StreamConfig holds the settings of one stream: batching, delays,
// windows, record size and close timeout. Zero means "not set" for every
// field, and a negative value is an error except where a field says what
// it means.
//
// A stream's settings are resolved once, when it opens, field by field:
// the field of the stream's own StreamConfig if set (StreamOptions.Config
// for a stream this side opens, the AcceptHandler's result for one it
// accepts), else the field of the connection's Config.Stream if set, else
// the library's default. One connection can so carry a latency stream
// (no linger, small windows) next to a bulk one (FlushDelay, large
// batches). The limits this side receives under (MaxApplyBacklogRecords,
// MaxApplyBacklogBytes, MaxRecordSize) are announced to the peer in the
// stream's HELLO.
type StreamConfig struct {
	// MaxBatchRecords caps the records in one BATCH frame. Default
	// [DefaultMaxBatchRecords] (4096).
	MaxBatchRecords int
	// MaxBatchBytes caps the encoded records in one BATCH frame; a single
	// larger record is sent alone. Default [DefaultMaxBatchBytes] (64
	// KiB); at most [MaxRecordSizeLimit].
	MaxBatchBytes int
	// FlushDelay is how long the writer loop lingers for more records
	// before sending a batch that is not full. Default: no linger, a
	// batch leaves as soon as the loop is free (latency first). A
	// negative value also means no linger, and overrides a connection
	// default that lingers. Flush, Barrier and Close never wait for it.
	FlushDelay time.Duration
	// AckDelay is how long a pending ack waits for an outgoing batch to
	// ride in while the stream is sending in the other direction; when
	// that direction is idle the ack leaves at once as an ACK frame.
	// Default [DefaultAckDelay] (250µs); at most [MaxAckDelay]; a
	// negative value sends every ack at once.
	AckDelay time.Duration

	// Window says how the stream sizes the records it keeps in flight:
	// [WindowAdaptive] (the default) or [WindowFixed].
	Window WindowMode
	// QueueDelayTarget is the queueing delay the adaptive windows aim at:
	// how long a record may wait, beyond the shortest Send→applied time
	// the stream measures (the round trip) and its own batch's time to
	// cross the path and the peer's application at the delivery rate, in
	// the sender's own batches, in QUIC, on the network and in the
	// receiver's apply backlog. The sender keeps in
	// flight what its measured delivery rate needs for that time and not
	// more; the receiver announces a smaller window while its
	// application keeps a standing backlog longer than twice the target.
	// Smaller means lower latency under load and, below what the path's
	// jitter needs, less throughput. Default [DefaultQueueDelayTarget]
	// (2ms).
	QueueDelayTarget time.Duration
	// MaxInFlightRecords caps records sent but not yet acknowledged as
	// applied: the adaptive window never exceeds it, and a fixed window
	// is it. Send blocks at the cap. The peer's announced window
	// (Negotiated.PeerLimits.MaxInFlightRecords) lowers it further.
	// Default [DefaultMaxInFlightRecords] (32768).
	MaxInFlightRecords int
	// MaxInFlightBytes caps the record bytes sent but not yet
	// acknowledged. Default [DefaultMaxInFlightBytes] (8 MiB).
	MaxInFlightBytes int
	// MaxApplyBacklogRecords caps records received but not yet acked or
	// rejected by the application. It is announced to the peer as the
	// most it may have in flight; when the backlog is full the stream
	// stops reading and QUIC flow control pushes back. Default
	// [DefaultMaxApplyBacklogRecords] (32768).
	MaxApplyBacklogRecords int
	// MaxApplyBacklogBytes caps the record bytes of the apply backlog.
	// Default [DefaultMaxApplyBacklogBytes] (8 MiB).
	MaxApplyBacklogBytes int
	// MaxRecordSize is the largest record accepted in either direction.
	// Default [DefaultMaxRecordSize] (1 MiB); at most
	// [MaxRecordSizeLimit]. The maximum frame size announced to the peer
	// follows from it.
	MaxRecordSize int

	// Compression says whether and how the stream compresses the batches
	// it sends: [CompressionOff], [CompressionS2], [CompressionZstd] or
	// [CompressionAuto]. Default [DefaultCompression] (off). It takes
	// effect only with a peer that negotiated [FeatureCompression] and
	// accepts the codec; otherwise batches go plain. Batches below 1 KiB,
	// and those that do not shrink, go plain too. Windows, backlogs and
	// record limits count uncompressed bytes either way.
	Compression Compression

	// CloseTimeout bounds how long [RecordStream.Close] waits for
	// records already sent to be handed to QUIC before it resets the
	// stream, as does the context passed to Close, whichever ends first.
	// Default [DefaultCloseTimeout] (10s).
	CloseTimeout time.Duration
}

// WindowMode says how a stream sizes the records it keeps in flight and
// the window it announces; the zero value means "not set" (the default,
// WindowAdaptive).
type WindowMode uint8

// Window modes.
const (
	// WindowAdaptive sizes the windows from what the stream measures:
	// the sender keeps in flight what the peer's measured delivery rate
	// needs for the shortest Send→ack time plus QueueDelayTarget, within
	// MaxInFlightRecords and MaxInFlightBytes; the receiver announces a
	// smaller window while its application keeps a standing backlog.
	WindowAdaptive WindowMode = iota + 1
	// WindowFixed keeps up to MaxInFlightRecords / MaxInFlightBytes in
	// flight (or the peer's window, if smaller), and announces
	// MaxApplyBacklogRecords / MaxApplyBacklogBytes and never less: for
	// bulk transfers where queueing does not matter, and to compare.
	WindowFixed
)

// String returns "adaptive", "fixed" or "unset".
func (m WindowMode) String() string {
	switch m {
	case WindowAdaptive:
		return "adaptive"
	case WindowFixed:
		return "fixed"
	case 0:
		return "unset"
	}
	return fmt.Sprintf("WindowMode(%d)", uint8(m))
}

// Validate reports the first invalid field of c as a *ConfigError, or
// nil. A nil StreamConfig is valid.
func (c *StreamConfig) Validate() error {
	if c == nil {
		return nil
	}
	return c.validate("StreamConfig.")
}

// validate checks c, naming fields with prefix.
func (c *StreamConfig) validate(prefix string) error {
	ints := []struct {
		name string
		v    int
	}{
		{"MaxBatchRecords", c.MaxBatchRecords}, {"MaxBatchBytes", c.MaxBatchBytes},
		{"MaxInFlightRecords", c.MaxInFlightRecords}, {"MaxInFlightBytes", c.MaxInFlightBytes},
		{"MaxApplyBacklogRecords", c.MaxApplyBacklogRecords}, {"MaxApplyBacklogBytes", c.MaxApplyBacklogBytes},
		{"MaxRecordSize", c.MaxRecordSize},
	}
	for _, f := range ints {
		if f.v < 0 {
			return notNegative(prefix+f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxBatchBytes", c.MaxBatchBytes}, {"MaxRecordSize", c.MaxRecordSize}} {
		if f.v > MaxRecordSizeLimit {
			return &ConfigError{Field: prefix + f.name, Value: f.v, Reason: fmt.Sprintf("must be at most MaxRecordSizeLimit (%d)", MaxRecordSizeLimit)}
		}
	}
	switch {
	case c.AckDelay > MaxAckDelay:
		return &ConfigError{Field: prefix + "AckDelay", Value: c.AckDelay,
			Reason: fmt.Sprintf("must be at most MaxAckDelay (%v); negative sends acks at once", MaxAckDelay)}
	case c.CloseTimeout < 0:
		return notNegative(prefix+"CloseTimeout", c.CloseTimeout)
	case c.QueueDelayTarget < 0:
		return notNegative(prefix+"QueueDelayTarget", c.QueueDelayTarget)
	case c.Window > WindowFixed:
		return &ConfigError{Field: prefix + "Window", Value: c.Window, Reason: "must be WindowAdaptive, WindowFixed or 0 (the default)"}
	case c.Compression > CompressionAuto:
		return &ConfigError{Field: prefix + "Compression", Value: c.Compression,
			Reason: "must be CompressionOff, CompressionS2, CompressionZstd, CompressionAuto or 0 (the default)"}
	}
	return nil
}

// overriddenBy returns c with every field that o sets replaced by o's.
func (c StreamConfig) overriddenBy(o *StreamConfig) StreamConfig {
	return StreamConfig{
		MaxBatchRecords:        orDefault(o.MaxBatchRecords, c.MaxBatchRecords),
		MaxBatchBytes:          orDefault(o.MaxBatchBytes, c.MaxBatchBytes),
		FlushDelay:             orDefault(o.FlushDelay, c.FlushDelay),
		AckDelay:               orDefault(o.AckDelay, c.AckDelay),
		Window:                 orDefault(o.Window, c.Window),
		QueueDelayTarget:       orDefault(o.QueueDelayTarget, c.QueueDelayTarget),
		MaxInFlightRecords:     orDefault(o.MaxInFlightRecords, c.MaxInFlightRecords),
		MaxInFlightBytes:       orDefault(o.MaxInFlightBytes, c.MaxInFlightBytes),
		MaxApplyBacklogRecords: orDefault(o.MaxApplyBacklogRecords, c.MaxApplyBacklogRecords),
		MaxApplyBacklogBytes:   orDefault(o.MaxApplyBacklogBytes, c.MaxApplyBacklogBytes),
		MaxRecordSize:          orDefault(o.MaxRecordSize, c.MaxRecordSize),
		CloseTimeout:           orDefault(o.CloseTimeout, c.CloseTimeout),
		Compression:            orDefault(o.Compression, c.Compression),
	}
}

// streamSettings are a StreamConfig with every default resolved.
type streamSettings struct {
	maxBatchRecords  int
	maxBatchBytes    int
	flushDelay       time.Duration // 0: no linger
	ackDelay         time.Duration // 0: acks at once
	fixedWindow      bool
	queueTarget      time.Duration
	maxInFlightRecs  int
	maxInFlightBytes int
	maxBacklogRecs   int
	maxBacklogBytes  int
	maxRecordSize    int
	closeTimeout     time.Duration
	compression      Compression // never 0
}

// resolve applies the library's defaults to the fields c leaves unset.
func (c StreamConfig) resolve() streamSettings {
	return streamSettings{
		maxBatchRecords:  orDefault(c.MaxBatchRecords, DefaultMaxBatchRecords),
		maxBatchBytes:    orDefault(c.MaxBatchBytes, DefaultMaxBatchBytes),
		flushDelay:       max(c.FlushDelay, 0),
		ackDelay:         max(orDefault(c.AckDelay, DefaultAckDelay), 0),
		fixedWindow:      c.Window == WindowFixed,
		queueTarget:      orDefault(c.QueueDelayTarget, DefaultQueueDelayTarget),
		maxInFlightRecs:  orDefault(c.MaxInFlightRecords, DefaultMaxInFlightRecords),
		maxInFlightBytes: orDefault(c.MaxInFlightBytes, DefaultMaxInFlightBytes),
		maxBacklogRecs:   orDefault(c.MaxApplyBacklogRecords, DefaultMaxApplyBacklogRecords),
		maxBacklogBytes:  orDefault(c.MaxApplyBacklogBytes, DefaultMaxApplyBacklogBytes),
		maxRecordSize:    orDefault(c.MaxRecordSize, DefaultMaxRecordSize),
		closeTimeout:     orDefault(c.CloseTimeout, DefaultCloseTimeout),
		compression:      orDefault(c.Compression, DefaultCompression),
	}
}

// maxFrameSize is the frame payload limit announced to peers: room for the
// largest record plus the batch header.
func (s *streamSettings) maxFrameSize() uint64 {
	return uint64(max(s.maxRecordSize, s.maxBatchBytes)) + frameOverhead
}
