package quicrecord

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// countingOpen opens a resumable stream of rig whose dials are counted.
func countingOpen(rig *resumeRig, opts ResumeOptions, dials *atomic.Int32) (*ResumableStream, error) {
	return NewResumableStream(context.Background(), func(ctx context.Context) (*Conn, error) {
		dials.Add(1)
		return rig.dial(ctx)
	}, rig.ccfg, opts)
}

// sendSeqs sends the records first..last of a key's numbering on r.
func sendSeqs(t *testing.T, r *ResumableStream, first, last uint64) {
	t.Helper()
	for i := first; i <= last; i++ {
		_, err := r.Send(context.Background(), payloadFor(i))
		require.NoError(t, err)
	}
}

// TestResumeEpochTakeover: two openers hold one key (a cloned agent). When
// the newer one opens, the acceptor ends the older one's stream with
// SUPERSEDED, and the older one does not reconnect; when the older one
// opens while the newer one holds the key, it is refused with SUPERSEDED.
// Either way the two converge in one round, and every record is applied
// exactly once.
func TestResumeEpochTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rig := newResumeRig(t, ResumeStoreConfig{}, nil, nil)
		var oldDials, newDials atomic.Int32
		older, err := countingOpen(rig, ResumeOptions{Key: []byte("clone"), Epoch: 1}, &oldDials)
		require.NoError(t, err)
		sendSeqs(t, older, 1, 50)
		require.NoError(t, older.Barrier(ctx))

		// The newer opener regenerates the key's records from 1: what
		// the older one had applied is dropped, the rest goes on.
		newer, err := countingOpen(rig, ResumeOptions{Key: []byte("clone"), Epoch: 2}, &newDials)
		require.NoError(t, err)
		<-older.Context().Done()
		require.ErrorIs(t, older.Err(), ErrSuperseded)
		_, err = older.Send(ctx, payloadFor(51))
		require.Error(t, err, "a superseded stream takes no more records")

		sendSeqs(t, newer, 1, 100)
		require.NoError(t, newer.Barrier(ctx))
		require.Equal(t, uint64(50), newer.Snapshot().Stats.DuplicatesDropped)

		// The older opener comes back (a restart with its old epoch): it
		// is refused at once, and the newer stream is untouched.
		_, err = countingOpen(rig, ResumeOptions{Key: []byte("clone"), Epoch: 1, FirstSeq: 51}, &oldDials)
		var re *ResumeError
		require.ErrorAs(t, err, &re)
		require.ErrorIs(t, err, ErrSuperseded)
		sendSeqs(t, newer, 101, 120)
		require.NoError(t, newer.Barrier(ctx))

		time.Sleep(time.Minute) // far beyond any reconnection backoff
		require.Equal(t, int32(2), oldDials.Load(), "the superseded opener never redialed; one refused restart")
		require.Equal(t, int32(1), newDials.Load(), "the newer opener kept its connection")
		require.NoError(t, newer.Close(ctx))
		rig.mu.Lock()
		defer rig.mu.Unlock()
		require.Equal(t, uint64(120), rig.applied["clone"])
		require.Zero(t, rig.dups, "nothing applied twice")
		require.Zero(t, rig.gaps)
		require.Equal(t, 2, rig.streams, "one stream per opener: no flapping")
	})
}

