package quicrecord

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// heapAfterGC returns HeapAlloc after two full collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestReliabilitySlowConsumer: a receiver applies 10 records a second
// while the sender offers 10,000 a second, for 30 s. Sampled every 10 ms,
// the sender's in-flight records and bytes never exceed the effective
// window (the smaller of its own caps and the receiver's announced
// backlog), the receiver's backlog never exceeds its caps, and the heap
// grows by no more than the configured in-flight and backlog byte caps
// plus 1 MiB.
//
// It runs over simnet inside synctest: the virtual clock turns the 30 s of
// a slow consumer into a fraction of a second, and the run is the same
// every time. HeapAlloc is process-wide either way; over loopback the
// kernel's socket buffers would be outside it anyway, while simnet's
// packet queues are inside it and hold at most a congestion window.
func TestReliabilitySlowConsumer(t *testing.T) {
	seed := simtest.Seed(t, 301)
	synctest.Test(t, func(t *testing.T) {
		const (
			inFlightRecs  = 1000
			inFlightBytes = 256 << 10
			backlogRecs   = 200
			backlogBytes  = 64 << 10
			runFor        = 30 * time.Second
		)
		ccfg := &Config{Stream: StreamConfig{MaxInFlightRecords: inFlightRecs, MaxInFlightBytes: inFlightBytes}}
		scfg := &Config{Stream: StreamConfig{MaxApplyBacklogRecords: backlogRecs, MaxApplyBacklogBytes: backlogBytes}}
		p := newSimPair(t, ccfg, scfg, nil, simRTT/2)
		tx, rx := p.openPair(t, false, StreamOptions{Scope: "slow", DataID: 5})
		chk := simtest.NewChecker(5)
		before := heapAfterGC()

		ctx, cancel := context.WithTimeout(context.Background(), runFor)
		defer cancel()
		var wg sync.WaitGroup
		var offered, accepted int
		wg.Go(func() { // 10,000 records a second, 16 to 1000 bytes each
			rng := rand.New(rand.NewPCG(seed, 1))
			for seq := uint64(1); ctx.Err() == nil; seq++ {
				offered++
				chk.Sending(seq)
				got, err := tx.Send(ctx, simtest.Payload(5, seq, 16+rng.IntN(985)))
				if err != nil {
					chk.SendFailed(seq)
					return
				}
				chk.Sent(got)
				accepted++
				time.Sleep(100 * time.Microsecond)
			}
		})
		wg.Go(func() { // 10 records a second
			for ctx.Err() == nil {
				r, err := rx.Recv(ctx)
				if err != nil {
					return
				}
				if err := chk.Delivered(r.Seq, r.Data); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(100 * time.Millisecond)
				chk.Applied(r.Seq)
				if err := rx.Ack(r.Seq); err != nil {
					t.Error(err)
					return
				}
			}
		})
		var maxInRecs, maxInBytes, maxBackRecs, maxBackBytes uint64
		for ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			ts, rs := tx.Snapshot(), rx.Snapshot()
			chk.Acked(ts.Out.AckedSeq)
			maxInRecs, maxInBytes = max(maxInRecs, ts.Out.InFlightRecords), max(maxInBytes, ts.Out.InFlightBytes)
			maxBackRecs, maxBackBytes = max(maxBackRecs, rs.In.BacklogRecords), max(maxBackBytes, rs.In.BacklogBytes)
		}
		wg.Wait()
		after := heapAfterGC()
		synctest.Wait()
		ts, rs := tx.Snapshot(), rx.Snapshot()
		t.Logf("offered %d, Send accepted %d, applied %d; max in flight %d records / %d bytes, max backlog %d records / %d bytes (peak %d / %d); heap %d -> %d",
			offered, accepted, rs.In.AppliedSeq, maxInRecs, maxInBytes, maxBackRecs, maxBackBytes,
			rs.In.BacklogPeakRecords, rs.In.BacklogPeakBytes, before, after)

		require.NoError(t, chk.Verify(false))
		require.InDelta(t, 300, float64(rs.In.AppliedSeq), 5, "the consumer applied 10 records a second")
		require.LessOrEqual(t, uint64(accepted), rs.In.AppliedSeq+backlogRecs, "Send blocked: the sender could not push 10,000 a second")
		// The window is the receiver's announced backlog, below the
		// sender's own caps.
		require.LessOrEqual(t, maxInRecs, uint64(backlogRecs))
		require.LessOrEqual(t, maxInBytes, uint64(backlogBytes))
		require.LessOrEqual(t, maxBackRecs, uint64(backlogRecs))
		require.LessOrEqual(t, maxBackBytes, uint64(backlogBytes))
		require.LessOrEqual(t, rs.In.BacklogPeakRecords, uint64(backlogRecs))
		require.LessOrEqual(t, rs.In.BacklogPeakBytes, uint64(backlogBytes))
		require.Greater(t, maxBackBytes, uint64(backlogBytes)/2, "the backlog did fill up")
		require.LessOrEqual(t, int64(after)-int64(before), int64(inFlightBytes+backlogBytes+1<<20),
			"heap grew by more than the in-flight and backlog caps plus 1 MiB")
		require.NoError(t, tx.CloseWithError(CodeCancelled, "done"))
		require.NoError(t, rx.Close(context.Background()))
		require.Equal(t, uint64(accepted), ts.Out.LastSeq)
	})
}

