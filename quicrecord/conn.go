package quicrecord

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/registry"
)

// StreamKey identifies a record stream in a registry.
type StreamKey struct {
	Scope string
	// Conn numbers the stream's connection within its listener (from 1);
	// 0 for a connection made by Dial or NewConn.
	Conn     uint64
	StreamID quic.StreamID
	DataID   uint64
}

func compareKeys(a, b StreamKey) int {
	return cmp.Or(
		cmp.Compare(a.Scope, b.Scope),
		cmp.Compare(a.Conn, b.Conn),
		cmp.Compare(a.StreamID, b.StreamID),
		cmp.Compare(a.DataID, b.DataID),
	)
}

type streamRegistry = registry.Registry[StreamKey, *RecordStream]

// newStreamRegistry returns a registry whose detached streams are folded
// into ended.
func newStreamRegistry(shards int, ended *endedTotals) *streamRegistry {
	return registry.New(compareKeys, &registry.Options[StreamKey, *RecordStream]{
		Shards: shards,
		OnDetach: func(_ StreamKey, s *RecordStream, _ error) {
			snap := s.Snapshot() // frozen: the stream ended before it detached
			ended.add(&snap)
		},
	})
}

// StreamOptions describe a stream to open. They travel to the acceptor in
// the opener's HELLO.
type StreamOptions struct {
	// Scope is an application namespace, at most 1 KiB.
	Scope string
	// DataID identifies the data the stream carries.
	DataID uint64
	// Metadata is a small description: at most 64 entries, keys up to 256
	// bytes, values up to 4 KiB, and the whole HELLO within 16 KiB.
	Metadata map[string]string
	// Context, if non-nil, bounds the stream's life: when it is done the
	// stream is reset with CodeCancelled and the peer sees that code.
	Context context.Context
	// MaxProtocolVersion, if non-zero, caps the protocol version of this
	// stream below the connection's Config, and DisableFeatures switches
	// features off for it. One connection can so carry streams of
	// different versions.
	MaxProtocolVersion uint64
	DisableFeatures    Features
}

