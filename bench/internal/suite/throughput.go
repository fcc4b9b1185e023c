package suite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/quicrecord"
)

// rawChunk is the write size of the raw byte-stream ceiling.
const rawChunk = 64 << 10

// openParallel is how many streams are opened at once.
const openParallel = 64

// payload returns n bytes from a ChaCha8 generator seeded with seed.
func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// framedLen is the size of a record with the framer's length prefix.
func framedLen(size int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(size)) + size
}

// ThroughputResult is one measured transfer.
type ThroughputResult struct {
	// Records is the number of records carried (for raw, the bytes
	// written divided by the framed record size, so it may be
	// fractional).
	Records float64
	// Elapsed runs from the first Send to the moment every stream's last
	// record is known to be applied.
	Elapsed time.Duration
	// Allocs counts heap allocations in the process (both ends) during
	// the transfer.
	Allocs uint64
	// Cores is the process CPU time over the wall time.
	Cores float64
}

// sendFunc transfers up to limit records on stream i (until stop, when
// limit is math.MaxInt64) and waits until they are applied.
type sendFunc func(ctx context.Context, i int, limit int64, stop *atomic.Bool) (records float64, err error)

// Throughput is a connection of one transport with streams ready for one
// transfer. Create it with [NewThroughput]; call Run once, then Close.
type Throughput struct {
	streams int
	send    sendFunc
	close   func() error
}

// NewThroughput connects transport tr on loopback with the given number
// of streams, each carrying records of size bytes, and starts the
// receivers: recordmux applies with Apply; the framer acks lazily and
// flushes acks whenever its read buffer runs dry; raw reads into a 64 KiB
// buffer until the end of the stream and replies with one byte.
func NewThroughput(ctx context.Context, env *Env, tr string, size, streams int) (*Throughput, error) {
	switch tr {
	case Recordmux:
		return newThroughputRM(ctx, env, size, streams)
	case Framer:
		return newThroughputFramer(ctx, env, size, streams)
	case Raw:
		return newThroughputRaw(ctx, env, size, streams)
	}
	return nil, fmt.Errorf("throughput: unknown transport %q", tr)
}

// Run carries total records spread evenly over the streams or, when total
// is 0, sends on every stream for d. Timing starts just before the first
// Send and ends when the last stream's records are applied.
func (t *Throughput) Run(ctx context.Context, total int64, d time.Duration) (ThroughputResult, error) {
	var stop atomic.Bool
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var records float64
	var ferr error
	for i := range t.streams {
		limit := int64(math.MaxInt64)
		if total > 0 {
			limit = total / int64(t.streams)
			if int64(i) < total%int64(t.streams) {
				limit++
			}
		}
		wg.Go(func() {
			<-gate
			n, err := t.send(ctx, i, limit, &stop)
			mu.Lock()
			records += n
			if err != nil && ferr == nil {
				ferr = fmt.Errorf("stream %d: %w", i, err)
			}
			mu.Unlock()
		})
	}
	m := startMeter()
	close(gate)
	if total == 0 {
		tm := time.AfterFunc(d, func() { stop.Store(true) })
		defer tm.Stop()
	}
	wg.Wait()
	reg := m.stopAt(time.Now())
	return ThroughputResult{Records: records, Elapsed: reg.elapsed, Allocs: reg.allocs, Cores: reg.cores}, ferr
}

// Close ends the streams and the connection and waits for the receivers.
// It is idempotent.
func (t *Throughput) Close() error { return t.close() }

func newThroughputRM(ctx context.Context, env *Env, size, streams int) (*Throughput, error) {
	p, tx, rx, err := env.openRecordmux(ctx, env.rmConfig(), streams, openParallel)
	if err != nil {
		return nil, err
	}
	applied := make(chan error, len(rx))
	for _, s := range rx {
		go func() { applied <- s.Apply(ctx, func(quicrecord.Record) error { return nil }) }()
	}
	rec := payload(size, 1)
	send := func(ctx context.Context, i int, limit int64, stop *atomic.Bool) (float64, error) {
		s := tx[i]
		var n int64
		for n < limit && (limit != math.MaxInt64 || !stop.Load()) {
			if _, err := s.Send(ctx, rec); err != nil {
				return float64(n), err
			}
			n++
		}
		return float64(n), s.Barrier(ctx)
	}
	closeFn := func() error {
		err := forEach(context.Background(), len(tx), openParallel, func(i int) error { return tx[i].Close() })
		for range rx {
			err = firstErr(err, <-applied)
		}
		for _, s := range rx {
			err = firstErr(err, s.Close())
		}
		p.close()
		return err
	}
	return &Throughput{streams: streams, send: send, close: once(closeFn)}, nil
}

