package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

const simRTT = 20 * time.Millisecond

func send(t testing.TB, s *RecordStream, n int) {
	t.Helper()
	for i := range n {
		_, err := s.Send(context.Background(), []byte(fmt.Sprintf("record-%d", i)))
		require.NoError(t, err)
	}
}

func TestBarrierWaitsForApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		tx, rx := p.openPair(t, false, StreamOptions{})
		send(t, tx, 10)

		// Nothing is acked yet: the barrier gives up at its deadline and
		// reports how far the peer got.
		for i := 1; i <= 4; i++ {
			r, err := rx.Recv(context.Background())
			require.NoError(t, err)
			require.Equal(t, uint64(i), r.Seq)
		}
		require.NoError(t, rx.Ack(4))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := tx.Barrier(ctx)
		var be *BarrierError
		require.ErrorAs(t, err, &be)
		require.Equal(t, uint64(10), be.Target)
		require.Equal(t, uint64(4), be.Acked)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		// Apply the rest: the barrier returns once the last ack is back,
		// one round trip after the ack was made.
		done := make(chan error, 1)
		go func() { done <- tx.Barrier(context.Background()) }()
		synctest.Wait()
		for i := 5; i <= 10; i++ {
			_, err := rx.Recv(context.Background())
			require.NoError(t, err)
		}
		start := time.Now()
		require.NoError(t, rx.Ack(10))
		require.NoError(t, <-done)
		require.Equal(t, simRTT/2, time.Since(start))

		snap := tx.Snapshot()
		require.Equal(t, uint64(1), snap.Barrier.Calls, "only successful barriers are counted")
		require.Equal(t, uint64(10), snap.Out.AckedSeq)
		require.Zero(t, snap.Out.InFlightRecords)
		require.Equal(t, uint64(10), rx.Snapshot().In.AppliedSeq)
		require.Zero(t, rx.Snapshot().In.BacklogRecords)
	})
}

func TestBarrierReportsRejections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		tx, rx := p.openPair(t, false, StreamOptions{})
		var handled []uint64
		var mu sync.Mutex
		tx.SetRejectHandler(func(e *RecordError) {
			mu.Lock()
			handled = append(handled, e.Seq)
			mu.Unlock()
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		applyDone := make(chan error, 1)
		go func() {
			applyDone <- rx.Apply(ctx, func(r Record) error {
				switch r.Seq {
				case 3:
					return fmt.Errorf("row 3: %w", &ApplicationError{Code: CodeApplicationMin + 7, Reason: "bad record three"})
				case 5, 12:
					return errors.New("cannot apply")
				}
				return nil
			})
		}()
		send(t, tx, 10)
		err := tx.Barrier(context.Background())
		var rej *RejectedError
		require.ErrorAs(t, err, &rej)
		require.Equal(t, &RejectedError{Count: 2, Records: []RecordError{
			{Seq: 3, Code: CodeApplicationMin + 7, Reason: "bad record three"},
			{Seq: 5, Code: CodeRejected, Reason: "rejected by the application"},
		}}, rej, "record 5 was rejected too; its error's text stayed on the receiver")
		require.Equal(t, `quicrecord: record 3 rejected by the peer: APPLICATION(0x107): "bad record three" (and 1 more)`, err.Error())
		var re *RecordError
		require.ErrorAs(t, err, &re)
		require.Equal(t, uint64(3), re.Seq, "errors.As finds the first rejection")
		require.ErrorIs(t, err, &RecordError{Code: CodeApplicationMin + 7})
		require.ErrorIs(t, err, ErrRecordRejected)
		require.Equal(t, CodeApplicationMin+7, CodeOf(err))

		// Each rejection is reported once: the next barrier covers 11..15.
		send(t, tx, 5)
		err = tx.Barrier(context.Background())
		require.ErrorAs(t, err, &rej)
		require.Equal(t, 1, rej.Count)
		require.Equal(t, uint64(12), rej.Records[0].Seq)
		require.ErrorIs(t, err, ErrRecordRejected)
		send(t, tx, 5)
		require.NoError(t, tx.Barrier(context.Background()))

		mu.Lock()
		require.Equal(t, []uint64{3, 5, 12}, handled)
		mu.Unlock()
		require.Equal(t, uint64(3), tx.Snapshot().Errors.RejectedByPeer)
		require.Equal(t, uint64(3), rx.Snapshot().Errors.RejectedLocally)
		require.Equal(t, uint64(20), tx.Snapshot().Out.AckedSeq)
		cancel()
		require.ErrorIs(t, <-applyDone, context.Canceled)
	})
}

func TestAckAndRejectValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		tx, rx := p.openPair(t, false, StreamOptions{})
		send(t, tx, 3)
		err := rx.Ack(42)
		require.ErrorIs(t, err, ErrNotDelivered, "nothing delivered yet")
		require.EqualError(t, err, "quicrecord: Ack(42): the last record delivered is 0")
		_, err = rx.Recv(context.Background())
		require.NoError(t, err)
		_, err = rx.Recv(context.Background())
		require.NoError(t, err)
		require.NoError(t, rx.Ack(1))
		require.NoError(t, rx.Ack(1), "acking again is a no-op")
		err = rx.Reject(1, CodeRejected, "late")
		require.ErrorIs(t, err, ErrAlreadyApplied)
		require.EqualError(t, err, "quicrecord: Reject(1): record 1 was already applied (acked or rejected); the last applied is 1")
		err = rx.Reject(3, CodeRejected, "not delivered")
		require.ErrorIs(t, err, ErrNotDelivered)
		require.EqualError(t, err, "quicrecord: Reject(3): the last record delivered is 2")
		require.NoError(t, rx.Reject(2, CodeRejected, "fine"))
		require.Equal(t, uint64(2), rx.Snapshot().In.AppliedSeq)
	})
}

func TestPiggybackCounters(t *testing.T) {
	t.Parallel()
	for _, both := range []bool{false, true} {
		t.Run(fmt.Sprintf("bothWays=%v", both), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				// A 2 ms round trip; each side sends a batch every 50µs,
				// more often than the default AckDelay of 250µs, for ten
				// round trips.
				p := newSimPair(t, nil, nil, nil, time.Millisecond)
				a, b := p.openPair(t, false, StreamOptions{})
				const n = 4000
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var wg sync.WaitGroup
				for _, s := range []*RecordStream{a, b} {
					wg.Go(func() { _ = s.Apply(ctx, func(Record) error { return nil }) })
				}
				senders := []*RecordStream{a}
				if both {
					senders = append(senders, b)
				}
				for _, s := range senders {
					wg.Go(func() {
						for i := range n {
							_, err := s.Send(ctx, []byte{byte(i)})
							if err != nil {
								t.Error(err)
								return
							}
							if i%10 == 9 {
								time.Sleep(50 * time.Microsecond)
							}
						}
						if err := s.Barrier(ctx); err != nil {
							t.Error(err)
						}
					})
				}
				time.Sleep(time.Second)
				cancel()
				wg.Wait()
				sa, sb := a.Snapshot(), b.Snapshot()
				require.Equal(t, uint64(n), sa.Out.AckedSeq)
				// b only acks: its acks are standalone unless it sends too.
				if both {
					require.Equal(t, uint64(n), sb.Out.AckedSeq)
					require.Positive(t, sb.Acks.PiggybackedOut, "acks rode in b's batches")
					require.Positive(t, sa.Acks.PiggybackedOut, "acks rode in a's batches")
					require.Equal(t, sb.Acks.PiggybackedOut, sa.Acks.PiggybackedIn)
					require.Greater(t, sb.Acks.PiggybackedOut, sb.Acks.StandaloneOut, "most acks piggyback when both directions are busy")
				} else {
					require.Zero(t, sb.Acks.PiggybackedOut)
					require.Positive(t, sb.Acks.StandaloneOut)
					require.Zero(t, sa.Acks.PiggybackedIn)
				}
				require.Equal(t, sb.Acks.StandaloneOut, sa.Acks.StandaloneIn)
				require.Equal(t, sb.Acks.StandaloneOut, sb.FramesOut.Ack)
				require.Equal(t, sa.FramesOut.Batch, sb.FramesIn.Batch)
				require.Equal(t, sa.Out.Batches, sb.In.Batches)
				require.Equal(t, sa.Out.Records, sb.In.Records)
				require.Equal(t, sa.Out.Bytes, sb.In.Bytes)
			})
		})
	}
}

