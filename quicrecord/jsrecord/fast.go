package jsrecord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/recordmux/recordmux/quicrecord"
)

// Fast batches (nats-server 2.14 or later, stream option allow_batched)
// are how the sink publishes to a stream without replication. Unlike an
// atomic batch, a fast batch is not staged: JetStream stores each message
// as it arrives, in order, and reports its progress on the messages'
// reply subjects. Its fields are in the reply subject,
// INBOX.ID.FLOW.GAP.SEQ.OP.$FI: the batch ID, how many messages at most
// between two progress reports, the gap mode, the message's sequence
// number in the batch and the operation (start, append, commit at end of
// batch). The sink uses gap mode "fail": a message that is refused, or
// missing (lost on the way), ends the batch there, and no later message
// of the batch is stored. Progress reports ("ack") confirm every message
// up to a batch sequence number, and say after how many more messages the
// next one comes; the commit's reply is a PubAck with the number of
// messages stored.
//
// Every message carries the fence, the expected last sequence of the
// key's claim subject: on a stream without replication JetStream checks
// it on each message in turn, against the store, so pipelined fences
// work (on a replicated stream they do not: error 10164, see the package
// doc).
//
// A batch is not committed to have its records confirmed: the progress
// reports confirm them, and the reply handler acknowledges the records a
// report covers as soon as it arrives, while the batch goes on, so the
// agent's in-flight window keeps sliding while JetStream works. The sink
// asks for a report every fastFlow messages (JetStream may report more
// often, starting at every message, when several batches share the
// stream). A batch is committed only when nothing else is left to do:
//
//   - no record is waiting and the last records sent are below the next
//     report (fewer than fastFlow since the last): only a commit confirms
//     them;
//   - no record is waiting, JetStream confirmed every record, and none
//     arrived within fastLinger (at once if another stream waits for a
//     batch token): the batch would otherwise stay open on JetStream;
//   - a report is due but JetStream confirmed nothing for Config.Timeout:
//     the commit's verdict says what it holds;
//   - the batch holds Config.MaxBatch records or more while another
//     stream waits for a batch token, so that the streams take turns;
//   - the stream ends.
//
// The next batch starts only once the commit's verdict came, so that a
// batch that ended early cannot be followed by stored records of a later
// one.
const (
	fastSuffix = ".$FI"
	// fastFlow is FLOW, how many messages at most between two progress
	// reports. Each report costs JetStream's stream loop about as much
	// as a fifth of a record (on the collector's BenchmarkSinks); fewer
	// reports leave more records to a commit's round trip.
	fastFlow = 16
	// fastFlowGap is FLOW and GAP: gap mode "fail".
	fastFlowGap  = ".16.fail."
	fastOpStart  = "0"
	fastOpAppend = "1"
	fastOpEOB    = "3" // commit, the message itself is not stored
	// fastLinger is how long a batch whose records are all confirmed
	// stays open for the next record.
	fastLinger = time.Millisecond
)

// fastBatch is one fast batch of consecutive records of a key. Its
// identity and first record are set before it is published and never
// change; the rest is guarded by mu: sent is written by the pipe, the
// others by the reply handler, and ended by whichever ends the batch
// first.
type fastBatch struct {
	id     string
	prefix string // INBOX.ID. of its reply subjects
	first  uint64 // sequence number of the record of batch sequence 1
	end    chan struct{}

	mu        sync.Mutex
	sent      uint64    // messages of the batch published
	confirmed uint64    // batch sequence number JetStream confirmed up to
	reported  uint64    // batch sequence number of the last progress report
	every     uint64    // messages between reports, from the last one (0: none yet)
	progress  time.Time // when confirmed last grew, or the first unconfirmed record was sent
	count     uint64    // messages stored, from the commit's PubAck
	err       error     // why the batch ended unconfirmed
	ended     bool      // set by whoever closes end, once
	// wake, set while the pipe waits in Recv for a record or a report,
	// ends that wait: the handler calls it when the wait is over.
	wake context.CancelFunc
}

