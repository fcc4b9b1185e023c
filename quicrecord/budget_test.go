package quicrecord

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBudgetTree: a grant takes room in a connection's budget and its
// listener's; a grant that does not fit waits until room is given back at
// either level, and a grant above the whole budget waits for all of it.
func TestBudgetTree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ln := newBudget(100, nil)
		c1, c2 := newBudget(80, ln), newBudget(80, ln)
		a1 := newRecvAccount(c1, 0, true)
		a2 := newRecvAccount(c2, 0, true)
		got, err := a1.acquire(ctx, 70)
		require.NoError(t, err)
		require.Equal(t, int64(70), got)

		// c2 has room, the listener has 30 left: a 40-byte grant waits.
		done := make(chan int64, 1)
		go func() {
			n, err := a2.acquire(ctx, 40)
			if err == nil {
				done <- n
			}
		}()
		synctest.Wait()
		require.Empty(t, done, "granted beyond the listener's budget")
		a1.release(20)
		synctest.Wait()
		require.Equal(t, int64(40), <-done)
		require.Equal(t, int64(90), ln.Used())

		// Above the whole budget: clamped, and granted once it is free.
		a3 := newRecvAccount(c1, 0, true)
		go func() {
			n, err := a3.acquire(ctx, 1000)
			if err == nil {
				done <- n
			}
		}()
		synctest.Wait()
		require.Empty(t, done)
		a1.close()
		a2.close()
		synctest.Wait()
		require.Equal(t, int64(80), <-done, "clamped to the connection budget")

		// A closed account grants nothing and waits for nothing.
		cctx, cancel := context.WithCancelCause(ctx)
		cancel(ErrClosed)
		_, err = a2.acquire(cctx, 1)
		require.ErrorIs(t, err, ErrClosed)
	})
}

// TestPreAcceptCredit: a stream the application has not accepted reads no
// more than the pre-accept credit of the peer's records; once accepted,
// the rest arrives and everything is applied, in order.
func TestPreAcceptCredit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		const credit = 64 << 10
		p := newSimPair(t, nil, &Config{PreAcceptReceiveBytes: credit}, nil, simRTT/2)
		tx, err := p.client.OpenRecordStream(ctx, StreamOptions{})
		require.NoError(t, err)
		const n = 40
		sent := sendAsync(ctx, tx, n, 16<<10)
		time.Sleep(time.Second)
		synctest.Wait()
		require.Positive(t, p.server.budget.Used(), "the stream read its credit")
		require.LessOrEqual(t, p.server.budget.Used(), int64(credit))

		rx, err := p.server.AcceptRecordStream(ctx)
		require.NoError(t, err)
		var next uint64 = 1
		go func() {
			_ = rx.Apply(ctx, func(r Record) error {
				if r.Seq == next {
					next++
				}
				return nil
			})
		}()
		require.NoError(t, <-sent)
		require.NoError(t, tx.Barrier(ctx))
		require.Equal(t, uint64(n+1), next, "every record applied, in order")
	})
}

// TestBudgetStopsReading: when one stream's unapplied records take the
// whole connection budget, another stream of the connection stops
// reading (nothing is lost, nothing fails) until records are applied; then
// both complete.
func TestBudgetStopsReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		const budget = 256 << 10
		fixed := &Config{Stream: StreamConfig{Window: WindowFixed}} // the sender does not wait for acks
		p := newSimPair(t, fixed, &Config{MaxConnReceiveBytes: budget, PreAcceptReceiveBytes: budget}, nil, simRTT/2)
		hog, hogRx := p.openPair(t, false, StreamOptions{})
		other, otherRx := p.openPair(t, false, StreamOptions{})
		hogSent := sendAsync(ctx, hog, 512, 1<<10) // 512 KiB in batches of 64 KiB: twice the budget
		time.Sleep(time.Second)
		synctest.Wait()
		require.LessOrEqual(t, p.server.budget.Used(), int64(budget))
		// The hog's next batch does not fit: less than a batch is left.
		require.Greater(t, p.server.budget.Used(), int64(budget-80<<10))

		// The other stream's record does not fit the rest either: its
		// Barrier cannot complete while the hog's records stay unapplied.
		_, err := other.Send(ctx, make([]byte, 100<<10))
		require.NoError(t, err)
		var applied int
		otherDone := make(chan error, 1)
		go func() {
			otherDone <- otherRx.Apply(ctx, func(Record) error { applied++; return nil })
		}()
		bctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = other.Barrier(bctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Zero(t, applied)

		// Apply the hog's records: budget comes back, both finish.
		go func() { _ = hogRx.Apply(ctx, func(Record) error { return nil }) }()
		require.NoError(t, <-hogSent)
		require.NoError(t, hog.Barrier(ctx))
		require.NoError(t, other.Barrier(ctx))
		require.Equal(t, 1, applied)
	})
}

// sendAsync sends n records of size bytes on s from a goroutine (Send
// blocks while the window is full) and returns the first error, or nil
// once all were sent.
func sendAsync(ctx context.Context, s *RecordStream, n, size int) <-chan error {
	done := make(chan error, 1)
	go func() {
		rec := make([]byte, size)
		for range n {
			if _, err := s.Send(ctx, rec); err != nil {
				done <- err
				return
			}
		}
		done <- s.Flush(ctx)
	}()
	return done
}
