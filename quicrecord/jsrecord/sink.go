package jsrecord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/recordmux/recordmux/quicrecord"
)

// Sink applies the records of resumable streams by publishing them to a
// JetStream stream, and keeps their resume state there, so that any
// collector of a fleet sharing the stream can continue any stream. See the
// package doc for the design; [Sink.NewResumeStore], [Sink.AcceptHandler]
// and [Sink.Serve] are how a collector uses it.
//
// All methods are safe for concurrent use.
type Sink struct {
	js        jetstream.JetStream
	nc        *nats.Conn
	st        jetstream.Stream
	stream    string
	prefix    string
	collector string
	maxBatch  int
	timeout   time.Duration
	log       *slog.Logger
	anonymous bool          // Config.AllowAnonymous
	sem       chan struct{} // one token per batch being published
	waiting   atomic.Int64  // streams waiting for a token (see acquire)
	// useFast: publish fast batches (the stream has no replication, see
	// fast.go) rather than atomic ones. Cleared for good when JetStream
	// refuses pipelined fences (the stream was scaled up).
	useFast atomic.Bool

	ctr counters

	// mu guards keys.
	mu   sync.Mutex
	keys map[string]*keyState
}

// keyState is what this collector knows of one resume key. Owner: Sink.mu.
type keyState struct {
	claim uint64 // stream sequence of this collector's latest claim of the key
	// live are the streams serving the key on this collector (normally
	// one; a newer one closes the older).
	live map[liveStream]struct{}
}

// counters are the sink's statistics; see [Stats].
type counters struct {
	records, batches, claims, fenced, dupRefused, failed, refused atomic.Uint64
	inflight                                                      atomic.Int64
}

// Stats is a snapshot of a sink's work. Counters only grow.
type Stats struct {
	// Records count what JetStream confirmed (and the sink acknowledged),
	// Batches the batches it confirmed whole (atomic batches, and fast
	// batches committed).
	Records, Batches uint64
	// Claims counts the keys this sink claimed (a stream started or
	// resumed here).
	Claims uint64
	// Fenced counts batches JetStream refused on the fence (another
	// collector had claimed the key); DuplicateRefused atomic batches it
	// refused because it held records of the batch already (published by
	// the key's new holder; a fast batch's duplicates are dropped and
	// reported stored, see the package doc); Failed counts batches that
	// failed otherwise (error or timeout). Nothing from the record that
	// failed on was acknowledged.
	Fenced, DuplicateRefused, Failed uint64
	// Refused counts streams refused because JetStream was unreachable.
	Refused uint64
	// Inflight is the number of batches being published now (gauge).
	Inflight int64
}

// New returns a sink publishing to the stream cfg names (see
// [EnsureStream] to create it), over js's connection. It checks that the
// stream allows atomic batches, has direct gets off and captures the
// subject prefix. It publishes fast batches if the stream has one replica
// and allows them (allow_batched, which [StreamConfig] sets; a stream
// created before it did keeps atomic batches until it is edited), atomic
// batches otherwise: see the package doc.
func New(ctx context.Context, js jetstream.JetStream, cfg *Config) (*Sink, error) {
	st, err := js.Stream(ctx, cfg.stream())
	if err != nil {
		return nil, fmt.Errorf("jsrecord: stream %s: %w", cfg.stream(), err)
	}
	info := st.CachedInfo()
	if err := checkStream(info, cfg.prefix()); err != nil {
		return nil, err
	}
	name := cfg.collector()
	if name == "" {
		name = nuid.Next()
	}
	s := &Sink{
		js: js, nc: js.Conn(), st: st,
		stream: cfg.stream(), prefix: cfg.prefix(), collector: name,
		maxBatch: cfg.maxBatch(), timeout: cfg.timeout(), log: cfg.logger(), anonymous: cfg != nil && cfg.AllowAnonymous,
		sem:  make(chan struct{}, cfg.maxInflight()),
		keys: make(map[string]*keyState),
	}
	s.useFast.Store(!cfg.atomicOnly() && info.Config.Replicas <= 1 && info.Config.AllowBatchPublish)
	return s, nil
}

// acquire takes a batch token, waiting for one at most until ctx ends.
// While it waits, the streams holding fast batches commit them when full
// (see fastPipe.send), so that the streams take turns.
func (s *Sink) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	default:
		s.waiting.Add(1)
		defer s.waiting.Add(-1)
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	s.ctr.inflight.Add(1)
	return nil
}