// RecordAcceptInfo describes a stream the peer opened, for the accept
// handler and for [Config.OnStreamRefused].
type RecordAcceptInfo struct {
	Scope      string
	DataID     uint64
	Metadata   map[string]string
	StreamID   quic.StreamID
	RemoteAddr net.Addr
	// Negotiated is the outcome of the capability negotiation; zero when
	// the stream was refused before it completed.
	Negotiated Negotiated
	// TLS is the connection's TLS state, with the verified peer
	// certificates when client authentication is on.
	TLS tls.ConnectionState
	// ResumeKey is the key of a resumable stream, nil for a plain one.
	ResumeKey []byte
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
	handler atomic.Pointer[func(RecordAcceptInfo) error]
	acceptQ chan *RecordStream

	// wg counts every goroutine of the connection: the accept loop,
	// handshakes, and both loops of every stream.
	wg        sync.WaitGroup
	closeOnce sync.Once
	cleanup   func() // closes a transport this package created; may be nil

	refused atomic.Uint64 // streams this side refused

	// segPool recycles the send buffers of all streams of the
	// connection: each holds one BATCH of the default size. Buffers of
	// other sizes (a single large record) are not pooled.
	segPool sync.Pool
	// bufPools recycle receive buffers by size class (see recvBuf).
	bufPools [numBufPools]sync.Pool
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
// The Conn owns qc from now on: closing the Conn closes qc.
func NewConn(qc *quic.Conn, cfg *Config) (*Conn, error) {
	return newConn(qc, cfg.settings(), nil, 0, nil), nil
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
	}
	c.streams = newStreamRegistry(1, &c.ended)
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.stopQC = context.AfterFunc(qc.Context(), func() {
		c.cancel(convertQUICError(context.Cause(qc.Context()), 0))
		if c.cleanup != nil {
			c.cleanup()
		}
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

// SetAcceptHandler installs fn to decide on each stream the peer opens,
// after negotiation and before the stream is queued for
// AcceptRecordStream. It replaces Config.AcceptHandler for this
// connection; streams that completed their handshake before the call were
// decided without it, so use Config.AcceptHandler when every stream must
// be authorized. A non-nil error refuses the stream: the opener gets
// a *StreamError with the error's code (a *StreamError's or
// *RecordError's Code, CodeRefused otherwise) and its message as reason.
// fn runs on the stream's handshake goroutine and may block for a short
// while; nil removes the handler.
func (c *Conn) SetAcceptHandler(fn func(RecordAcceptInfo) error) {
	if fn == nil {
		c.handler.Store(nil)
		return
	}
	c.handler.Store(&fn)
}

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
		if c.cleanup != nil {
			c.cleanup()
		}
	})
	return nil
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
// code). ctx bounds the open only; see StreamOptions.Context for the
// stream's lifetime. Config.HelloTimeout bounds the wait for the reply.
func (c *Conn) OpenRecordStream(ctx context.Context, opts StreamOptions) (*RecordStream, error) {
	return c.openStream(ctx, opts, nil)
}

// resumeOpen describes the resumption of a stream: its key, and the
// records its opener still holds (first up to last; last < first when
// none).
type resumeOpen struct {
	key         []byte
	first, last uint64
	// onAck is installed on the stream before its loops start.
	onAck func(uint64)
}

func (c *Conn) openStream(ctx context.Context, opts StreamOptions, ro *resumeOpen) (*RecordStream, error) {
	if c.ctx.Err() != nil {
		return nil, c.connErr()
	}
	disable := opts.DisableFeatures
	if ro == nil {
		disable |= FeatureResume
	}
	set := c.set.narrow(opts.MaxProtocolVersion, disable)
	if ro != nil && !set.features.Has(FeatureResume) && !opts.DisableFeatures.Has(FeatureResume) {
		// The opener of a resumable stream offers resumption whether or
		// not this side accepts resumed streams itself.
		withResume := *set
		withResume.features |= FeatureResume
		set = &withResume
	}
	h := set.localHello()
	h.Scope, h.DataID, h.Metadata = opts.Scope, opts.DataID, opts.Metadata
	if ro != nil {
		h.Extensions = append(h.Extensions,
			frames.Extension{ID: frames.ExtResumeKey, Value: ro.key},
			frames.Extension{ID: frames.ExtResumePosition, Value: quicvarint.Append(nil, ro.first)})
	}
	if err := checkOptions(&h); err != nil {
		return nil, err
	}
	qs, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		return nil, convertQUICError(err, 0)
	}
	id := qs.StreamID()
	stop := context.AfterFunc(ctx, func() {
		qs.CancelWrite(resetCode(CodeCancelled))
		qs.CancelRead(resetCode(CodeCancelled))
	})
	fail := func(err error) (*RecordStream, error) {
		if !stop() && ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		var se *StreamError
		if errors.As(err, &se) && !se.Remote {
			refuseStream(qs, se.Code, se.Reason)
		} else {
			qs.CancelWrite(resetCode(CodeCancelled))
			qs.CancelRead(resetCode(CodeCancelled))
		}
		if se != nil {
			se.StreamID = id
		}
		if c.ctx.Err() != nil {
			return nil, c.connErr()
		}
		return nil, err
	}
	deadline := time.Now().Add(set.helloTimeout)
	_ = qs.SetWriteDeadline(deadline)
	if _, err := qs.Write(h.Append(nil)); err != nil {
		return fail(convertQUICError(err, id))
	}
	_ = qs.SetWriteDeadline(time.Time{})
	_ = qs.SetReadDeadline(deadline)
	fr := frames.NewReader(qs, frames.MaxHelloSize)
	reply, unknown, err := readHello(fr, RoleOpener)
	if err != nil {
		return fail(err)
	}
	_ = qs.SetReadDeadline(time.Time{})
	neg, err := negotiate(set, &reply, RoleOpener)
	if err != nil {
		return fail(err)
	}
	var sendBase uint64
	if ro != nil && neg.Features.Has(FeatureResume) {
		if sendBase, err = replyPosition(&reply, ro); err != nil {
			return fail(err)
		}
	}
	if !stop() {
		return fail(ctxError(ctx))
	}
	s := newStream(c, set, qs, fr, neg, streamInfo{
		role: RoleOpener, scope: opts.Scope, dataID: opts.DataID, metadata: opts.Metadata,
		remote: c.qc.RemoteAddr(), openedAt: time.Now(),
	})
	s.setBases(sendBase, 0)
	if ro != nil {
		s.onAck = ro.onAck
		if neg.Features.Has(FeatureResume) {
			s.resumeKey = ro.key
		}
	}
	s.ctr.frameOut(kindHello)
	s.ctr.frameIn(kindHello)
	s.ctr.inFrames[kindUnknown].Add(unknown)
	if err := c.launch(s); err != nil {
		return nil, err
	}
	if opts.Context != nil {
		s.stopCtx = context.AfterFunc(opts.Context, func() {
			_ = s.CloseWithError(CodeCancelled, "stream context done")
		})
	}
	return s, nil
}

