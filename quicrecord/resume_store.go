package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/identity"
)

// ResumeStoreConfig configures a [ResumeStore]. The zero value means the
// documented defaults; a negative TTL, MaxKeys or MaxKeysPerPeer means
// its default too.
type ResumeStoreConfig struct {
	// TTL is how long the receive state of a resumable stream is kept
	// after its connection is lost. 0 means [DefaultResumeTTL] (5
	// minutes).
	TTL time.Duration
	// MaxKeys caps the number of keys kept, over all peers. When a new key
	// would exceed it, a detached state is evicted: the one detached
	// longest ago of the peer holding the most keys, so that one peer
	// cannot push out every other peer's state; if every key has a live
	// stream, the new stream is refused. 0 means [DefaultResumeMaxKeys]
	// (10,000).
	MaxKeys int
	// MaxKeysPerPeer caps the keys one peer identity holds. A peer at its
	// quota loses its own oldest detached state to a new key, or is
	// refused when all its keys have live streams. 0 means
	// [DefaultResumeMaxKeysPerPeer] (1,000).
	MaxKeysPerPeer int
	// AllowAnonymous lets peers without an identity (no verified client
	// certificate, and no identity from Config.PeerIdentity) resume
	// streams. They all share the empty identity, so a resume key is then
	// a bearer token: whoever learns it can continue the stream. false
	// (the default): this side does not offer resumption on a connection
	// without a peer identity, and resumable streams opened on it fall
	// back to plain streams (the opener sees ResumeUnavailable).
	AllowAnonymous bool
	// LoadApplied, if set, is asked for the last applied sequence number
	// of a key the store does not hold, for example after a restart: the
	// application reads it from its own durable store, for the key and
	// the opener's identity (see [ResumeKeyInfo]). found == false (or an
	// error, whose text stays on this side) refuses the resume with
	// CodeResumeUnknown unless the opener starts from the beginning. An
	// error matching [ErrSuperseded] instead refuses an opener older than
	// the newest one the application recorded for the key (see
	// ResumeKeyInfo.Epoch) as the store refuses one older than its own
	// state: with CodeSuperseded, or CodeRefused when the stream did not
	// negotiate [FeatureResumeEpoch].
	LoadApplied func(ctx context.Context, info ResumeKeyInfo) (lastApplied uint64, found bool, err error)
}

// The defaults of the ResumeStoreConfig fields, used when a field is zero.
const (
	DefaultResumeTTL            = 5 * time.Minute
	DefaultResumeMaxKeys        = 10_000
	DefaultResumeMaxKeysPerPeer = 1_000
)

// ResumeKeyInfo identifies a resumable stream to [ResumeStoreConfig.LoadApplied].
type ResumeKeyInfo struct {
	Key []byte
	// Peer is the opener's identity (see [Config.PeerIdentity]; by
	// default the SPKI fingerprint of its verified client certificate,
	// "sha256:" and 64 hex digits), "" for an anonymous peer of a store
	// with AllowAnonymous. State is kept per (Peer, Key): the same key
	// under another identity is another stream.
	Peer string
	// Scope and DataID are the opener's stream description.
	Scope  string
	DataID uint64
	// Epoch is the opener's resume epoch (ResumeOptions.Epoch), 0 when
	// the stream did not negotiate [FeatureResumeEpoch]. A store shared
	// by several acceptors (a fleet) keeps the newest epoch of each key
	// beside its position, and its LoadApplied refuses an older opener
	// with an error matching [ErrSuperseded].
	Epoch uint64
}

// ResumeStore is the acceptor's memory of resumable streams: for each
// resume key of each peer identity, the last sequence number its
// application applied, so that a stream reopened after a lost connection
// continues right after it. Share one store between the connections of a
// listener via Config.ResumeStore; a side without a store does not offer
// resumption.
//
// State is keyed by (peer identity, key): a peer can neither continue nor
// probe another identity's stream, whatever keys it knows. It is dropped
// when its stream ends gracefully, and TTL after its connection was lost.
// With [FeatureResumeEpoch], the state remembers the newest epoch of the
// key's openers, and only an opener at least as new may take it over.
type ResumeStore struct {
	ttl        time.Duration
	maxKeys    int
	maxPerPeer int
	anonymous  bool
	load       func(context.Context, ResumeKeyInfo) (uint64, bool, error)

	// mu guards keys, perPeer and every resumeState's owner fields
	// (stream, epoch, streamEpoch, detachedAt).
	mu      sync.Mutex
	keys    map[storeKey]*resumeState
	perPeer map[string]int // keys held per peer identity
}

// storeKey is what a ResumeStore indexes state by.
type storeKey struct{ peer, key string }

// NewResumeStore returns an empty store.
func NewResumeStore(cfg ResumeStoreConfig) *ResumeStore {
	return &ResumeStore{
		ttl:        orDefault(max(cfg.TTL, 0), DefaultResumeTTL),
		maxKeys:    orDefault(max(cfg.MaxKeys, 0), DefaultResumeMaxKeys),
		maxPerPeer: orDefault(max(cfg.MaxKeysPerPeer, 0), DefaultResumeMaxKeysPerPeer),
		anonymous:  cfg.AllowAnonymous,
		load:       cfg.LoadApplied,
		keys:       make(map[storeKey]*resumeState),
		perPeer:    make(map[string]int),
	}
}

