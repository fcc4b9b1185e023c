package transport

import (
	"context"
	"sync"

	"github.com/recordmux/recordmux/bench/internal/framer"
)

// framing is the record format of a transport that runs the framer's
// contract over byte streams (raw, framer, grpc, yamux, smux): length
// prefixed records, or fixed-size records (raw).
type framing struct {
	fixed bool
	// ackEvery is Tuning.AckEvery.
	ackEvery int
}

// sender returns the Sender of one byte stream; release, if not nil, runs
// after Close (to free what the stream's Close leaves open).
func (f framing) sender(str framer.Stream, release func()) Sender {
	s := &framedSender{}
	if f.fixed {
		s.s = framer.NewFixedSender(str, 0)
	} else {
		s.s = framer.NewSender(str, 0)
	}
	s.close = closeOnce(s.s.Close, release)
	return s
}

// closeOnce returns an idempotent close: close, then release (if not
// nil), once.
func closeOnce(close func() error, release func()) func() error {
	return sync.OnceValue(func() error {
		err := close()
		if release != nil {
			release()
		}
		return err
	})
}

// receiver returns the Receiver of one byte stream.
func (f framing) receiver(str framer.Stream, release func()) Receiver {
	r := &framedReceiver{ackEvery: uint64(max(f.ackEvery, 0))}
	if f.fixed {
		r.r = framer.NewFixedReceiver(str, 0)
	} else {
		r.r = framer.NewReceiver(str, 0)
	}
	r.close = closeOnce(r.r.Close, release)
	return r
}

// framedSender is a framer.Sender as a Sender.
type framedSender struct {
	s     *framer.Sender
	close func() error
}

func (f *framedSender) Send(_ context.Context, rec []byte) (uint64, error) { return f.s.Send(rec) }

func (f *framedSender) Flush() error { return f.s.Flush() }

func (f *framedSender) WaitApplied(ctx context.Context, seq uint64) error {
	return f.s.WaitAcked(ctx, seq)
}

func (f *framedSender) Applied() uint64 { return f.s.Acked() }

// Close flushes, finishes the write direction and waits until the
// receiver finished its own after its last ack. It is idempotent.
func (f *framedSender) Close() error { return f.close() }

// framedReceiver is a framer.Receiver as a Receiver. It acks lazily and
// flushes its acks whenever no complete record is left in its read buffer
// (its next read would wait for the network), and at least every ackEvery
// records when ackEvery > 0.
type framedReceiver struct {
	r        *framer.Receiver
	ackEvery uint64
	close    func() error
}

func (f *framedReceiver) Recv(context.Context) (uint64, []byte, error) { return f.r.Next() }

func (f *framedReceiver) Ack(seq uint64) error {
	if err := f.r.AckLazy(seq); err != nil {
		return err
	}
	if !f.r.HasRecord() || (f.ackEvery > 0 && seq%f.ackEvery == 0) {
		return f.r.FlushAcks()
	}
	return nil
}

// Close flushes the acks and finishes the write direction. It is
// idempotent.
func (f *framedReceiver) Close() error { return f.close() }
