package quicrecord

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/internal/compress"
	"github.com/recordmux/recordmux/registry"
)

// streamKey identifies a record stream in a registry: scope, connection
// number within its listener (0 when dialed), stream ID and data ID.
type streamKey struct {
	scope  string
	conn   uint64
	id     StreamID
	dataID uint64
}

func compareKeys(a, b streamKey) int {
	return cmp.Or(
		cmp.Compare(a.scope, b.scope),
		cmp.Compare(a.conn, b.conn),
		cmp.Compare(a.id, b.id),
		cmp.Compare(a.dataID, b.dataID),
	)
}

type streamRegistry = registry.Registry[streamKey, *RecordStream]

// newStreamRegistry returns a registry whose detached streams are folded
// into ended; detached, if not nil, is told of each.
func newStreamRegistry(shards int, ended *endedTotals, detached func()) *streamRegistry {
	return registry.New(compareKeys, &registry.Options[streamKey, *RecordStream]{
		Shards: shards,
		OnDetach: func(_ streamKey, s *RecordStream, _ error) {
			snap := s.Snapshot() // frozen: the stream ended before it detached
			ended.add(&snap)
			if detached != nil {
				detached()
			}
		},
	})
}

// StreamOptions describe a stream to open. Scope, DataID and Metadata
// travel to the acceptor in the opener's HELLO; Config stays on this side.
type StreamOptions struct {
	// Scope is an application namespace, at most 1 KiB.
	Scope string
	// DataID is a number of the application's choosing that identifies
	// the data the stream carries (a tenant, a table, a shard). It is
	// opaque to the library: the acceptor sees it in AcceptInfo, both
	// sides in RecordStream.DataID and in snapshots, and it orders
	// streams of the same scope and stream ID in listings.
	DataID uint64
	// Metadata is a small description: at most 64 entries, keys up to 256
	// bytes, values up to 4 KiB, and the whole HELLO within 16 KiB.
	Metadata map[string]string
	// Config overrides, for this stream, the fields it sets of the
	// connection's Config.Stream (see [StreamConfig] for the resolution
	// order). nil: the connection's settings. OpenRecordStream returns a
	// *ConfigError, naming "StreamOptions.Config.<field>", for an invalid
	// one.
	Config *StreamConfig
	// MaxProtocolVersion, if non-zero, caps the protocol version of this
	// stream below the connection's Config, and DisableFeatures switches
	// features off for it. One connection can so carry streams of
	// different versions.
	MaxProtocolVersion uint64
	DisableFeatures    Features
	// OptimisticOpen lets OpenRecordStream return without waiting for the
	// acceptor's reply, so that the stream's first records travel right
	// behind its HELLO (docs/PROTOCOL.md §5.5): a round trip less before
	// the first record is applied. It takes effect on a connection whose
	// acceptor has announced FeatureEarlyRecords in a reply (any stream
	// this side opened before on it), for a plain stream; otherwise the
	// open waits for the reply as usual. Until the reply the stream has
	// at most EarlyWindowRecords records and EarlyWindowBytes bytes in
	// flight, and sends no record above EarlyWindowBytes. If the acceptor
	// refuses the stream it applies none of them, and Send, Flush and
	// Barrier fail with the refusal (a *StreamError, errors.Is
	// ErrRefused for the accept handler's refusal), instead of
	// OpenRecordStream.
	OptimisticOpen bool
}

// AcceptInfo describes a stream the peer opened, for
// [Config.AcceptHandler] and [Config.OnStreamRefused].
type AcceptInfo struct {
	// Scope, DataID and Metadata are the opener's StreamOptions.
	Scope      string
	DataID     uint64
	Metadata   map[string]string
	StreamID   StreamID
	RemoteAddr net.Addr
	// Negotiated is the outcome of the capability negotiation; zero when
	// the stream was refused before it completed.
	Negotiated Negotiated
	// TLS is the connection's TLS state, with the verified peer
	// certificates when client authentication is on.
	TLS tls.ConnectionState
	// ResumeKey is the key of a resumable stream, nil for a plain one.
	ResumeKey []byte
	// ResumeEpoch is the opener's resume epoch (ResumeOptions.Epoch) on
	// a resumable stream that negotiated [FeatureResumeEpoch], else 0
	// (ResumeKeyInfo.Epoch).
	ResumeEpoch uint64
	// PeerIdentity is the peer's identity from Config.PeerIdentity (by
	// default the SPKI fingerprint of its verified client certificate),
	// "" when it has none: what resume state is bound to.
	PeerIdentity string
}

