package quicrecord

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ResumeOptions configure a [ResumableStream].
type ResumeOptions struct {
	// Stream describes the stream, as for OpenRecordStream.
	Stream StreamOptions
	// Key identifies the stream across connections, at most 64 bytes. nil
	// means 16 random bytes from crypto/rand. An application that
	// restarts and wants to continue where it left off keeps its key.
	Key []byte
	// Epoch orders the openers of one key (with FeatureResumeEpoch): when
	// two openers hold the same key (a cloned agent, a process restarted
	// while its predecessor still runs), the acceptor lets the one with
	// the larger epoch take the stream over, refuses the other, and ends
	// the superseded stream with CodeSuperseded; a superseded
	// ResumableStream does not reconnect (it fails with an error
	// matching ErrSuperseded). Reconnections of one ResumableStream keep
	// its epoch. 0 means the time NewResumableStream was called, in
	// nanoseconds since the Unix epoch, so that a restarted process is
	// newer than its predecessor; an application whose clocks cannot be
	// trusted passes a counter it persists and increments at each start.
	Epoch uint64
	// FirstSeq is the sequence number of the first record of a new
	// stream; 0 means 1. An application that restarts and persisted its
	// position (for example the last acked sequence number plus one)
	// passes it with its old Key. If the acceptor applied more than that
	// (the earlier process was stopped with records in flight), the
	// records it already applied are dropped as they are sent again and
	// counted in ResumeStats.DuplicatesDropped.
	FirstSeq uint64
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from MinBackoff up to MaxBackoff with up to
	// 50% random jitter. 0 means [DefaultMinBackoff] (100 ms) and
	// [DefaultMaxBackoff] (10 s).
	MinBackoff, MaxBackoff time.Duration
	// OnEvent, if set, is told of connection changes. It runs on the
	// stream's connection goroutine and must not block.
	OnEvent func(ResumeEvent)
	// ZeroRTT makes DialResumable reconnect with 0-RTT (DialEarly, with a
	// TLS session cache of its own when the tls.Config has none): the
	// resume HELLO travels in the first flight of a reconnection, which
	// saves the TLS round trip before the stream resumes, and with an
	// acceptor that offers FeatureResumeEarly the held records travel
	// behind it (an optimistic resume, docs/PROTOCOL.md §6.5). The
	// acceptor's listener must allow 0-RTT. See DialEarly for what is and
	// is not sent in 0-RTT, and the README for the replay trade-off.
	ZeroRTT bool
	// OnReject, if set, is called for every record the acceptor rejects,
	// on the reader goroutine of the connection's stream; it must not
	// block or close the stream. Barrier reports the rejections too.
	OnReject func(*RecordError)
}

// The defaults of the ResumeOptions backoff bounds, used when zero.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// ResumeEventKind says what happened to a resumable stream.
type ResumeEventKind uint8

// Resume event kinds.
const (
	// ResumeConnected: a connection was established and the stream opened
	// (or reopened) on it.
	ResumeConnected ResumeEventKind = iota + 1
	// ResumeDisconnected: the current connection or stream was lost.
	ResumeDisconnected
	// ResumeUnavailable: the acceptor does not offer resumption; the stream
	// works until its connection is lost, which then ends it.
	ResumeUnavailable
	// ResumeFailed: the stream ended for good; Err says why.
	ResumeFailed
)

func (k ResumeEventKind) String() string {
	switch k {
	case ResumeConnected:
		return "connected"
	case ResumeDisconnected:
		return "disconnected"
	case ResumeUnavailable:
		return "resume-unavailable"
	case ResumeFailed:
		return "failed"
	}
	return "unknown"
}

// ResumeEvent reports a connection change of a resumable stream.
type ResumeEvent struct {
	Kind ResumeEventKind
	// Acked is the last sequence number the acceptor applied.
	Acked uint64
	// Err is the error that caused a disconnection or failure.
	Err error
}

