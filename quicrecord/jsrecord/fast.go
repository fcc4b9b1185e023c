package jsrecord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
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
// up to a batch sequence number; the commit's reply is a PubAck with the
// number of messages stored.
//
// Every message carries the fence, the expected last sequence of the
// key's claim subject: on a stream without replication JetStream checks
// it on each message in turn, against the store, so pipelined fences
// work (on a replicated stream they do not: error 10164, see the package
// doc).
const (
	fastSuffix = ".$FI"
	// fastFlowGap is FLOW and GAP: a progress report at least every 256
	// messages, gap mode "fail".
	fastFlowGap  = ".256.fail."
	fastOpStart  = "0"
	fastOpAppend = "1"
	fastOpEOB    = "3" // commit, the message itself is not stored
)

// fastReply is any reply to a fast batch message: a progress report
// (type "ack"), a gap or an error report, or a PubAck (no type).
type fastReply struct {
	Type      string              `json:"type"`
	Seq       uint64              `json:"seq"`
	LastSeq   uint64              `json:"last_seq"`
	Batch     string              `json:"batch"`
	Count     uint64              `json:"count"`
	Duplicate bool                `json:"duplicate"`
	Error     *jetstream.APIError `json:"error,omitempty"`
}

// fastBatch is one fast batch of consecutive records of a key. Its
// identity and first record are set before it is published and never
// change; the rest is written by the reply handler under mu.
type fastBatch struct {
	id    string
	first uint64 // sequence number of the record of batch sequence 1

	mu        sync.Mutex
	confirmed uint64 // batch sequence number JetStream confirmed up to
	err       error  // why the batch ended unconfirmed
	count     uint64 // messages stored, from the commit's PubAck
	ended     bool
	end       chan struct{} // closed once ended
}

// state returns what the handler recorded.
func (b *fastBatch) state() (confirmed uint64, ended bool, count uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.confirmed, b.ended, b.count, b.err
}

// fastPipe publishes one stream's records as fast batches, one batch at a
// time: a batch is committed when no record is waiting or when it holds
// Config.MaxBatch records (so that streams take turns at the sink's
// MaxInflightBatches tokens even while records keep coming), and the next one
// starts only once JetStream confirmed the commit, so a batch that ended
// early cannot be followed by stored records of a later one. Owned by the
// Serve call; the reply handler only writes the current batch.
type fastPipe struct {
	s     *Sink
	rs    recordStream
	name  string
	claim uint64
	inbox string
	msg   *nats.Msg
	vals  [4][]string // reused header values: msg ID, seq, fence seq, fence subject
	reply []byte
	cur   atomic.Pointer[fastBatch]
	n     uint64 // messages of cur sent
	acked uint64 // last record acknowledged
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
	return p
}

// run publishes the stream's records until the opener finishes it (nil),
// or a receive or a batch fails (the stream is then reset).
func (p *fastPipe) run(ctx context.Context) error {
	idle, stop := context.WithCancel(ctx)
	stop() // a receive that does not wait
	for {
		open := p.cur.Load() != nil
		w := ctx
		if open {
			w = idle
		}
		r, recvErr := p.rs.Recv(w)
		if recvErr == nil {
			if err := p.send(ctx, r.Seq, r.Data); err != nil {
				return err
			}
			if p.n < uint64(p.s.maxBatch) {
				continue
			}
		} else if open && ctx.Err() == nil && errors.Is(recvErr, context.Canceled) {
			recvErr = nil // nothing waiting
		}
		// Nothing waiting, the batch full, or the stream ended: commit.
		if p.cur.Load() != nil {
			if err := p.commit(ctx); err != nil {
				return err
			}
		}
		if recvErr != nil {
			_ = p.rs.Close(context.WithoutCancel(ctx))
			if errors.Is(recvErr, io.EOF) {
				return nil
			}
			return recvErr
		}
	}
}

