package quicrecord

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/compress"
	"github.com/recordmux/recordmux/internal/flow"
	"github.com/recordmux/recordmux/internal/wire"
)

// Role says which side opened a stream.
type Role uint8

// Roles.
const (
	RoleOpener Role = iota + 1
	RoleAcceptor
)

func (r Role) String() string {
	switch r {
	case RoleOpener:
		return "opener"
	case RoleAcceptor:
		return "acceptor"
	}
	return "unknown"
}

// StreamID identifies a record stream within its connection: the ID of
// the QUIC stream that carries it (RFC 9000 §2.1), so its two low bits
// say which side opened it and whether it is bidirectional (always, for a
// record stream).
type StreamID uint64

// Record is one record of a stream: its sequence number in the sender's
// direction and its bytes.
type Record struct {
	Seq  uint64
	Data []byte
}

// RecordStream is one record stream: a bidirectional QUIC stream carrying
// records both ways, each direction with its own sequence numbers starting
// at 1.
//
// Sending: [RecordStream.Send] copies a record into the stream's pending
// buffer; the stream's writer loop (one goroutine) turns everything pending
// into BATCH frames. [RecordStream.Flush] waits until records are handed to
// QUIC, [RecordStream.Barrier] until the peer's application applied them.
//
// Receiving: a reader loop (one goroutine) parses frames and queues
// records; [RecordStream.Recv] or [RecordStream.Apply] deliver them in
// order, and [RecordStream.Ack] and [RecordStream.Reject] tell the peer
// what was applied.
//
// All methods are safe for concurrent use, with one rule for the receive
// side: one receiver at a time. Recv and Apply fail with
// [ErrConcurrentReceive] while another Recv or Apply of the stream runs,
// so that records are delivered, applied and acked in order; call Ack and
// Reject in the order the records were applied, from the receiving
// goroutine or one it hands them to in order. Send, Flush, Barrier and
// the others may be called from any goroutine. Concurrent Barriers share
// the peer's rejections: each is reported to the first Barrier that
// returns covering it.
//
// A stream lives until Close or CloseWithError, until it fails, or until
// its connection ends; its two goroutines live as long. To bound it by a
// context, close it when the context ends:
//
//	stop := context.AfterFunc(ctx, func() { _ = s.CloseWithError(quicrecord.CodeCancelled, "done") })
//	defer stop()
type RecordStream struct {
	conn *Conn
	qs   *quic.Stream
	set  *settings
	id   StreamID
	info streamInfo
	// neg and the effective send limits below are set by
	// applyNegotiated: before the loops start, and for an optimistic open
	// (early.go) once more by the reader loop when the acceptor's reply
	// arrives. Hence the atomics; windowRecs and windowBytes are read
	// only by the reader loop (and before it starts).
	neg         atomic.Pointer[Negotiated]
	piggyback   atomic.Bool
	halfClose   atomic.Bool  // CloseWrite ends the records with DONE (FeatureHalfClose)
	maxSendRec  atomic.Int64 // largest record Send accepts
	batchBytes  atomic.Int64 // encoded record bytes per BATCH
	windowRecs  int          // hard caps of the send window: local limit and the peer's HELLO
	windowBytes int
	// compression is set when FeatureCompression is effective: the peer
	// may send compressed batches; peerCodecs are those it accepts.
	compression bool
	peerCodecs  compress.CodecSet
	// replyPending is set while an optimistic open waits for the
	// acceptor's reply (early.go): the send direction does not end
	// before it.
	replyPending atomic.Bool
	// flushWatch counts the Flush and Barrier calls waiting for records to
	// be written: while there are none, the writer records each batch as
	// written without taking smu, and takes it once per pass. ackRung is
	// set when Ack or Reject leaves work for the writer and cleared when
	// the writer takes it: the writer looks for acks between batches only
	// then.
	flushWatch atomic.Int32
	ackRung    atomic.Bool
	// batchLimit is the encoded record bytes a batch Send fills may hold:
	// batchBytes, lowered by the writer loop to about batchTime of what
	// its Writes move (see noteWrite).
	batchLimit atomic.Int64
	log        *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	// wake is the writer loop's doorbell: capacity 1, sent to without
	// blocking.
	wake chan struct{}
	// writerDone and readerDone are closed when the loops return.
	writerDone chan struct{}
	readerDone chan struct{}

	fr *wire.Reader // owned by the reader loop (by the handshake before it)

	// applyEvery is how many records Apply applies between looks at the
	// clock (see applyBatch); owned by the one goroutine in Apply.
	applyEvery int

	// readerErr is set, once, when the reader loop stops: why no more
	// frames (and so no more acks) will arrive.
	readerErr atomic.Pointer[error]

	ended atomic.Bool // end ran; the stream's final bookkeeping is done
	// aborting is set, under smu, when an abort hands the writer loop its
	// final frame (sendState.final); the writer reads it without the lock
	// between frames.
	aborting  atomic.Bool
	ctr       counters
	final     atomic.Pointer[RecordSnapshot] // the frozen snapshot, once done
	onReject  atomic.Pointer[func(*RecordError)]
	closeOnce sync.Once   // the first Close or CloseWithError
	receiving atomic.Bool // a Recv or Apply runs (see RecordStream)

	// Resumption; all set before the loops start and never changed.
	resumeKey []byte             // the key of a resumable stream; nil otherwise
	sendBase  uint64             // the sequence number before this stream's first record
	rsm       *resumeState       // acceptor: the key's receive state
	store     *ResumeStore       // acceptor: where rsm lives
	onAck     func(acked uint64) // opener: told of every new cumulative ack, on the reader goroutine
	// resumeInfo (acceptor) is what the opener claimed the key with.
	resumeInfo ResumeKeyInfo
	// earlyResume (opener) is the resumption of an optimistic resume,
	// whose reply the reader loop checks (resume_early.go); nil otherwise.
	earlyResume *resumeOpen
	// resumeDups (acceptor of an optimistic resume) is the last sequence
	// number the key applied before the stream: the opener's records up
	// to it are dropped as they arrive (resume_early.go); 0 otherwise.
	resumeDups uint64

	// smu guards the send direction: sendState. Held by Send, Flush,
	// Barrier, the writer loop while it takes work, and the reader loop
	// while it applies acks. Never held together with rmu, never held
	// while calling out.
	smu sync.Mutex
	snd sendState

	// rmu guards the receive direction: recvState. Held by Recv, Apply,
	// Ack, Reject, the reader loop while it queues records and the writer
	// loop while it takes acks. Never held together with smu.
	rmu sync.Mutex
	rcv recvState

	// acct is the stream's share of the connection's receive budget.
	// frameCharge is what the frame being read directly was charged
	// (reader loop only): it moves to the batch once the frame is read.
	acct        *recvAccount
	frameCharge int64
}

