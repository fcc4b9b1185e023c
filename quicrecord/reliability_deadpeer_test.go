package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// Timeouts of the dead-peer tests: small, so the virtual clock has little
// to skip, and in the ratio of the defaults.
const (
	deadIdle      = 2 * time.Second
	deadKeepAlive = 500 * time.Millisecond
	deadLatency   = 10 * time.Millisecond // one way; no jitter, so arrival = departure + deadLatency
)

func deadPeerConfig() *Config {
	q := DefaultQUICConfig()
	q.MaxIdleTimeout = deadIdle
	q.KeepAlivePeriod = deadKeepAlive
	return &Config{QUIC: q}
}

// TestReliabilityDeadPeer: the peer vanishes while records are unacked.
// Barrier returns a *BarrierError carrying the last acked sequence number
// and a *ConnError that matches os.ErrDeadlineExceeded (the idle timeout)
// no later than MaxIdleTimeout + KeepAlivePeriod + 100 ms after the peer
// went away, and at exactly the virtual time quic-go's idle timer gives:
// the idle period starts at the later of the last packet received and the
// first ack-eliciting packet sent after it, which is the keep-alive PING
// (KeepAlivePeriod after the last packet received) or the first packet of
// new records, whichever comes first.
//
// How the peer vanishes:
//   - cut: the router drops everything from then on;
//   - cut+send: the same, and the sender sends 20 more records at once;
//   - endpoint closed: the receiver's simnet endpoint is closed without
//     closing QUIC, as when its process dies; nothing more leaves it.
func TestReliabilityDeadPeer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cut", "cut+send", "endpoint closed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				cfg := deadPeerConfig()
				p, n := newRelSimPair(t, cfg, cfg, linkOpts{latency: deadLatency})
				tx, rx := p.openPair(t, false, StreamOptions{Scope: "dead"})
				chk := simtest.NewChecker(0)
				for seq := uint64(1); seq <= 100; seq++ {
					chk.Sending(seq)
					got, err := tx.Send(ctx, simtest.Payload(0, seq, 40))
					require.NoError(t, err)
					chk.Sent(got)
				}
				// The receiver applies 60 of them; 40 stay in its backlog.
				for range 60 {
					r, err := rx.Recv(ctx)
					require.NoError(t, err)
					require.NoError(t, chk.Delivered(r.Seq, r.Data))
				}
				chk.Applied(60)
				require.NoError(t, rx.Ack(60))
				time.Sleep(300 * time.Millisecond) // everything delivered and acked at the QUIC level
				require.Equal(t, uint64(60), tx.Snapshot().Out.AckedSeq)
				chk.Acked(60)

				t0 := time.Now()
				sendAt := time.Time{}
				switch mode {
				case "cut":
					n.router.Cut()
				case "cut+send":
					n.router.Cut()
					for seq := uint64(101); seq <= 120; seq++ {
						chk.Sending(seq)
						got, err := tx.Send(ctx, simtest.Payload(0, seq, 40))
						require.NoError(t, err)
						chk.Sent(got)
					}
					require.NoError(t, tx.Flush(ctx))
					sendAt = t0
				case "endpoint closed":
					require.NoError(t, n.Conn(simServerAddr).Close())
				}
				err := tx.Barrier(ctx)
				elapsed := time.Since(t0)

				var be *BarrierError
				require.ErrorAs(t, err, &be)
				require.Equal(t, uint64(60), be.Acked, "the last acked seq")
				require.Equal(t, tx.Snapshot().Out.LastSeq, be.Target)
				chk.Acked(be.Acked)
				require.NoError(t, chk.Verify(false))
				var ce *ConnError
				require.ErrorAs(t, err, &ce, "the connection died: %v", err)
				require.ErrorIs(t, err, os.ErrDeadlineExceeded, "an idle timeout")
				require.ErrorIs(t, err, net.ErrClosed)
				var idle *quic.IdleTimeoutError
				require.ErrorAs(t, err, &idle)

				lastRecv := n.router.StatsTo(simClientAddr).LastForwarded.Add(deadLatency)
				idleStart := lastRecv.Add(deadKeepAlive) // the keep-alive PING
				if !sendAt.IsZero() && sendAt.Before(idleStart) {
					idleStart = sendAt // the first packet of the new records
				}
				t.Logf("Barrier failed %v after the peer vanished (last packet received %v before); %v", elapsed, t0.Sub(lastRecv), err)
				require.Equal(t, idleStart.Add(deadIdle), time.Now(), "Barrier fails when quic-go's idle timer fires")
				require.LessOrEqual(t, elapsed, deadIdle+deadKeepAlive+100*time.Millisecond)

				// Every other call fails the same way (once the stream's
				// loops noticed; TestReliabilitySendAfterStreamEnd checks
				// the moment the stream's context is done).
				synctest.Wait()
				_, err = tx.Send(ctx, []byte("late"))
				require.ErrorIs(t, err, os.ErrDeadlineExceeded)
				require.Equal(t, StateFailed, tx.Snapshot().Status.State)
			})
		})
	}
}

