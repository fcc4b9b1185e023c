package quicrecord

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// recordPayload returns the deterministic content of record seq of a
// stream, so the receiver can check it without shared state.
func recordPayload(rng *rand.Rand, seq uint64, maxLen int) []byte {
	n := rng.IntN(maxLen-8+1) + 8
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, seq)
	for i := 8; i < n; i++ {
		b[i] = byte(seq) ^ byte(i)
	}
	return b
}

func checkPayload(t testing.TB, seq uint64, data []byte) {
	if len(data) < 8 || binary.BigEndian.Uint64(data) != seq {
		t.Fatalf("record %d: wrong header %x", seq, data[:min(len(data), 8)])
	}
	for i := 8; i < len(data); i++ {
		if data[i] != byte(seq)^byte(i) {
			t.Fatalf("record %d: wrong byte at %d", seq, i)
		}
	}
}

// transfer sends n records from tx and applies them on rx, checking
// content, order, duplicates and loss, then waits on Barrier.
func transfer(t testing.TB, tx, rx *RecordStream, n int, maxLen int, seed uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	applied := make(chan error, 1)
	go func() {
		var next uint64 = 1
		applied <- rx.Apply(ctx, func(r Record) error {
			if r.Seq != next {
				return fmt.Errorf("got seq %d, want %d", r.Seq, next)
			}
			checkPayload(t, r.Seq, r.Data)
			next++
			if next > uint64(n) {
				cancel()
			}
			return nil
		})
	}()
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 1; i <= n; i++ {
		seq, err := tx.Send(ctx, recordPayload(rng, uint64(i), maxLen))
		require.NoError(t, err)
		require.Equal(t, uint64(i), seq)
	}
	bctx, bcancel := context.WithTimeout(context.Background(), time.Minute)
	defer bcancel()
	require.NoError(t, tx.Barrier(bctx))
	err := <-applied
	require.ErrorIs(t, err, context.Canceled)
	snap := tx.Snapshot()
	require.Equal(t, uint64(n), snap.Out.AckedSeq)
	require.Equal(t, uint64(n), rx.Snapshot().In.AppliedSeq)
}

func TestTransferLoopback(t *testing.T) {
	for _, serverOpens := range []bool{false, true} {
		for _, reverse := range []bool{false, true} {
			t.Run(fmt.Sprintf("serverOpens=%v/acceptorSends=%v", serverOpens, reverse), func(t *testing.T) {
				p := newLoopbackPair(t, nil, nil)
				o, a := p.openPair(t, serverOpens, StreamOptions{Scope: "test", DataID: 7})
				tx, rx := o, a
				if reverse {
					tx, rx = a, o
				}
				transfer(t, tx, rx, 100_000, 200, 1)
				require.NoError(t, o.Close(context.Background()))
				require.NoError(t, a.Close(context.Background()))
			})
		}
	}
}

func TestTransferSimnet(t *testing.T) {
	t.Parallel()
	for _, serverOpens := range []bool{false, true} {
		t.Run(fmt.Sprintf("serverOpens=%v", serverOpens), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newSimPair(t, nil, nil, nil, 10*time.Millisecond)
				o, a := p.openPair(t, serverOpens, StreamOptions{Scope: "sim"})
				transfer(t, o, a, 20_000, 300, 2)
				require.NoError(t, o.Close(context.Background()))
				require.NoError(t, a.Close(context.Background()))
			})
		})
	}
}

func TestRecvEOF(t *testing.T) {
	p := newLoopbackPair(t, nil, nil)
	o, a := p.openPair(t, false, StreamOptions{})
	ctx := context.Background()
	for i := range 10 {
		_, err := o.Send(ctx, []byte{byte(i)})
		require.NoError(t, err)
	}
	require.NoError(t, o.Close(context.Background()))
	for i := range 10 {
		r, err := a.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), r.Seq)
		require.Equal(t, []byte{byte(i)}, r.Data)
	}
	_, err := a.Recv(ctx)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, a.Close(context.Background()))
}
