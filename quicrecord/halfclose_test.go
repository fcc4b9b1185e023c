package quicrecord

import (
	"context"
	"fmt"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// recvN receives n records and checks their sequence numbers follow from.
func recvN(t *testing.T, s *RecordStream, from uint64, n int) {
	t.Helper()
	for i := range n {
		r, err := s.Recv(context.Background())
		require.NoError(t, err)
		require.Equal(t, from+uint64(i), r.Seq)
	}
}

// TestCloseWrite: the side that half-closes first (either one) ends its
// records, and the other side gets io.EOF after the last of them; then
// the other side keeps sending and the first keeps receiving and acking
// them, so both Barriers succeed; when the second side half-closes too
// the stream ends gracefully by itself, every record of both directions
// acked, one DONE each way.
func TestCloseWrite(t *testing.T) {
	t.Parallel()
	for _, openerFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("openerFirst=%v", openerFirst), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				p := newSimPair(t, nil, nil, nil, simRTT/2)
				o, a := p.openPair(t, false, StreamOptions{})
				require.True(t, o.Negotiated().Features.Has(FeatureHalfClose))
				first, second := o, a
				if !openerFirst {
					first, second = a, o
				}

				send(t, first, 5)
				require.NoError(t, first.CloseWrite(ctx))
				require.NoError(t, first.CloseWrite(ctx), "a second CloseWrite returns at once")
				_, err := first.Send(ctx, []byte("late"))
				require.ErrorIs(t, err, ErrClosed)
				recvN(t, second, 1, 5)
				_, err = second.Recv(ctx)
				require.ErrorIs(t, err, io.EOF, "the first side's records ended")
				require.NoError(t, second.Ack(5))
				require.NoError(t, first.Barrier(ctx), "acks of the first side's records still arrive")

				send(t, second, 7)
				recvN(t, first, 1, 7)
				require.NoError(t, first.Reject(7, CodeRejected, "no"))
				var rej *RejectedError
				require.ErrorAs(t, second.Barrier(ctx), &rej, "the half-closed side acks and rejects")
				require.Equal(t, 1, rej.Count)
				require.Equal(t, uint64(7), rej.Records[0].Seq)

				require.NoError(t, second.CloseWrite(ctx))
				_, err = first.Recv(ctx)
				require.ErrorIs(t, err, io.EOF)
				<-first.Context().Done()
				<-second.Context().Done()
				for _, s := range []*RecordStream{first, second} {
					snap := s.Snapshot()
					require.Equal(t, StateClosed, snap.Status.State, "%v", snap.Status.Cause)
					require.Equal(t, uint64(1), snap.FramesOut.Done)
					require.Equal(t, uint64(1), snap.FramesIn.Done)
					require.Zero(t, snap.Errors.ProtocolViolations)
					require.Zero(t, snap.Out.InFlightRecords, "every record was acked")
					require.NoError(t, s.Close(ctx))
				}
				require.ErrorIs(t, first.CloseWrite(ctx), ErrClosed, "CloseWrite after Close")
			})
		})
	}
}

// TestCloseWriteWithoutHalfClose: with a peer that does not speak
// half-close (protocol version 1, or the feature disabled), CloseWrite
// ends the direction with a FIN: the peer still gets io.EOF after the
// last record and its acks still reach the first side, but the first
// side can no longer ack the peer's records, so the peer's Barrier fails.
// Both orders, the older peer half-closing first or second.
func TestCloseWriteWithoutHalfClose(t *testing.T) {
	for _, older := range []struct {
		name string
		cfg  *Config
	}{
		{"v1 peer", &Config{MaxProtocolVersion: 1}},
		{"peer without half-close", &Config{DisableFeatures: FeatureHalfClose}},
	} {
		for _, olderFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/olderFirst=%v", older.name, olderFirst), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					p := newSimPair(t, nil, older.cfg, nil, simRTT/2)
					o, a := p.openPair(t, false, StreamOptions{})
					require.False(t, o.Negotiated().Features.Has(FeatureHalfClose))
					first, second := o, a // the acceptor is the older peer
					if olderFirst {
						first, second = a, o
					}

					send(t, first, 5)
					require.NoError(t, first.CloseWrite(ctx))
					recvN(t, second, 1, 5)
					_, err := second.Recv(ctx)
					require.ErrorIs(t, err, io.EOF)
					require.NoError(t, second.Ack(5))
					require.NoError(t, first.Barrier(ctx), "the peer's direction still carries acks")

					send(t, second, 3)
					recvN(t, first, 1, 3)
					require.NoError(t, first.Ack(3), "accepted, but it cannot reach the peer")
					bctx, cancel := context.WithTimeout(ctx, time.Second)
					defer cancel()
					var be *BarrierError
					require.ErrorAs(t, second.Barrier(bctx), &be, "no ack after the FIN")
					require.Zero(t, be.Acked)
					require.Zero(t, first.Snapshot().FramesOut.Done, "no DONE without the feature")

					require.NoError(t, second.CloseWrite(ctx))
					_, err = first.Recv(ctx)
					require.ErrorIs(t, err, io.EOF)
					<-first.Context().Done()
					<-second.Context().Done()
					require.Equal(t, StateClosed, first.Snapshot().Status.State)
					require.Equal(t, StateClosed, second.Snapshot().Status.State)
					require.NoError(t, first.Close(ctx))
					require.NoError(t, second.Close(ctx))
				})
			})
		}
	}
}

// TestCloseWriteThenClose: Close after CloseWrite finishes the direction
// at once (the FIN follows the DONE), stops receiving, and the peer sees
// the end of the records, then the end of the stream.
func TestCloseWriteThenClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		o, a := p.openPair(t, false, StreamOptions{})
		send(t, o, 2)
		require.NoError(t, o.CloseWrite(ctx))
		require.NoError(t, o.Close(ctx))
		recvN(t, a, 1, 2)
		_, err := a.Recv(ctx)
		require.ErrorIs(t, err, io.EOF)
		require.NoError(t, a.Close(ctx))
		require.Equal(t, StateClosed, o.Snapshot().Status.State)
		require.Equal(t, uint64(1), a.Snapshot().FramesIn.Done)
	})
}
