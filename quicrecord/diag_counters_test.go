package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord/diag"
)

// TestDiagSnapshotFrozenAfterEnd: once a stream ended, however it ended,
// its Snapshot never changes again: not after more calls on it, not after
// traffic from the peer, not after its connection closes and it detaches,
// and not even if its counters were to move underneath.
func TestDiagSnapshotFrozenAfterEnd(t *testing.T) {
	ends := []struct {
		name  string
		state StreamState
		end   func(t *testing.T, p *pair, s, peer *RecordStream)
	}{
		{"Close", StateClosed, func(t *testing.T, _ *pair, s, _ *RecordStream) { require.NoError(t, s.Close(context.Background())) }},
		{"CloseWithError", StateFailed, func(t *testing.T, _ *pair, s, _ *RecordStream) {
			require.NoError(t, s.CloseWithError(CodeApplicationMin, "bye"))
		}},
		{"peer CloseWithError", StateFailed, func(t *testing.T, _ *pair, _, peer *RecordStream) {
			require.NoError(t, peer.CloseWithError(CodeApplicationMin, "bye"))
		}},
		{"Conn Close", StateClosed, func(t *testing.T, p *pair, s, _ *RecordStream) { require.NoError(t, s.conn.Close()) }},
		{"peer Conn CloseWithError", StateFailed, func(t *testing.T, p *pair, _, peer *RecordStream) {
			require.NoError(t, peer.conn.CloseWithError(CodeApplicationMin, "bye"))
		}},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				p := newSimPair(t, nil, nil, nil, simRTT/2)
				s, peer := p.openPair(t, false, StreamOptions{Scope: "frozen"})
				// Traffic both ways, partly applied, so every kind of
				// counter and gauge is non-zero.
				send(t, s, 20)
				send(t, peer, 10)
				require.NoError(t, s.Flush(ctx))
				require.NoError(t, peer.Flush(ctx))
				time.Sleep(simRTT)
				for range 5 {
					_, err := peer.Recv(ctx)
					require.NoError(t, err)
				}
				require.NoError(t, peer.Ack(5))
				time.Sleep(simRTT)
				live := s.Snapshot()
				require.Equal(t, StateOpen, live.Status.State)
				require.Equal(t, uint64(5), live.Out.AckedSeq)
				require.Equal(t, uint64(10), live.In.BacklogRecords)

				e.end(t, p, s, peer)
				time.Sleep(simRTT)
				synctest.Wait()
				frozen := s.Snapshot()
				require.Equal(t, e.state, frozen.Status.State, "cause: %s", frozen.Status.Cause)
				require.NotEmpty(t, frozen.Status.Cause)

				// More calls on the ended stream.
				_, err := s.Send(ctx, []byte("late"))
				require.Error(t, err)
				_ = s.Flush(ctx) // nil: everything sent was flushed before the end
				require.Error(t, s.Barrier(ctx))
				_ = s.Ack(10)
				_, _ = s.Recv(ctx)
				// The peer keeps trying, if it still can.
				_, _ = peer.Send(ctx, []byte("late"))
				_ = peer.Flush(ctx)
				// diag.Counters moving underneath (they cannot after the loops
				// ended; the freeze must hide it if they did).
				s.ctr.outRecords.Add(100)
				s.ctr.inFrames[kindBatch].Add(100)
				s.ctr.backlogRec.Store(12345)
				time.Sleep(simRTT)
				require.NoError(t, p.client.Close())
				require.NoError(t, p.server.Close())
				synctest.Wait()
				require.Empty(t, p.client.Snapshots(), "detached")
				require.Equal(t, frozen, s.Snapshot())
				require.Equal(t, frozen, s.Snapshot(), "and again")
			})
		})
	}
}

