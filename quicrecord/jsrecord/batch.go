package jsrecord

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// JetStream's atomic batch headers (ADR-50), which nats.go has no API for.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// hdrExpectSubjSeq with hdrExpectSubj checks the last sequence of
	// another subject than the message's own: the key's claim subject.
	hdrExpectSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectSubj    = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrExpectStream  = "Nats-Expected-Stream"
)

// errCodeBatchDuplicate is JetStream's refusal of an atomic batch holding
// a message ID it has seen within the deduplication window
// (JSAtomicPublishContainsDuplicateMessageErr). JetStream checks IDs
// before the fence, so a collector that wakes up after the new holder
// already published the same records is refused this way.
const errCodeBatchDuplicate jetstream.ErrorCode = 10201

// batch is one atomic batch of consecutive records of one key.
type batch struct {
	name  string   // the key in hex
	claim uint64   // stream sequence of the claim the batch is fenced on
	first uint64   // sequence number of recs[0]
	recs  [][]byte // record payloads, first, first+1, …
}

// batchAck is JetStream's reply to a batch commit.
type batchAck struct {
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"`
	Batch  string              `json:"batch"`
	Count  int                 `json:"count"`
	Error  *jetstream.APIError `json:"error,omitempty"`
}

// publish publishes b as one atomic batch and waits for JetStream to
// confirm it: every record is stored, or none is. The first message
// carries the fence, an expected last sequence of the key's claim subject
// equal to b.claim; JetStream checks it when it commits the batch, so a
// batch of a collector whose claim was superseded is refused whole.
// Records get their deduplication ID (key:seq) and [HeaderSeq].
//
// A nil error means JetStream stored the batch. Otherwise nothing can be
// assumed: the batch may have been stored after all (a lost reply), which
// the next claim of the key reads back; an error wrapping ErrFenced means
// JetStream refused it on the fence.
func (s *Sink) publish(ctx context.Context, b *batch) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-s.sem }()
	s.ctr.inflight.Add(1)
	defer s.ctr.inflight.Add(-1)

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	id := nuid.Next()
	subj := recordSubject(s.prefix, b.name)
	var reply *nats.Msg
	for i, data := range b.recs {
		seq := b.first + uint64(i)
		m := &nats.Msg{Subject: subj, Data: data, Header: make(nats.Header, 8)}
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		m.Header.Set(jetstream.MsgIDHeader, msgID(b.name, seq))
		m.Header.Set(HeaderSeq, strconv.FormatUint(seq, 10))
		if i == 0 {
			m.Header.Set(hdrExpectStream, s.stream)
			m.Header.Set(hdrExpectSubjSeq, strconv.FormatUint(b.claim, 10))
			m.Header.Set(hdrExpectSubj, claimSubject(s.prefix, b.name))
		}
		if i < len(b.recs)-1 {
			if err := s.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("jsrecord: publish: %w", err)
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		var err error
		if reply, err = s.nc.RequestMsgWithContext(ctx, m); err != nil {
			return fmt.Errorf("jsrecord: batch commit: %w", err)
		}
	}
	return checkBatchAck(reply.Data, id, len(b.recs))
}

// checkBatchAck checks JetStream's reply to the commit of batch id of n
// records.
func checkBatchAck(data []byte, id string, n int) error {
	var ack batchAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return fmt.Errorf("jsrecord: batch commit: malformed reply: %w", err)
	}
	if ack.Error != nil {
		if isWrongLastSequence(ack.Error) || ack.Error.ErrorCode == errCodeBatchDuplicate {
			return fmt.Errorf("%w: %w", ErrFenced, ack.Error)
		}
		return fmt.Errorf("jsrecord: batch commit: %w", ack.Error)
	}
	if ack.Batch != id || ack.Count != n {
		return fmt.Errorf("jsrecord: batch commit: reply for batch %q of %d records, want %q of %d", ack.Batch, ack.Count, id, n)
	}
	return nil
}