// streamInfo is the identity of a stream, fixed at open.
type streamInfo struct {
	role     Role
	scope    string
	dataID   uint64
	metadata map[string]string
	remote   net.Addr
	openedAt time.Time
}

// segment is one future BATCH: buf holds hdrReserve bytes reserved for
// the headers, then the encoded records. Send fills the last segment; the
// writer takes whole segments and gives their buffers back to the
// connection's pool.
type segment struct {
	buf    []byte
	pooled *[]byte // pool handle of buf; nil if not pooled
	first  uint64  // sequence number of the first record
	count  int
	bytes  int // encoded record bytes
}

// hdrReserve is the most a BATCH frame header plus batch header can take.
const hdrReserve = frames.MaxHeaderLen + 1 + 3*8

// sendState is the send direction. Guarded by RecordStream.smu.
type sendState struct {
	nextSeq  uint64    // sequence number the next Send gets
	segs     []segment // encoded records not yet taken by the writer
	pendAt   time.Time // when segs became non-empty (FlushDelay only)
	notified bool      // the writer has been woken and has not taken work since
	flushReq bool      // a Flush or Barrier waits: skip the linger
	closing  bool      // Close called: write the rest, then FIN
	ending   bool      // CloseWrite called: write the rest, then DONE (or FIN without half-close)
	doneSent bool      // the records ended: DONE or FIN written (the writer)

	writingSeq uint64 // highest seq the writer has begun to write; acks above are invalid
	flushedSeq uint64 // highest seq whose Write returned
	ackedSeq   uint64 // highest seq the peer acked
	sentBytes  uint64 // record bytes accepted by Send, cumulative
	ackedBytes uint64 // record bytes acked, cumulative
	cum        seqRing

	lastReject uint64    // highest seq the peer rejected
	rejects    rejectLog // rejections not yet reported by a Barrier

	err     error // terminal error of the send direction; nil while usable
	started bool  // the writer loop was started
	done    bool  // the writer loop has finished (FIN written or failed)
	// aborted is set by the first abort; final is the ERROR frame it
	// handed the running writer loop, nil once the writer took it.
	aborted bool
	final   *frames.ErrorFrame
	// wait is notified when an ack arrives or the stream fails: what
	// Send's window wait and Barrier wait for. flushWait is closed and
	// cleared when the writer hands records to QUIC or exits: what Flush
	// waits for. Two, so that a Barrier is not woken (and the writer's
	// hand-off to quic-go not delayed) by every write.
	wait      waitq
	flushWait chan struct{}
	// flushMarks are the targets of Barriers that began before their
	// records were written; the writer stamps each with the time its
	// records were handed to QUIC, which splits the Barrier's time into
	// flush-wait and ack-wait.
	flushMarks []flushMark
	// win is the adaptive in-flight window (see adapt.go): Send stamps
	// batches in it and enforces it, the reader feeds it acks and the
	// peer's WINDOW frames.
	win *flow.Window
}