// TestBackpressureReceiverNeverAcks checks the window's caps: the
// peer's announced window below the local cap, and the room an ack frees.
// The sender's window is fixed: an adaptive one would (rightly) shrink
// below the caps after records waited a second for their ack.
func TestBackpressureReceiverNeverAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := &Config{Stream: StreamConfig{MaxInFlightRecords: 100, MaxApplyBacklogRecords: 1000, MaxInFlightBytes: 1 << 20, Window: WindowFixed}}
		rcfg := &Config{Stream: StreamConfig{MaxApplyBacklogRecords: 60, MaxApplyBacklogBytes: 1 << 20}}
		p := newSimPair(t, cfg, rcfg, nil, simRTT/2)
		tx, rx := p.openPair(t, false, StreamOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var sent int
		var err error
		for {
			if _, err = tx.Send(ctx, make([]byte, 100)); err != nil {
				break
			}
			sent++
		}
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.Equal(t, 60, sent, "the peer's announced window (60) is below the local cap (100)")
		snap := tx.Snapshot()
		require.Equal(t, uint64(60), snap.Out.InFlightRecords)
		require.Equal(t, uint64(6000), snap.Out.InFlightBytes)
		rs := rx.Snapshot()
		require.Equal(t, uint64(60), rs.In.BacklogRecords)
		require.Equal(t, uint64(60), rs.In.BacklogPeakRecords)

		// Acking frees the window.
		for range 10 {
			_, err := rx.Recv(context.Background())
			require.NoError(t, err)
		}
		require.NoError(t, rx.Ack(10))
		ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		for range 10 {
			_, err := tx.Send(ctx2, make([]byte, 100))
			require.NoError(t, err)
		}
		_, err = tx.Send(ctx2, make([]byte, 100))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
}

func TestBackpressureBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := &Config{Stream: StreamConfig{MaxInFlightBytes: 10_000}}
		p := newSimPair(t, cfg, nil, nil, simRTT/2)
		tx, _ := p.openPair(t, false, StreamOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var sent int
		for {
			if _, err := tx.Send(ctx, make([]byte, 1000)); err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				break
			}
			sent++
		}
		require.Equal(t, 10, sent)
		require.Equal(t, uint64(10_000), tx.Snapshot().Out.InFlightBytes)
	})
}

func TestCloseGracefulEachSide(t *testing.T) {
	t.Parallel()
	for _, serverOpens := range []bool{false, true} {
		for _, closer := range []string{"opener", "acceptor"} {
			t.Run(fmt.Sprintf("serverOpens=%v/closer=%s", serverOpens, closer), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					p := newSimPair(t, nil, nil, nil, simRTT/2)
					o, a := p.openPair(t, serverOpens, StreamOptions{})
					c, peer := o, a
					if closer == "acceptor" {
						c, peer = a, o
					}
					send(t, c, 5)
					require.NoError(t, c.Close(context.Background()))
					require.ErrorIs(t, context.Cause(c.Context()), net.ErrClosed)
					_, err := c.Send(context.Background(), []byte("x"))
					require.ErrorIs(t, err, net.ErrClosed)
					for i := 1; i <= 5; i++ {
						r, err := peer.Recv(context.Background())
						require.NoError(t, err)
						require.Equal(t, uint64(i), r.Seq)
					}
					_, err = peer.Recv(context.Background())
					require.ErrorIs(t, err, io.EOF)
					require.NoError(t, peer.Close(context.Background()))
					require.Equal(t, StateClosed, c.Snapshot().Status.State)
					require.Equal(t, StateClosed, peer.Snapshot().Status.State)
				})
			})
		}
	}
}

