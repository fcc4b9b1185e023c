package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/quicrecord"
)

// PingPong is a connection of one transport ready for round trips of one
// record. Create it with [NewPingPong]; Close it when done.
type PingPong struct {
	roundTrip func(ctx context.Context) error
	close     func() error
}

// NewPingPong connects transport tr on loopback with one stream:
//   - recordmux: Send one record, then Barrier (the peer applies with
//     Apply, whose ack leaves at once because that direction is idle);
//   - framer: Send, Flush, WaitAcked (the peer acks as soon as its read
//     buffer is empty);
//   - raw: write size bytes, the peer echoes them, read size bytes.
func NewPingPong(ctx context.Context, env *Env, tr string, size int) (*PingPong, error) {
	switch tr {
	case Recordmux:
		return newPingPongRM(ctx, env, size)
	case Framer:
		return newPingPongFramer(ctx, env, size)
	case Raw:
		return newPingPongRaw(ctx, env, size)
	}
	return nil, fmt.Errorf("ping-pong: unknown transport %q", tr)
}

// RoundTrip sends one record and waits until it is applied (raw: echoed).
func (p *PingPong) RoundTrip(ctx context.Context) error { return p.roundTrip(ctx) }

// Close ends the stream and the connection. It is idempotent.
func (p *PingPong) Close() error { return p.close() }

// once makes a close function idempotent.
func once(f func() error) func() error { return sync.OnceValue(f) }

func newPingPongRM(ctx context.Context, env *Env, size int) (*PingPong, error) {
	p, tx, rx, err := env.openRecordmux(ctx, env.rmConfig(), 1, 1)
	if err != nil {
		return nil, err
	}
	applied := make(chan error, 1)
	go func() { applied <- rx[0].Apply(ctx, func(quicrecord.Record) error { return nil }) }()
	rec := payload(size, 2)
	return &PingPong{
		roundTrip: func(ctx context.Context) error {
			if _, err := tx[0].Send(ctx, rec); err != nil {
				return err
			}
			return tx[0].Barrier(ctx)
		},
		close: once(func() error {
			err := tx[0].Close()
			err = firstErr(err, <-applied, rx[0].Close())
			p.close()
			return err
		}),
	}, nil
}

func newPingPongFramer(ctx context.Context, env *Env, size int) (*PingPong, error) {
	p, tx, rx, err := env.openLoopback(ctx, env.quicConfig(), 1, 1)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- framerReceive(rx[0], 0, nil) }()
	s := framer.NewSender(tx[0], 0)
	rec := payload(size, 2)
	return &PingPong{
		roundTrip: func(ctx context.Context) error {
			seq, err := s.Send(rec)
			if err != nil {
				return err
			}
			if err := s.Flush(); err != nil {
				return err
			}
			return s.WaitAcked(ctx, seq)
		},
		close: once(func() error {
			err := firstErr(s.Close(), <-done)
			p.close()
			return err
		}),
	}, nil
}

// rawEcho reads messages of size bytes from str and writes each back,
// until the end of the stream, then finishes its own direction.
func rawEcho(str *quic.Stream, size int) error {
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(str, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return str.Close()
			}
			return err
		}
		if _, err := str.Write(buf); err != nil {
			return err
		}
	}
}

func newPingPongRaw(ctx context.Context, env *Env, size int) (*PingPong, error) {
	p, tx, rx, err := env.openLoopback(ctx, env.quicConfig(), 1, 1)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- rawEcho(rx[0], size) }()
	rec := payload(size, 2)
	reply := make([]byte, size)
	return &PingPong{
		roundTrip: func(context.Context) error {
			if _, err := tx[0].Write(rec); err != nil {
				return err
			}
			_, err := io.ReadFull(tx[0], reply)
			return err
		},
		close: once(func() error {
			err := tx[0].Close()
			err = firstErr(err, <-done)
			p.close()
			return err
		}),
	}, nil
}