// flushMark is the flush time of the Barriers waiting for target.
type flushMark struct {
	target uint64
	at     time.Time // zero until target is written
	refs   int       // Barriers sharing the mark
}

// notifySendLocked wakes every waiter of the send direction, for changes
// that concern both: the writer's exit, a failure.
func (s *RecordStream) notifySendLocked() {
	s.snd.wait.notify()
	notifyLocked(&s.snd.flushWait)
}

// recvState is the receive direction. Guarded by RecordStream.rmu.
type recvState struct {
	// q[qHead:] are the batches not yet fully delivered, by value so
	// that queueing one allocates nothing; see pushBatchLocked.
	q         []inBatch
	qHead     int
	delivered uint64    // highest seq returned by Recv or Apply
	applied   uint64    // highest seq acked or rejected locally
	ackSent   uint64    // highest applied seq conveyed to the peer
	ackSince  time.Time // when applied first exceeded ackSent
	notified  bool      // the writer has been woken for an ack and has not taken it
	errFrames []frames.ErrorFrame

	received   uint64 // highest seq received (reader loop)
	recvBytes  uint64 // record bytes received, cumulative
	applBytes  uint64 // record bytes applied, cumulative
	cum        seqRing
	readerWait chan struct{} // closed when the backlog shrinks and the reader waits

	eof  bool  // the peer's records ended (its DONE or FIN) and every one is queued
	err  error // terminal error of the receive direction
	done bool  // the reader loop has finished
	wait waitq // notified when records are queued or delivery ends

	// backlog is the window this side announces (see adapt.go); marks
	// are the batches the application has started on and not finished,
	// with how long each waited for it; windowDue says the writer owes
	// the peer a WINDOW frame.
	backlog   *flow.Backlog
	marks     []applyMark
	windowDue bool
}

// inBatch is a received batch in a receive buffer of its own.
type inBatch struct {
	buf     []byte  // the encoded records, in a buffer the batch owns
	pooled  *[]byte // the pool handle of buf, nil if it is not pooled
	charge  int64   // what it holds of the receive budget
	it      frames.RecordIter
	last    uint64
	arrived time.Time // when the reader queued it
	started bool      // some of its records were delivered
}