// Conn is a QUIC connection carrying record streams. Either side may open
// streams; each is negotiated on its own.
type Conn struct {
	qc  *quic.Conn
	set *settings
	id  uint64
	ln  *Listener // nil unless accepted by a Listener

	ctx    context.Context
	cancel context.CancelCauseFunc
	stopQC func() bool // stops the watch on qc.Context()
	// segSize is the capacity of pooled send buffers.
	segSize int

	streams *streamRegistry
	ended   endedTotals // streams that detached from streams
	acceptQ chan *RecordStream

	// wg counts every goroutine of the connection: the accept loop,
	// handshakes, and both loops of every stream.
	wg        sync.WaitGroup
	closeOnce sync.Once
	cleanup   func() // closes a transport this package created; may be nil

	mig         migrations    // Migrate (migrate.go)
	zeroRTTHeld atomic.Uint64 // resume HELLOs in 0-RTT held for the handshake (zerortt.go)
	refused     atomic.Uint64 // streams this side refused
	// opened counts the streams whose HELLO exchange completed, either
	// way: accepted, or opened and answered (an optimistic open once its
	// reply arrived). A refused stream does not count (see
	// failover.begin).
	opened atomic.Uint64
	// peerEarly is set once a reply to a stream this side opened
	// announced FeatureEarlyRecords: later streams may open
	// optimistically (early.go).
	peerEarly atomic.Bool
	// early is set, once and for all by newConn, on a client connection
	// returned before its handshake completed (DialEarly with 0-RTT):
	// the server may reject its 0-RTT (zerortt.go).
	early bool
	// draining is set by Listener.Shutdown: streams the peer opens are
	// refused from now on.
	draining atomic.Bool
	// idleMu guards idle, closed when a stream detaches while Shutdown
	// waits for the connection to have none.
	idleMu sync.Mutex
	idle   chan struct{}

	// segPool recycles the send buffers of all streams of the
	// connection: each holds one BATCH of the default size. Buffers of
	// other sizes (a single large record) are not pooled.
	segPool sync.Pool
	// bufPools recycle receive buffers by size class (see recvBuf).
	bufPools [numBufPools]sync.Pool
	// codecs is the compression state the connection's streams share:
	// the zstd encoder and decoder, made on first use. It starts no
	// goroutine and needs no Close; its memory goes with the Conn.
	codecs *compress.Codecs
	// zPool recycles the buffers writer loops compress a batch into, each
	// held from the compression to the end of that batch's Write: the
	// memory is that of the batches being written, not of every stream
	// that ever compressed.
	zPool sync.Pool

	// budget is the connection's receive budget (see
	// Config.MaxConnReceiveBytes); its parent is the listener's.
	budget *budget

	// peerOnce computes peerID, the peer's identity (Config.PeerIdentity),
	// once the TLS handshake is complete: when the first stream needs it.
	peerOnce sync.Once
	peerID   string
}

// peerIdentity returns the peer's identity.
//
// Before the handshake completed (a stream whose HELLO came in 0-RTT) no
// client certificate is known yet: the identity so far is returned, not
// kept (see Conn.acceptExchange).
func (c *Conn) peerIdentity() string {
	if !c.handshakeDone() {
		return c.set.peerIdentity(c.qc.ConnectionState().TLS)
	}
	c.peerOnce.Do(func() { c.peerID = c.set.peerIdentity(c.qc.ConnectionState().TLS) })
	return c.peerID
}