// replyPosition reads the acceptor's last applied sequence number from its
// resume reply and checks it against what the opener sent.
func replyPosition(reply *frames.Hello, ro *resumeOpen) (uint64, error) {
	v, ok := reply.Extension(frames.ExtResumePosition)
	if !ok {
		return 0, &StreamError{Code: CodeProtocolViolation, Reason: "resume reply without a position"}
	}
	a, n, err := quicvarint.Parse(v)
	if err != nil || n != len(v) {
		return 0, &StreamError{Code: CodeFrameEncoding, Reason: "malformed resume position"}
	}
	if sent := max(ro.last, ro.first-1); a > sent {
		return 0, &StreamError{Code: CodeAckOutOfRange, Reason: fmt.Sprintf("acceptor claims record %d applied; the last sent was %d", a, sent)}
	}
	return a, nil
}

// checkOptions validates what the peer would refuse, so the caller gets a
// clear local error instead.
func checkOptions(h *frames.Hello) error {
	switch {
	case len(h.Scope) > frames.MaxScopeLen:
		return fmt.Errorf("quicrecord: scope of %d bytes exceeds %d", len(h.Scope), frames.MaxScopeLen)
	case len(h.Metadata) > frames.MaxMetadataEntries:
		return fmt.Errorf("quicrecord: %d metadata entries exceed %d", len(h.Metadata), frames.MaxMetadataEntries)
	}
	for k, v := range h.Metadata {
		if len(k) > frames.MaxMetadataKeyLen || len(v) > frames.MaxMetadataValueLen {
			return fmt.Errorf("quicrecord: metadata entry %q exceeds the size limits", k)
		}
	}
	if n := h.Len(); n > frames.MaxHelloSize {
		return fmt.Errorf("quicrecord: stream description of %d bytes exceeds %d", n, frames.MaxHelloSize)
	}
	return nil
}

// readHello reads frames until the peer's HELLO, skipping unknown types.
// An opener also accepts an ERROR frame: the acceptor's refusal.
func readHello(fr *frames.Reader, role Role) (frames.Hello, uint64, error) {
	var unknown uint64
	for {
		t, payload, err := fr.ReadFrame()
		if err != nil {
			return frames.Hello{}, unknown, helloReadErr(err)
		}
		switch t {
		case frames.TypeHello:
			h, _, err := frames.ParseHello(payload)
			if err != nil {
				return frames.Hello{}, unknown, codecErr(err)
			}
			return h, unknown, nil
		case frames.TypeError:
			if role == RoleOpener {
				f, _, err := frames.ParseError(payload)
				if err != nil {
					return frames.Hello{}, unknown, codecErr(err)
				}
				return frames.Hello{}, unknown, &StreamError{Code: f.Code, Reason: f.Reason, Remote: true}
			}
			return frames.Hello{}, unknown, &StreamError{Code: CodeUnexpectedFrame, Reason: "ERROR before HELLO"}
		case frames.TypeBatch, frames.TypeAck:
			return frames.Hello{}, unknown, &StreamError{Code: CodeUnexpectedFrame, Reason: t.String() + " before HELLO"}
		default:
			unknown++
		}
	}
}