// state returns what the handler recorded.
func (b *fastBatch) state() (confirmed uint64, ended bool, count uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.confirmed, b.ended, b.count, b.err
}

// awaitingLocked reports whether JetStream owes the pipe a report: some
// records are unconfirmed and enough were sent for the next report to
// come without more. Otherwise, with no record waiting, the batch is
// committed.
func (b *fastBatch) awaitingLocked() bool {
	return !b.ended && b.confirmed < b.sent && (b.every == 0 || b.sent >= b.reported+b.every)
}

// endLocked ends the batch with err (nil: its commit's verdict came) and
// reports whether this call ended it; the caller then closes end, after
// unlocking.
func (b *fastBatch) endLocked(err error) bool {
	if b.ended {
		return false
	}
	b.ended, b.err = true, err
	return true
}

// fastPipe publishes one stream's records as fast batches, one batch at a
// time (see the comment at the top of this file). The pipe is owned by
// the Serve call; the reply handler updates the current batch and is the
// only one acknowledging records (acked is its own).
type fastPipe struct {
	s     *Sink
	rs    recordStream
	name  string
	claim uint64
	inbox string
	msg   *nats.Msg
	vals  [4][]string     // reused header values: msg ID, seq, fence seq, fence subject
	buf   []byte          // reused: a reply subject and message ID being built
	now   context.Context // cancelled: a Recv that takes only what is waiting
	cur   atomic.Pointer[fastBatch]
	acked uint64 // last record acknowledged; owned by the reply handler
}

// serveFast is Serve on a stream without replication; see fastPipe.
func (s *Sink) serveFast(ctx context.Context, rs recordStream, name string, claim uint64) error {
	p := s.newFastPipe(rs, name, claim)
	sub, err := s.nc.Subscribe(p.inbox+".>", p.onReply)
	if err != nil {
		return p.fail(0, 0, fmt.Errorf("jsrecord: subscribe: %w", err))
	}
	defer func() { _ = sub.Unsubscribe() }()
	return p.run(ctx)
}

// newFastPipe returns the pipeline of stream rs of key name, fenced on
// claim.
func (s *Sink) newFastPipe(rs recordStream, name string, claim uint64) *fastPipe {
	p := &fastPipe{s: s, rs: rs, name: name, claim: claim, inbox: s.nc.NewRespInbox()}
	p.msg = &nats.Msg{Subject: recordSubject(s.prefix, name), Header: make(nats.Header, 4)}
	p.vals = [4][]string{{""}, {""}, {strconv.FormatUint(claim, 10)}, {claimSubject(s.prefix, name)}}
	p.msg.Header[jetstream.MsgIDHeader] = p.vals[0]
	p.msg.Header[HeaderSeq] = p.vals[1]
	p.msg.Header[hdrExpectSubjSeq] = p.vals[2]
	p.msg.Header[hdrExpectSubj] = p.vals[3]
	now, stop := context.WithCancel(context.Background())
	stop()
	p.now = now
	return p
}

// errCommitNow: no record is waiting and the open batch has nothing more
// to wait for but its commit.
var errCommitNow = errors.New("jsrecord: commit the batch")

