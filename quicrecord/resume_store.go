package quicrecord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// ResumeStoreConfig configures a [ResumeStore]. The zero value means the
// documented defaults; a negative TTL or MaxKeys means its default too.
type ResumeStoreConfig struct {
	// TTL is how long the receive state of a resumable stream is kept
	// after its connection is lost. 0 means [DefaultResumeTTL] (5
	// minutes).
	TTL time.Duration
	// MaxKeys caps the number of keys kept. When a new key would exceed
	// it, the detached state that expires first is evicted; if every key
	// has a live stream, the new stream is refused. 0 means
	// [DefaultResumeMaxKeys] (10,000).
	MaxKeys int
	// LoadApplied, if set, is asked for the last applied sequence number
	// of a key the store does not hold, for example after a restart: the
	// application reads it from its own durable store. peer is the
	// opener's identity (see [ResumeKeyInfo]). found == false (or an
	// error) refuses the resume with CodeResumeUnknown unless the opener
	// starts from the beginning.
	LoadApplied func(ctx context.Context, info ResumeKeyInfo) (lastApplied uint64, found bool, err error)
}

// The defaults of the ResumeStoreConfig fields, used when a field is zero.
const (
	DefaultResumeTTL     = 5 * time.Minute
	DefaultResumeMaxKeys = 10_000
)

// ResumeKeyInfo identifies a resumable stream to [ResumeStoreConfig.LoadApplied].
type ResumeKeyInfo struct {
	Key []byte
	// Peer is the SHA-256 of the opener's verified TLS client certificate,
	// hex-encoded, or "" when the connection has no client certificate.
	// A key is bound to the peer that first used it.
	Peer string
	// Scope and DataID are the opener's stream description.
	Scope  string
	DataID uint64
}

// ResumeStore is the acceptor's memory of resumable streams: for each
// resume key, the last sequence number its application applied, so that a
// stream reopened after a lost connection continues right after it. Share
// one store between the connections of a listener via Config.ResumeStore;
// a side without a store does not offer resumption.
//
// The state of a key is bound to the peer identity that created it; it is
// dropped when its stream ends gracefully, and TTL after its connection
// was lost.
type ResumeStore struct {
	ttl     time.Duration
	maxKeys int
	load    func(context.Context, ResumeKeyInfo) (uint64, bool, error)

	// mu guards keys and every resumeState's owner fields (stream,
	// detachedAt).
	mu   sync.Mutex
	keys map[string]*resumeState
}

// NewResumeStore returns an empty store.
func NewResumeStore(cfg ResumeStoreConfig) *ResumeStore {
	return &ResumeStore{
		ttl:     orDefault(max(cfg.TTL, 0), DefaultResumeTTL),
		maxKeys: orDefault(max(cfg.MaxKeys, 0), DefaultResumeMaxKeys),
		load:    cfg.LoadApplied,
		keys:    make(map[string]*resumeState),
	}
}

// Len returns the number of keys held.
func (st *ResumeStore) Len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.keys)
}

// resumeState is the receive state of one key.
type resumeState struct {
	key  string
	peer string

	// applied and delivered are written by the key's streams (under
	// their rmu) and read by a stream taking over.
	applied   atomic.Uint64
	delivered atomic.Uint64
	// wmu guards settled, closed when applied catches up with delivered
	// while someone waits for it.
	wmu     sync.Mutex
	settled chan struct{}

	// Guarded by ResumeStore.mu.
	stream     *RecordStream // the stream delivering this key's records; nil when detached
	detachedAt time.Time
	resumes    uint64
}

// peerIdentity returns the identity a resume key is bound to.
func peerIdentity(cs quic.ConnectionState) string {
	if certs := cs.TLS.PeerCertificates; len(certs) > 0 && len(cs.TLS.VerifiedChains) > 0 {
		sum := sha256.Sum256(certs[0].Raw)
		return hex.EncodeToString(sum[:])
	}
	return ""
}

// acquire finds or creates the state of a key for a new stream whose
// opener holds everything from first on, and makes s its owner. An older
// stream of the key is aborted, and acquire waits (until deadline) for
// the records that stream delivered to be applied, so that nothing is
// delivered twice. It returns the last applied sequence number.
func (st *ResumeStore) acquire(ctx context.Context, info ResumeKeyInfo, first uint64, s *RecordStream) (*resumeState, uint64, error) {
	key := string(info.Key)
	now := time.Now()
	st.mu.Lock()
	st.sweepLocked(now)
	rs := st.keys[key]
	st.mu.Unlock()

	if rs == nil {
		var applied uint64
		switch {
		case st.load != nil:
			a, found, err := st.load(ctx, info)
			switch {
			case err != nil:
				return nil, 0, &StreamError{Code: CodeResumeUnknown, Reason: "resume state lookup failed", Err: err}
			case found:
				applied = a
			case first > 1:
				return nil, 0, unknownKey(first)
			}
		case first > 1:
			return nil, 0, unknownKey(first)
		}
		rs = &resumeState{key: key, peer: info.Peer}
		rs.applied.Store(applied)
		rs.delivered.Store(applied)
		st.mu.Lock()
		if other := st.keys[key]; other != nil {
			rs = other // created concurrently; use that one
		} else {
			if len(st.keys) >= st.maxKeys && !st.evictLocked() {
				st.mu.Unlock()
				return nil, 0, &StreamError{Code: CodeRefused, Reason: "too many resumable streams"}
			}
			st.keys[key] = rs
		}
		st.mu.Unlock()
	}
	if rs.peer != info.Peer {
		return nil, 0, &StreamError{Code: CodeRefused, Reason: "resume key belongs to another peer"}
	}

	st.mu.Lock()
	old := rs.stream
	rs.stream = s
	rs.detachedAt = time.Time{}
	if old != nil {
		rs.resumes++
	}
	st.mu.Unlock()
	if old != nil {
		old.abort(&StreamError{Code: CodeCancelled, Reason: "superseded by a resumed stream", StreamID: old.id}, true)
	}
	// Records the old stream handed to its application must be applied
	// (or rejected) before the new stream delivers anything.
	if err := rs.waitSettled(ctx); err != nil {
		st.release(rs, s, false)
		return nil, 0, &StreamError{Code: CodeRefused, Reason: "the previous stream of this key still has records being applied", Err: err}
	}
	return rs, rs.applied.Load(), nil
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
		if st.keys[rs.key] == rs {
			delete(st.keys, rs.key)
		}
		return
	}
	rs.detachedAt = time.Now()
}

// sweepLocked drops detached states older than the TTL.
func (st *ResumeStore) sweepLocked(now time.Time) {
	for k, rs := range st.keys {
		if rs.stream == nil && !rs.detachedAt.IsZero() && now.Sub(rs.detachedAt) >= st.ttl {
			delete(st.keys, k)
		}
	}
}

// evictLocked drops the detached state that was detached longest ago.
func (st *ResumeStore) evictLocked() bool {
	var victim *resumeState
	for _, rs := range st.keys {
		if rs.stream == nil && (victim == nil || rs.detachedAt.Before(victim.detachedAt)) {
			victim = rs
		}
	}
	if victim == nil {
		return false
	}
	delete(st.keys, victim.key)
	return true
}
