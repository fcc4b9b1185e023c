package suite

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/bench/internal/mux"
	"github.com/recordmux/recordmux/bench/internal/pace"
	"github.com/recordmux/recordmux/quicrecord"
)

// pacedStream is the latency stream of one transport as the paced harness
// drives it.
type pacedStream struct {
	// send queues one record and returns its sequence number (from 1).
	send func(ctx context.Context, rec []byte) (uint64, error)
	// flush, if set, is called after each burst of sends.
	flush func() error
	// wait returns once record seq is applied. nil means the transport
	// reports applied times to the clock itself (raw's echo reader).
	wait func(ctx context.Context, seq uint64) error
	// finish returns once every record up to last is applied.
	finish func(ctx context.Context, last uint64) error
	// clock collects applied times.
	clock *ackClock
	close func() error
}

// pacedParams describe a paced run.
type pacedParams struct {
	rate     float64       // records per second
	duration time.Duration // of sending
	warmup   time.Duration // records due before this are not counted
	size     int
	// sleepOnly makes the pacer sleep without spinning: required inside
	// a testing/synctest bubble (where sleeps are exact anyway).
	sleepOnly bool
	// pace overrides the pacer options when set.
	pace *pace.Options
}

// pacedOutcome is what a paced run measured.
type pacedOutcome struct {
	lat    []time.Duration // Send-to-applied latencies after the warm-up
	lag    []time.Duration // how late each Send started against the schedule
	sent   int
	region region
}

// runPaced sends records of prm.size at prm.rate for prm.duration and
// measures, for each, the time from the start of its Send until it was
// known to be applied. How late each Send started against the schedule is
// measured too (lag): a large lag means the sender could not keep up, and
// the records it delayed would have waited that long on top of their
// latency (coordinated omission), so the two are reported side by side.
func runPaced(ctx context.Context, st *pacedStream, prm pacedParams) (pacedOutcome, error) {
	rec := payload(prm.size, 3)
	var pr *prober
	if st.wait != nil {
		pr = startProber(ctx, st.clock, st.wait)
	}
	opts := &pace.Options{}
	if prm.sleepOnly {
		opts.SpinWindow = -1
	}
	if prm.pace != nil {
		opts = prm.pace
	}
	capacity := int(prm.rate*prm.duration.Seconds()) + 64
	sendAt := make([]time.Time, 0, capacity)
	lag := make([]time.Duration, 0, capacity)
	m := startMeter()
	start := m.start
	end := start.Add(prm.duration)
	p := pace.New(start, prm.rate, opts)
	var last uint64
	var err error
loop:
	for {
		n, first := p.Wait()
		if !first.Before(end) {
			break
		}
		base := p.Next() - int64(n)
		for j := range int64(n) {
			due := p.At(base + j)
			if !due.Before(end) {
				break
			}
			var seq uint64
			t0 := time.Now()
			if seq, err = st.send(ctx, rec); err != nil {
				break loop
			}
			if seq != uint64(len(sendAt)+1) {
				err = fmt.Errorf("paced: send returned seq %d, want %d", seq, len(sendAt)+1)
				break loop
			}
			sendAt = append(sendAt, t0)
			if !due.Before(start.Add(prm.warmup)) {
				lag = append(lag, t0.Sub(due))
			}
			last = seq
		}
		if st.flush != nil {
			if err = st.flush(); err != nil {
				break
			}
		}
		if pr != nil {
			pr.offer(last)
		}
	}
	if err == nil && last > 0 {
		err = st.finish(ctx, last)
	}
	finished := time.Now()
	reg := m.stopAt(finished)
	if pr != nil {
		err = firstErr(err, pr.stop())
	}
	if err != nil {
		return pacedOutcome{}, err
	}
	if last > 0 {
		st.clock.add(last, finished)
	}
	applied := st.clock.times(len(sendAt))
	return pacedOutcome{
		lat:    latencies(sendAt, applied, start.Add(prm.warmup)),
		lag:    lag,
		sent:   len(sendAt),
		region: reg,
	}, nil
}

