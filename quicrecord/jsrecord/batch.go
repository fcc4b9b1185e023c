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

// batch is one atomic batch of consecutive records of one key. It is
// owned by the Serve call that collects it, and by its commit while that
// runs.
type batch struct {
	name  string   // the (identity, key) name, see nameOf
	claim uint64   // stream sequence of the claim the batch is fenced on
	first uint64   // sequence number of recs[0]
	recs  [][]byte // record payloads, first, first+1, …

	id  string    // JetStream batch ID, set by stage
	msg *nats.Msg // the message being sent, while the batch holds a token
}

// last returns the sequence number of the batch's last record.
func (b *batch) last() uint64 { return b.first + uint64(len(b.recs)) - 1 }

// batchAck is JetStream's reply to a batch commit.
type batchAck struct {
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"`
	Batch  string              `json:"batch"`
	Count  int                 `json:"count"`
	Error  *jetstream.APIError `json:"error,omitempty"`
}

// A batch is published in two steps. stage sends every record but the
// last, without waiting; commit sends the last one, which commits the
// batch, and waits for JetStream's verdict: every record stored, or none.
// Between the two, a stream's previous batch can still be committing, so
// the records of the next one travel while JetStream works on the last.
//
// The first message carries the fence, an expected last sequence of the
// key's claim subject equal to b.claim; JetStream checks it when it
// commits the batch, so a batch of a collector whose claim was superseded
// is refused whole. Records get their deduplication ID (msgID) and
// [HeaderSeq].
//
// A batch holds one of the sink's MaxInflightBatches tokens from stage
// until commit returns (or release, for a batch that is never committed).

// stage takes a token and sends all records of b but the last.
func (s *Sink) stage(ctx context.Context, b *batch) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	b.id = nuid.Next()
	// One message and header map serve the whole batch: PublishMsg
	// encodes them before it returns.
	b.msg = &nats.Msg{Subject: recordSubject(s.prefix, b.name), Header: make(nats.Header, 8)}
	b.msg.Header.Set(hdrBatchID, b.id)
	for i := range len(b.recs) - 1 {
		if err := s.nc.PublishMsg(s.batchMsg(b, i)); err != nil {
			s.release(b)
			return fmt.Errorf("jsrecord: publish: %w", err)
		}
	}
	return nil
}

// batchMsg returns b's message for record i.
func (s *Sink) batchMsg(b *batch, i int) *nats.Msg {
	m, seq := b.msg, b.first+uint64(i)
	m.Data = b.recs[i]
	m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
	m.Header.Set(jetstream.MsgIDHeader, msgID(b.name, seq))
	m.Header.Set(HeaderSeq, strconv.FormatUint(seq, 10))
	if i == 0 {
		m.Header.Set(hdrExpectStream, s.stream)
		m.Header.Set(hdrExpectSubjSeq, strconv.FormatUint(b.claim, 10))
		m.Header.Set(hdrExpectSubj, claimSubject(s.prefix, b.name))
	} else {
		m.Header.Del(hdrExpectStream)
		m.Header.Del(hdrExpectSubjSeq)
		m.Header.Del(hdrExpectSubj)
	}
	if i == len(b.recs)-1 {
		m.Header.Set(hdrBatchCommit, "1")
	}
	return m
}

// commit sends b's last record, which commits the batch, and waits (at
// most Config.Timeout) for JetStream's verdict. nil means JetStream stored
// the batch. Otherwise nothing can be assumed: the batch may have been
// stored after all (a lost reply), which the key's next claim reads back;
// an error wrapping ErrFenced means JetStream refused it because another
// collector holds the key.
func (s *Sink) commit(ctx context.Context, b *batch) error {
	defer s.release(b)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	reply, err := s.nc.RequestMsgWithContext(ctx, s.batchMsg(b, len(b.recs)-1))
	if err != nil {
		return fmt.Errorf("jsrecord: batch commit: %w", err)
	}
	return checkBatchAck(reply.Data, b.id, len(b.recs))
}

// release gives back b's token. A batch staged and never committed is
// dropped by JetStream after its batch timeout (10 s by default).
func (s *Sink) release(b *batch) {
	if b.msg == nil {
		return
	}
	b.msg = nil
	s.releaseToken()
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
