package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/flow"
)

// Config tunes connections. The zero value, and a nil *Config, mean the
// documented defaults: zero means the default for every field, and a
// negative value is an error except where a field says what it means.
// [Config.Validate] checks a Config, and Listen, Dial, NewConn,
// NewListener, DialResumable and NewResumableStream return its
// *[ConfigError] for an invalid one. The library never modifies a Config
// it is given and reads it only when a connection is created, so one
// Config may be shared by many connections.
//
// Settings of one stream (batching, delays, windows, record size, close
// timeout) are in Stream, the connection's defaults for them: an opener
// overrides them per stream with StreamOptions.Config, an acceptor with
// the *StreamConfig its AcceptHandler returns.
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
	// stateless resets. (A stream whose records wait for an ack sends a
	// small frame of a reserved type now and then, so that even a sender
	// with a full window draws the reset: see FramesOut.Unknown.)
	StatelessResetKey *quic.StatelessResetKey

	// HandshakeTimeout bounds the QUIC handshake of Dial and of the
	// connections Listen accepts: it fails when no packet comes from the
	// peer for this long, or when it has not completed in twice this long
	// (quic-go's HandshakeIdleTimeout). Dial then returns a *DialError
	// matching [ErrHandshakeTimeout]. 0 means QUIC.HandshakeIdleTimeout
	// when set, else [DefaultHandshakeTimeout] (5s, quic-go's default).
	HandshakeTimeout time.Duration

	// Stream holds the connection's defaults for the settings of each
	// stream (see [StreamConfig]).
	Stream StreamConfig

	// HelloTimeout bounds the wait for the peer's HELLO on a new stream;
	// a stream that sends none in time is reset with CodeHelloTimeout.
	// 0 means [DefaultHelloTimeout] (10s).
	HelloTimeout time.Duration
	// AcceptBacklog caps streams that finished their handshake but were not
	// yet returned by AcceptRecordStream; further streams wait. 0 means
	// [DefaultAcceptBacklog] (128).
	AcceptBacklog int

	// MaxConnReceiveBytes is the receive budget of one connection: the
	// most record data all its streams together hold in receive buffers,
	// apply backlogs and frames being read. A stream whose next frame
	// does not fit stops reading until room is given back (records
	// applied, or returned by Recv), so QUIC flow control pushes back on
	// the peer; nothing is allocated meanwhile. A frame larger than the
	// whole budget waits until all of it is free. 0 means
	// [DefaultMaxConnReceiveBytes] (64 MiB).
	MaxConnReceiveBytes int64
	// MaxListenerReceiveBytes is the receive budget shared by all
	// connections a Listener accepts: each grant takes room in the
	// connection's budget and in this one. It is ignored for dialed
	// connections. 0 means [DefaultMaxListenerReceiveBytes] (512 MiB); it
	// must not be below the connection budget.
	MaxListenerReceiveBytes int64
	// PreAcceptReceiveBytes is what a stream the peer opened may hold of
	// the connection's budget before AcceptRecordStream returns it: a
	// stream waiting in the accept backlog reads no more than this, so
	// streams the application never accepts cannot take the budget. 0
	// means [DefaultPreAcceptReceiveBytes] (128 KiB); it must not be above
	// the connection budget.
	PreAcceptReceiveBytes int64

	// MinProtocolVersion and MaxProtocolVersion narrow the protocol
	// versions this side speaks, within [LowestProtocolVersion] and
	// [HighestProtocolVersion]; 0 means that bound. Operators pin a mixed
	// fleet with them. A value outside the library's range, or a minimum
	// above the maximum, is an error.
	MinProtocolVersion uint64
	MaxProtocolVersion uint64
	// DisableFeatures switches optional protocol features off; they are
	// not announced, so the peer never uses them on this side's streams.
	// Bits of features this library does not know are ignored.
	DisableFeatures Features

	// ResumeStore, if set, lets peers resume streams on this side (see
	// [ResumableStream]); share one store between the connections of a
	// listener. nil: this side does not offer resumption, and resumable
	// streams opened towards it fall back to plain streams.
	ResumeStore *ResumeStore
	// PeerIdentity names the peer of a connection: the identity resume
	// state is bound to (ResumeKeyInfo.Peer) and AcceptInfo.PeerIdentity.
	// "" means the peer has none (see ResumeStoreConfig.AllowAnonymous).
	// An application with identities of its own (a SPIFFE ID from a URI
	// SAN, say) returns them here; it must derive them only from what the
	// TLS handshake verified. nil means [DefaultPeerIdentity]: the SPKI
	// fingerprint of a certificate verified against a chain, so that a
	// renewed certificate for the same key keeps its streams. Pinned
	// configurations (identity.MutualServerConfig) verify in
	// VerifyConnection and leave no chain: use [PresentedPeerIdentity].
	PeerIdentity func(cs tls.ConnectionState) string

	// AcceptHandler, if set, decides on every stream a peer opens on a
	// connection made with this Config, after the version negotiation and
	// before this side's HELLO reply, and chooses the stream's settings:
	// the StreamConfig it returns overrides Config.Stream for the stream
	// (nil: Config.Stream), and the limits it sets are the ones announced
	// to the opener. A non-nil error refuses the stream instead: the
	// opener gets a *StreamError with the code and reason of an
	// *[ApplicationError] in the error's chain, or CodeRefused and a
	// generic reason (the error's own text stays on this side; see
	// ApplicationError). An invalid StreamConfig refuses the stream with
	// CodeInternal, and OnStreamRefused gets the *ConfigError as the
	// StreamError's Err.
	//
	// It runs on the stream's handshake goroutine, one per stream, and
	// may block until ctx ends: ctx is done when the stream's hello
	// timeout passes or the connection ends. info must not be kept.
	AcceptHandler func(ctx context.Context, info *AcceptInfo) (*StreamConfig, error)

	// OnStreamRefused, if set, is called for every stream the peer opened
	// that this side refused: a malformed or missing HELLO, no common
	// protocol version, or the accept handler's refusal. err is the
	// *StreamError the opener was sent (Remote == false), with the
	// handler's error as its Err. It runs on the stream's handshake
	// goroutine and must not block; info must not be kept.
	OnStreamRefused func(info *AcceptInfo, err *StreamError)

	// Logger receives stream lifecycle events and the causes of
	// rejections and refusals at debug level, and protocol violations at
	// warn level. nil means no logging.
	Logger *slog.Logger
}