// TestReliabilitySendAfterStreamEnd: once a stream's Context is done
// because its connection died (here an idle timeout after the peer
// vanished), Send must refuse new records with the terminal error, as its
// documentation says ("After the stream ends Send returns its terminal
// error"), rather than queue them on a stream that will never send them.
// The window between the context's end and the writer loop noticing it
// is short (a few percent of attempts hit it), so the check is repeated on
// 100 connections.
func TestReliabilitySendAfterStreamEnd(t *testing.T) {
	t.Parallel()
	for i := range 100 {
		synctest.Test(t, func(t *testing.T) {
			cfg := deadPeerConfig()
			p, n := newRelSimPair(t, cfg, cfg, linkOpts{latency: deadLatency})
			tx, _ := p.openPair(t, false, StreamOptions{DataID: uint64(i)})
			n.router.Cut()
			<-tx.Context().Done()
			seq, err := tx.Send(context.Background(), []byte("late"))
			require.Error(t, err, "attempt %d: Send accepted record %d on an ended stream (cause: %v)", i, seq, context.Cause(tx.Context()))
			require.ErrorIs(t, err, net.ErrClosed)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		})
	}
}

// TestReliabilityPeerErrorReachesBarrier: when the peer ends the stream or
// the connection with an error code, a Barrier waiting on unacked records
// and a Send blocked on the full window both return that code half a
// round trip later (one way; the existing TestCloseWithErrorEachSide
// covers an idle sender). The sender's window is full, so the error
// travels while the receiver holds records it never applied.
func TestReliabilityPeerErrorReachesBarrier(t *testing.T) {
	t.Parallel()
	const code = CodeApplicationMin + 77
	for _, how := range []string{"stream CloseWithError", "conn CloseWithError"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				scfg := &Config{Stream: StreamConfig{MaxApplyBacklogRecords: 50}}
				p := newSimPair(t, nil, scfg, nil, simRTT/2)
				tx, rx := p.openPair(t, false, StreamOptions{})
				send(t, tx, 50)
				require.NoError(t, tx.Flush(ctx))
				barrier := make(chan error, 1)
				go func() { barrier <- tx.Barrier(ctx) }()
				blocked := make(chan error, 1)
				go func() {
					_, err := tx.Send(ctx, []byte("one too many"))
					blocked <- err
				}()
				time.Sleep(simRTT) // all 50 arrive; the 51st Send waits for room
				synctest.Wait()
				require.Empty(t, blocked, "Send blocks on the full window")

				start := time.Now()
				switch how {
				case "stream CloseWithError":
					require.NoError(t, rx.CloseWithError(code, "bye"))
				case "conn CloseWithError":
					require.NoError(t, p.server.CloseWithError(code, "bye"))
				}
				err := <-barrier
				require.Equal(t, simRTT/2, time.Since(start), "the code reaches Barrier one way later")
				var be *BarrierError
				require.ErrorAs(t, err, &be)
				require.Zero(t, be.Acked)
				require.Equal(t, code, CodeOf(err), "Barrier carries the peer's code: %v", err)
				err = <-blocked
				require.Equal(t, code, CodeOf(err), "Send carries the peer's code: %v", err)
				if how == "conn CloseWithError" {
					var ce *ConnError
					require.ErrorAs(t, err, &ce, "a connection's code is a *ConnError's")
					require.NotErrorIs(t, err, &StreamError{Code: code}, "and matches no stream sentinel")
				} else {
					require.ErrorIs(t, err, &StreamError{Code: code})
				}
				require.Equal(t, simRTT/2, time.Since(start))
			})
		})
	}
}

// TestReliabilityResetWithFullBacklogReachesBarrier: the stream carries
// records both ways. Side B has sent records the peer has not applied and
// waits in Barrier; B's own apply backlog is full, because B's
// application has not applied what A sent. A resets the stream with an
// error code. B's Barrier must return A's code within one round trip, as
// it does when B's backlog has room (TestCloseWithErrorEachSide).
func TestReliabilityResetWithFullBacklogReachesBarrier(t *testing.T) {
	t.Parallel()
	const code = CodeApplicationMin + 78
	for _, backlogFull := range []bool{false, true} {
		t.Run(fmt.Sprintf("backlogFull=%v", backlogFull), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				bcfg := &Config{Stream: StreamConfig{MaxApplyBacklogRecords: 20}}
				p := newSimPair(t, nil, bcfg, nil, simRTT/2)
				a, b := p.openPair(t, false, StreamOptions{})
				n := 10
				if backlogFull {
					n = 20
				}
				send(t, a, n) // fills B's backlog when n == 20
				send(t, b, 5)
				require.NoError(t, b.Flush(ctx))
				time.Sleep(simRTT)
				require.Equal(t, uint64(n), b.Snapshot().In.BacklogRecords)

				barrier := make(chan error, 1)
				go func() { barrier <- b.Barrier(ctx) }()
				synctest.Wait()
				start := time.Now()
				require.NoError(t, a.CloseWithError(code, "reset by A"))
				bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				var err error
				select {
				case err = <-barrier:
				case <-bctx.Done():
					t.Fatalf("Barrier still waiting %v after the peer reset the stream", time.Since(start))
				}
				require.LessOrEqual(t, time.Since(start), simRTT)
				require.ErrorIs(t, err, &StreamError{Code: code}, "%v", err)
				// What A sent before the reset stays deliverable, then the code.
				for i := 1; i <= n; i++ {
					_, err := b.Recv(ctx)
					require.NoError(t, err)
				}
				_, err = b.Recv(ctx)
				require.ErrorIs(t, err, &StreamError{Code: code})
				require.True(t, errors.Is(err, net.ErrClosed))
			})
		})
	}
}
