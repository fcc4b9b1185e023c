package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/quicrecord"
)

// manySize is the record each stream carries in the many-streams round.
const manySize = 64

// manyOps is one transport as the many-streams harness drives it. Each
// function handles stream i of its side and is called from a pool of
// openParallel goroutines.
type manyOps struct {
	open                 func(ctx context.Context) error
	send, recv           func(ctx context.Context, i int) error
	closeSend, closeRecv func(i int) error
	teardown             func()
}

// manyRun opens n streams on one connection, measures heap and
// goroutines per stream, carries one record on every stream, and closes
// them all.
func (r *runner) manyRun(ctx context.Context, tr string) (map[string]float64, error) {
	n := r.opts.ManyStreams
	qc := r.env.quicConfig()
	qc.MaxIncomingStreams = int64(n + 64)
	ops, err := r.manySetup(ctx, tr, n, qc)
	if err != nil {
		return nil, err
	}
	defer ops.teardown()

	baseHeap := settleHeap()
	baseG := runtime.NumGoroutine()
	t0 := time.Now()
	if err := ops.open(ctx); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	openTime := time.Since(t0)
	heap := settleHeap()
	goroutines := runtime.NumGoroutine() - baseG

	t1 := time.Now()
	recvDone := make(chan error, 1)
	go func() { recvDone <- forEach(ctx, n, openParallel, func(i int) error { return ops.recv(ctx, i) }) }()
	err = forEach(ctx, n, openParallel, func(i int) error { return ops.send(ctx, i) })
	err = firstErr(err, <-recvDone)
	roundTime := time.Since(t1)
	if err != nil {
		return nil, fmt.Errorf("round: %w", err)
	}

	t2 := time.Now()
	go func() { recvDone <- forEach(ctx, n, openParallel, ops.closeRecv) }()
	err = forEach(ctx, n, openParallel, ops.closeSend)
	err = firstErr(err, <-recvDone)
	closeTime := time.Since(t2)
	if err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return map[string]float64{
		MRecordsPerSec:          float64(n) / roundTime.Seconds(),
		MMBPerSec:               float64(n) * manySize / 1e6 / roundTime.Seconds(),
		"open_per_sec":          float64(n) / openTime.Seconds(),
		"close_per_sec":         float64(n) / closeTime.Seconds(),
		"round_ms":              float64(roundTime) / float64(time.Millisecond),
		"heap_kib_per_stream":   (float64(heap) - float64(baseHeap)) / 1024 / float64(n),
		"goroutines_per_stream": float64(goroutines) / float64(n),
	}, nil
}

func (r *runner) manySetup(ctx context.Context, tr string, n int, qc *quic.Config) (*manyOps, error) {
	rec := payload(manySize, 6)
	switch tr {
	case Recordmux:
		cfg := r.env.rmConfig()
		cfg.QUIC = qc
		p, err := r.env.dialRecordmux(ctx, cfg)
		if err != nil {
			return nil, err
		}
		var tx, rx []*quicrecord.RecordStream
		return &manyOps{
			open: func(ctx context.Context) error {
				var err error
				tx, rx, err = p.openStreams(ctx, n, openParallel)
				return err
			},
			send: func(ctx context.Context, i int) error {
				if _, err := tx[i].Send(ctx, rec); err != nil {
					return err
				}
				return tx[i].Barrier(ctx)
			},
			recv: func(ctx context.Context, i int) error {
				r, err := rx[i].Recv(ctx)
				if err != nil {
					return err
				}
				return rx[i].Ack(r.Seq)
			},
			closeSend: func(i int) error { return tx[i].Close() },
			closeRecv: func(i int) error { return rx[i].Close() },
			teardown:  p.close,
		}, nil
	case Framer, Raw:
		p, err := r.env.dialLoopback(ctx, qc)
		if err != nil {
			return nil, err
		}
		var tx, rx []*quic.Stream
		var senders []*framer.Sender
		var receivers []*framer.Receiver
		ops := &manyOps{
			open: func(ctx context.Context) error {
				var err error
				tx, rx, err = p.openStreams(ctx, n, openParallel)
				if err != nil || tr == Raw {
					return err
				}
				senders = make([]*framer.Sender, n)
				receivers = make([]*framer.Receiver, n)
				for i := range n {
					senders[i] = framer.NewSender(tx[i], 0)
					receivers[i] = framer.NewReceiver(rx[i], 0)
				}
				return nil
			},
			teardown: p.close,
		}
		if tr == Framer {
			ops.send = func(ctx context.Context, i int) error {
				seq, err := senders[i].Send(rec)
				if err != nil {
					return err
				}
				if err := senders[i].Flush(); err != nil {
					return err
				}
				return senders[i].WaitAcked(ctx, seq)
			}
			ops.recv = func(_ context.Context, i int) error {
				seq, _, err := receivers[i].Next()
				if err != nil {
					return err
				}
				return receivers[i].Ack(seq)
			}
			ops.closeSend = func(i int) error { return senders[i].Close() }
			ops.closeRecv = func(i int) error {
				if _, _, err := receivers[i].Next(); !errors.Is(err, io.EOF) {
					return fmt.Errorf("want end of stream, got %w", err)
				}
				return receivers[i].Close()
			}
			return ops, nil
		}
		ops.send = func(_ context.Context, i int) error {
			if _, err := tx[i].Write(rec); err != nil {
				return err
			}
			var b [1]byte
			_, err := io.ReadFull(tx[i], b[:])
			return err
		}
		ops.recv = func(_ context.Context, i int) error {
			buf := make([]byte, manySize)
			if _, err := io.ReadFull(rx[i], buf); err != nil {
				return err
			}
			_, err := rx[i].Write(buf[:1])
			return err
		}
		// Both directions end with a FIN that the other side reads.
		ops.closeSend = func(i int) error {
			if err := tx[i].Close(); err != nil {
				return err
			}
			return expectEOF(tx[i])
		}
		ops.closeRecv = func(i int) error {
			if err := expectEOF(rx[i]); err != nil {
				return err
			}
			return rx[i].Close()
		}
		return ops, nil
	}
	return nil, fmt.Errorf("many-streams: unknown transport %q", tr)
}

// expectEOF reads the end of a stream.
func expectEOF(s *quic.Stream) error {
	var b [1]byte
	n, err := s.Read(b[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("want end of stream, got %d bytes, %w", n, err)
}
