package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// contractRecords and contractStreams size the contract test: enough
// records to fill the 64 KiB buffers several times over.
const (
	contractRecords = 2000
	contractStreams = 3
	contractSize    = 200
)

// record returns the record seq of stream i: its first 16 bytes name
// both, the rest is filler that depends on them.
func record(i int, seq uint64) []byte {
	b := make([]byte, contractSize)
	binary.BigEndian.PutUint64(b, uint64(i))
	binary.BigEndian.PutUint64(b[8:], seq)
	for j := 16; j < len(b); j++ {
		b[j] = byte(uint64(i)*31 + seq*7 + uint64(j))
	}
	return b
}

// TestContract runs every transport through the record contract over
// loopback: records arrive complete and in order on each stream; an ack
// never claims a record the receiver has not applied, never goes back,
// and finally covers every record; Close is clean on both ends; and no
// goroutine outlives the listener and connection.
func TestContract(t *testing.T) {
	for _, tr := range All(Options{}) {
		t.Run(tr.Name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			runContract(t, tr)
		})
	}
}

func runContract(t *testing.T, tr Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := NewIdentity()
	require.NoError(t, err)
	ln, err := tr.Listen(ctx, Sockets, "127.0.0.1:0", id)
	require.NoError(t, err)
	defer func() { require.NoError(t, ln.Close()) }()

	// applied[i] counts the records the server applied on the stream
	// whose records name client stream i.
	var applied [contractStreams]atomic.Uint64
	var serverWG sync.WaitGroup
	serverErrs := make(chan error, contractStreams)
	serverWG.Go(func() {
		for range contractStreams {
			r, err := ln.Accept(ctx)
			if err != nil {
				serverErrs <- err
				return
			}
			serverWG.Go(func() { serverErrs <- applyChecked(ctx, r, &applied) })
		}
	})

	c, err := tr.Dial(ctx, Sockets, ln.Addr().String(), id.Pin())
	require.NoError(t, err)
	var clientWG sync.WaitGroup
	clientErrs := make(chan error, contractStreams)
	for i := range contractStreams {
		s, err := c.Open(ctx)
		require.NoError(t, err)
		clientWG.Go(func() { clientErrs <- sendChecked(ctx, s, i, &applied[i]) })
	}
	clientWG.Wait()
	close(clientErrs)
	for err := range clientErrs {
		require.NoError(t, err)
	}
	serverWG.Wait()
	close(serverErrs)
	for err := range serverErrs {
		require.NoError(t, err, "server: the stream ends cleanly after the sender's Close")
	}
	for i := range contractStreams {
		require.Equal(t, uint64(contractRecords), applied[i].Load())
	}
	require.NoError(t, c.Close())
}

// sendChecked sends the records of stream i, waits for a few of them to
// be applied on the way (checking the receiver's count), then for all of
// them, and closes.
func sendChecked(ctx context.Context, s Sender, i int, applied *atomic.Uint64) error {
	var prev uint64
	for seq := uint64(1); seq <= contractRecords; seq++ {
		got, err := s.Send(ctx, record(i, seq))
		if err != nil {
			return err
		}
		if got != seq {
			return fmt.Errorf("stream %d: Send returned seq %d, want %d", i, got, seq)
		}
		a := s.Applied()
		if a < prev || a > seq {
			return fmt.Errorf("stream %d: ack %d after %d with %d sent", i, a, prev, seq)
		}
		prev = a
		if seq%500 == 0 {
			if err := s.Flush(); err != nil {
				return err
			}
			if err := s.WaitApplied(ctx, seq); err != nil {
				return err
			}
			if n := applied.Load(); n < seq {
				return fmt.Errorf("stream %d: ack of %d but %d applied", i, seq, n)
			}
		}
	}
	if err := s.Flush(); err != nil {
		return err
	}
	if err := s.WaitApplied(ctx, contractRecords); err != nil {
		return err
	}
	if got := s.Applied(); got != contractRecords {
		return fmt.Errorf("stream %d: Applied %d after the last ack, want %d", i, got, contractRecords)
	}
	return s.Close()
}

// applyChecked applies one stream with Apply, checking that its records
// come in order and intact, and counts them in applied.
func applyChecked(ctx context.Context, r Receiver, applied *[contractStreams]atomic.Uint64) error {
	var want uint64 = 1
	stream := -1
	var bad error
	err := Apply(ctx, r, func(rec []byte) {
		if bad != nil {
			return
		}
		if len(rec) != contractSize {
			bad = fmt.Errorf("record of %d bytes", len(rec))
			return
		}
		i, seq := int(binary.BigEndian.Uint64(rec)), binary.BigEndian.Uint64(rec[8:])
		if stream < 0 && i >= 0 && i < contractStreams {
			stream = i
		}
		if i != stream || seq != want || string(rec) != string(record(i, seq)) {
			bad = fmt.Errorf("got record %d of stream %d, want %d of %d", seq, i, want, stream)
			return
		}
		want++
		applied[i].Add(1)
	})
	if bad != nil {
		return bad
	}
	if err == nil && want != contractRecords+1 {
		return errors.New("stream ended early")
	}
	return err
}

// TestWrongPin: a client that pins another key cannot connect, on every
// transport.
func TestWrongPin(t *testing.T) {
	for _, tr := range []Transport{Raw(), Yamux{}, GRPC{}} {
		t.Run(tr.Name(), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			id, err := NewIdentity()
			require.NoError(t, err)
			other, err := NewIdentity()
			require.NoError(t, err)
			ln, err := tr.Listen(ctx, Sockets, "127.0.0.1:0", id)
			require.NoError(t, err)
			defer func() { require.NoError(t, ln.Close()) }()
			dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
			defer dcancel()
			c, err := tr.Dial(dctx, Sockets, ln.Addr().String(), other.Pin())
			if err == nil {
				_ = c.Close()
			}
			require.Error(t, err)
		})
	}
}