// run publishes the stream's records until the opener finishes it (nil),
// or a receive or a batch fails (the stream is then reset).
func (p *fastPipe) run(ctx context.Context) error {
	for {
		r, err := p.next(ctx)
		switch {
		case err == nil:
			if err := p.send(ctx, r.Seq, r.Data); err != nil {
				return err
			}
		case errors.Is(err, errCommitNow):
			if err := p.commit(ctx); err != nil {
				return err
			}
		default: // the stream ended or failed
			if p.cur.Load() != nil {
				if err := p.commit(ctx); err != nil {
					return err
				}
			}
			_ = p.rs.Close(context.WithoutCancel(ctx))
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// next returns the stream's next record, errCommitNow when none is waiting
// and the open batch is to be committed (see the comment at the top of
// this file), or the stream's error. With a batch open and no record
// waiting, it waits for one while JetStream owes a report, at most until
// Config.Timeout after JetStream's last progress, or for fastLinger when
// every record is confirmed; the handler ends the wait when a reply
// changes that.
func (p *fastPipe) next(ctx context.Context) (quicrecord.Record, error) {
	b := p.cur.Load()
	if b == nil {
		return p.rs.Recv(ctx)
	}
	for {
		if r, err := p.rs.Recv(p.now); err == nil || !p.nothingWaiting(ctx, p.now, err) {
			return r, err
		}
		b.mu.Lock()
		var deadline time.Time
		switch {
		case b.awaitingLocked():
			deadline = b.progress.Add(p.s.timeout)
		case !b.ended && b.confirmed == b.sent && p.s.waiting.Load() == 0:
			deadline = time.Now().Add(fastLinger)
		default:
			b.mu.Unlock()
			return quicrecord.Record{}, errCommitNow
		}
		w, cancel := context.WithDeadline(ctx, deadline)
		b.wake = cancel
		b.mu.Unlock()
		r, err := p.rs.Recv(w)
		b.mu.Lock()
		b.wake = nil
		b.mu.Unlock()
		cancel()
		if err == nil || !p.nothingWaiting(ctx, w, err) {
			return r, err
		}
		if errors.Is(w.Err(), context.DeadlineExceeded) {
			return quicrecord.Record{}, errCommitNow
		}
	}
}

// nothingWaiting reports whether err, from a Recv that waited on w, only
// says that w ended, not the stream nor ctx.
func (p *fastPipe) nothingWaiting(ctx, w context.Context, err error) bool {
	return ctx.Err() == nil && w.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// send publishes record seq, starting a batch if none is open. A full
// batch is committed when another stream waits for a batch token.
func (p *fastPipe) send(ctx context.Context, seq uint64, data []byte) error {
	b := p.cur.Load()
	if b == nil {
		if err := p.s.acquire(ctx); err != nil {
			return err
		}
		b = &fastBatch{id: nuid.Next(), first: seq, end: make(chan struct{})}
		b.prefix = p.inbox + "." + b.id + "."
		p.cur.Store(b)
	}
	b.mu.Lock()
	if b.ended {
		// Refused mid-batch, or ended by JetStream without its error
		// report reaching us (reports may be lost): send no more; the
		// handler acknowledged no more than the PubAck's count, if any.
		err, n := b.err, b.sent
		b.mu.Unlock()
		if err == nil {
			_, _, count, _ := b.state()
			err = fmt.Errorf("%w: after %d of %d records", errEndedEarly, count, n)
		}
		return p.finish(b, err)
	}
	if b.confirmed == b.sent {
		b.progress = time.Now()
	}
	b.sent++
	n := b.sent
	b.mu.Unlock()
	op := fastOpAppend
	if n == 1 {
		op = fastOpStart
	}
	// One string holds the reply subject, then the message ID (msgID:
	// NAME:SEQ), whose end is the sequence number.
	buf := p.appendReply(p.buf[:0], b, n, op)
	r := len(buf)
	p.buf = strconv.AppendUint(append(append(buf, p.name...), ':'), seq, 10)
	all := string(p.buf)
	m := p.msg
	m.Data, m.Reply = data, all[:r]
	p.vals[0][0], p.vals[1][0] = all[r:], all[r+len(p.name)+1:]
	if err := p.s.nc.PublishMsg(m); err != nil {
		return p.finish(b, fmt.Errorf("jsrecord: publish: %w", err))
	}
	if n >= uint64(p.s.maxBatch) && p.s.waiting.Load() > 0 {
		return p.commit(ctx)
	}
	return nil
}

// commit ends the open batch and waits (at most Config.Timeout) for
// JetStream's verdict. The handler acknowledges what the verdict
// confirms; the batch succeeded if JetStream stored all of it.
func (p *fastPipe) commit(ctx context.Context) error {
	b := p.cur.Load()
	b.mu.Lock()
	n, ended := b.sent, b.ended
	b.mu.Unlock()
	if !ended {
		m := nats.NewMsg(p.msg.Subject)
		m.Reply = p.replySubject(b, n+1, fastOpEOB)
		if err := p.s.nc.PublishMsg(m); err != nil {
			return p.finish(b, fmt.Errorf("jsrecord: batch commit: %w", err))
		}
	}
	t := time.NewTimer(p.s.timeout)
	defer t.Stop()
	select {
	case <-b.end:
	case <-t.C:
		return p.finish(b, fmt.Errorf("jsrecord: batch commit: %w", context.DeadlineExceeded))
	case <-ctx.Done():
		return p.finish(b, fmt.Errorf("jsrecord: batch commit: %w", context.Cause(ctx)))
	}
	_, _, count, err := b.state()
	if err == nil && count != n {
		err = fmt.Errorf("jsrecord: batch commit: %d of %d records stored", count, n)
	}
	return p.finish(b, err)
}

// finish closes batch b. With err == nil its records were all
// acknowledged (by the handler, before it ended the batch); otherwise the
// stream is reset (see fail), nothing more being acknowledged: the batch is
// ended here if the handler did not end it, so that the handler
// acknowledges no more. (A report the handler took before that may still
// be acknowledged after the reset: those records are confirmed.) The
// batch's token is given back last, so a batch no longer counts as in
// flight only once its outcome is in the statistics.
func (p *fastPipe) finish(b *fastBatch, err error) error {
	defer func() {
		p.cur.Store(nil)
		p.s.releaseToken()
	}()
	if err != nil {
		b.mu.Lock()
		ended := b.endLocked(err)
		confirmed, n := b.confirmed, b.sent
		b.mu.Unlock()
		if ended {
			close(b.end)
		}
		return p.fail(b.first+confirmed, b.first+n-1, err)
	}
	p.s.ctr.batches.Add(1)
	return nil
}

// ackUpTo acknowledges the records of b up to batch sequence n. Called by
// the reply handler only.
func (p *fastPipe) ackUpTo(b *fastBatch, n uint64) {
	if n == 0 || b.first+n-1 <= p.acked {
		return
	}
	last := b.first + n - 1
	p.s.ctr.records.Add(last - max(p.acked, b.first-1))
	p.acked = last
	_ = p.rs.Ack(last)
}

// fail resets the stream after records first..last were not confirmed.
func (p *fastPipe) fail(first, last uint64, err error) error {
	code := CodeUnavailable
	switch {
	case errors.Is(err, ErrFenced):
		code = p.s.fencedCode(p.name, p.rs)
		p.s.ctr.fenced.Add(1)
	case errors.Is(err, errReplicated):
		p.s.useFast.Store(false)
		p.s.ctr.failed.Add(1)
	default:
		p.s.ctr.failed.Add(1)
	}
	if p.s.log != nil {
		p.s.log.Warn("jsrecord: records not confirmed; the stream is reset and none of them acknowledged",
			"key", p.name, "first", first, "last", last, "err", err)
	}
	_ = p.rs.CloseWithError(code, fmt.Sprintf("records %d..%d not confirmed: %v", first, last, err))
	return fmt.Errorf("jsrecord: records %d..%d of %s: %w", first, last, p.name, err)
}

// replySubject returns the reply subject of message seq of batch b.
func (p *fastPipe) replySubject(b *fastBatch, seq uint64, op string) string {
	p.buf = p.appendReply(p.buf[:0], b, seq, op)
	return string(p.buf)
}

// appendReply appends the reply subject of message seq of batch b to r.
func (p *fastPipe) appendReply(r []byte, b *fastBatch, seq uint64, op string) []byte {
	r = append(r, b.prefix...)
	r = append(r, fastFlowGap[1:]...)
	r = strconv.AppendUint(r, seq, 10)
	r = append(r, '.')
	r = append(r, op...)
	return append(r, fastSuffix...)
}