// Len returns the number of keys held.
func (st *ResumeStore) Len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.keys)
}

// offers reports whether the store resumes streams of a peer with this
// identity.
func (st *ResumeStore) offers(peer string) bool { return peer != "" || st.anonymous }

// resumeState is the receive state of one (peer, key).
type resumeState struct {
	sk storeKey

	// applied and delivered are written by the key's streams (under
	// their rmu) and read by a stream taking over.
	applied   atomic.Uint64
	delivered atomic.Uint64
	// wmu guards settled, closed when applied catches up with delivered
	// while someone waits for it.
	wmu     sync.Mutex
	settled chan struct{}

	// Guarded by ResumeStore.mu.
	stream      *RecordStream // the stream delivering this key's records; nil when detached
	epoch       uint64        // the newest epoch that opened the key
	streamEpoch uint64        // the epoch of stream's opener
	detachedAt  time.Time
	resumes     uint64
}

// resumeClaim is what an opener claims a key with: its identity and key,
// where it starts, and its epoch (0 without FeatureResumeEpoch; epochs
// says whether the stream negotiated it).
type resumeClaim struct {
	info   ResumeKeyInfo
	first  uint64
	epoch  uint64
	epochs bool
}

// DefaultPeerIdentity is the peer identity of a connection when
// Config.PeerIdentity is nil: the SPKI fingerprint of the peer's
// certificate ("sha256:" and 64 hex digits, see identity.Fingerprint)
// when the TLS handshake verified it against a chain
// (cs.VerifiedChains), else "". A renewed certificate for the same key
// keeps the identity.
func DefaultPeerIdentity(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return ""
	}
	return identity.FingerprintOf(cs.PeerCertificates[0]).String()
}

// PresentedPeerIdentity is the SPKI fingerprint of the certificate the
// peer presented, whether or not the handshake verified a chain for it.
// Use it as Config.PeerIdentity only with a tls.Config that verifies the
// certificate itself, such as identity.MutualServerConfig (pinning, in
// VerifyConnection): with one that verifies nothing it names whatever
// key the peer chose.
func PresentedPeerIdentity(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return identity.FingerprintOf(cs.PeerCertificates[0]).String()
}

// errSupersededClaim refuses an opener older than the key's newest one:
// CodeSuperseded if its stream negotiated epochs, else CodeRefused, which
// openers without them take as final too. cause, if any, stays on this
// side.
func errSupersededClaim(epochs bool, cause error) error {
	code := CodeRefused
	if epochs {
		code = CodeSuperseded
	}
	return &StreamError{Code: code, Reason: "a newer opener holds this resume key", Err: cause}
}

// check refuses, before anything else happens, an opener older than the
// newest one of its key.
func (st *ResumeStore) check(c *resumeClaim) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if rs := st.keys[storeKey{c.info.Peer, string(c.info.Key)}]; rs != nil && c.epoch < rs.epoch {
		return errSupersededClaim(c.epochs, nil)
	}
	return nil
}

// acquire finds or creates the state of a key for a new stream whose
// opener holds everything from c.first on, and makes s its owner. An
// older stream of the key is aborted (with CodeSuperseded when a newer
// epoch takes over), and acquire waits (until ctx ends) for the records
// that stream delivered to be applied, so that nothing is delivered
// twice. It returns the last applied sequence number.
func (st *ResumeStore) acquire(ctx context.Context, c *resumeClaim, s *RecordStream) (*resumeState, uint64, error) {
	sk := storeKey{c.info.Peer, string(c.info.Key)}
	st.mu.Lock()
	st.sweepLocked(time.Now())
	rs := st.keys[sk]
	st.mu.Unlock()
	if rs == nil {
		var err error
		if rs, err = st.create(ctx, c, sk); err != nil {
			return nil, 0, err
		}
	}
	old, code, err := st.takeOver(rs, c, s)
	if err != nil {
		return nil, 0, err
	}
	if old != nil {
		old.abort(&StreamError{Code: code, Reason: "superseded by a resumed stream", StreamID: old.id}, true)
	}
	// Records the old stream handed to its application must be applied
	// (or rejected) before the new stream delivers anything.
	if err := rs.waitSettled(ctx); err != nil {
		st.release(rs, s, false)
		return nil, 0, &StreamError{Code: CodeRefused, Reason: "the previous stream of this key still has records being applied", Err: err}
	}
	return rs, rs.applied.Load(), nil
}

