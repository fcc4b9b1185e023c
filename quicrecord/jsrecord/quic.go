package jsrecord

// This file is the sink's only contact with package quicrecord's API.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/recordmux/recordmux/quicrecord"
)

// liveStream is a stream being served, as the sink needs to close it.
type liveStream interface {
	CloseWithError(code quicrecord.ErrorCode, reason string) error
}

// claimedStream is what a served stream tells of its opener
// (*quicrecord.RecordStream does): its resume epoch, and whether the
// stream negotiated epochs.
type claimedStream interface {
	ResumeKeyInfo() quicrecord.ResumeKeyInfo
	Negotiated() quicrecord.Negotiated
}

// takeoverCode is the code a stream of this collector ends with when
// another stream of its key takes the key over, newest being the epoch
// of the newest opener known: as quicrecord's ResumeStore ends a stream
// it takes a key from, CodeSuperseded when that opener is newer than the
// stream's and the stream negotiated epochs (its opener then stops),
// else quicrecord.CodeCancelled (the same opener reconnected, or one
// without epochs).
func takeoverCode(ls liveStream, newest uint64) quicrecord.ErrorCode {
	cs, ok := ls.(claimedStream)
	if ok && newest > cs.ResumeKeyInfo().Epoch && cs.Negotiated().Features.Has(quicrecord.FeatureResumeEpoch) {
		return CodeSuperseded
	}
	return quicrecord.CodeCancelled
}

// fencedCode is takeoverCode for a stream of key name whose records
// JetStream refused because another collector claimed the key since: the
// epoch of that claim is read back. When it cannot be read, the stream
// ends with quicrecord.CodeCancelled; a superseded opener that reconnects
// is then refused with SUPERSEDED by its claim.
func (s *Sink) fencedCode(name string, ls liveStream) quicrecord.ErrorCode {
	c, err := s.readClaim(context.Background(), name)
	if err != nil {
		return quicrecord.CodeCancelled
	}
	return takeoverCode(ls, c.Epoch)
}

// recordStream is what the fast batch pipeline needs of a stream
// (*quicrecord.RecordStream; a test double in tests).
type recordStream interface {
	liveStream
	Recv(ctx context.Context) (quicrecord.Record, error)
	Ack(seq uint64) error
	Close(ctx context.Context) error
}

// NewResumeStore returns the ResumeStore a collector using the sink sets as
// its quicrecord.Config.ResumeStore. Its LoadApplied is [Sink.LoadApplied],
// and it keeps the state of a key only while a stream of the key is
// attached (its TTL is a nanosecond): a stream that lost its connection
// resumes through a new claim, read from JetStream, whichever collector
// it reaches, so a collector never resumes a key from a memory that
// another collector may have made stale. Like JetStream's, its state is
// per (client identity, key). Config.AllowAnonymous sets whether clients
// without an identity resume.
func (s *Sink) NewResumeStore() *quicrecord.ResumeStore {
	return quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{TTL: time.Nanosecond, LoadApplied: s.LoadApplied, AllowAnonymous: s.anonymous})
}

// LoadApplied is the ResumeStore's hook (see quicrecord.ResumeStoreConfig):
// it claims the key of info.Peer for this collector, recording
// info.Epoch in the claim, and returns the last sequence number JetStream
// holds for it, retrying transient failures until ctx (the stream's
// handshake deadline) ends. An opener whose epoch is older than the last
// claim's is refused with [ErrSupersededClaim]. What other identities
// hold is never read: the same key under another identity is another
// stream.
func (s *Sink) LoadApplied(ctx context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
	return s.claimKey(ctx, info)
}