func codecErr(err error) error {
	var fe *frames.Error
	if errors.As(err, &fe) {
		return &StreamError{Code: fe.Code, Reason: fe.Reason, Err: err}
	}
	return err
}

func helloReadErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &StreamError{Code: CodeHelloTimeout, Reason: "no HELLO within the hello timeout", Err: err}
	}
	if errors.Is(err, frames.ErrFrameEncoding) || errors.Is(err, frames.ErrFrameTooLarge) {
		return codecErr(err)
	}
	return convertQUICError(err, 0)
}

// refuseStream sends an ERROR frame and resets both directions with code.
// Nothing else writes to qs at this point, so the frame cannot interleave.
func refuseStream(qs *quic.Stream, code ErrorCode, reason string) {
	f := frames.ErrorFrame{Code: code, Reason: reason}
	if qs.TryWriteAll(f.Append(nil)) == nil {
		qs.SetReliableBoundary()
	}
	qs.CancelWrite(resetCode(code))
	qs.CancelRead(resetCode(code))
}

// launch registers a negotiated stream and starts its loops.
func (c *Conn) launch(s *RecordStream) error {
	key := s.key()
	if _, err := c.streams.Register(s.ctx, key, s); err != nil {
		s.abort(&StreamError{Code: CodeInternal, Reason: "registration failed", StreamID: s.id, Err: err}, true)
		return err
	}
	if c.ln != nil {
		if _, err := c.ln.streams.Register(s.ctx, key, s); err != nil {
			s.abort(&StreamError{Code: CodeInternal, Reason: "registration failed", StreamID: s.id, Err: err}, true)
			return err
		}
	}
	c.wg.Add(2)
	s.start()
	return nil
}

func (s *RecordStream) key() StreamKey {
	return StreamKey{Scope: s.info.scope, Conn: s.conn.id, StreamID: s.id, DataID: s.info.dataID}
}

// RefusedStreams counts the streams the peer opened that this side
// refused: malformed or missing HELLO, no common version, the accept
// handler's refusal, or a failed resumption.
func (c *Conn) RefusedStreams() uint64 { return c.refused.Load() }

// isViolation reports whether a code means the peer broke the protocol.
func isViolation(code ErrorCode) bool {
	switch code {
	case CodeProtocolViolation, CodeFrameEncoding, CodeFrameTooLarge, CodeHelloTimeout,
		CodeAckOutOfRange, CodeAckRegression, CodeSequenceGap, CodeRecordTooLarge,
		CodeUnexpectedFrame, CodeWindowExceeded:
		return true
	}
	return false
}

// AcceptRecordStream returns the next stream the peer opened that passed
// negotiation and the accept handler. It blocks until one is available,
// ctx is done or the connection ends.
func (c *Conn) AcceptRecordStream(ctx context.Context) (*RecordStream, error) {
	select {
	case s := <-c.acceptQ:
		return s, nil
	default:
	}
	select {
	case s := <-c.acceptQ:
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
		if err != nil {
			return
		}
		c.wg.Add(1)
		go c.handshake(qs)
	}
}