// The defaults of the Config and StreamConfig fields, used when a field
// is zero.
const (
	DefaultQueueDelayTarget        = flow.DefaultTarget
	DefaultMaxBatchRecords         = 4096
	DefaultMaxBatchBytes           = 64 << 10
	DefaultAckDelay                = 250 * time.Microsecond
	DefaultMaxInFlightRecords      = 32768
	DefaultMaxInFlightBytes        = 8 << 20
	DefaultMaxApplyBacklogRecords  = 32768
	DefaultMaxApplyBacklogBytes    = 8 << 20
	DefaultMaxRecordSize           = 1 << 20
	DefaultHelloTimeout            = 10 * time.Second
	DefaultHandshakeTimeout        = 5 * time.Second
	DefaultCloseTimeout            = 10 * time.Second
	DefaultAcceptBacklog           = 128
	DefaultMaxConnReceiveBytes     = 64 << 20
	DefaultMaxListenerReceiveBytes = 512 << 20
	DefaultPreAcceptReceiveBytes   = 128 << 10
)

// MaxAckDelay is the largest StreamConfig.AckDelay.
const MaxAckDelay = time.Millisecond

// MaxRecordSizeLimit is the largest StreamConfig.MaxRecordSize and
// MaxBatchBytes: 1 GiB less 64 bytes of room for a BATCH frame's headers.
const MaxRecordSizeLimit = 1<<30 - 64