// ResumeStats count a resumable stream's reconnections.
type ResumeStats struct {
	// Connects counts connections on which the stream was opened.
	Connects uint64
	// Resumes counts reopenings after a lost connection.
	Resumes uint64
	// ReplayedRecords counts records sent again after a reconnection.
	ReplayedRecords uint64
	// DuplicatesDropped counts records held as unacknowledged that the
	// acceptor reported already applied when the stream resumed: they
	// were dropped instead of being sent again, or, by an optimistic
	// resume (FeatureResumeEarly), sent again and dropped by the
	// acceptor.
	DuplicatesDropped uint64
	// Disconnected is the total time spent without a connection.
	Disconnected time.Duration
}

// ResumableSnapshot is a point-in-time copy of a resumable stream's state.
type ResumableSnapshot struct {
	Key       []byte
	LastSeq   uint64 // last record sent
	AckedSeq  uint64 // last record the acceptor applied
	Retained  int    // records kept for resending
	Connected bool
	// ResumeAvailable is false once an acceptor did not offer resumption.
	ResumeAvailable bool
	Stats           ResumeStats
	// Stream is the snapshot of the current connection's stream, if any.
	Stream *RecordSnapshot
}

// ResumableStream is a record stream that survives the loss of its
// connection. It owns a dial/redial loop: when the connection is lost it
// reconnects with backoff, reopens the stream with its key, learns from
// the acceptor the last record applied, and sends again everything after
// it, so every record is applied exactly once and in order across any
// number of reconnects. The acceptor must have a Config.ResumeStore.
//
// Records flow from opener to acceptor only; the stream does not receive.
// Unacknowledged records are kept (bounded by the in-flight window of the
// Config) while disconnected, and Send blocks on that window.
type ResumableStream struct {
	key    []byte
	dial   func(ctx context.Context) (*Conn, error)
	opts   ResumeOptions
	set    *settings
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the connection loop returns

	// mu guards everything below, and log.
	mu        sync.Mutex
	log       *retainLog
	acked     uint64 // last seq the acceptor applied
	written   uint64 // highest seq handed to any connection
	cur       *RecordStream
	curConn   *Conn
	err       error // terminal
	closing   bool
	closeCtx  context.Context // the bound of Close, once called
	noResume  bool
	stats     ResumeStats
	downSince time.Time // zero while connected
	wait      chan struct{}
	rejects   rejectLog // rejections not yet reported by a Barrier, from every connection
	// maxRecord is the largest record Send takes: the limit agreed with
	// the acceptor of the current (or last) connection, the smaller of
	// both sides' MaxRecordSize.
	maxRecord int
	// peerResumeEarly is set when the acceptor of the last connection
	// offered optimistic resumes: the next one opens optimistically
	// (resume_early.go). inDoubt is set by an optimistic resume's reply
	// when the acceptor lost records it had acknowledged; run fails the
	// stream with it.
	peerResumeEarly bool
	inDoubt         *ResumeError
	// withdrawn is set when an optimistic resume's reply did not take
	// it (settleEarly).
	withdrawn bool
}

// DialResumable dials addr and opens a resumable stream on it, returning
// once the stream is open. Later connections are dialed the same way.
// tlsConf and cfg are as for Dial; a client certificate binds the stream's
// key to this client.
func DialResumable(ctx context.Context, addr string, tlsConf *tls.Config, cfg *Config, opts ResumeOptions) (*ResumableStream, error) {
	if !opts.ZeroRTT {
		return NewResumableStream(ctx, func(ctx context.Context) (*Conn, error) {
			return Dial(ctx, addr, tlsConf, cfg)
		}, cfg, opts)
	}
	var once sync.Once
	var cache tls.ClientSessionCache
	return NewResumableStream(ctx, func(ctx context.Context) (*Conn, error) {
		return DialEarly(ctx, addr, sessionCache(tlsConf, &once, &cache), cfg)
	}, cfg, opts)
}