// create makes the state of a key the store does not hold, from
// LoadApplied when set, within the key quotas.
func (st *ResumeStore) create(ctx context.Context, c *resumeClaim, sk storeKey) (*resumeState, error) {
	var applied uint64
	switch {
	case st.load != nil:
		a, found, err := st.load(ctx, c.info)
		switch {
		case errors.Is(err, ErrSuperseded):
			return nil, errSupersededClaim(c.epochs, err)
		case err != nil:
			return nil, &StreamError{Code: CodeResumeUnknown, Reason: "resume state lookup failed", Err: err}
		case found:
			applied = a
		case c.first > 1:
			return nil, unknownKey(c.first)
		}
	case c.first > 1:
		return nil, unknownKey(c.first)
	}
	rs := &resumeState{sk: sk}
	rs.applied.Store(applied)
	rs.delivered.Store(applied)
	st.mu.Lock()
	defer st.mu.Unlock()
	if other := st.keys[sk]; other != nil {
		return other, nil // created concurrently; use that one
	}
	if st.perPeer[sk.peer] >= st.maxPerPeer && !st.evictLocked(sk.peer) {
		return nil, &StreamError{Code: CodeRefused, Reason: "too many resumable streams"}
	}
	if len(st.keys) >= st.maxKeys && !st.evictLocked("") {
		return nil, &StreamError{Code: CodeRefused, Reason: "too many resumable streams"}
	}
	st.keys[sk] = rs
	st.perPeer[sk.peer]++
	return rs, nil
}

// takeOver makes s the owner of rs unless an opener of a newer epoch
// holds it. It returns the stream s supersedes and the code to end it
// with: CodeSuperseded when s's opener is newer and that stream
// negotiated epochs, else CodeCancelled (the same opener, reconnected).
func (st *ResumeStore) takeOver(rs *resumeState, c *resumeClaim, s *RecordStream) (*RecordStream, ErrorCode, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if c.epoch < rs.epoch {
		return nil, 0, errSupersededClaim(c.epochs, nil)
	}
	old, oldEpoch := rs.stream, rs.streamEpoch
	rs.stream, rs.streamEpoch, rs.epoch = s, c.epoch, c.epoch
	rs.detachedAt = time.Time{}
	if old == nil {
		return nil, 0, nil
	}
	rs.resumes++
	if c.epoch > oldEpoch && old.negotiated().Features.Has(FeatureResumeEpoch) {
		return old, CodeSuperseded, nil
	}
	return old, CodeCancelled, nil
}

// waitSettled waits until every delivered record was applied.
func (rs *resumeState) waitSettled(ctx context.Context) error {
	for {
		rs.wmu.Lock()
		if rs.applied.Load() >= rs.delivered.Load() {
			rs.wmu.Unlock()
			return nil
		}
		if rs.settled == nil {
			rs.settled = make(chan struct{})
		}
		ch := rs.settled
		rs.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// setApplied records the application's progress and wakes a waiting
// takeover once everything delivered is applied.
func (rs *resumeState) setApplied(seq uint64) {
	rs.applied.Store(seq)
	rs.wmu.Lock()
	if rs.settled != nil && seq >= rs.delivered.Load() {
		close(rs.settled)
		rs.settled = nil
	}
	rs.wmu.Unlock()
}

func unknownKey(first uint64) error {
	return &StreamError{Code: CodeResumeUnknown, Reason: fmt.Sprintf("no state for this resume key; records from %d on are in doubt", first)}
}

// release detaches s from its key. A graceful end forgets the key; any
// other end keeps its state for TTL.
func (st *ResumeStore) release(rs *resumeState, s *RecordStream, graceful bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if rs.stream != s {
		return // superseded
	}
	rs.stream = nil
	if graceful {
		st.forgetLocked(rs)
		return
	}
	rs.detachedAt = time.Now()
}

// forgetLocked drops rs from the store, if it is still there.
func (st *ResumeStore) forgetLocked(rs *resumeState) {
	if st.keys[rs.sk] != rs {
		return
	}
	delete(st.keys, rs.sk)
	if st.perPeer[rs.sk.peer]--; st.perPeer[rs.sk.peer] <= 0 {
		delete(st.perPeer, rs.sk.peer)
	}
}

// sweepLocked drops detached states older than the TTL.
func (st *ResumeStore) sweepLocked(now time.Time) {
	for _, rs := range st.keys {
		if rs.stream == nil && !rs.detachedAt.IsZero() && now.Sub(rs.detachedAt) >= st.ttl {
			st.forgetLocked(rs)
		}
	}
}

// evictLocked drops one detached state: of peer when peer is not empty
// (its quota), else of the peer holding the most keys; of those, the one
// detached longest ago. It reports whether it found one.
func (st *ResumeStore) evictLocked(peer string) bool {
	var victim *resumeState
	for _, rs := range st.keys {
		if rs.stream != nil || (peer != "" && rs.sk.peer != peer) {
			continue
		}
		if victim == nil || st.heavierLocked(rs, victim) {
			victim = rs
		}
	}
	if victim == nil {
		return false
	}
	st.forgetLocked(victim)
	return true
}

// heavierLocked reports whether a goes before b as an eviction victim:
// its peer holds more keys, or as many and it was detached earlier.
func (st *ResumeStore) heavierLocked(a, b *resumeState) bool {
	na, nb := st.perPeer[a.sk.peer], st.perPeer[b.sk.peer]
	if na != nb {
		return na > nb
	}
	return a.detachedAt.Before(b.detachedAt)
}
