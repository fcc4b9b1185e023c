package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/recordmux/recordmux/internal/simtest"
)

// TestReliabilityTenThousandStreams opens 10,000 streams on one
// connection, all open at the same time, moves 5 records on each (checked
// per stream; the DataID is in every record) with a Barrier, and closes
// them. MaxIncomingStreams is raised to 10,000 through Config.QUIC.
// Afterwards no goroutine of any stream is left: none of the bubble's
// goroutines is a stream loop once every stream closed, and synctest
// fails the test if any goroutine of the bubble outlives it (so the test
// can run in parallel with others: it looks at its own goroutines only).
func TestReliabilityTenThousandStreams(t *testing.T) {
	t.Parallel()
	seed := simtest.Seed(t, 401) // record sizes
	synctest.Test(t, func(t *testing.T) {
		const streams, records = 10_000, 5
		q := DefaultQUICConfig()
		q.MaxIncomingStreams = streams
		cfg := &Config{QUIC: q}
		p := newSimPair(t, cfg, cfg, nil, 5*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()

		// Open all of them; the server accepts as they come.
		rxs := make(chan *RecordStream, streams)
		go func() {
			for range streams {
				s, err := p.server.AcceptRecordStream(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				rxs <- s
			}
		}()
		txs := make([]*RecordStream, streams)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() {
				s, err := p.client.OpenRecordStream(ctx, StreamOptions{Scope: "tenk", DataID: uint64(i)})
				if err != nil {
					t.Error(err)
					return
				}
				txs[i] = s
			})
		}
		wg.Wait()
		require.False(t, t.Failed())
		byID := make(map[uint64]*RecordStream, streams)
		for range streams {
			s := <-rxs
			byID[s.DataID()] = s
		}
		require.Len(t, byID, streams)
		require.Len(t, p.client.Snapshots(), streams, "all open at once")
		require.Len(t, p.server.Snapshots(), streams)

		errs := make([]error, streams)
		for i, tx := range txs {
			wg.Go(func() {
				chk := simtest.NewChecker(tx.DataID())
				_, errs[i] = checkedTransfer(tx, byID[tx.DataID()], chk, transferOpts{n: records, maxLen: 40, seed: seed + uint64(i), timeout: 5 * time.Minute})
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		for _, tx := range txs {
			wg.Go(func() {
				if err := tx.Close(context.Background()); err != nil {
					t.Error(err)
				}
				if err := byID[tx.DataID()].Close(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		require.Empty(t, p.client.Snapshots())
		require.Empty(t, p.server.Snapshots())
		_, loops := bubbleGoroutines(t)
		require.Zero(t, loops, "stream reader or writer loops left after every stream closed")
	})
}

// churnCycles is how many sequential stream lifetimes TestReliabilityChurn
// runs: 20,000 by default, 100,000 with RECORDMUX_LONG=1.
func churnCycles() (cycles, every int) {
	if longRun() {
		return 100_000, 10_000
	}
	return 20_000, 5_000
}

// churnCycle runs one stream lifetime on p: the client opens a stream,
// sends one record and waits on Barrier; the server receives and acks it.
// Then one side closes first: the opener when openerFirst, else the
// acceptor, and the other side closes after seeing the first one's end.
func churnCycle(ctx context.Context, p *pair, id uint64, openerFirst bool) error {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o, err := p.client.OpenRecordStream(octx, StreamOptions{Scope: "churn", DataID: id})
	if err != nil {
		return fmt.Errorf("cycle %d: open (no stream credit left?): %w", id, err)
	}
	defer o.Close(context.Background())
	a, err := p.server.AcceptRecordStream(octx)
	if err != nil {
		return fmt.Errorf("cycle %d: accept: %w", id, err)
	}
	defer a.Close(context.Background())
	if _, err := o.Send(octx, simtest.Payload(id, 1, 32)); err != nil {
		return fmt.Errorf("cycle %d: send: %w", id, err)
	}
	r, err := a.Recv(octx)
	if err != nil {
		return fmt.Errorf("cycle %d: recv: %w", id, err)
	}
	if err := simtest.CheckPayload(id, 1, r.Data); err != nil {
		return err
	}
	if err := a.Ack(r.Seq); err != nil {
		return err
	}
	if err := o.Barrier(octx); err != nil {
		return fmt.Errorf("cycle %d: barrier: %w", id, err)
	}
	first, second := o, a
	if !openerFirst {
		first, second = a, o
	}
	if err := first.Close(context.Background()); err != nil {
		return fmt.Errorf("cycle %d: first close: %w", id, err)
	}
	if _, err := second.Recv(octx); !errors.Is(err, io.EOF) {
		return fmt.Errorf("cycle %d: after the peer's Close, Recv returned %v, want io.EOF", id, err)
	}
	if err := second.Close(context.Background()); err != nil {
		return fmt.Errorf("cycle %d: second close: %w", id, err)
	}
	return nil
}

// TestReliabilityChurn runs sequential stream lifetimes (open, send one
// record, Barrier, close; the opener closes first on odd cycles, the
// acceptor on even ones) on one connection. At every checkpoint (each
// 10,000 cycles; each 5,000 in the default 20,000-cycle run) the goroutine
// count is what it was at the warm-up point (±2) and the heap, after GC,
// has grown by less than 1 MiB over it: nothing is kept per finished
// stream, in quicrecord or in quic-go. goleak is clean at the end.
func TestReliabilityChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("soak (20,000 stream lifetimes): skipped under -short; TestStreamCreditReturned covers stream teardown")
	}
	leaks := goleak.IgnoreCurrent()
	cycles, every := churnCycles()
	t.Logf("%d cycles, checkpoint every %d (RECORDMUX_LONG=1 for 100,000)", cycles, every)
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, 500*time.Microsecond)
		ctx := context.Background()
		type point struct {
			cycle      int
			goroutines int
			heap       uint64
		}
		var points []point
		checkpoint := func(cycle int) {
			synctest.Wait()
			// Count this bubble's goroutines only: goroutines of earlier
			// tests still winding down outside it are not this test's.
			g, _ := bubbleGoroutines(t)
			pt := point{cycle: cycle, goroutines: g, heap: heapAfterGC()}
			points = append(points, pt)
			t.Logf("after %6d cycles: %d goroutines, heap %d KiB", cycle, pt.goroutines, pt.heap>>10)
		}
		start := time.Now()
		for i := 1; i <= cycles; i++ {
			require.NoError(t, churnCycle(ctx, p, uint64(i), i%2 == 1))
			if i == every/5 || i%every == 0 { // a warm-up point, then every checkpoint
				checkpoint(i)
			}
		}
		t.Logf("%d cycles in %v virtual", cycles, time.Since(start))
		base := points[0]
		for _, pt := range points[1:] {
			// ±2: slack for goroutines caught mid-exit; a leak per stream
			// would add thousands.
			require.InDelta(t, base.goroutines, pt.goroutines, 2, "goroutines after %d cycles", pt.cycle)
			require.Less(t, int64(pt.heap)-int64(base.heap), int64(1<<20), "heap growth after %d cycles", pt.cycle)
		}
		require.Empty(t, p.client.Snapshots())
		require.Empty(t, p.server.Snapshots())
	})
	goleak.VerifyNone(t, leaks)
}

// TestReliabilityStreamCreditReturned: a connection whose peer allows only
// 8 concurrent streams carries 40 sequential stream lifetimes, whichever
// side closes first, or with CloseWithError: every finished stream gives
// its credit back (quic-go sends MAX_STREAMS only once both directions of
// a stream are complete on the acceptor's side).
func TestReliabilityStreamCreditReturned(t *testing.T) {
	for _, order := range []string{"opener closes first", "acceptor closes first", "CloseWithError"} {
		t.Run(order, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := DefaultQUICConfig()
				q.MaxIncomingStreams = 8
				cfg := &Config{QUIC: q}
				p := newSimPair(t, cfg, cfg, nil, simRTT/2)
				ctx := context.Background()
				for i := 1; i <= 40; i++ {
					if order != "CloseWithError" {
						require.NoError(t, churnCycle(ctx, p, uint64(i), order == "opener closes first"))
						continue
					}
					octx, cancel := context.WithTimeout(ctx, 10*time.Second)
					o, err := p.client.OpenRecordStream(octx, StreamOptions{DataID: uint64(i)})
					require.NoError(t, err, "cycle %d: no stream credit left", i)
					a, err := p.server.AcceptRecordStream(octx)
					require.NoError(t, err)
					require.NoError(t, o.CloseWithError(CodeApplicationMin, "done"))
					_, err = a.Recv(octx)
					require.ErrorIs(t, err, &StreamError{Code: CodeApplicationMin})
					require.NoError(t, a.Close(context.Background()))
					cancel()
				}
			})
		})
	}
}