// NewResumableStream opens a resumable stream on connections made by dial,
// which is called again after every lost connection; the stream closes the
// connections it dials. It returns once the first connection is up and the
// stream open, or with the error of the first attempt. cfg is the Config
// dial's connections are made with (its settings and opts.Stream.Config
// bound the stream's memory and records); an invalid cfg or opts is a
// *ConfigError.
func NewResumableStream(ctx context.Context, dial func(ctx context.Context) (*Conn, error), cfg *Config, opts ResumeOptions) (*ResumableStream, error) {
	set, err := resumeSettings(cfg, &opts)
	if err != nil {
		return nil, err
	}
	key := opts.Key
	if key == nil {
		key = make([]byte, 16)
		_, _ = rand.Read(key)
	}
	first := max(opts.FirstSeq, 1)
	r := &ResumableStream{
		key:  append([]byte(nil), key...),
		dial: dial,
		opts: opts,
		set:  set,
		log:  newRetainLog(first),
		done: make(chan struct{}),
	}
	r.acked, r.written = first-1, first-1
	if r.opts.Epoch == 0 {
		r.opts.Epoch = uint64(max(time.Now().UnixNano(), 1))
	}
	r.opts.MinBackoff = orDefault(opts.MinBackoff, DefaultMinBackoff)
	r.opts.MaxBackoff = max(orDefault(opts.MaxBackoff, DefaultMaxBackoff), r.opts.MinBackoff)
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	conn, s, err := r.connect(ctx)
	if err != nil {
		r.cancel(err)
		close(r.done)
		return nil, err
	}
	go r.run(conn, s)
	return r, nil
}

// Key returns the stream's resume key.
func (r *ResumableStream) Key() []byte { return append([]byte(nil), r.key...) }

// Context is cancelled when the stream ends for good (Close, or a
// *ResumeError); context.Cause says why.
func (r *ResumableStream) Context() context.Context { return r.ctx }

// Err returns the error that ended the stream, or nil.
func (r *ResumableStream) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *ResumableStream) notifyLocked() { notifyLocked(&r.wait) }

// Send queues a copy of data and returns its sequence number. It blocks
// while the in-flight window is full, connected or not, until there is
// room or ctx is done. A record above [ResumableStream.MaxRecordSize]
// fails at once with an error matching [ErrRecordTooLarge].
func (r *ResumableStream) Send(ctx context.Context, data []byte) (uint64, error) {
	r.mu.Lock()
	if len(data) > r.maxRecord {
		limit := r.maxRecord
		r.mu.Unlock()
		return 0, errTooLarge(len(data), limit)
	}
	for {
		if r.err != nil {
			err := r.err
			r.mu.Unlock()
			return 0, err
		}
		if r.closing {
			r.mu.Unlock()
			return 0, ErrClosed
		}
		n := r.log.len()
		if n == 0 || (n < r.set.maxInFlightRecs && r.log.bytes+len(data) <= r.set.maxInFlightBytes) {
			break
		}
		ch := waitChan(&r.wait)
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctxError(ctx)
		}
		r.mu.Lock()
	}
	seq := r.log.append(data)
	if seq <= r.acked {
		// The acceptor reported this record applied when the stream
		// resumed (sent by an earlier process with the same key).
		r.log.dropThrough(seq)
		r.stats.DuplicatesDropped++
	}
	r.notifyLocked()
	r.mu.Unlock()
	return seq, nil
}

// Flush waits until every record sent before the call has been handed to
// the current connection's QUIC stream. While disconnected it waits for
// the next connection.
func (r *ResumableStream) Flush(ctx context.Context) error {
	r.mu.Lock()
	target := r.log.next - 1
	err := r.waitLocked(ctx, func() bool { return r.written >= target })
	cur := r.cur
	r.mu.Unlock()
	if err != nil || cur == nil {
		return err
	}
	return cur.Flush(ctx)
}

// waitLocked waits until done reports true, the stream failed (its error)
// or ctx ends. It is called, and returns, with mu held.
func (r *ResumableStream) waitLocked(ctx context.Context, done func() bool) error {
	for !done() {
		if r.err != nil {
			return r.err
		}
		ch := waitChan(&r.wait)
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			return ctxError(ctx)
		}
		r.mu.Lock()
	}
	return nil
}