func TestCloseWithErrorEachSide(t *testing.T) {
	for _, closer := range []string{"opener", "acceptor"} {
		t.Run(closer, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newSimPair(t, nil, nil, nil, simRTT/2)
				o, a := p.openPair(t, false, StreamOptions{})
				c, peer := o, a
				if closer == "acceptor" {
					c, peer = a, o
				}
				send(t, peer, 3)
				require.NoError(t, peer.Flush(context.Background()))
				barrier := make(chan error, 1)
				go func() { barrier <- peer.Barrier(context.Background()) }()
				synctest.Wait()
				start := time.Now()
				code := CodeApplicationMin + 42
				require.NoError(t, c.CloseWithError(code, "shutting down"))

				err := <-barrier
				require.Equal(t, simRTT/2, time.Since(start), "the code reaches Barrier within one trip")
				var be *BarrierError
				require.ErrorAs(t, err, &be)
				require.Zero(t, be.Acked)
				var se *StreamError
				require.ErrorAs(t, err, &se)
				require.Equal(t, code, se.Code)
				require.True(t, se.Remote)
				require.Equal(t, "shutting down", se.Reason, "the ERROR frame survived the reset")
				require.ErrorIs(t, err, net.ErrClosed)

				_, err = peer.Recv(context.Background())
				require.ErrorAs(t, err, &se)
				require.Equal(t, code, se.Code)
				_, err = peer.Send(context.Background(), []byte("x"))
				require.ErrorAs(t, err, &se)
				require.Equal(t, code, se.Code)
				require.Equal(t, StateFailed, peer.Snapshot().Status.State)

				_, err = c.Send(context.Background(), []byte("x"))
				require.ErrorAs(t, err, &se)
				require.False(t, se.Remote)
				require.NoError(t, peer.Close(context.Background()))
			})
		})
	}
}

// TestStreamContextCancelResets: a stream bounded by a context with the
// context.AfterFunc pattern RecordStream documents is reset with
// CodeCancelled when the context ends, and the peer sees the code.
func TestStreamContextCancelResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		ctx, cancel := context.WithCancel(context.Background())
		octx, ocancel := context.WithTimeout(context.Background(), time.Second)
		defer ocancel()
		o, err := p.client.OpenRecordStream(octx, StreamOptions{})
		require.NoError(t, err)
		stop := context.AfterFunc(ctx, func() { _ = o.CloseWithError(CodeCancelled, "stream context done") })
		defer stop()
		a, err := p.server.AcceptRecordStream(octx)
		require.NoError(t, err)
		cancel()
		_, err = a.Recv(context.Background())
		require.ErrorIs(t, err, ErrCancelled)
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.True(t, se.Remote)
		synctest.Wait()
		require.ErrorIs(t, context.Cause(o.Context()), ErrCancelled)
		require.NoError(t, o.Close(context.Background()))
		require.NoError(t, a.Close(context.Background()))
	})
}

func TestConnCloseEndsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		o, a := p.openPair(t, false, StreamOptions{})
		send(t, o, 3)
		require.NoError(t, o.Flush(context.Background()))
		barrier := make(chan error, 1)
		go func() { barrier <- o.Barrier(context.Background()) }()
		synctest.Wait()
		require.NoError(t, p.server.CloseWithError(CodeApplicationMin+1, "maintenance"))
		err := <-barrier
		var ce *ConnError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, CodeApplicationMin+1, ce.Code)
		require.True(t, ce.Remote)
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = a.Recv(context.Background())
		require.ErrorIs(t, err, net.ErrClosed)
		synctest.Wait() // detach runs on context.AfterFunc's goroutine
		require.Empty(t, p.client.Snapshots())
		require.Empty(t, p.server.Snapshots())
		require.Equal(t, StateFailed, o.Snapshot().Status.State)
	})
}