// newPacedStream sets up the latency stream of transport tr on loopback.
func newPacedStream(ctx context.Context, env *Env, tr string, size int) (*pacedStream, error) {
	switch tr {
	case Recordmux:
		p, tx, rx, err := env.openRecordmux(ctx, env.rmConfig(), 1, 1)
		if err != nil {
			return nil, err
		}
		st := rmPacedStream(ctx, tx[0], rx[0])
		inner := st.close
		st.close = func() error { err := inner(); p.close(); return err }
		return st, nil
	case Framer, Raw:
		p, tx, rx, err := env.openLoopback(ctx, env.quicConfig(), 1, 1)
		if err != nil {
			return nil, err
		}
		var st *pacedStream
		if tr == Framer {
			st = framerPacedStream(tx[0], rx[0])
		} else {
			st = rawPacedStream(tx[0], rx[0], size)
		}
		inner := st.close
		st.close = func() error { err := inner(); p.close(); return err }
		return st, nil
	}
	return nil, fmt.Errorf("paced: unknown transport %q", tr)
}

// rmPacedStream drives a recordmux stream; the peer applies with Apply.
func rmPacedStream(ctx context.Context, tx, rx *quicrecord.RecordStream) *pacedStream {
	applied := make(chan error, 1)
	go func() { applied <- rx.Apply(ctx, func(quicrecord.Record) error { return nil }) }()
	barrier := func(ctx context.Context, _ uint64) error { return tx.Barrier(ctx) }
	return &pacedStream{
		send:   tx.Send,
		wait:   tx.WaitAcked,
		finish: barrier,
		clock:  &ackClock{},
		close: func() error {
			err := tx.Close()
			return firstErr(err, <-applied, rx.Close())
		},
	}
}

// framerPacedStream drives a framer stream: Send, then Flush per burst.
func framerPacedStream(tx, rx *quic.Stream) *pacedStream {
	done := make(chan error, 1)
	go func() { done <- framerReceive(rx, 0, nil) }()
	s := framer.NewSender(tx, 0)
	return &pacedStream{
		send:   func(_ context.Context, rec []byte) (uint64, error) { return s.Send(rec) },
		flush:  s.Flush,
		wait:   s.WaitAcked,
		finish: s.WaitAcked,
		clock:  &ackClock{},
		close:  func() error { return firstErr(s.Close(), <-done) },
	}
}

// rawPacedStream drives a raw stream whose peer echoes every message; a
// reader goroutine notes each echo's arrival.
func rawPacedStream(tx, rx *quic.Stream, size int) *pacedStream {
	echoed := make(chan error, 1)
	go func() { echoed <- rawEcho(rx, size) }()
	clock := &ackClock{}
	readerDone := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for k := uint64(1); ; k++ {
			if _, err := io.ReadFull(tx, buf); err != nil {
				readerDone <- firstErr(err)
				return
			}
			clock.add(k, time.Now())
		}
	}()
	var seq atomic.Uint64
	finished := false
	return &pacedStream{
		send: func(_ context.Context, rec []byte) (uint64, error) {
			if _, err := tx.Write(rec); err != nil {
				return 0, err
			}
			return seq.Add(1), nil
		},
		// finish closes the send direction: the peer echoes what is left
		// and finishes its own, which ends the reader.
		finish: func(context.Context, uint64) error {
			finished = true
			if err := tx.Close(); err != nil {
				return err
			}
			return <-readerDone
		},
		clock: clock,
		close: func() error {
			if !finished {
				_ = tx.Close()
				<-readerDone
			}
			return <-echoed
		},
	}
}

// muxPacedStream drives logical stream id of a mux session whose peer
// receives and acks every record on the same logical stream.
func muxPacedStream(ctx context.Context, tx, rx *mux.Stream) *pacedStream {
	done := make(chan error, 1)
	go func() { done <- muxApply(ctx, rx) }()
	return &pacedStream{
		send:   tx.Send,
		wait:   tx.WaitAcked,
		finish: tx.WaitAcked,
		clock:  &ackClock{},
		close:  func() error { return firstErr(<-done) },
	}
}

// muxApply receives and acks every record of st until the session ends.
func muxApply(ctx context.Context, st *mux.Stream) error {
	for {
		seq, _, err := st.Recv(ctx)
		if err != nil {
			return err
		}
		if err := st.Ack(seq); err != nil {
			return err
		}
	}
}