// Barrier waits until the acceptor applied every record sent before the
// call, across reconnections, or ctx is done. It reports the acceptor's
// rejections as [RecordStream.Barrier] does: a *[RejectedError] for the
// records of its range that were rejected, on whichever connection, each
// reported to exactly one Barrier. A rejection whose ERROR frame was lost
// with its connection is not reported (the record counts as applied:
// the acceptor's resume position covers it).
func (r *ResumableStream) Barrier(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := r.log.next - 1
	r.rejects.wait(target)
	if err := r.waitLocked(ctx, func() bool { return r.acked >= target }); err != nil {
		r.rejects.abandon(target)
		return &BarrierError{Target: target, Acked: r.acked, Err: err}
	}
	if rerr := r.rejects.take(target); rerr != nil {
		return rerr
	}
	return nil
}

// onReject is installed on every connection's stream: it keeps the
// rejection for Barrier and tells ResumeOptions.OnReject.
func (r *ResumableStream) onReject(re *RecordError) {
	r.mu.Lock()
	r.rejects.add(*re)
	r.mu.Unlock()
	if r.opts.OnReject != nil {
		r.opts.OnReject(re)
	}
}

// Close waits until every record is applied, ends the stream gracefully
// so the acceptor forgets its key, and closes the connection, bounded by
// ctx and by the stream's CloseTimeout, whichever ends first. It returns
// the stream's error if it had failed, or a *BarrierError if records were
// still unacknowledged when the bound ended; rejections are reported by
// Barrier, not by Close (call Barrier first to learn of them). Close
// after Close does nothing and returns nil.
func (r *ResumableStream) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.set.closeTimeout)
	defer cancel()
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		<-r.done
		return nil
	}
	r.closing = true
	r.closeCtx = ctx
	r.notifyLocked()
	r.mu.Unlock()
	err := r.Barrier(ctx)
	var rejected *RejectedError
	if errors.As(err, &rejected) {
		err = nil // every record was applied; Barrier reports rejections
	}
	// The connection loop ends the stream gracefully once everything is
	// applied; give it until the timeout, then stop it.
	select {
	case <-r.done:
	case <-ctx.Done():
	}
	r.cancel(ErrClosed)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil && !errors.Is(r.err, ErrClosed) {
		return r.err
	}
	return err
}

// Snapshot returns the stream's state.
func (r *ResumableStream) Snapshot() ResumableSnapshot {
	r.mu.Lock()
	snap := ResumableSnapshot{
		Key: r.Key(), LastSeq: r.log.next - 1, AckedSeq: r.acked, Retained: r.log.len(),
		Connected: r.cur != nil && r.downSince.IsZero(), ResumeAvailable: !r.noResume, Stats: r.stats,
	}
	if !r.downSince.IsZero() {
		snap.Stats.Disconnected += time.Since(r.downSince)
	}
	cur := r.cur
	r.mu.Unlock()
	if cur != nil {
		s := cur.Snapshot()
		snap.Stream = &s
	}
	return snap
}

func (r *ResumableStream) event(k ResumeEventKind, err error) {
	if r.opts.OnEvent == nil {
		return
	}
	r.mu.Lock()
	acked := r.acked
	r.mu.Unlock()
	r.opts.OnEvent(ResumeEvent{Kind: k, Acked: acked, Err: err})
}

// fail ends the stream for good.
func (r *ResumableStream) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.notifyLocked()
	r.mu.Unlock()
	r.cancel(err)
	r.event(ResumeFailed, err)
}

// failInDoubt ends the stream for good with a *ResumeError naming the
// records sent and not acknowledged.
func (r *ResumableStream) failInDoubt(err error) {
	r.mu.Lock()
	re := &ResumeError{Key: r.Key(), FirstUnknown: r.acked + 1, LastUnknown: r.written, Err: err}
	r.mu.Unlock()
	r.fail(re)
}

// MaxRecordSize returns the largest record Send takes: the smaller of
// this side's MaxRecordSize and the one the acceptor of the current (or,
// while disconnected, the last) connection announced. A record above it
// fails Send at once with an error matching [ErrRecordTooLarge], and the
// stream goes on. Should a reconnection reach an acceptor with a smaller
// limit than a record still held for resending, the stream ends with a
// *ResumeError.
func (r *ResumableStream) MaxRecordSize() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxRecord
}