// frameOverhead is what the maximum frame size announced to peers adds to
// the largest record or batch: room for the batch header. The largest
// frame, MaxRecordSizeLimit plus it, is the frame reader's 1 GiB limit.
const frameOverhead = 1<<30 - MaxRecordSizeLimit

// The protocol versions this library speaks.
const (
	// LowestProtocolVersion is the lowest protocol version this library
	// speaks.
	LowestProtocolVersion uint64 = frames.Version1
	// HighestProtocolVersion is the highest protocol version this library
	// speaks.
	HighestProtocolVersion uint64 = frames.Version2
)

// ALPN is the TLS application protocol Dial and Listen set when the
// tls.Config names none.
const ALPN = "recordmux/1"

// ErrInvalidConfig matches every *[ConfigError].
var ErrInvalidConfig = errors.New("quicrecord: invalid configuration")

// ConfigError reports an invalid configuration value: which field, the
// value, and why. It matches [ErrInvalidConfig].
type ConfigError struct {
	// Field names the field from the value the caller passed, such as
	// "Config.Stream.MaxBatchBytes" or "StreamOptions.Config.AckDelay".
	Field  string
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("quicrecord: invalid %s: %v: %s", e.Field, e.Value, e.Reason)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Validate reports the first invalid field of c as a *ConfigError, or
// nil. A nil Config is valid.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	if err := c.Stream.validate("Config.Stream."); err != nil {
		return err
	}
	switch {
	case c.HandshakeTimeout < 0:
		return notNegative("Config.HandshakeTimeout", c.HandshakeTimeout)
	case c.HelloTimeout < 0:
		return notNegative("Config.HelloTimeout", c.HelloTimeout)
	case c.AcceptBacklog < 0:
		return notNegative("Config.AcceptBacklog", c.AcceptBacklog)
	}
	if err := c.validateBudgets(); err != nil {
		return err
	}
	return c.validateVersions()
}

// validateBudgets checks the receive budgets: none negative, the
// listener's not below a connection's, the pre-accept credit not above
// it (defaults resolved).
func (c *Config) validateBudgets() error {
	switch {
	case c.MaxConnReceiveBytes < 0:
		return notNegative("Config.MaxConnReceiveBytes", c.MaxConnReceiveBytes)
	case c.MaxListenerReceiveBytes < 0:
		return notNegative("Config.MaxListenerReceiveBytes", c.MaxListenerReceiveBytes)
	case c.PreAcceptReceiveBytes < 0:
		return notNegative("Config.PreAcceptReceiveBytes", c.PreAcceptReceiveBytes)
	}
	conn, ln, pre := c.budgets()
	if ln < conn {
		return &ConfigError{Field: "Config.MaxListenerReceiveBytes", Value: ln,
			Reason: fmt.Sprintf("below the connection budget (%d)", conn)}
	}
	if pre > conn {
		return &ConfigError{Field: "Config.PreAcceptReceiveBytes", Value: pre,
			Reason: fmt.Sprintf("above the connection budget (%d)", conn)}
	}
	return nil
}

// budgets returns the receive budgets with their defaults resolved.
func (c *Config) budgets() (conn, listener, preAccept int64) {
	return orDefault(c.MaxConnReceiveBytes, DefaultMaxConnReceiveBytes),
		orDefault(c.MaxListenerReceiveBytes, DefaultMaxListenerReceiveBytes),
		orDefault(c.PreAcceptReceiveBytes, DefaultPreAcceptReceiveBytes)
}

func (c *Config) validateVersions() error {
	inRange := fmt.Sprintf("must be 0 (the library's bound) or within %d..%d", LowestProtocolVersion, HighestProtocolVersion)
	for _, f := range []struct {
		name string
		v    uint64
	}{{"Config.MinProtocolVersion", c.MinProtocolVersion}, {"Config.MaxProtocolVersion", c.MaxProtocolVersion}} {
		if f.v != 0 && (f.v < LowestProtocolVersion || f.v > HighestProtocolVersion) {
			return &ConfigError{Field: f.name, Value: f.v, Reason: inRange}
		}
	}
	if c.MinProtocolVersion != 0 && c.MaxProtocolVersion != 0 && c.MinProtocolVersion > c.MaxProtocolVersion {
		return &ConfigError{Field: "Config.MinProtocolVersion", Value: c.MinProtocolVersion,
			Reason: fmt.Sprintf("above Config.MaxProtocolVersion (%d)", c.MaxProtocolVersion)}
	}
	return nil
}