func notifyLocked(ch *chan struct{}) {
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}

func waitChan(ch *chan struct{}) <-chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// setBases makes the stream's first record in each direction follow
// sendBase and recvBase instead of 0; a resumed stream continues the
// sequence numbers of its key. Called before start.
func (s *RecordStream) setBases(sendBase, recvBase uint64) {
	s.sendBase = sendBase
	s.snd.nextSeq = sendBase + 1
	s.snd.ackedSeq, s.snd.writingSeq, s.snd.flushedSeq, s.snd.lastReject = sendBase, sendBase, sendBase, sendBase
	s.rcv.received, s.rcv.delivered, s.rcv.applied, s.rcv.ackSent = recvBase, recvBase, recvBase, recvBase
	s.ctr.ackedSeq.Store(sendBase)
	s.ctr.outRecords.Store(sendBase)
	s.ctr.flushedSeq.Store(sendBase)
	s.ctr.appliedSeq.Store(recvBase)
	if s.snd.win != nil {
		s.snd.win.Rebase(sendBase)
	}
}

// ResumeKey returns a copy of the key of a resumable stream, nil for
// others.
func (s *RecordStream) ResumeKey() []byte { return bytes.Clone(s.resumeKey) }

// ResumeKeyInfo returns, on the acceptor's side of a resumable stream,
// what the opener claimed the key with: the key, the opener's identity
// (the one its resume state is bound to), its stream description and its
// resume epoch, as [ResumeStoreConfig.LoadApplied] received them. It is
// the zero value for a plain stream and on the opener's side. Its Key is
// a copy.
func (s *RecordStream) ResumeKeyInfo() ResumeKeyInfo {
	info := s.resumeInfo
	info.Key = bytes.Clone(info.Key)
	return info
}

// newStream builds a negotiated stream; start launches its loops.
func newStream(c *Conn, set *settings, qs *quic.Stream, fr *wire.Reader, neg Negotiated, info streamInfo) *RecordStream {
	s := &RecordStream{
		conn:       c,
		qs:         qs,
		set:        set,
		id:         streamID(qs),
		info:       info,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
		fr:         fr,
	}
	s.applyNegotiated(neg)
	s.snd.nextSeq = 1
	s.applyEvery = 16
	s.initWindows()
	s.ctx, s.cancel = context.WithCancelCause(c.ctx)
	fr.SetMaxFrameSize(set.maxFrameSize())
	s.acct = newRecvAccount(c.budget, set.preAcceptCredit, info.role == RoleOpener)
	fr.SetDirect(wire.Direct{Type: uint64(frames.TypeBatch), MinLen: directMinBatch, Step: maxPooledBuf, Alloc: s.directBuf, Release: s.releaseBuf})
	if set.logger != nil {
		s.log = set.logger.With("stream", s.id, "role", info.role.String(), "scope", info.scope)
	}
	now := time.Now()
	s.ctr.touch(now)
	return s
}

// applyNegotiated sets the outcome of the negotiation and the send
// limits that follow from it. Called by newStream, and by the reader loop
// of an optimistic open when the reply arrives (with smu held).
func (s *RecordStream) applyNegotiated(neg Negotiated) {
	s.neg.Store(&neg)
	s.piggyback.Store(neg.PiggybackAcks())
	s.halfClose.Store(neg.Features.Has(FeatureHalfClose))
	pl, set := neg.PeerLimits, s.set
	s.maxSendRec.Store(int64(set.sendRecordLimit(pl)))
	s.batchBytes.Store(int64(min(uint64(set.maxBatchBytes), pl.MaxFrameSize-hdrReserve)))
	s.windowRecs = int(min(uint64(set.maxInFlightRecs), pl.MaxInFlightRecords))
	s.windowBytes = int(min(uint64(set.maxInFlightBytes), pl.MaxInFlightBytes))
	s.compression = neg.Features.Has(FeatureCompression)
	s.peerCodecs = 0
	for _, c := range neg.PeerCodecs {
		s.peerCodecs = s.peerCodecs.With(codecOf(c))
	}
}