// TestReliabilityStalledConsumerReset: a receiver stops reading and
// resets its side with CloseWithError while the sender is blocked in Send
// (its window is full and part of it is still in transit). The sender
// unblocks with the receiver's code within one round trip. Then a fresh
// stream on the same connection moves 1 MB through a connection receive
// window of 1.5 MiB: had the reset stream's bytes (read, in transit or
// buffered in QUIC) not been credited back to connection flow control,
// it would stall.
func TestReliabilityStalledConsumerReset(t *testing.T) {
	seed := simtest.Seed(t, 302)
	synctest.Test(t, func(t *testing.T) {
		const code = CodeApplicationMin + 5
		q := DefaultQUICConfig()
		q.InitialConnectionReceiveWindow = 3 << 19 // 1.5 MiB, fixed
		q.MaxConnectionReceiveWindow = 3 << 19
		q.InitialStreamReceiveWindow = 1<<20 + 64<<10
		q.MaxStreamReceiveWindow = 1<<20 + 64<<10
		scfg := &Config{QUIC: q, Stream: StreamConfig{MaxApplyBacklogBytes: 1 << 20}}
		// The sender's window is fixed, so that it fills the receiver's
		// whole 1 MiB backlog (an adaptive one stops far earlier when no
		// acks come back).
		p := newSimPair(t, &Config{Stream: StreamConfig{Window: WindowFixed}}, scfg, nil, simRTT/2)
		ctx := context.Background()
		tx, rx := p.openPair(t, false, StreamOptions{Scope: "stalled", DataID: 1})

		rec := make([]byte, 1000)
		var sent atomic.Int64
		sendErr := make(chan error, 1)
		go func() {
			for {
				if _, err := tx.Send(ctx, rec); err != nil {
					sendErr <- err
					return
				}
				sent.Add(1)
			}
		}()
		time.Sleep(4 * simRTT) // the window is full; part of it is in transit
		synctest.Wait()
		require.Empty(t, sendErr, "Send is blocked")
		t.Logf("Send blocked after %d records; receiver got %d bytes before resetting", sent.Load(), rx.Snapshot().In.Bytes)
		require.Equal(t, int64((1<<20)/1000), sent.Load(), "the window is the receiver's 1 MiB backlog")

		start := time.Now()
		require.NoError(t, rx.CloseWithError(code, "consumer gave up"))
		err := <-sendErr
		require.LessOrEqual(t, time.Since(start), simRTT, "Send unblocks within one round trip")
		require.ErrorIs(t, err, &StreamError{Code: code}, "%v", err)
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Remote)
		require.NoError(t, tx.Close(context.Background()))

		// A fresh stream moves 1 MB.
		tx2, rx2 := p.openPair(t, false, StreamOptions{Scope: "fresh", DataID: 2})
		chk := simtest.NewChecker(2)
		took, err := checkedTransfer(tx2, rx2, chk, transferOpts{n: 1100, maxLen: 2000, seed: seed, timeout: time.Minute})
		require.NoError(t, err)
		require.GreaterOrEqual(t, tx2.Snapshot().Out.Bytes, uint64(1_000_000))
		t.Logf("fresh stream moved %d bytes in %v", tx2.Snapshot().Out.Bytes, took)
		require.NoError(t, tx2.Close(context.Background()))
		require.NoError(t, rx2.Close(context.Background()))
	})
}
