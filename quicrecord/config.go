package quicrecord

import (
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/flow"
)

// Config tunes connections and record streams. The zero value, and a nil
// *Config, mean the documented defaults. The library never modifies a
// Config it is given and reads it only when a connection is created, so
// one Config may be shared by many connections.
type Config struct {
	// QUIC is the quic-go configuration for Dial and Listen. nil means
	// [DefaultQUICConfig]. The library clones it before changing anything
	// (it sets EnableStreamResetPartialDelivery so ERROR frames survive a
	// reset). It is ignored by [NewConn], whose connection already exists.
	QUIC *quic.Config

	// StatelessResetKey, if set, is given to the quic.Transport that
	// Listen and Dial create. A server restarted with the same key can
	// reset the connections of its previous run at once, so their clients
	// notice immediately instead of after the idle timeout. nil: no
	// stateless resets.
	StatelessResetKey *quic.StatelessResetKey

	// MaxBatchRecords caps the records in one BATCH frame. 0 means
	// [DefaultMaxBatchRecords] (4096).
	MaxBatchRecords int
	// MaxBatchBytes caps the encoded records in one BATCH frame; a single
	// larger record is sent alone. 0 means [DefaultMaxBatchBytes] (64 KiB).
	MaxBatchBytes int
	// FlushDelay is how long the writer loop lingers for more records
	// before sending a batch that is not full. 0 (the default) sends as
	// soon as the loop is free: latency first. Flush and Barrier never
	// wait for it.
	FlushDelay time.Duration
	// AckDelay is how long a pending ack waits for an outgoing batch to
	// ride in while the stream is sending in the other direction. When
	// that direction is idle the ack leaves at once as an ACK frame. 0
	// means [DefaultAckDelay] (250µs); values above 1ms are treated as
	// 1ms; a negative value disables waiting.
	AckDelay time.Duration

	// QueueDelayTarget is the queueing delay a stream's adaptive windows
	// aim at: how long a record may wait, beyond the shortest Send→applied
	// time the stream measures (the round trip plus the application's
	// time for one batch), in the sender's own batches, in QUIC, on the
	// network and in the receiver's apply backlog. The sender keeps in
	// flight what its measured delivery rate needs for that time and not
	// more (see [RecordStream.Send]); the receiver shrinks the window it
	// announces when its application keeps a standing backlog longer than
	// twice the target. Smaller means lower latency under load and, below
	// what the path's jitter needs, less throughput. 0 means
	// [DefaultQueueDelayTarget] (2ms).
	QueueDelayTarget time.Duration
	// FixedWindow switches the adaptive windows off: the sender keeps up
	// to MaxInFlightRecords / MaxInFlightBytes in flight (or the peer's
	// window, if smaller), and the receiver announces its
	// MaxApplyBacklogRecords / MaxApplyBacklogBytes and never less. For
	// bulk transfers where queueing delay does not matter, and to compare.
	FixedWindow bool

	// MaxInFlightRecords caps records sent but not yet acknowledged as
	// applied: the adaptive window never exceeds it, and a FixedWindow is
	// it. Send blocks at the cap. The peer's announced window lowers it
	// further. 0 means [DefaultMaxInFlightRecords] (32768).
	MaxInFlightRecords int
	// MaxInFlightBytes caps the record bytes sent but not yet
	// acknowledged. 0 means [DefaultMaxInFlightBytes] (8 MiB).
	MaxInFlightBytes int
	// MaxApplyBacklogRecords caps records received but not yet acked or
	// rejected by the application. It is announced to the peer as its
	// window; when the backlog is full the stream stops reading and QUIC
	// flow control pushes back. 0 means [DefaultMaxApplyBacklogRecords]
	// (32768).
	MaxApplyBacklogRecords int
	// MaxApplyBacklogBytes caps the record bytes of the apply backlog.
	// 0 means [DefaultMaxApplyBacklogBytes] (8 MiB).
	MaxApplyBacklogBytes int
	// MaxRecordSize is the largest record accepted in either direction.
	// 0 means [DefaultMaxRecordSize] (1 MiB). The maximum frame size
	// announced to the peer follows from it.
	MaxRecordSize int

	// HelloTimeout bounds the wait for the peer's HELLO on a new stream;
	// a stream that sends none in time is reset with CodeHelloTimeout.
	// 0 means [DefaultHelloTimeout] (10s).
	HelloTimeout time.Duration
	// CloseTimeout bounds how long [RecordStream.Close] waits for records
	// already sent to be handed to QUIC before it resets the stream.
	// 0 means [DefaultCloseTimeout] (10s).
	CloseTimeout time.Duration
	// AcceptBacklog caps streams that finished their handshake but were not
	// yet returned by AcceptRecordStream; further streams wait. 0 means
	// [DefaultAcceptBacklog] (128).
	AcceptBacklog int

	// MinProtocolVersion and MaxProtocolVersion narrow the protocol
	// versions this side speaks; 0 means the library's own bounds (1 and 2).
	// Values outside those bounds are clamped. Operators pin a mixed fleet
	// with them.
	MinProtocolVersion uint64
	MaxProtocolVersion uint64
	// DisableFeatures switches optional protocol features off; they are
	// not announced, so the peer never uses them on this side's streams.
	DisableFeatures Features

	// ResumeStore, if set, lets peers resume streams on this side (see
	// [ResumableStream]); share one store between the connections of a
	// listener. nil: this side does not offer resumption, and resumable
	// streams opened towards it fall back to plain streams.
	ResumeStore *ResumeStore

	// AcceptHandler, if set, decides on every stream a peer opens on a
	// connection made with this Config, from its first stream on (see
	// [Conn.SetAcceptHandler], which replaces it for one connection). Set
	// it here rather than with SetAcceptHandler when authorization must
	// cover streams that arrive right after the connection is accepted.
	AcceptHandler func(RecordAcceptInfo) error

	// OnStreamRefused, if set, is called for every stream the peer opened
	// that this side refused: a malformed or missing HELLO, no common
	// protocol version, or the accept handler's refusal. err is the
	// *StreamError the opener was sent (Remote == false). It runs on the
	// stream's handshake goroutine and must not block.
	OnStreamRefused func(info RecordAcceptInfo, err *StreamError)

	// Logger receives stream lifecycle events at debug level and protocol
	// violations at warn level. nil means no logging.
	Logger *slog.Logger
}