// send publishes record seq, starting a batch if none is open, and
// acknowledges what JetStream confirmed so far.
func (p *fastPipe) send(ctx context.Context, seq uint64, data []byte) error {
	b := p.cur.Load()
	if b == nil {
		select {
		case p.s.sem <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		p.s.ctr.inflight.Add(1)
		b = &fastBatch{id: nuid.Next(), first: seq, end: make(chan struct{})}
		p.cur.Store(b)
		p.n = 0
	}
	confirmed, ended, count, err := b.state()
	if ended {
		// Refused mid-batch, or ended by JetStream without its error
		// report reaching us (reports may be lost): send no more, and
		// acknowledge no more than the PubAck's count, if any.
		if err == nil {
			err = fmt.Errorf("%w: after %d of %d records", errEndedEarly, count, p.n)
		}
		return p.finish(b, err)
	}
	p.ackUpTo(b, confirmed)
	p.n++
	op := fastOpAppend
	if p.n == 1 {
		op = fastOpStart
	}
	m := p.msg
	m.Data = data
	m.Reply = p.replySubject(b.id, p.n, op)
	p.vals[0][0] = msgID(p.name, seq)
	p.vals[1][0] = strconv.FormatUint(seq, 10)
	if err := p.s.nc.PublishMsg(m); err != nil {
		return p.finish(b, fmt.Errorf("jsrecord: publish: %w", err))
	}
	return nil
}

// commit ends the open batch and waits (at most Config.Timeout) for
// JetStream's verdict; the batch's records are acknowledged if it stored
// them all.
func (p *fastPipe) commit(ctx context.Context) error {
	b := p.cur.Load()
	m := nats.NewMsg(p.msg.Subject)
	m.Reply = p.replySubject(b.id, p.n+1, fastOpEOB)
	if err := p.s.nc.PublishMsg(m); err != nil {
		return p.finish(b, fmt.Errorf("jsrecord: batch commit: %w", err))
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
	if err == nil && count != p.n {
		err = fmt.Errorf("jsrecord: batch commit: %d of %d records stored", count, p.n)
	}
	return p.finish(b, err)
}

// finish closes batch b: with err == nil it acknowledges all of it;
// otherwise it acknowledges what JetStream confirmed before the failure,
// nothing after it, and resets the stream (see fail). The batch's token
// is given back last, so a batch no longer counts as in flight only once
// its outcome is in the statistics.
func (p *fastPipe) finish(b *fastBatch, err error) error {
	defer func() {
		p.cur.Store(nil)
		p.s.ctr.inflight.Add(-1)
		<-p.s.sem
	}()
	if err != nil {
		confirmed, _, _, _ := b.state()
		p.ackUpTo(b, confirmed)
		return p.fail(b.first+confirmed, b.first+p.n-1, err)
	}
	p.ackUpTo(b, p.n)
	p.s.ctr.batches.Add(1)
	return nil
}

// ackUpTo acknowledges the records of b up to batch sequence n.
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

// replySubject returns the reply subject of message seq of batch id.
func (p *fastPipe) replySubject(id string, seq uint64, op string) string {
	r := append(p.reply[:0], p.inbox...)
	r = append(r, '.')
	r = append(r, id...)
	r = append(r, fastFlowGap...)
	r = strconv.AppendUint(r, seq, 10)
	r = append(r, '.')
	r = append(r, op...)
	r = append(r, fastSuffix...)
	p.reply = r
	return string(r)
}

// onReply records a reply to a message of the current batch (replies to
// an earlier batch are late and ignored).
func (p *fastPipe) onReply(m *nats.Msg) {
	b := p.cur.Load()
	if b == nil || !strings.HasPrefix(m.Subject, p.inbox+"."+b.id+".") {
		return
	}
	var r fastReply
	err := json.Unmarshal(m.Data, &r)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	switch {
	case err != nil:
		b.err = fmt.Errorf("jsrecord: malformed reply: %w", err)
	case r.Error != nil:
		b.err = classifyFast(r.Error)
	case r.Type == "ack":
		b.confirmed = max(b.confirmed, r.Seq)
		return
	case r.Type == "gap":
		b.err = fmt.Errorf("jsrecord: messages %d..%d of the batch lost on the way", r.LastSeq, r.Seq)
	case r.Type != "":
		return // a report this version does not know
	case r.Batch != b.id:
		b.err = fmt.Errorf("jsrecord: batch commit: reply for batch %q, want %q", r.Batch, b.id)
	default:
		b.count, b.confirmed = r.Count, max(b.confirmed, r.Count)
	}
	b.ended = true
	close(b.end)
}

// errEndedEarly: JetStream ended a fast batch before the sink committed
// it, and its report of why did not arrive.
var errEndedEarly = errors.New("jsrecord: JetStream ended the batch early")

// errReplicated: JetStream refused a pipelined fence because the stream is
// replicated now (it was not when the sink started).
var errReplicated = errors.New("jsrecord: pipelined fences refused: the stream is replicated")

// classifyFast wraps JetStream's refusal of a fast batch message.
func classifyFast(ae *jetstream.APIError) error {
	switch ae.ErrorCode {
	case jetstream.JSErrCodeStreamWrongLastSequence:
		return fmt.Errorf("%w: %w", ErrFenced, ae)
	case jetstream.JSErrCodeStreamWrongLastSequenceConstant:
		return fmt.Errorf("%w: %w", errReplicated, ae)
	}
	return fmt.Errorf("jsrecord: %w", ae)
}
