package jsrecord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/recordmux/recordmux/quicrecord"
)

// Headers the sink writes.
const (
	// HeaderSeq carries a record's sequence number in its stream, in
	// decimal, on every record message.
	HeaderSeq = "Recordmux-Seq"
	// HeaderPeer carries the client identity a claim was made for, on
	// every claim message ("" for a client without one), for people
	// reading the stream: subjects carry only [IdentityName].
	HeaderPeer = "Recordmux-Peer"
)

// KeyName is how a resume key appears in subjects and message IDs:
// lowercase hex.
func KeyName(key []byte) string { return hex.EncodeToString(key) }

// IdentityName is how a client identity (quicrecord.ResumeKeyInfo.Peer)
// appears in subjects and message IDs: the first 16 bytes of the SHA-256
// of the identity string, in lowercase hex (32 characters, "" included).
// Identities are arbitrary strings (an SPKI fingerprint, a SPIFFE ID)
// that may hold characters a subject cannot ('.', '*', '>', spaces), so
// they never appear raw. Sixteen bytes keep the names of distinct
// identities apart: making an identity whose name equals a given one's is
// a second preimage of SHA-256 truncated to 128 bits (2^128 work), and
// the 2^64 work of a collision only yields two identities that are both
// the attacker's. Hex matches [KeyName].
func IdentityName(peer string) string {
	sum := sha256.Sum256([]byte(peer))
	return hex.EncodeToString(sum[:16])
}

// nameOf is how the state of (peer, key) is named in subjects and message
// IDs: IdentityName(peer) "." KeyName(key). The identity's name has a
// fixed length, so two pairs never share a name.
func nameOf(peer string, key []byte) string { return IdentityName(peer) + "." + KeyName(key) }

// RecordSubject returns the subject of the records of a resume key opened
// by client identity peer: PREFIX.rec.IDENTITY.KEY.
func RecordSubject(cfg *Config, peer string, key []byte) string {
	return recordSubject(cfg.prefix(), nameOf(peer, key))
}

// ClaimSubject returns the subject of the claims of a resume key opened by
// client identity peer: PREFIX.own.IDENTITY.KEY.
func ClaimSubject(cfg *Config, peer string, key []byte) string {
	return claimSubject(cfg.prefix(), nameOf(peer, key))
}

func recordSubject(prefix, name string) string { return prefix + ".rec." + name }
func claimSubject(prefix, name string) string  { return prefix + ".own." + name }

// MsgID returns the deduplication ID (Nats-Msg-Id) of record seq of a
// resume key opened by client identity peer: IDENTITY.KEY:SEQ.
func MsgID(peer string, key []byte, seq uint64) string { return msgID(nameOf(peer, key), seq) }

func msgID(name string, seq uint64) string { return name + ":" + strconv.FormatUint(seq, 10) }

// RecordSeq returns the sequence number a record message carries in
// [HeaderSeq].
func RecordSeq(m jetstream.Msg) (uint64, error) {
	return strconv.ParseUint(m.Headers().Get(HeaderSeq), 10, 64)
}

// EnsureStream returns the sink's stream, creating it with
// [StreamConfig](cfg, replicas) if it does not exist. An existing stream is
// left as it is (and checked by [New]).
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg *Config, replicas int) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, cfg.stream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, StreamConfig(cfg, replicas))
	}
	if err != nil {
		return nil, fmt.Errorf("jsrecord: stream %s: %w", cfg.stream(), err)
	}
	return st, nil
}

// checkStream verifies that a stream can carry the sink's records.
func checkStream(info *jetstream.StreamInfo, prefix string) error {
	c := info.Config
	switch {
	case !c.AllowAtomicPublish:
		return fmt.Errorf("jsrecord: stream %s does not allow atomic publish (allow_atomic; nats-server 2.12 or later)", c.Name)
	case c.AllowDirect:
		return fmt.Errorf("jsrecord: stream %s allows direct gets: resume positions must be read from the stream leader (allow_direct false)", c.Name)
	case c.Duplicates <= 0:
		return fmt.Errorf("jsrecord: stream %s has no deduplication window", c.Name)
	}
	for _, s := range c.Subjects {
		if s == prefix+".>" || s == ">" {
			return nil
		}
	}
	return fmt.Errorf("jsrecord: stream %s does not capture %s.>", c.Name, prefix)
}

// claim is the content of a claim message: for which client identity a
// collector holds a key, and the resume epoch of the opener it holds it
// for (quicrecord.ResumeKeyInfo.Epoch; 0 when the stream did not
// negotiate epochs, and in claims written before epochs were kept). The
// message's stream sequence is the claim's identity: records are fenced
// on it.
type claim struct {
	Peer      string    `json:"peer"`
	Collector string    `json:"collector,omitempty"`
	Epoch     uint64    `json:"epoch,omitempty"`
	Time      time.Time `json:"time"`
}

// claimState is the last claim of a key: its stream sequence (0: none) and
// content.
type claimState struct {
	seq uint64
	claim
}

// readClaim returns the last claim of a key, from the stream leader.
func (s *Sink) readClaim(ctx context.Context, name string) (claimState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.st.GetLastMsgForSubject(ctx, claimSubject(s.prefix, name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return claimState{}, nil
	}
	if err != nil {
		return claimState{}, err
	}
	cs := claimState{seq: m.Sequence}
	if err := json.Unmarshal(m.Data, &cs.claim); err != nil {
		return claimState{}, fmt.Errorf("jsrecord: claim %d of %s: %w", m.Sequence, name, err)
	}
	return cs, nil
}

// writeClaim appends a claim of a key for the opener info describes,
// fenced on the claim read before (prev, 0 for none): it fails with a
// wrong-last-sequence error if anyone claimed the key since, and is
// refused while a batch fenced on prev is still being committed. It
// returns the new claim's stream sequence.
func (s *Sink) writeClaim(ctx context.Context, name string, info quicrecord.ResumeKeyInfo, prev uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	data, _ := json.Marshal(claim{Peer: info.Peer, Collector: s.collector, Epoch: info.Epoch, Time: time.Now().UTC()})
	subj := claimSubject(s.prefix, name)
	m := nats.NewMsg(subj)
	m.Data = data
	m.Header.Set(HeaderPeer, info.Peer)
	ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(prev), jetstream.WithExpectStream(s.stream))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// lastRecord returns the sequence number of the last record of a key in the
// stream, read from the stream leader, and whether there is one.
func (s *Sink) lastRecord(ctx context.Context, name string) (uint64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.st.GetLastMsgForSubject(ctx, recordSubject(s.prefix, name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("jsrecord: message %d of %s has no valid %s header", m.Sequence, name, HeaderSeq)
	}
	return seq, true, nil
}

// isWrongLastSequence reports whether err is JetStream's refusal of an
// expected-last-sequence check (on R>1 streams also returned while another
// message checked against the same subject is being committed).
func isWrongLastSequence(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