// onAck is installed on every connection's stream.
func (r *ResumableStream) onAck(a uint64) {
	r.mu.Lock()
	if a > r.acked {
		r.log.dropThrough(a)
		r.acked = a
		r.notifyLocked()
	}
	r.mu.Unlock()
}

// serve pumps retained records into s until it fails or the stream is
// closed. It returns why the connection was left.
func (r *ResumableStream) serve(conn *Conn, s *RecordStream) error {
	r.mu.Lock()
	r.cur, r.curConn = s, conn
	var cur logCursor
	r.log.seek(&cur, r.acked+1)
	r.mu.Unlock()
	for {
		r.mu.Lock()
		for cur.seq >= r.log.next && !r.closing && s.ctx.Err() == nil && r.ctx.Err() == nil {
			ch := waitChan(&r.wait)
			r.mu.Unlock()
			select {
			case <-ch:
			case <-s.ctx.Done():
			case <-r.ctx.Done():
			}
			r.mu.Lock()
		}
		if r.ctx.Err() != nil {
			r.mu.Unlock()
			_ = s.Close(r.closeContext())
			return context.Cause(r.ctx)
		}
		if err := s.ctx.Err(); err != nil {
			r.mu.Unlock()
			_ = s.Close(r.closeContext()) // ended already: nothing to flush
			return context.Cause(s.ctx)
		}
		if cur.seq < r.acked+1 {
			r.log.seek(&cur, r.acked+1)
		}
		seq, rec, ok := r.log.nextAt(&cur)
		if !ok {
			// Closing and everything is handed over: finish gracefully
			// once the acceptor applied it all.
			r.mu.Unlock()
			ctx, cancel := context.WithTimeout(r.ctx, r.set.closeTimeout)
			err := s.Barrier(ctx)
			if err == nil {
				// The acceptor forgets the key when it sees the FIN.
				_ = s.finish(ctx)
				cancel()
				r.cancel(ErrClosed)
				return ErrClosed
			}
			cancel()
			continue
		}
		replay := seq <= r.written
		r.mu.Unlock()
		if _, err := s.Send(r.ctx, rec); err != nil {
			_ = s.Close(r.closeContext())
			if errors.Is(err, ErrRecordTooLarge) {
				// A record held from an earlier connection is above the
				// limit of this one's acceptor: it cannot be sent again.
				r.failInDoubt(err)
			}
			return err
		}
		r.mu.Lock()
		if replay {
			r.stats.ReplayedRecords++
		}
		if seq > r.written {
			r.written = seq
			r.notifyLocked()
		}
		r.mu.Unlock()
	}
}

// resumeSettings validates cfg and opts and returns the settings of the
// resumable stream's streams.
func resumeSettings(cfg *Config, opts *ResumeOptions) (*settings, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	if set, err = set.withStream(opts.Stream.Config, "ResumeOptions.Stream.Config."); err != nil {
		return nil, err
	}
	switch {
	case opts.Key != nil && (len(opts.Key) == 0 || len(opts.Key) > MaxResumeKeyLen):
		return nil, &ConfigError{Field: "ResumeOptions.Key", Value: fmt.Sprintf("%d bytes", len(opts.Key)),
			Reason: fmt.Sprintf("must be nil (random) or 1 to %d bytes", MaxResumeKeyLen)}
	case opts.MinBackoff < 0:
		return nil, notNegative("ResumeOptions.MinBackoff", opts.MinBackoff)
	case opts.MaxBackoff < 0:
		return nil, notNegative("ResumeOptions.MaxBackoff", opts.MaxBackoff)
	case opts.MaxBackoff != 0 && opts.MaxBackoff < opts.MinBackoff:
		return nil, &ConfigError{Field: "ResumeOptions.MaxBackoff", Value: opts.MaxBackoff,
			Reason: fmt.Sprintf("below ResumeOptions.MinBackoff (%v)", opts.MinBackoff)}
	}
	return set, nil
}

// closeContext bounds the flush of a connection's stream that the loop
// leaves: Close's bound once Close was called, else none (the stream's
// CloseTimeout still applies).
func (r *ResumableStream) closeContext() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closeCtx == nil {
		return context.Background()
	}
	return r.closeCtx
}
