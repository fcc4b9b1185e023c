package quicrecord

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// lossMatrix is the loss levels of TestReliabilityLossJitter and the
// seeds each runs by default: 20 seeds in all, 5 per level. RECORDMUX_LONG=1
// runs 25 per level.
func lossMatrix(t *testing.T) map[float64][]uint64 {
	levels := []float64{0, 0.01, 0.05, 0.10}
	perLevel := 5
	if longRun() {
		perLevel = 25
	}
	m := make(map[float64][]uint64, len(levels))
	for i, l := range levels {
		var seeds []uint64
		for j := range perLevel {
			seeds = append(seeds, uint64(1+i*perLevel+j))
		}
		m[l] = seedList(t, seeds)
	}
	return m
}

// TestReliabilityLossJitter moves 100,000 records on one stream over a
// path with 20 ms ± 15 ms one-way delay (so packets overtake each other)
// and random loss of 0, 1, 5 and 10% in each direction. The checker holds
// throughout: nothing lost, nothing duplicated, nothing out of order,
// acked ⊆ applied ⊆ sent; Barrier returns nil and then applied == sent.
func TestReliabilityLossJitter(t *testing.T) {
	if testing.Short() {
		t.Skip("soak (20 seeds × 100,000 records): skipped under -short; TestReliabilityManyStreamsLoss and TestReliabilityBlackout cover loss and jitter")
	}
	t.Parallel()
	m := lossMatrix(t)
	for _, loss := range []float64{0, 0.01, 0.05, 0.10} {
		for _, seed := range m[loss] {
			t.Run(fmt.Sprintf("loss=%g%%/seed=%d", loss*100, seed), func(t *testing.T) {
				t.Parallel()
				simtest.Seed(t, seed) // logs the seed; the matrix already applied RECORDMUX_SEED
				synctest.Test(t, func(t *testing.T) {
					o := linkOpts{seed: seed, loss: loss, latency: 20 * time.Millisecond, jitter: 15 * time.Millisecond}
					p, n := newRelSimPair(t, nil, nil, o)
					tx, rx := p.openPair(t, seed%2 == 0, StreamOptions{Scope: "loss", DataID: seed})
					chk := simtest.NewChecker(seed)
					took, err := checkedTransfer(tx, rx, chk, transferOpts{n: 100_000, maxLen: 100, seed: seed})
					require.NoError(t, err)
					cs, ss := n.router.StatsTo(simClientAddr), n.router.StatsTo(simServerAddr)
					t.Logf("100000 records in %v virtual; packets to server %d (%d lost), to client %d (%d lost)",
						took, ss.Sent, ss.Lost, cs.Sent, cs.Lost)
					if loss > 0 {
						require.Positive(t, ss.Lost+cs.Lost, "the router lost packets")
					}
					require.NoError(t, tx.Close(context.Background()))
					require.NoError(t, rx.Close(context.Background()))
				})
			})
		}
	}
}

// TestReliabilityManyStreamsLoss runs 100 streams of 1,000 records each at
// once over a path with 5% loss per direction, each checked on its own.
// Every record carries its stream's DataID, so one delivered on the wrong
// stream fails the checker.
func TestReliabilityManyStreamsLoss(t *testing.T) {
	t.Parallel()
	seed := simtest.Seed(t, 101)
	synctest.Test(t, func(t *testing.T) {
		o := linkOpts{seed: seed, loss: 0.05, latency: 20 * time.Millisecond, jitter: 15 * time.Millisecond}
		p, n := newRelSimPair(t, nil, nil, o)
		const streams, records = 100, 1000
		ctx := context.Background()
		accepted := make(chan *RecordStream, streams)
		go func() {
			for range streams {
				s, err := p.server.AcceptRecordStream(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				accepted <- s
			}
		}()
		var wg sync.WaitGroup
		rxByID := make(map[uint64]*RecordStream)
		txs := make([]*RecordStream, streams)
		for i := range streams {
			s, err := p.client.OpenRecordStream(ctx, StreamOptions{Scope: "many", DataID: uint64(1000 + i)})
			require.NoError(t, err)
			txs[i] = s
		}
		for range streams {
			s := <-accepted
			rxByID[s.DataID()] = s
		}
		errs := make([]error, streams)
		for i, tx := range txs {
			rx := rxByID[tx.DataID()]
			require.NotNil(t, rx, "stream %d accepted", tx.DataID())
			wg.Go(func() {
				chk := simtest.NewChecker(tx.DataID())
				_, errs[i] = checkedTransfer(tx, rx, chk, transferOpts{n: records, maxLen: 64, seed: seed + uint64(i)})
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		ss := n.router.StatsTo(simServerAddr)
		t.Logf("%d streams × %d records; %d packets to server, %d lost", streams, records, ss.Sent, ss.Lost)
		for _, s := range txs {
			require.NoError(t, s.Close(context.Background()))
			require.NoError(t, rxByID[s.DataID()].Close(context.Background()))
		}
	})
}

// TestReliabilityBlackout drops every packet for 1 s and for 5 s in the
// middle of a transfer (when the receiver applies the middle record). The
// connection survives (the idle timeout is 30 s) and the transfer
// completes with the checker green.
func TestReliabilityBlackout(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{time.Second, 5 * time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			seed := simtest.Seed(t, 201)
			synctest.Test(t, func(t *testing.T) {
				o := linkOpts{seed: seed, loss: 0.01, latency: 20 * time.Millisecond, jitter: 5 * time.Millisecond}
				p, n := newRelSimPair(t, nil, nil, o)
				tx, rx := p.openPair(t, false, StreamOptions{Scope: "blackout", DataID: 1})
				chk := simtest.NewChecker(1)
				const records = 50_000
				start := time.Now()
				var blackoutAt time.Time
				took, err := checkedTransfer(tx, rx, chk, transferOpts{n: records, maxLen: 100, seed: seed, onApply: func(seq uint64) {
					if seq == records/2 {
						blackoutAt = time.Now()
						n.router.Blackout(d)
					}
				}})
				require.NoError(t, err)
				require.False(t, blackoutAt.IsZero())
				dark := n.router.StatsTo(simServerAddr).Dark + n.router.StatsTo(simClientAddr).Dark
				t.Logf("transfer took %v virtual with a %v blackout from %v on; %d packets dropped by it", took, d, blackoutAt.Sub(start), dark)
				require.Positive(t, dark, "the blackout dropped packets")
				require.GreaterOrEqual(t, took, d)
				require.NoError(t, p.client.Context().Err(), "the connection survived")
				require.NoError(t, tx.Close(context.Background()))
				require.NoError(t, rx.Close(context.Background()))
			})
		})
	}
}