// handshakeDone reports whether the connection's handshake completed.
func (c *Conn) handshakeDone() bool {
	select {
	case <-c.qc.HandshakeComplete():
		return true
	default:
		return false
	}
}

// acceptSettings returns the settings a stream the peer opens starts
// from: the connection's, without resumption when the resume store does
// not offer it to this peer (no identity, and no anonymous resumption).
func (c *Conn) acceptSettings() *settings {
	if c.set.resume == nil || c.set.resume.offers(c.peerIdentity()) {
		return c.set
	}
	n := *c.set
	n.features &^= resumeFeatures
	return &n
}

// segBuf returns an empty send buffer of capacity n with hdrReserve bytes
// of room for headers already in it, and its pool handle (nil if the
// buffer is not pooled).
func (c *Conn) segBuf(n int) ([]byte, *[]byte) {
	if n != c.segSize {
		return make([]byte, hdrReserve, n), nil
	}
	if p, ok := c.segPool.Get().(*[]byte); ok {
		return (*p)[:hdrReserve], p
	}
	p := new([]byte)
	*p = make([]byte, hdrReserve, n)
	return *p, p
}

// putSegBuf gives a pooled send buffer back.
func (c *Conn) putSegBuf(p *[]byte) {
	if p != nil {
		c.segPool.Put(p)
	}
}

// NewConn wraps a quic-go connection the caller already has. cfg.QUIC is
// ignored. The connection should have been set up with
// EnableStreamResetPartialDelivery so that ERROR frames survive resets;
// without it, a peer may see only the code of a reset, not its reason.
// The Conn owns qc from now on: closing the Conn closes qc. An invalid
// cfg is a *ConfigError, and qc is left alone.
func NewConn(qc *quic.Conn, cfg *Config) (*Conn, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	return newConn(qc, set, nil, 0, nil), nil
}

func newConn(qc *quic.Conn, set *settings, ln *Listener, id uint64, cleanup func()) *Conn {
	c := &Conn{
		qc:      qc,
		set:     set,
		id:      id,
		ln:      ln,
		acceptQ: make(chan *RecordStream, set.acceptBacklog),
		cleanup: cleanup,
		segSize: hdrReserve + set.maxBatchBytes,
		codecs:  compress.NewCodecs(0),
	}
	select {
	case <-qc.HandshakeComplete():
	default:
		// Returned before its handshake completed: a client that dialed
		// with 0-RTT (DialEarly), which the server may still reject.
		c.early = ln == nil
	}
	var parent *budget
	if ln != nil {
		parent = ln.budget
	}
	c.budget = newBudget(set.connBudget, parent)
	c.streams = newStreamRegistry(1, &c.ended, c.streamDetached)
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.stopQC = context.AfterFunc(qc.Context(), func() {
		c.cancel(convertQUICError(context.Cause(qc.Context()), 0))
		c.release()
	})
	c.wg.Add(1)
	go c.acceptLoop()
	return c
}

// Context returns a context cancelled when the connection ends;
// context.Cause is a *ConnError, or ErrClosed after a local Close.
func (c *Conn) Context() context.Context { return c.ctx }

// QUIC returns the underlying quic-go connection.
func (c *Conn) QUIC() *quic.Conn { return c.qc }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// Close closes the connection with CodeNoError. See CloseWithError.
func (c *Conn) Close() error { return c.CloseWithError(CodeNoError, "") }

// CloseWithError closes the connection with an application error code:
// every stream on it ends at once and the peer sees a *ConnError with
// code and reason. When it returns, every goroutine of the connection and
// its streams has ended.
func (c *Conn) CloseWithError(code ErrorCode, reason string) error {
	c.closeOnce.Do(func() {
		c.cancel(fmt.Errorf("%w (code %s)", ErrClosed, code))
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
		c.wg.Wait()
		c.stopQC()
		c.release()
	})
	return nil
}

// release releases what the connection holds outside itself once quic-go
// closed it: the transport Dial made, or its place in its Listener. It
// may run twice (a local close and quic-go's end); both steps are
// idempotent.
func (c *Conn) release() {
	c.releaseMigrations()
	if c.cleanup != nil {
		c.cleanup()
	}
	if c.ln != nil {
		c.ln.forget(c)
	}
}

