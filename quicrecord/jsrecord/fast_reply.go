package jsrecord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fastReply is any reply to a fast batch message: a progress report
// (type "ack"), a gap or an error report, or a PubAck (no type).
type fastReply struct {
	Type      string              `json:"type"`
	Seq       uint64              `json:"seq"`
	Msgs      uint64              `json:"msgs"`
	LastSeq   uint64              `json:"last_seq"`
	Batch     string              `json:"batch"`
	Count     uint64              `json:"count"`
	Duplicate bool                `json:"duplicate"`
	Error     *jetstream.APIError `json:"error,omitempty"`
}

// onReply records a reply to a message of the current batch (replies to
// an earlier batch are late and ignored), acknowledges the records it
// confirms, and wakes the pipe if it waits for this. It runs on the
// stream's reply subscription, one reply at a time.
func (p *fastPipe) onReply(m *nats.Msg) {
	b := p.cur.Load()
	if b == nil || !strings.HasPrefix(m.Subject, b.prefix) {
		return
	}
	r, err := parseFastReply(m.Data)
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	before := b.confirmed
	ended := b.applyLocked(r, err)
	if b.confirmed > before {
		b.progress = time.Now()
	}
	confirmed := b.confirmed
	var wake context.CancelFunc
	if b.wake != nil && !b.awaitingLocked() {
		wake, b.wake = b.wake, nil
	}
	b.mu.Unlock()
	p.ackUpTo(b, confirmed)
	if ended {
		close(b.end)
	}
	if wake != nil {
		wake()
	}
}

// applyLocked records reply r (err: it could not be read) and reports
// whether it ended the batch.
func (b *fastBatch) applyLocked(r fastReply, err error) bool {
	switch {
	case err != nil:
		err = fmt.Errorf("jsrecord: malformed reply: %w", err)
	case r.Error != nil:
		err = classifyFast(r.Error)
	case r.Type == "ack":
		b.confirmed = max(b.confirmed, r.Seq)
		b.reported, b.every = max(b.reported, r.Seq), r.Msgs
		return false
	case r.Type == "gap":
		err = fmt.Errorf("jsrecord: messages %d..%d of the batch lost on the way", r.LastSeq, r.Seq)
	case r.Type != "":
		return false // a report this version does not know
	case r.Batch != b.id:
		err = fmt.Errorf("jsrecord: batch commit: reply for batch %q, want %q", r.Batch, b.id)
	default:
		b.count, b.confirmed = r.Count, max(b.confirmed, r.Count)
	}
	return b.endLocked(err)
}

// progressPrefix begins a progress report as JetStream encodes it:
// {"type":"ack","seq":N,"msgs":M}.
var progressPrefix = []byte(`{"type":"ack","seq":`)

// parseFastReply reads a reply. Progress reports, one per record, are
// read without encoding/json when they have the form JetStream writes;
// anything else goes through it.
func parseFastReply(data []byte) (fastReply, error) {
	if rest, ok := bytes.CutPrefix(data, progressPrefix); ok {
		seq, rest, ok1 := cutUint(rest, `,"msgs":`)
		msgs, rest, ok2 := cutUint(rest, `}`)
		if ok1 && ok2 && len(rest) == 0 {
			return fastReply{Type: "ack", Seq: seq, Msgs: msgs}, nil
		}
	}
	var r fastReply
	err := json.Unmarshal(data, &r)
	return r, err
}

// cutUint reads a decimal number of at most 19 digits (no overflow)
// followed by sep at the start of b.
func cutUint(b []byte, sep string) (uint64, []byte, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && i < 19 && '0' <= b[i] && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	if i == 0 || !bytes.HasPrefix(b[i:], []byte(sep)) {
		return 0, nil, false
	}
	return n, b[i+len(sep):], true
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