// framerReceive runs a framer receiver until the end of the stream: it
// acks lazily and flushes acks whenever its read buffer is empty, or, with
// ackEvery > 0, also after every ackEvery records. Each record is passed
// to apply first (nil: no work).
func framerReceive(str *quic.Stream, ackEvery uint64, apply func([]byte)) error {
	r := framer.NewReceiver(str, 0)
	for {
		seq, rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Close()
		}
		if err != nil {
			return err
		}
		if apply != nil {
			apply(rec)
		}
		if err := r.AckLazy(seq); err != nil {
			return err
		}
		if r.Buffered() == 0 || (ackEvery > 0 && seq%ackEvery == 0) {
			if err := r.FlushAcks(); err != nil {
				return err
			}
		}
	}
}

func newThroughputFramer(ctx context.Context, env *Env, size, streams int) (*Throughput, error) {
	p, tx, rx, err := env.openLoopback(ctx, env.quicConfig(), streams, openParallel)
	if err != nil {
		return nil, err
	}
	done := make(chan error, len(rx))
	for _, s := range rx {
		go func() { done <- framerReceive(s, 0, nil) }()
	}
	senders := make([]*framer.Sender, len(tx))
	for i, s := range tx {
		senders[i] = framer.NewSender(s, 0)
	}
	rec := payload(size, 1)
	send := func(ctx context.Context, i int, limit int64, stop *atomic.Bool) (float64, error) {
		s := senders[i]
		var n int64
		var last uint64
		for n < limit && (limit != math.MaxInt64 || !stop.Load()) {
			seq, err := s.Send(rec)
			if err != nil {
				return float64(n), err
			}
			last = seq
			n++
		}
		if err := s.Flush(); err != nil {
			return float64(n), err
		}
		if last == 0 {
			return 0, nil
		}
		return float64(n), s.WaitAcked(ctx, last)
	}
	closeFn := func() error {
		err := forEach(context.Background(), len(senders), openParallel, func(i int) error { return senders[i].Close() })
		for range rx {
			err = firstErr(err, <-done)
		}
		p.close()
		return err
	}
	return &Throughput{streams: streams, send: send, close: once(closeFn)}, nil
}

// rawDrain reads str to its end, then replies with one byte and finishes
// the stream.
func rawDrain(str *quic.Stream) error {
	buf := make([]byte, rawChunk)
	for {
		_, err := str.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if _, err := str.Write([]byte{1}); err != nil {
		return err
	}
	return str.Close()
}

func newThroughputRaw(ctx context.Context, env *Env, size, streams int) (*Throughput, error) {
	p, tx, rx, err := env.openLoopback(ctx, env.quicConfig(), streams, openParallel)
	if err != nil {
		return nil, err
	}
	done := make(chan error, len(rx))
	for _, s := range rx {
		go func() { done <- rawDrain(s) }()
	}
	chunk := payload(rawChunk, 1)
	framed := int64(framedLen(size))
	send := func(ctx context.Context, i int, limit int64, stop *atomic.Bool) (float64, error) {
		s := tx[i]
		var written int64
		want := int64(math.MaxInt64)
		if limit != math.MaxInt64 {
			want = limit * framed
		}
		for written < want && (limit != math.MaxInt64 || !stop.Load()) {
			n, err := s.Write(chunk[:min(int64(len(chunk)), want-written)])
			written += int64(n)
			if err != nil {
				return float64(written) / float64(framed), err
			}
		}
		if err := s.Close(); err != nil {
			return float64(written) / float64(framed), err
		}
		var reply [1]byte
		_, err := io.ReadFull(s, reply[:])
		return float64(written) / float64(framed), err
	}
	closeFn := func() error {
		// After a Run every receiver has finished; without one, closing
		// the connection ends them with errors that mean nothing.
		p.close()
		for range rx {
			<-done
		}
		return nil
	}
	return &Throughput{streams: streams, send: send, close: once(closeFn)}, nil
}