// streamDetached wakes a waitIdle.
func (c *Conn) streamDetached() {
	c.idleMu.Lock()
	notifyLocked(&c.idle)
	c.idleMu.Unlock()
}

// waitIdle waits until the connection has no registered stream, it
// ended, or ctx ended (ctx's error).
func (c *Conn) waitIdle(ctx context.Context) error {
	for {
		c.idleMu.Lock()
		if c.streams.Len() == 0 {
			c.idleMu.Unlock()
			return nil
		}
		ch := waitChan(&c.idle)
		c.idleMu.Unlock()
		select {
		case <-ch:
		case <-c.ctx.Done():
			return nil
		case <-ctx.Done():
			return ctxError(ctx)
		}
	}
}

// connErr returns the error for an operation on an ended connection.
func (c *Conn) connErr() error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	return ErrClosed
}

// OpenRecordStream opens a stream and negotiates it. It returns once the
// acceptor replied with its HELLO, so a refused stream never counts as
// open: a refusal comes back as a *StreamError with Remote set and the
// acceptor's code ([ErrRefused], [ErrVersionMismatch], or an application
// code). ctx bounds the open only: the stream lives until it is closed,
// fails, or its connection ends (see [RecordStream]).
// Config.HelloTimeout bounds the wait for the reply.
// An invalid opts.Config is a *ConfigError, and nothing is sent.
//
// Every failure is typed: a *StreamError (Remote unset for one this side
// detected, such as options over the protocol's limits, a malformed or
// missing reply, or an acceptor that ended its direction before replying;
// this side then sends the acceptor that code), a *ConnError or ErrClosed
// when the connection ended, or ctx's error when ctx ended first.
func (c *Conn) OpenRecordStream(ctx context.Context, opts StreamOptions) (*RecordStream, error) {
	return c.openStream(ctx, opts, nil)
}

// launch registers a negotiated stream and starts its loops. A stream
// that cannot be registered is aborted with CodeInternal, and that
// *StreamError returned.
func (c *Conn) launch(s *RecordStream) error {
	key := s.key()
	regs := []*streamRegistry{c.streams}
	if c.ln != nil {
		regs = append(regs, c.ln.streams)
	}
	for _, r := range regs {
		if _, err := r.Register(s.ctx, key, s); err != nil {
			se := &StreamError{Code: CodeInternal, Reason: "registration failed", StreamID: s.id, Err: err}
			s.abort(se, true)
			return se
		}
	}
	c.wg.Add(2)
	s.start()
	return nil
}

func (s *RecordStream) key() streamKey {
	return streamKey{scope: s.info.scope, conn: s.conn.id, id: s.id, dataID: s.info.dataID}
}

// RefusedStreams counts the streams the peer opened that this side
// refused: malformed or missing HELLO, no common version, the accept
// handler's refusal, or a failed resumption.
func (c *Conn) RefusedStreams() uint64 { return c.refused.Load() }

// AcceptRecordStream returns the next stream the peer opened that passed
// negotiation and the accept handler. It blocks until one is available,
// ctx is done or the connection ends.
func (c *Conn) AcceptRecordStream(ctx context.Context) (*RecordStream, error) {
	select {
	case s := <-c.acceptQ:
		s.acct.accept()
		return s, nil
	default:
	}
	select {
	case s := <-c.acceptQ:
		s.acct.accept()
		return s, nil
	case <-ctx.Done():
		return nil, ctxError(ctx)
	case <-c.ctx.Done():
		return nil, c.connErr()
	}
}

func (c *Conn) acceptLoop() {
	defer c.wg.Done()
	for {
		qs, err := c.qc.AcceptStream(c.ctx)
		if errors.Is(err, quic.Err0RTTRejected) && c.rejected0RTT(c.ctx) {
			continue
		}
		if err != nil {
			return
		}
		c.wg.Add(1)
		go c.handshake(qs)
	}
}