// notNegative is the error of a field whose zero is its default and which
// has no negative meaning.
func notNegative(field string, v any) error {
	return &ConfigError{Field: field, Value: v, Reason: "must be 0 (default) or positive"}
}

// settings is a Config with every default resolved. Streams keep a pointer
// to their connection's settings, or to a copy with their own stream
// settings; it is never written after creation.
type settings struct {
	streamSettings
	stream        StreamConfig // Config.Stream as given: what overrides fall back to
	helloTimeout  time.Duration
	acceptBacklog int
	minVersion    uint64
	maxVersion    uint64
	features      frames.Features
	logger        *slog.Logger
	onRefused     func(*AcceptInfo, *StreamError)
	acceptHandler func(context.Context, *AcceptInfo) (*StreamConfig, error)
	resume        *ResumeStore
	peerIdentity  func(tls.ConnectionState) string
	disabled      Features // Config.DisableFeatures
	// Receive budgets (see Config.MaxConnReceiveBytes).
	connBudget, listenerBudget, preAcceptCredit int64
}

// orDefault returns v, or def when v is zero.
func orDefault[T int | int64 | time.Duration | WindowMode | Compression](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// settings validates c and resolves its defaults.
func (c *Config) settings() (*settings, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c == nil {
		c = &Config{}
	}
	s := &settings{
		streamSettings: c.Stream.resolve(),
		stream:         c.Stream,
		helloTimeout:   orDefault(c.HelloTimeout, DefaultHelloTimeout),
		acceptBacklog:  orDefault(c.AcceptBacklog, DefaultAcceptBacklog),
		minVersion:     LowestProtocolVersion,
		maxVersion:     HighestProtocolVersion,
		features:       allFeatures &^ c.DisableFeatures,
		logger:         c.Logger,
		onRefused:      c.OnStreamRefused,
		acceptHandler:  c.AcceptHandler,
		resume:         c.ResumeStore,
		peerIdentity:   c.PeerIdentity,
		disabled:       c.DisableFeatures,
	}
	if s.resume == nil {
		s.features &^= resumeFeatures
	}
	if s.peerIdentity == nil {
		s.peerIdentity = DefaultPeerIdentity
	}
	s.connBudget, s.listenerBudget, s.preAcceptCredit = c.budgets()
	if c.MinProtocolVersion != 0 {
		s.minVersion = c.MinProtocolVersion
	}
	if c.MaxProtocolVersion != 0 {
		s.maxVersion = c.MaxProtocolVersion
	}
	s.minVersion = min(s.minVersion, s.maxVersion)
	return s, nil
}

// withStream returns the settings of a stream whose StreamConfig is o
// over the connection's: s itself when o is nil, else a copy. field
// prefixes the names of invalid fields in o.
func (s *settings) withStream(o *StreamConfig, field string) (*settings, error) {
	if o == nil {
		return s, nil
	}
	if err := o.validate(field); err != nil {
		return nil, err
	}
	n := *s
	n.streamSettings = s.stream.overriddenBy(o).resolve()
	return &n, nil
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
		n.maxVersion = max(maxVersion, LowestProtocolVersion)
		n.minVersion = min(n.minVersion, n.maxVersion)
	}
	n.features &^= disable
	return &n
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
	var q *quic.Config
	if c == nil || c.QUIC == nil {
		q = DefaultQUICConfig()
	} else {
		q = c.QUIC.Clone()
		q.EnableStreamResetPartialDelivery = true
	}
	q.HandshakeIdleTimeout = c.handshakeTimeout()
	return q
}