// TestResumeStoreQuotas: state is keyed by (identity, key), a peer at
// its quota loses its own oldest detached state (or is refused when all
// its keys are live), and a full store evicts from the peer holding the
// most keys, so that one peer cannot push out another's state.
func TestResumeStoreQuotas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := NewResumeStore(ResumeStoreConfig{MaxKeys: 4, MaxKeysPerPeer: 3})
		type held struct {
			rs *resumeState
			s  *RecordStream
		}
		claim := func(peer, key string) (held, error) {
			s := &RecordStream{}
			rs, _, err := st.acquire(ctx, &resumeClaim{info: ResumeKeyInfo{Key: []byte(key), Peer: peer}, first: 1}, s)
			return held{rs, s}, err
		}
		detach := func(h held) {
			time.Sleep(time.Second) // distinct detach times
			st.release(h.rs, h.s, false)
		}
		has := func(peer, key string) bool {
			st.mu.Lock()
			defer st.mu.Unlock()
			return st.keys[storeKey{peer, key}] != nil
		}

		alice, err := claim("alice", "k")
		require.NoError(t, err)
		detach(alice)
		// The same key under another identity is another stream.
		var ms []held
		for _, k := range []string{"k", "m2", "m3"} {
			h, err := claim("mallory", k)
			require.NoError(t, err)
			ms = append(ms, h)
		}
		require.True(t, has("alice", "k"))
		require.True(t, has("mallory", "k"))

		// Mallory at her quota with every key live: refused.
		_, err = claim("mallory", "m4")
		require.ErrorIs(t, err, ErrRefused)
		// With detached keys, she loses her own oldest, not Alice's.
		detach(ms[0])
		detach(ms[1])
		_, err = claim("mallory", "m4")
		require.NoError(t, err)
		require.False(t, has("mallory", "k"))
		require.True(t, has("alice", "k"))

		// The store is full (4 keys): a newcomer evicts from the peer
		// holding the most keys (Mallory, 3), although Alice's state is
		// the oldest detached.
		_, err = claim("carol", "c")
		require.NoError(t, err)
		require.False(t, has("mallory", "m2"))
		require.True(t, has("alice", "k"))
		require.Equal(t, 4, st.Len())
	})
}

// TestLoadAppliedSupersedes: the acceptor's hooks see the opener's epoch
// (AcceptInfo.ResumeEpoch, ResumeKeyInfo.Epoch, and the accepted stream's
// ResumeKeyInfo), and a LoadApplied that knows a newer opener of the key
// (a store shared by a fleet) refuses an older one with an error matching
// ErrSuperseded: the opener sees SUPERSEDED, or REFUSED when its stream
// did not negotiate epochs, exactly as for a store's own newer state.
func TestLoadAppliedSupersedes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		disable   Features
		wantEpoch uint64
		wantCode  ErrorCode
	}{
		{"epochs", 0, 7, CodeSuperseded},
		{"no epochs", FeatureResumeEpoch, 0, CodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				var newest atomic.Uint64 // the newest epoch LoadApplied knows
				newest.Store(100)
				var handled, loaded atomic.Uint64
				handler := func(_ context.Context, info *AcceptInfo) (*StreamConfig, error) {
					handled.Store(info.ResumeEpoch)
					return nil, nil
				}
				rig := newResumeRigAcceptor(t, ResumeStoreConfig{LoadApplied: func(_ context.Context, info ResumeKeyInfo) (uint64, bool, error) {
					loaded.Store(info.Epoch)
					if info.Epoch < newest.Load() {
						return 0, false, fmt.Errorf("fleet: %w", ErrSuperseded)
					}
					return 0, false, nil
				}}, nil, nil, handler, func(_, client *Config) { client.DisableFeatures = tc.disable })

				_, err := NewResumableStream(ctx, rig.dial, rig.ccfg, ResumeOptions{Key: []byte("fleet"), Epoch: 7})
				require.Equal(t, tc.wantCode, CodeOf(err), "%v", err)
				require.Equal(t, tc.wantEpoch, handled.Load())
				require.Equal(t, tc.wantEpoch, loaded.Load())

				newest.Store(0)
				rs, err := NewResumableStream(ctx, rig.dial, rig.ccfg, ResumeOptions{Key: []byte("fleet"), Epoch: 7})
				require.NoError(t, err)
				sendSeqs(t, rs, 1, 3)
				require.NoError(t, rs.Barrier(ctx))
				require.NoError(t, rs.Close(ctx))
				rig.mu.Lock()
				defer rig.mu.Unlock()
				require.Equal(t, uint64(3), rig.applied["fleet"])
			})
		})
	}
}