// TestDiagCountersAgreeWithTraffic runs known traffic both ways on three
// streams, with rejections, barriers, and both piggybacked and standalone
// acks, then checks that what one side counts as sent the other counts as
// received, per stream and in the connections' summaries, and that the
// absolute numbers are the traffic's.
func TestDiagCountersAgreeWithTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sl := newSimListener(t, nil, nil, time.Millisecond)
		p := sl.dial(nil)
		const streams = 3
		type side struct {
			s        *RecordStream
			n        int // records it sends
			bytes    uint64
			barriers uint64
			rejects  uint64 // records of the peer it rejects
		}
		var pairs [streams][2]*side
		for i := range streams {
			o, a := p.openPair(t, i == 1, StreamOptions{Scope: "agree", DataID: uint64(i)})
			pairs[i] = [2]*side{{s: o, n: 300 + 100*i}, {s: a, n: 150 * i}}
		}

		var wg, applying sync.WaitGroup
		applyCtx, stopApply := context.WithCancel(ctx)
		for i := range streams {
			for j, sd := range pairs[i] {
				peer := pairs[i][1-j]
				// Apply: the acceptor of stream 0 rejects every tenth record.
				rejectEvery := 0
				if i == 0 && j == 1 {
					rejectEvery = 10
				}
				applying.Go(func() {
					_ = sd.s.Apply(applyCtx, func(r Record) error {
						if rejectEvery > 0 && r.Seq%uint64(rejectEvery) == 0 {
							return &ApplicationError{Code: CodeApplicationMin + 7, Reason: "bad record"}
						}
						return nil
					})
				})
				if rejectEvery > 0 {
					sd.rejects = uint64(peer.n / rejectEvery)
				}
				// Send in bursts with a barrier after each, pausing now and
				// then so that some acks find no batch to ride in.
				wg.Go(func() {
					for k := 1; k <= sd.n; k++ {
						rec := payload(k)
						_, err := sd.s.Send(ctx, rec)
						if err != nil {
							t.Error(err)
							return
						}
						sd.bytes += uint64(len(rec))
						if k%50 == 0 || k == sd.n {
							var re *RecordError
							if err := sd.s.Barrier(ctx); err != nil && !errors.As(err, &re) {
								t.Error(err)
								return
							}
							sd.barriers++
						}
						if k%7 == 0 {
							time.Sleep(300 * time.Microsecond)
						}
					}
				})
			}
		}
		// Everything sent is applied and acked, then quiet.
		time.Sleep(time.Second)
		wg.Wait()
		stopApply()
		applying.Wait()

		var client, server []RecordSnapshot
		for i := range streams {
			a, b := pairs[i][0], pairs[i][1]
			sa, sb := a.s.Snapshot(), b.s.Snapshot()
			for _, c := range []struct {
				tx, rx     *side
				stx, srx   RecordSnapshot
				name       string
				wantRejIn  uint64
				wantRejOut uint64
			}{
				{a, b, sa, sb, fmt.Sprintf("stream %d opener→acceptor", i), b.rejects, a.rejects},
				{b, a, sb, sa, fmt.Sprintf("stream %d acceptor→opener", i), a.rejects, b.rejects},
			} {
				n := uint64(c.tx.n)
				require.Equal(t, n, c.stx.Out.Records, c.name)
				require.Equal(t, n, c.srx.In.Records, c.name)
				require.Equal(t, c.tx.bytes, c.stx.Out.Bytes, c.name)
				require.Equal(t, c.tx.bytes, c.srx.In.Bytes, c.name)
				require.Equal(t, c.stx.Out.Batches, c.srx.In.Batches, c.name)
				require.Equal(t, c.stx.Out.Batches, c.stx.FramesOut.Batch, c.name)
				require.LessOrEqual(t, c.stx.Out.Batches, n, c.name)
				if n > 0 {
					require.Positive(t, c.stx.Out.Batches, c.name)
				}
				require.Equal(t, c.stx.FramesOut, c.srx.FramesIn, c.name)
				require.Equal(t, c.stx.Acks.PiggybackedOut, c.srx.Acks.PiggybackedIn, c.name)
				require.Equal(t, c.stx.Acks.StandaloneOut, c.srx.Acks.StandaloneIn, c.name)
				require.Equal(t, c.stx.Acks.StandaloneOut, c.stx.FramesOut.Ack, c.name)
				require.Equal(t, c.stx.Errors.RejectedLocally, c.srx.Errors.RejectedByPeer, c.name)
				require.Equal(t, c.stx.Errors.RejectedLocally, c.stx.FramesOut.Error, c.name)
				require.Equal(t, c.tx.rejects, c.stx.Errors.RejectedLocally, c.name)
				require.Equal(t, uint64(1), c.stx.FramesOut.Hello, c.name)
				require.Zero(t, c.stx.FramesOut.Unknown, c.name)
				require.Zero(t, c.stx.Errors.ProtocolViolations, c.name)
				require.Equal(t, n, c.stx.Out.LastSeq, c.name)
				require.Equal(t, n, c.stx.Out.FlushedSeq, c.name)
				require.Equal(t, n, c.stx.Out.AckedSeq, c.name)
				require.Equal(t, n, c.srx.In.AppliedSeq, c.name)
				require.Zero(t, c.stx.Out.InFlightRecords, c.name)
				require.Zero(t, c.stx.Out.InFlightBytes, c.name)
				require.Zero(t, c.srx.In.BacklogRecords, c.name)
				require.Zero(t, c.srx.In.BacklogBytes, c.name)
				require.Equal(t, c.tx.barriers, c.stx.Barrier.Calls, c.name)
				if c.tx.barriers > 0 {
					require.Positive(t, c.stx.Barrier.AckWaitTotal, c.name)
					require.GreaterOrEqual(t, c.stx.Barrier.AckWaitTotal, c.stx.Barrier.AckWaitMax, c.name)
				}
			}
			if a.s.conn == p.client {
				client, server = append(client, sa), append(server, sb)
			} else {
				client, server = append(client, sb), append(server, sa)
			}
		}
		// Both kinds of ack happened somewhere, so both were checked.
		sum := Summarize(client, nil)
		require.Positive(t, sum.Acks.PiggybackedOut+sum.Acks.PiggybackedIn)
		require.Positive(t, sum.Acks.StandaloneOut+sum.Acks.StandaloneIn)
		require.Positive(t, sum.Errors.RejectedByPeer+sum.Errors.RejectedLocally)

		// The connection summaries mirror each other and equal the sum
		// of the streams.
		cd, sd, ld := p.client.Diagnostics(), p.server.Diagnostics(), sl.ln.Diagnostics()
		require.Equal(t, Summarize(client, nil), cd)
		require.Equal(t, Summarize(server, nil), sd)
		require.Equal(t, sd, ld, "the listener has one connection")
		require.Equal(t, cd.Out, sd.In)
		require.Equal(t, cd.In, sd.Out)
		require.Equal(t, cd.FramesOut, sd.FramesIn)
		require.Equal(t, cd.FramesIn, sd.FramesOut)
		require.Equal(t, cd.Acks.PiggybackedOut, sd.Acks.PiggybackedIn)
		require.Equal(t, cd.Acks.StandaloneOut, sd.Acks.StandaloneIn)
		require.Equal(t, cd.Errors.RejectedLocally, sd.Errors.RejectedByPeer)
		require.Equal(t, cd.Errors.RejectedByPeer, sd.Errors.RejectedLocally)
		require.Equal(t, diag.StreamCounts{Total: streams, Open: streams, ByVersion: []diag.VersionCount{{Version: HighestProtocolVersion, Streams: streams}}}, cd.Streams)
		require.Empty(t, cd.TopBacklog, "nothing waits to be applied")
		require.Empty(t, cd.TopInFlight, "nothing is in flight")
	})
}
