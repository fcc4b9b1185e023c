package suite

import (
	"context"
	"fmt"
	"time"

	"github.com/recordmux/recordmux/bench/internal/pace"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// latencyParams describe a run of the paced or loaded-latency harness.
type latencyParams struct {
	// rate is the offered rate in records per second; 0 sends flat out.
	rate     float64
	duration time.Duration // of sending
	warmup   time.Duration // records sent before this are not counted
	size     int
	// sleepOnly makes the pacer sleep without spinning: required inside
	// a testing/synctest bubble (where sleeps are exact anyway).
	sleepOnly bool
}

// latencyOutcome is what such a run measured.
type latencyOutcome struct {
	lat  []time.Duration // Send-to-applied latencies after the warm-up
	lag  []time.Duration // paced: how late each Send started against the schedule
	sent int
	// region runs from the first Send until the last record was applied.
	region region
}

// flatOutProbeEvery is how often a flat-out sender offers a record to the
// probes: every record would wake a probe per record whenever acks are
// quick.
const flatOutProbeEvery = 8

// runLatency sends records of prm.size on s, at prm.rate or flat out, for
// prm.duration, and measures for each the time from the start of its Send
// until it was known to be applied (see latency.go for how). Paced, it
// flushes after each burst and measures how late each Send started
// against the schedule (lag): a large lag means the sender could not keep
// up, and the records it delayed would have waited that long on top of
// their latency (coordinated omission), so the two are reported side by
// side. Flat out, the transport's own buffering decides when records
// leave (a flush only at the end).
func runLatency(ctx context.Context, s transport.Sender, prm latencyParams) (latencyOutcome, error) {
	rec := payload(prm.size, 3)
	clock := &ackClock{}
	pr := startProber(ctx, clock, s.WaitApplied)
	capacity := 1 << 16
	if prm.rate > 0 {
		capacity = int(prm.rate*prm.duration.Seconds()) + 64
	}
	out := latencyOutcome{lag: make([]time.Duration, 0, capacity)}
	sendAt := make([]time.Time, 0, capacity)
	m := startMeter()
	start := m.start
	end, counted := start.Add(prm.duration), start.Add(prm.warmup)
	send := func(due time.Time) (uint64, error) {
		t0 := time.Now()
		seq, err := s.Send(ctx, rec)
		if err != nil {
			return 0, err
		}
		if seq != uint64(len(sendAt)+1) {
			return 0, fmt.Errorf("send returned seq %d, want %d", seq, len(sendAt)+1)
		}
		sendAt = append(sendAt, t0)
		if !due.IsZero() && !due.Before(counted) {
			out.lag = append(out.lag, t0.Sub(due))
		}
		return seq, nil
	}
	var last uint64
	var err error
	if prm.rate > 0 {
		last, err = sendPaced(s, pr, prm, start, end, send)
	} else {
		for err == nil && time.Now().Before(end) {
			if last, err = send(time.Time{}); err == nil && last%flatOutProbeEvery == 0 {
				pr.offer(last)
			}
		}
	}
	if err == nil {
		err = s.Flush()
	}
	if err == nil && last > 0 {
		err = s.WaitApplied(ctx, last)
	}
	finished := time.Now()
	out.region = m.stopAt(finished)
	if err = firstErr(err, pr.stop()); err != nil {
		return latencyOutcome{}, err
	}
	if last > 0 {
		clock.add(last, finished)
	}
	out.lat = latencies(sendAt, clock.times(len(sendAt)), counted)
	out.sent = len(sendAt)
	return out, nil
}

// sendPaced sends at prm.rate until end, flushing and offering the last
// record to the probes after each burst.
func sendPaced(s transport.Sender, pr *prober, prm latencyParams, start, end time.Time, send func(due time.Time) (uint64, error)) (uint64, error) {
	opts := &pace.Options{}
	if prm.sleepOnly {
		opts.SpinWindow = -1
	}
	p := pace.New(start, prm.rate, opts)
	var last uint64
	for {
		n, first := p.Wait()
		if !first.Before(end) {
			return last, nil
		}
		base := p.Next() - int64(n)
		for j := range int64(n) {
			due := p.At(base + j)
			if !due.Before(end) {
				break
			}
			seq, err := send(due)
			if err != nil {
				return last, err
			}
			last = seq
		}
		if err := s.Flush(); err != nil {
			return last, err
		}
		pr.offer(last)
	}
}

// latencyMetrics turns an outcome into metrics; secs is the time over
// which the records count as sent.
func latencyMetrics(out latencyOutcome, size int, secs float64) Metrics[float64] {
	m := newMetrics()
	m.P50us, m.P99us, m.P999us = Quantiles(out.lat)
	m.Samples = float64(len(out.lat))
	m.RecordsPerSec = float64(out.sent) / secs
	m.MBPerSec = float64(out.sent) * float64(size) / 1e6 / secs
	m.AllocsPerRecord = float64(out.region.allocs) / float64(max(out.sent, 1))
	m.CPUCores = out.region.cores
	return m
}

func pacedCells(r *runner, trs []string) []cell {
	o := r.opts
	return []cell{{
		base:  Result{Case: CasePaced, RecordSize: o.LatencySize, Streams: 1},
		label: fmt.Sprintf("%s/s", si(o.PacedRate)), reps: o.Reps, transports: trs,
		run: func(ctx context.Context, tr string, _ int) (repOut, error) {
			return r.latencyRep(ctx, tr, latencyParams{rate: o.PacedRate, duration: o.PacedDuration, warmup: o.PacedWarmup, size: o.LatencySize})
		},
	}}
}

func loadedCells(r *runner, trs []string) []cell {
	o := r.opts
	return []cell{{
		base:  Result{Case: CaseLoaded, RecordSize: o.LatencySize, Streams: 1},
		label: sizeLabel(o.LatencySize) + " flat out", reps: o.Reps, transports: trs,
		run: func(ctx context.Context, tr string, _ int) (repOut, error) {
			return r.latencyRep(ctx, tr, latencyParams{duration: o.LoadedDuration, warmup: o.LoadedWarmup, size: o.LatencySize})
		},
	}}
}

// latencyRep runs one repetition of paced or loaded-latency.
func (r *runner) latencyRep(ctx context.Context, tr string, prm latencyParams) (repOut, error) {
	s, err := r.env.dialStreams(ctx, tr, transport.Tuning{}, Consumer{}, 1)
	if err != nil {
		return repOut{}, err
	}
	out, err := runLatency(ctx, s.senders[0], prm)
	rep, ferr := s.finish(ctx)
	if err = firstErr(err, ferr); err != nil {
		return repOut{}, err
	}
	secs := prm.duration.Seconds() // paced: the offered schedule
	if prm.rate == 0 {
		secs = out.region.elapsed.Seconds() // flat out: until the last record was applied
	}
	m := latencyMetrics(out, prm.size, secs)
	if prm.rate > 0 {
		m.OfferedPerSec = prm.rate
		_, m.LagP99us, _ = Quantiles(out.lag)
	}
	withServer(&m, rep)
	return repOut{m: m, lat: out.lat}, nil
}
