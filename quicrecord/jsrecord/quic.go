package jsrecord

// This file is the sink's only contact with package quicrecord's API.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
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

// NewResumeStore returns the ResumeStore a collector using the sink sets as
// its quicrecord.Config.ResumeStore. Its LoadApplied is [Sink.LoadApplied],
// and it keeps the state of a key only while a stream of the key is
// attached (its TTL is a nanosecond): a stream that lost its connection
// resumes through a new claim, read from JetStream, whichever collector
// it reaches, so a collector never resumes a key from a memory that
// another collector may have made stale.
func (s *Sink) NewResumeStore() *quicrecord.ResumeStore {
	return quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{TTL: time.Nanosecond, LoadApplied: s.LoadApplied})
}

// LoadApplied is the ResumeStore's hook (see quicrecord.ResumeStoreConfig):
// it claims the key for this collector and returns the last sequence number
// JetStream holds for it, retrying transient failures until ctx (the
// stream's handshake deadline) ends. A key bound to another client
// identity is refused.
func (s *Sink) LoadApplied(ctx context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
	return s.claimKey(ctx, KeyName(info.Key), info.Peer)
}

// AcceptHandler decides on each stream a client opens; set it as the
// collector's quicrecord.Config.AcceptHandler (or call it from yours). It
// refuses plain streams (CodeRefused: the sink needs a resume key), a key
// bound to another client identity (CodeRefused), and any stream while
// the key's claim cannot be read from JetStream (CodeUnavailable, which a
// ResumableStream retries with backoff, unlike a failure in LoadApplied).
// Streams of the key already open on this collector are closed with
// CodeSuperseded, so the new stream resumes through a new claim.
func (s *Sink) AcceptHandler(info quicrecord.RecordAcceptInfo) error {
	if info.ResumeKey == nil {
		return &quicrecord.StreamError{Code: quicrecord.CodeRefused, Reason: ErrNotResumable.Error()}
	}
	name, peer := KeyName(info.ResumeKey), peerOf(info.TLS)
	if bound, ok := s.boundPeer(name); ok && bound != peer {
		return &quicrecord.StreamError{Code: quicrecord.CodeRefused, Reason: ErrBoundToOtherPeer.Error()}
	}
	c, err := s.readClaim(context.Background(), name)
	if err != nil {
		s.ctr.refused.Add(1)
		return &quicrecord.StreamError{Code: CodeUnavailable, Reason: "jsrecord: JetStream unavailable: " + err.Error(), Err: err}
	}
	if c.seq != 0 && c.Peer != peer {
		return &quicrecord.StreamError{Code: quicrecord.CodeRefused, Reason: ErrBoundToOtherPeer.Error()}
	}
	s.supersede(name)
	return nil
}

// peerOf is the client identity of a connection, computed as quicrecord
// computes quicrecord.ResumeKeyInfo.Peer (the SHA-256 of a verified client
// certificate, hex; "" without one), which is what LoadApplied stores in
// claims. A test checks the two agree; when quicrecord moves to another
// identity, this follows.
func peerOf(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return ""
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// Serve applies the records of an accepted resumable stream: it takes what
// has arrived (up to Config.MaxBatch records), publishes it as one atomic
// batch fenced on this collector's claim of the key, and acknowledges the
// batch's last record once JetStream confirmed the batch; then the next.
// Acknowledgements are therefore in order and only for confirmed records.
//
// A batch that fails or times out is never acknowledged: Serve resets the
// stream with CodeUnavailable (with CodeSuperseded when the fence refused
// it: another collector holds the key now) and returns the error. The
// opener's ResumableStream keeps the records, reconnects, and resumes
// right after what JetStream holds. Serve returns nil when the opener
// finished the stream, and closes rs in every case.
func (s *Sink) Serve(ctx context.Context, rs *quicrecord.RecordStream) error {
	key := rs.ResumeKey()
	if key == nil {
		_ = rs.CloseWithError(quicrecord.CodeRefused, ErrNotResumable.Error())
		return ErrNotResumable
	}
	name := KeyName(key)
	claim := s.attach(name, rs)
	defer s.detach(name, rs, claim)
	if claim == 0 {
		_ = rs.CloseWithError(CodeSuperseded, ErrNoClaim.Error())
		return ErrNoClaim
	}
	b := &batch{name: name, claim: claim, recs: make([][]byte, 0, s.maxBatch)}
	for {
		recvErr := s.collect(ctx, rs, b)
		if len(b.recs) > 0 {
			if err := s.commit(ctx, rs, b); err != nil {
				return err
			}
		}
		if recvErr != nil {
			_ = rs.Close()
			if errors.Is(recvErr, io.EOF) {
				return nil
			}
			return recvErr
		}
	}
}

// collect fills b with the records that have arrived: it waits for one,
// then takes what is queued without waiting, up to the batch limit. A
// receive error is returned with the records taken before it.
func (s *Sink) collect(ctx context.Context, rs *quicrecord.RecordStream, b *batch) error {
	b.recs = b.recs[:0]
	r, err := rs.Recv(ctx)
	if err != nil {
		return err
	}
	b.first = r.Seq
	b.recs = append(b.recs, r.Data)
	now, stop := context.WithCancel(ctx)
	stop() // done: Recv returns only what has arrived
	for len(b.recs) < s.maxBatch {
		r, err := rs.Recv(now)
		if err != nil {
			if ctx.Err() == nil && now.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // nothing more has arrived
			}
			return err
		}
		b.recs = append(b.recs, r.Data)
	}
	return nil
}

// commit publishes b and acknowledges it, or resets the stream.
func (s *Sink) commit(ctx context.Context, rs *quicrecord.RecordStream, b *batch) error {
	last := b.first + uint64(len(b.recs)) - 1
	err := s.publish(ctx, b)
	if err == nil {
		s.ctr.batches.Add(1)
		s.ctr.records.Add(uint64(len(b.recs)))
		// An error here means the stream failed meanwhile; the ack still
		// counts for the resume state of a stream taking over on this
		// collector.
		_ = rs.Ack(last)
		return nil
	}
	code := CodeUnavailable
	var ae *jetstream.APIError
	switch {
	case errors.Is(err, ErrFenced) && errors.As(err, &ae) && ae.ErrorCode == errCodeBatchDuplicate:
		code = CodeSuperseded
		s.ctr.dupRefused.Add(1)
	case errors.Is(err, ErrFenced):
		code = CodeSuperseded
		s.ctr.fenced.Add(1)
	default:
		s.ctr.failed.Add(1)
	}
	if s.log != nil {
		s.log.Warn("jsrecord: batch not confirmed; the stream is reset and nothing of it acknowledged",
			"key", b.name, "first", b.first, "last", last, "err", err)
	}
	_ = rs.CloseWithError(code, fmt.Sprintf("records %d..%d not confirmed: %v", b.first, last, err))
	return fmt.Errorf("jsrecord: records %d..%d of %s: %w", b.first, last, b.name, err)
}