// The defaults of the Config fields, used when a field is zero.
const (
	DefaultQueueDelayTarget       = flow.DefaultTarget
	DefaultMaxBatchRecords        = 4096
	DefaultMaxBatchBytes          = 64 << 10
	DefaultAckDelay               = 250 * time.Microsecond
	DefaultMaxInFlightRecords     = 32768
	DefaultMaxInFlightBytes       = 8 << 20
	DefaultMaxApplyBacklogRecords = 32768
	DefaultMaxApplyBacklogBytes   = 8 << 20
	DefaultMaxRecordSize          = 1 << 20
	DefaultHelloTimeout           = 10 * time.Second
	DefaultCloseTimeout           = 10 * time.Second
	DefaultAcceptBacklog          = 128
)

// Library bounds.
const (
	// MinVersion is the lowest protocol version this library speaks.
	MinVersion uint64 = frames.Version1
	// MaxVersion is the highest protocol version this library speaks.
	MaxVersion uint64 = frames.Version2
)

// ALPN is the TLS application protocol Dial and Listen set when the
// tls.Config names none.
const ALPN = "recordmux/1"

// maxAckDelay is the upper bound of AckDelay.
const maxAckDelay = time.Millisecond

// settings is a Config with every default resolved. Streams keep a pointer
// to their connection's settings; it is never written after creation.
type settings struct {
	maxBatchRecords  int
	maxBatchBytes    int
	flushDelay       time.Duration
	ackDelay         time.Duration
	queueTarget      time.Duration
	fixedWindow      bool
	maxInFlightRecs  int
	maxInFlightBytes int
	maxBacklogRecs   int
	maxBacklogBytes  int
	maxRecordSize    int
	helloTimeout     time.Duration
	closeTimeout     time.Duration
	acceptBacklog    int
	minVersion       uint64
	maxVersion       uint64
	features         frames.Features
	logger           *slog.Logger
	onRefused        func(RecordAcceptInfo, *StreamError)
	acceptHandler    func(RecordAcceptInfo) error
	resume           *ResumeStore
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (c *Config) settings() *settings {
	if c == nil {
		c = &Config{}
	}
	s := &settings{
		maxBatchRecords:  orDefault(c.MaxBatchRecords, DefaultMaxBatchRecords),
		maxBatchBytes:    orDefault(c.MaxBatchBytes, DefaultMaxBatchBytes),
		flushDelay:       max(c.FlushDelay, 0),
		queueTarget:      orDefault(c.QueueDelayTarget, DefaultQueueDelayTarget),
		fixedWindow:      c.FixedWindow,
		maxInFlightRecs:  orDefault(c.MaxInFlightRecords, DefaultMaxInFlightRecords),
		maxInFlightBytes: orDefault(c.MaxInFlightBytes, DefaultMaxInFlightBytes),
		maxBacklogRecs:   orDefault(c.MaxApplyBacklogRecords, DefaultMaxApplyBacklogRecords),
		maxBacklogBytes:  orDefault(c.MaxApplyBacklogBytes, DefaultMaxApplyBacklogBytes),
		maxRecordSize:    orDefault(c.MaxRecordSize, DefaultMaxRecordSize),
		helloTimeout:     orDefault(c.HelloTimeout, DefaultHelloTimeout),
		closeTimeout:     orDefault(c.CloseTimeout, DefaultCloseTimeout),
		acceptBacklog:    orDefault(c.AcceptBacklog, DefaultAcceptBacklog),
		minVersion:       MinVersion,
		maxVersion:       MaxVersion,
		features:         allFeatures &^ c.DisableFeatures,
		logger:           c.Logger,
		onRefused:        c.OnStreamRefused,
		acceptHandler:    c.AcceptHandler,
		resume:           c.ResumeStore,
	}
	if s.resume == nil {
		s.features &^= FeatureResume
	}
	switch {
	case c.AckDelay < 0:
		s.ackDelay = 0
	case c.AckDelay == 0:
		s.ackDelay = DefaultAckDelay
	default:
		s.ackDelay = min(c.AckDelay, maxAckDelay)
	}
	if c.MinProtocolVersion != 0 {
		s.minVersion = min(max(c.MinProtocolVersion, MinVersion), MaxVersion)
	}
	if c.MaxProtocolVersion != 0 {
		s.maxVersion = min(max(c.MaxProtocolVersion, MinVersion), MaxVersion)
	}
	if s.maxVersion < s.minVersion {
		// An impossible range is the caller's mistake; keep the max, which
		// is what an operator pinning a fleet down means.
		s.minVersion = s.maxVersion
	}
	return s
}

// narrow returns settings for one stream whose version is capped at
// maxVersion (0: no cap) and with features switched off; s itself when
// nothing changes.
func (s *settings) narrow(maxVersion uint64, disable Features) *settings {
	if (maxVersion == 0 || maxVersion >= s.maxVersion) && s.features&disable == 0 {
		return s
	}
	n := *s
	if maxVersion != 0 && maxVersion < n.maxVersion {
		n.maxVersion = max(maxVersion, MinVersion)
		n.minVersion = min(n.minVersion, n.maxVersion)
	}
	n.features &^= disable
	return &n
}

// maxFrameSize is the frame payload limit announced to peers: room for the
// largest record plus the batch header.
func (s *settings) maxFrameSize() uint64 {
	return uint64(max(s.maxRecordSize, s.maxBatchBytes)) + 64
}

// DefaultQUICConfig returns the quic-go configuration used when
// Config.QUIC is nil: flow-control windows sized for throughput (4 MiB per
// stream growing to 16 MiB, 8 MiB per connection growing to 64 MiB), a
// 30 s idle timeout with 10 s keep-alives, up to 1024 concurrent incoming
// streams and no unidirectional ones, and RESET_STREAM_AT support so that ERROR frames sent before a
// reset are delivered.
func DefaultQUICConfig() *quic.Config {
	return &quic.Config{
		InitialStreamReceiveWindow:       4 << 20,
		MaxStreamReceiveWindow:           16 << 20,
		InitialConnectionReceiveWindow:   8 << 20,
		MaxConnectionReceiveWindow:       64 << 20,
		MaxIdleTimeout:                   30 * time.Second,
		KeepAlivePeriod:                  10 * time.Second,
		MaxIncomingStreams:               1024,
		MaxIncomingUniStreams:            -1,
		EnableStreamResetPartialDelivery: true,
	}
}

func (c *Config) resetKey() *quic.StatelessResetKey {
	if c == nil {
		return nil
	}
	return c.StatelessResetKey
}

func (c *Config) quicConfig() *quic.Config {
	if c == nil || c.QUIC == nil {
		return DefaultQUICConfig()
	}
	q := c.QUIC.Clone()
	q.EnableStreamResetPartialDelivery = true
	return q
}