// sendRecordLimit is the largest record a stream with these settings
// sends to a peer that announced limits pl.
func (s *settings) sendRecordLimit(pl Limits) uint64 {
	return min(uint64(s.maxRecordSize), pl.MaxRecordSize, pl.MaxFrameSize-hdrReserve-8)
}

// negotiated returns the outcome of the negotiation (see applyNegotiated).
func (s *RecordStream) negotiated() *Negotiated { return s.neg.Load() }

func (s *RecordStream) start() {
	s.smu.Lock()
	s.snd.started = true
	s.smu.Unlock()
	go s.writeLoop()
	go s.readLoop()
	if s.log != nil {
		neg := s.negotiated()
		s.log.Debug("record stream open", "version", neg.Version, "features", neg.Features.String(), "reply_pending", s.replyPending.Load())
	}
}

// Context returns a context that is cancelled when the stream ends: closed
// by either side, failed, or its connection gone. context.Cause tells why.
func (s *RecordStream) Context() context.Context { return s.ctx }

// StreamID returns the stream's ID: the ID of its QUIC stream.
func (s *RecordStream) StreamID() StreamID { return s.id }

// Negotiated returns the outcome of the stream's capability negotiation.
// A stream opened optimistically (StreamOptions.OptimisticOpen) reports
// the early profile (version 1, no features, the early limits of
// docs/PROTOCOL.md §5.5) until the acceptor's reply arrives.
func (s *RecordStream) Negotiated() Negotiated { return *s.negotiated() }

// Role says whether this side opened or accepted the stream.
func (s *RecordStream) Role() Role { return s.info.role }

// Scope returns the scope the opener gave the stream.
func (s *RecordStream) Scope() string { return s.info.scope }

// DataID returns the data ID the opener gave the stream.
func (s *RecordStream) DataID() uint64 { return s.info.dataID }

// Metadata returns a copy of the metadata the opener gave the stream.
func (s *RecordStream) Metadata() map[string]string {
	m := make(map[string]string, len(s.info.metadata))
	for k, v := range s.info.metadata {
		m[k] = v
	}
	return m
}

// MaxRecordSize returns the largest record Send accepts on this stream:
// the smaller of this side's MaxRecordSize and the peer's.
func (s *RecordStream) MaxRecordSize() int { return int(s.maxSendRec.Load()) }

// SetPriority sets the QUIC scheduling priority of the stream's data
// relative to the connection's other streams (see quic-go's
// Stream.SetPriority): a lower urgency is sent first, and incremental
// streams of the same urgency share bandwidth round-robin. A latency
// stream next to a bulk one benefits from a lower urgency.
func (s *RecordStream) SetPriority(urgency int8, incremental bool) {
	s.qs.SetPriority(urgency, incremental)
}

// SetRejectHandler installs fn to be called, on the stream's reader
// goroutine, for every record the peer rejects. fn must not block, and
// must not close the stream or its connection (Close waits for the reader
// goroutine fn runs on). Barrier reports rejections too; the handler is
// for senders that do not call it.
func (s *RecordStream) SetRejectHandler(fn func(*RecordError)) {
	if fn == nil {
		s.onReject.Store(nil)
		return
	}
	s.onReject.Store(&fn)
}

// streamErr converts an error from the QUIC stream or the connection into
// the error the stream's callers get.
func (s *RecordStream) streamErr(err error) error {
	if cerr := context.Cause(s.conn.ctx); cerr != nil && s.conn.ctx.Err() != nil {
		return cerr
	}
	return convertQUICError(err, s.id)
}

// streamID returns the ID of a QUIC stream.
func streamID(qs *quic.Stream) StreamID { return StreamID(qs.StreamID()) }