// AcceptHandler decides on each stream a client opens; set it as the
// collector's quicrecord.Config.AcceptHandler (or call it from yours). It
// refuses plain streams (CodeRefused: the sink needs a resume key), and
// any stream while the claim of its (identity, key) cannot be read from
// JetStream (CodeUnavailable, which a ResumableStream retries with
// backoff, unlike a failure in LoadApplied). It reads nothing of other
// identities, so whether another identity holds the key makes no
// difference to what the opener sees. Streams of the key already open on
// this collector are closed as quicrecord's ResumeStore closes a stream
// it takes a key from (see [CodeSuperseded]; the newest opener is the
// newer of the new stream's and the last claim's), so the new stream
// resumes through a new claim. It keeps the connection's stream settings
// (a nil StreamConfig); a collector that wants others calls it from its
// own handler. ctx bounds the claim's read.
func (s *Sink) AcceptHandler(ctx context.Context, info *quicrecord.AcceptInfo) (*quicrecord.StreamConfig, error) {
	if info.ResumeKey == nil {
		return nil, &quicrecord.ApplicationError{Code: quicrecord.CodeRefused, Reason: ErrNotResumable.Error()}
	}
	name := nameOf(info.PeerIdentity, info.ResumeKey)
	c, err := s.readClaim(ctx, name)
	if err != nil {
		s.ctr.refused.Add(1)
		return nil, fmt.Errorf("%w: %w", &quicrecord.ApplicationError{Code: CodeUnavailable, Reason: "jsrecord: JetStream unavailable: " + err.Error()}, err)
	}
	s.supersede(name, max(info.ResumeEpoch, c.Epoch))
	return nil, nil
}

// Serve applies the records of an accepted resumable stream, each fenced on
// this collector's claim of the key, and acknowledges them in order, each
// only once JetStream confirmed it (see the package doc). On a stream
// without replication it publishes them as fast batches, acknowledged from
// JetStream's progress reports while a batch runs. Otherwise it takes what
// has arrived (up to Config.MaxBatch records) as one atomic batch,
// publishes it, and acknowledges the batch's last record once JetStream
// confirmed the batch; while a batch commits, the next one is collected
// and its records sent, and it is committed when the previous one is
// confirmed.
//
// A batch that fails or times out is never acknowledged: Serve resets the
// stream with CodeUnavailable (when JetStream refused it because another
// collector holds the key, as quicrecord's ResumeStore ends a stream it
// takes a key from: see [CodeSuperseded]) and returns the error. The
// opener's ResumableStream keeps the records, reconnects, and resumes
// right after what JetStream holds. Serve returns nil when the opener
// finished the stream, and closes rs in every case.
func (s *Sink) Serve(ctx context.Context, rs *quicrecord.RecordStream) error {
	info := rs.ResumeKeyInfo()
	if info.Key == nil {
		_ = rs.CloseWithError(quicrecord.CodeRefused, ErrNotResumable.Error())
		return ErrNotResumable
	}
	name := nameOf(info.Peer, info.Key)
	claim := s.attach(name, rs)
	defer s.detach(name, rs, claim)
	if claim == 0 {
		_ = rs.CloseWithError(CodeUnavailable, ErrNoClaim.Error())
		return ErrNoClaim
	}
	if s.useFast.Load() {
		return s.serveFast(ctx, rs, name, claim)
	}
	p := &pipe{s: s, rs: rs}
	p.next = &batch{name: name, claim: claim, recs: make([][]byte, 0, s.maxBatch)}
	p.spare = &batch{name: name, claim: claim, recs: make([][]byte, 0, s.maxBatch)}
	return p.run(ctx)
}

// pipe is the publishing pipeline of one stream: at most one batch
// committing (cur) while the next is collected and staged. Owned by the
// Serve call; cur's commit runs on a goroutine of its own, which Serve
// always waits for.
type pipe struct {
	s           *Sink
	rs          *quicrecord.RecordStream
	next, spare *batch
	cur         *commitCall
}

// commitCall is a batch commit in progress.
type commitCall struct {
	b    *batch
	err  error           // set before done is closed
	done chan struct{}   // closed when the commit returned
	wake context.Context // cancelled when the commit returned
}