// releaseToken gives back a token acquire took.
func (s *Sink) releaseToken() {
	s.ctr.inflight.Add(-1)
	<-s.sem
}

// Snapshot returns the sink's statistics.
func (s *Sink) Snapshot() Stats {
	return Stats{
		Records: s.ctr.records.Load(), Batches: s.ctr.batches.Load(), Claims: s.ctr.claims.Load(),
		Fenced: s.ctr.fenced.Load(), DuplicateRefused: s.ctr.dupRefused.Load(), Failed: s.ctr.failed.Load(), Refused: s.ctr.refused.Load(),
		Inflight: s.ctr.inflight.Load(),
	}
}

// claimKey makes this collector the holder of the key of info's identity
// for info's opener, and returns the last record sequence number JetStream
// holds for it and whether the key was known. It reads the key's last
// claim; refuses an opener of an older epoch than that claim's
// ([ErrSupersededClaim]); appends a new claim fenced on the old one (so
// two collectors claiming at once cannot both win, and batches another
// collector still has in flight are refused from here on); and only then
// reads the last record, which therefore includes every batch the
// previous holder got in. Transient failures are retried until ctx ends.
func (s *Sink) claimKey(ctx context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
	name := nameOf(info.Peer, info.Key)
	wait := 20 * time.Millisecond
	for {
		last, known, err := s.tryClaim(ctx, name, info)
		if err == nil || isFinal(err) {
			return last, known, err
		}
		if s.log != nil {
			s.log.Info("jsrecord: claim retried", "key", name, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, false, fmt.Errorf("jsrecord: claim of %s: %w (last error: %w)", name, context.Cause(ctx), err)
		}
		wait = min(2*wait, time.Second)
	}
}

func (s *Sink) tryClaim(ctx context.Context, name string, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
	old, err := s.readClaim(ctx, name)
	if err != nil {
		return 0, false, err
	}
	if old.seq != 0 && info.Epoch < old.Epoch {
		return 0, false, fmt.Errorf("%w: epoch %d, claim %d holds %d", ErrSupersededClaim, info.Epoch, old.seq, old.Epoch)
	}
	seq, err := s.writeClaim(ctx, name, info, old.seq)
	if err != nil {
		return 0, false, err // a concurrent claim or a batch in commit: read again
	}
	last, found, err := s.lastRecord(ctx, name)
	if err != nil {
		return 0, false, err
	}
	s.mu.Lock()
	k := s.keyLocked(name)
	k.claim = seq
	s.mu.Unlock()
	s.ctr.claims.Add(1)
	if s.log != nil {
		s.log.Info("jsrecord: key claimed", "key", name, "claim", seq, "epoch", info.Epoch, "previous", old.seq,
			"previous_collector", old.Collector, "last_record", last)
	}
	return last, found || old.seq != 0, nil
}

// isFinal reports claim errors that retrying cannot fix.
func isFinal(err error) bool { return errors.Is(err, ErrSupersededClaim) }

// keyLocked returns the state of a key, creating it.
func (s *Sink) keyLocked(name string) *keyState {
	k := s.keys[name]
	if k == nil {
		k = &keyState{live: make(map[liveStream]struct{})}
		s.keys[name] = k
	}
	return k
}

// attach registers a stream serving a key and returns the claim its
// batches are fenced on (0: this collector holds none).
func (s *Sink) attach(name string, ls liveStream) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keyLocked(name)
	k.live[ls] = struct{}{}
	return k.claim
}

// detach unregisters a stream that was fenced on claim. The key's state
// goes with its last stream, unless a newer claim waits for its stream.
func (s *Sink) detach(name string, ls liveStream, claim uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[name]
	if k == nil {
		return
	}
	delete(k.live, ls)
	if len(k.live) == 0 && k.claim == claim {
		delete(s.keys, name)
	}
}

// supersede closes the streams serving a key on this collector: a new
// stream of the key is about to be opened, and newest is the epoch of the
// newest opener of the key known (see takeoverCode).
func (s *Sink) supersede(name string, newest uint64) {
	s.mu.Lock()
	var old []liveStream
	if k := s.keys[name]; k != nil {
		for ls := range k.live {
			old = append(old, ls)
		}
	}
	s.mu.Unlock()
	for _, ls := range old {
		_ = ls.CloseWithError(takeoverCode(ls, newest), "superseded by a resumed stream")
	}
}
