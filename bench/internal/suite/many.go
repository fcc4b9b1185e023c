package suite

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// manySize is the record each stream carries in the many-streams round.
const manySize = 64

func manyCells(r *runner, trs []string) []cell {
	o := r.opts
	return []cell{{
		base:  Result{Case: CaseManyStreams, RecordSize: manySize, Streams: o.ManyStreams},
		label: fmt.Sprintf("x%d", o.ManyStreams), reps: o.HeavyReps, transports: trs,
		run: func(ctx context.Context, tr string, _ int) (repOut, error) { return r.manyRep(ctx, tr) },
	}}
}

// footprint is the heap and goroutines of both ends.
type footprint struct {
	heap       float64
	goroutines int
}

// measureFootprint settles this process's heap and the server's (in a
// two-host run), once the server accepted streams streams.
func (r *runner) measureFootprint(ctx context.Context, streams int) (footprint, error) {
	st, err := r.env.peer.Settle(ctx, streams)
	if err != nil {
		return footprint{}, err
	}
	return footprint{
		heap:       float64(settleHeap()) + float64(st.HeapLive),
		goroutines: runtime.NumGoroutine() + st.Goroutines,
	}, nil
}

// manyRep opens n streams on one connection, measures heap and
// goroutines per stream (both ends), carries one record on every stream,
// and closes them all, each step openParallel streams at a time.
func (r *runner) manyRep(ctx context.Context, tr string) (repOut, error) {
	n := r.opts.ManyStreams
	s, err := r.env.connect(ctx, tr, transport.Tuning{MaxStreams: n}, Consumer{})
	if err != nil {
		return repOut{}, err
	}
	defer func() { _, _ = s.abort(ctx) }()
	base, err := r.measureFootprint(ctx, 0)
	if err != nil {
		return repOut{}, err
	}
	t0 := time.Now()
	if err := s.open(ctx, n); err != nil {
		return repOut{}, fmt.Errorf("open: %w", err)
	}
	openTime := time.Since(t0)
	opened, err := r.measureFootprint(ctx, n)
	if err != nil {
		return repOut{}, err
	}
	rec := payload(manySize, 6)
	t1 := time.Now()
	err = forEach(ctx, n, openParallel, func(i int) error {
		snd := s.senders[i]
		seq, err := snd.Send(ctx, rec)
		if err != nil {
			return err
		}
		if err := snd.Flush(); err != nil {
			return err
		}
		return snd.WaitApplied(ctx, seq)
	})
	roundTime := time.Since(t1)
	if err != nil {
		return repOut{}, fmt.Errorf("round: %w", err)
	}
	t2 := time.Now()
	err = forEach(ctx, n, openParallel, func(i int) error { return s.senders[i].Close() })
	closeTime := time.Since(t2)
	if err != nil {
		return repOut{}, fmt.Errorf("close: %w", err)
	}
	srv, err := s.abort(ctx)
	if err != nil {
		return repOut{}, err
	}
	m := newMetrics()
	m.RecordsPerSec = float64(n) / roundTime.Seconds()
	m.MBPerSec = float64(n) * manySize / 1e6 / roundTime.Seconds()
	m.OpenPerSec = float64(n) / openTime.Seconds()
	m.ClosePerSec = float64(n) / closeTime.Seconds()
	m.RoundMs = float64(roundTime) / float64(time.Millisecond)
	m.HeapKiBPerStream = (opened.heap - base.heap) / 1024 / float64(n)
	// The server end runs one goroutine per stream to apply its records
	// (the benchmark's, not the transport's): leave it out.
	m.GoroutinesPerStream = float64(opened.goroutines-base.goroutines-n) / float64(n)
	withServer(&m, srv)
	return repOut{m: m}, nil
}