func (p *pipe) run(ctx context.Context) error {
	for {
		recvErr := p.collect(ctx)
		if len(p.next.recs) > 0 {
			if err := p.s.stage(ctx, p.next); err != nil {
				if serr := p.settle(); serr != nil {
					return serr
				}
				return p.failed(p.next, err)
			}
		}
		if err := p.settle(); err != nil {
			p.s.release(p.next) // staged, never committed
			return err
		}
		if len(p.next.recs) > 0 {
			p.startCommit(ctx)
		}
		if recvErr != nil {
			if err := p.settle(); err != nil {
				return err
			}
			_ = p.rs.Close(context.WithoutCancel(ctx))
			if errors.Is(recvErr, io.EOF) {
				return nil
			}
			return recvErr
		}
	}
}

// collect fills p.next with the records that have arrived, up to the
// batch limit. With no batch committing, it waits for one record and takes
// what is queued behind it; while a batch commits, it keeps taking records
// as they arrive until that commit returns, so the next batch is as full
// as the time allows. A receive error is returned with the records taken
// before it.
func (p *pipe) collect(ctx context.Context) error {
	b := p.next
	b.recs = b.recs[:0]
	wait := ctx // how long to wait for the first record
	more, stop := context.WithCancel(ctx)
	stop() // how long to wait for the others: not at all
	if p.cur != nil {
		wait, more = p.cur.wake, p.cur.wake
	}
	for len(b.recs) < p.s.maxBatch {
		w := more
		if len(b.recs) == 0 {
			w = wait
		}
		r, err := p.rs.Recv(w)
		if err != nil {
			if ctx.Err() == nil && w.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // nothing more for now, or the commit returned
			}
			return err
		}
		if len(b.recs) == 0 {
			b.first = r.Seq
		}
		b.recs = append(b.recs, r.Data)
	}
	return nil
}

// startCommit commits p.next on a goroutine of its own and makes it cur.
func (p *pipe) startCommit(ctx context.Context) {
	c := &commitCall{b: p.next, done: make(chan struct{})}
	wake, cancel := context.WithCancel(ctx)
	c.wake = wake
	go func() {
		c.err = p.s.commit(ctx, c.b)
		cancel()
		close(c.done)
	}()
	p.cur, p.next, p.spare = c, p.spare, nil
}

// settle waits for the batch committing, if any, and acknowledges it, or
// resets the stream if it failed.
func (p *pipe) settle() error {
	c := p.cur
	if c == nil {
		return nil
	}
	<-c.done
	p.cur, p.spare = nil, c.b
	if c.err != nil {
		return p.failed(c.b, c.err)
	}
	p.s.ctr.batches.Add(1)
	p.s.ctr.records.Add(uint64(len(c.b.recs)))
	// An error here means the stream failed meanwhile; the ack still
	// counts for the resume state of a stream taking over on this
	// collector.
	_ = p.rs.Ack(c.b.last())
	return nil
}

// failed resets the stream after batch b was not confirmed.
func (p *pipe) failed(b *batch, err error) error {
	s := p.s
	code := CodeUnavailable
	var ae *jetstream.APIError
	switch {
	case errors.Is(err, ErrFenced) && errors.As(err, &ae) && ae.ErrorCode == errCodeBatchDuplicate:
		code = s.fencedCode(b.name, p.rs)
		s.ctr.dupRefused.Add(1)
	case errors.Is(err, ErrFenced):
		code = s.fencedCode(b.name, p.rs)
		s.ctr.fenced.Add(1)
	default:
		s.ctr.failed.Add(1)
	}
	if s.log != nil {
		s.log.Warn("jsrecord: batch not confirmed; the stream is reset and nothing of it acknowledged",
			"key", b.name, "first", b.first, "last", b.last(), "err", err)
	}
	_ = p.rs.CloseWithError(code, fmt.Sprintf("records %d..%d not confirmed: %v", b.first, b.last(), err))
	return fmt.Errorf("jsrecord: records %d..%d of %s: %w", b.first, b.last(), b.name, err)
}