func TestManyConcurrentStreams(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := &Config{}
		p := newSimPair(t, cfg, cfg, nil, simRTT/2)
		const streams, records = 1000, 20
		ctx := context.Background()
		var wg sync.WaitGroup
		var got atomic.Int64
		wg.Go(func() {
			for range streams {
				s, err := p.server.AcceptRecordStream(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				wg.Go(func() {
					defer s.Close(context.Background())
					var next uint64 = 1
					err := s.Apply(ctx, func(r Record) error {
						if r.Seq != next || string(r.Data) != fmt.Sprintf("%d/%d", s.DataID(), r.Seq) {
							t.Errorf("stream %d: bad record %d %q", s.DataID(), r.Seq, r.Data)
						}
						next++
						got.Add(1)
						return nil
					})
					if err != nil {
						t.Error(err)
					}
				})
			}
		})
		for i := range streams {
			wg.Go(func() {
				s, err := p.client.OpenRecordStream(ctx, StreamOptions{Scope: "many", DataID: uint64(i)})
				if err != nil {
					t.Error(err)
					return
				}
				for j := 1; j <= records; j++ {
					if _, err := s.Send(ctx, []byte(fmt.Sprintf("%d/%d", i, j))); err != nil {
						t.Error(err)
						return
					}
				}
				if err := s.Barrier(ctx); err != nil {
					t.Error(err)
				}
				_ = s.Close(context.Background())
			})
		}
		wg.Wait()
		require.Equal(t, int64(streams*records), got.Load())
	})
}

func TestWaitAcked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		tx, rx := p.openPair(t, false, StreamOptions{})
		send(t, tx, 5)
		require.Error(t, tx.WaitAcked(context.Background(), 6), "record 6 was not sent")
		done := make(chan error, 1)
		go func() { done <- tx.WaitAcked(context.Background(), 3) }()
		for range 3 {
			_, err := rx.Recv(context.Background())
			require.NoError(t, err)
		}
		start := time.Now()
		require.NoError(t, rx.Ack(3))
		require.NoError(t, <-done)
		require.Equal(t, simRTT/2, time.Since(start))
		require.Equal(t, uint64(3), tx.AckedSeq())
		require.NoError(t, tx.WaitAcked(context.Background(), 2), "already acked")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var be *BarrierError
		require.ErrorAs(t, tx.WaitAcked(ctx, 5), &be)
		require.Equal(t, uint64(3), be.Acked)
	})
}

// TestConcurrentBarriersShareRejections: each rejection is reported to
// exactly one of several concurrent Barriers, the first that returns
// covering it. Acked in two steps, each Barrier gets its own range's;
// acked at once, whichever returns first may take both, and no rejection
// is lost or reported twice.
func TestConcurrentBarriersShareRejections(t *testing.T) {
	for _, stepwise := range []bool{true, false} {
		t.Run(fmt.Sprintf("stepwise=%v", stepwise), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				p := newSimPair(t, nil, nil, nil, simRTT/2)
				tx, rx := p.openPair(t, false, StreamOptions{})
				results := make(chan struct {
					target uint64
					err    error
				}, 2)
				barrier := func(target uint64) {
					go func() {
						results <- struct {
							target uint64
							err    error
						}{target, tx.Barrier(ctx)}
					}()
					synctest.Wait()
				}
				send(t, tx, 5)
				barrier(5)
				send(t, tx, 5)
				barrier(10)
				for seq := uint64(1); seq <= 10; seq++ {
					r, err := rx.Recv(ctx)
					require.NoError(t, err)
					if r.Seq == 2 || r.Seq == 7 {
						require.NoError(t, rx.Reject(r.Seq, CodeRejected, "no"))
					}
					if stepwise && r.Seq == 5 {
						require.NoError(t, rx.Ack(5))
						time.Sleep(simRTT) // the ack reaches the sender, the first Barrier returns
					}
				}
				require.NoError(t, rx.Ack(10))
				reported := map[uint64]uint64{} // seq -> the Barrier that reported it
				for range 2 {
					r := <-results
					var rej *RejectedError
					if r.err == nil {
						continue
					}
					require.ErrorAs(t, r.err, &rej)
					require.Equal(t, len(rej.Records), rej.Count)
					for _, re := range rej.Records {
						require.LessOrEqual(t, re.Seq, r.target, "a Barrier reports only its range")
						_, dup := reported[re.Seq]
						require.False(t, dup, "record %d reported twice", re.Seq)
						reported[re.Seq] = r.target
					}
				}
				require.Len(t, reported, 2, "no rejection is lost")
				if stepwise {
					require.Equal(t, map[uint64]uint64{2: 5, 7: 10}, reported)
				}
			})
		})
	}
}
