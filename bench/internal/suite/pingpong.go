package suite

import (
	"context"
	"sync"
	"time"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// PingPong is a connection of one transport ready for round trips of one
// record. Create it with [NewPingPong]; Close it when done.
type PingPong struct {
	s    *session
	rec  []byte
	rep  SinkReport
	once sync.Once
	err  error
}

// NewPingPong starts a server end of transport tr in env and connects to
// it with one stream carrying records of size bytes.
func NewPingPong(ctx context.Context, env *Env, tr string, size int) (*PingPong, error) {
	s, err := env.dialStreams(ctx, tr, transport.Tuning{}, Consumer{}, 1)
	if err != nil {
		return nil, err
	}
	return &PingPong{s: s, rec: payload(size, 2)}, nil
}

// RoundTrip sends one record, flushes, and waits until it is applied.
func (p *PingPong) RoundTrip(ctx context.Context) error {
	snd := p.s.senders[0]
	seq, err := snd.Send(ctx, p.rec)
	if err != nil {
		return err
	}
	if err := snd.Flush(); err != nil {
		return err
	}
	return snd.WaitApplied(ctx, seq)
}

// Close ends the stream, the connection and the server end. It is
// idempotent.
func (p *PingPong) Close() error {
	p.once.Do(func() { p.rep, p.err = p.s.finish(context.Background()) })
	return p.err
}

// pingPongWarmup round trips run before the measured ones.
const pingPongWarmup = 50

func pingPongCells(r *runner, trs []string) []cell {
	o := r.opts
	return []cell{{
		base:  Result{Case: CasePingPong, RecordSize: o.LatencySize, Streams: 1},
		label: sizeLabel(o.LatencySize), reps: o.Reps, transports: trs,
		run: func(ctx context.Context, tr string, _ int) (repOut, error) { return r.pingPongRep(ctx, tr) },
	}}
}

func (r *runner) pingPongRep(ctx context.Context, tr string) (repOut, error) {
	pp, err := NewPingPong(ctx, r.env, tr, r.opts.LatencySize)
	if err != nil {
		return repOut{}, err
	}
	defer func() { _ = pp.Close() }()
	for range pingPongWarmup {
		if err := pp.RoundTrip(ctx); err != nil {
			return repOut{}, err
		}
	}
	n := r.opts.PingPongs
	lat := make([]time.Duration, 0, n)
	m := startMeter()
	for range n {
		t0 := time.Now()
		if err := pp.RoundTrip(ctx); err != nil {
			return repOut{}, err
		}
		lat = append(lat, time.Since(t0))
	}
	reg := m.stopAt(time.Now())
	if err := pp.Close(); err != nil {
		return repOut{}, err
	}
	out := newMetrics()
	out.P50us, out.P99us, out.P999us = Quantiles(lat)
	out.Samples = float64(len(lat))
	secs := reg.elapsed.Seconds()
	out.RecordsPerSec = float64(n) / secs
	out.MBPerSec = float64(n) * float64(r.opts.LatencySize) / 1e6 / secs
	out.AllocsPerRecord = float64(reg.allocs) / float64(n)
	out.CPUCores = reg.cores
	withServer(&out, pp.rep)
	return repOut{m: out, lat: lat}, nil
}