// handshake negotiates a stream the peer opened.
func (c *Conn) handshake(qs *quic.Stream) {
	defer c.wg.Done()
	info := RecordAcceptInfo{StreamID: qs.StreamID(), RemoteAddr: c.qc.RemoteAddr(), TLS: c.qc.ConnectionState().TLS}
	refuse := func(err error) {
		se := asStreamError(err, CodeRefused)
		se.StreamID = qs.StreamID()
		if se.Remote {
			// The opener gave up; nothing to tell it.
			qs.CancelWrite(resetCode(se.Code))
			qs.CancelRead(resetCode(se.Code))
		} else {
			refuseStream(qs, se.Code, se.Reason)
		}
		c.refused.Add(1)
		if c.set.logger != nil {
			level := slog.LevelDebug
			if isViolation(se.Code) && !se.Remote {
				level = slog.LevelWarn
			}
			c.set.logger.Log(context.Background(), level, "record stream refused", "stream", info.StreamID, "code", se.Code.String(), "err", se)
		}
		if c.set.onRefused != nil {
			c.set.onRefused(info, se)
		}
	}
	deadline := time.Now().Add(c.set.helloTimeout)
	_ = qs.SetReadDeadline(deadline)
	fr := frames.NewReader(qs, frames.MaxHelloSize)
	h, unknown, err := readHello(fr, RoleAcceptor)
	if err != nil {
		refuse(err)
		return
	}
	info.Scope, info.DataID, info.Metadata = h.Scope, h.DataID, h.Metadata
	neg, err := negotiate(c.set, &h, RoleAcceptor)
	if err != nil {
		refuse(err)
		return
	}
	info.Negotiated = neg
	var resumeFirst uint64
	if neg.Features.Has(FeatureResume) {
		if key, ok := h.Extension(frames.ExtResumeKey); ok {
			if len(key) == 0 || len(key) > MaxResumeKeyLen {
				refuse(&StreamError{Code: CodeFrameEncoding, Reason: "resume key of invalid length"})
				return
			}
			pos, _ := h.Extension(frames.ExtResumePosition)
			first, n, err := quicvarint.Parse(pos)
			if err != nil || n != len(pos) || first == 0 {
				refuse(&StreamError{Code: CodeFrameEncoding, Reason: "malformed resume position"})
				return
			}
			info.ResumeKey, resumeFirst = bytes.Clone(key), first
		}
	}
	handler := c.set.acceptHandler
	if fn := c.handler.Load(); fn != nil {
		handler = *fn
	}
	if handler != nil {
		if err := handler(info); err != nil {
			code, reason := codeOf(err, CodeRefused)
			refuse(&StreamError{Code: code, Reason: reason, Err: err})
			return
		}
	}
	s := newStream(c, c.set, qs, fr, neg, streamInfo{
		role: RoleAcceptor, scope: h.Scope, dataID: h.DataID, metadata: h.Metadata,
		remote: c.qc.RemoteAddr(), openedAt: time.Now(),
	})
	reply := c.set.localHello()
	if info.ResumeKey != nil {
		hctx, cancel := context.WithDeadline(c.ctx, deadline)
		rsm, applied, err := c.set.resume.acquire(hctx, ResumeKeyInfo{
			Key: info.ResumeKey, Peer: peerIdentity(c.qc.ConnectionState()), Scope: h.Scope, DataID: h.DataID,
		}, resumeFirst, s)
		cancel()
		if err != nil {
			refuse(err)
			return
		}
		s.rsm, s.store, s.resumeKey = rsm, c.set.resume, info.ResumeKey
		s.setBases(0, applied)
		reply.Extensions = append(reply.Extensions, frames.Extension{ID: frames.ExtResumePosition, Value: quicvarint.Append(nil, applied)})
	}
	_ = qs.SetWriteDeadline(deadline)
	if _, err := qs.Write(reply.Append(nil)); err != nil {
		if s.rsm != nil {
			c.set.resume.release(s.rsm, s, false)
		}
		refuse(convertQUICError(err, qs.StreamID()))
		return
	}
	_ = qs.SetWriteDeadline(time.Time{})
	_ = qs.SetReadDeadline(time.Time{})
	s.ctr.frameIn(kindHello)
	s.ctr.frameOut(kindHello)
	s.ctr.inFrames[kindUnknown].Add(unknown)
	if err := c.launch(s); err != nil {
		return
	}
	select {
	case c.acceptQ <- s:
	case <-c.ctx.Done():
		_ = s.CloseWithError(CodeCancelled, "connection closed before the stream was accepted")
	}
}
