package suite

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// HOLParams describe one head-of-line run; see [HOL].
type HOLParams struct {
	// Loss is the packet loss rate in each direction; RTT the link's
	// round-trip time.
	Loss float64
	RTT  time.Duration
	// Duration of the latency stream's paced sending; records due in the
	// first Warmup are not counted.
	Duration, Warmup time.Duration
	// Rate (records/s) and Size of the latency stream; BulkSize of the
	// bulk stream's records.
	Rate           float64
	Size, BulkSize int
	// Seed seeds the loss RNG.
	Seed uint64
	// InBubble says the run is inside a testing/synctest bubble, where
	// it takes virtual time: the network then decides everything and
	// CPU speed nothing, which makes the comparison exact and repeatable.
	InBubble bool
}

// HOL runs a bulk stream and a paced latency stream side by side on one
// connection of transport tr over a simulated link with packet loss,
// both ends in this process, and returns the latency stream's latencies
// (Send to applied) with the bulk stream's MB/s and the loss observed.
func HOL(ctx context.Context, opts transport.Options, tr string, p HOLParams) (Metrics[float64], []time.Duration, error) {
	n, err := transport.NewSimNet(p.RTT, p.Loss, p.Seed)
	if err != nil {
		return Metrics[float64]{}, nil, err
	}
	defer n.Close()
	env, err := newSimEnv(n, opts)
	if err != nil {
		return Metrics[float64]{}, nil, err
	}
	s, err := env.dialStreams(ctx, tr, transport.Tuning{}, Consumer{}, 2)
	if err != nil {
		return Metrics[float64]{}, nil, err
	}
	bulk, lat := s.senders[0], s.senders[1]
	n.StartLoss()
	var stop atomic.Bool
	var bulkWG sync.WaitGroup
	var bulkErr error
	rec := payload(p.BulkSize, 5)
	bulkWG.Go(func() {
		for !stop.Load() {
			if _, err := bulk.Send(ctx, rec); err != nil {
				if !stop.Load() {
					bulkErr = err
				}
				return
			}
		}
	})
	bulkStart, start := bulk.Applied(), time.Now()
	out, err := runLatency(ctx, lat, latencyParams{rate: p.Rate, duration: p.Duration, warmup: p.Warmup, size: p.Size, sleepOnly: p.InBubble})
	elapsed, bulkDone := time.Since(start), bulk.Applied()-bulkStart
	stop.Store(true)
	// Closing the simulated link ends the connection at once, which
	// unblocks the bulk sender; a graceful close would first drain its
	// window over the lossy link.
	_ = n.Close()
	_, _ = s.abort(ctx)
	bulkWG.Wait()
	if err = firstErr(err, bulkErr); err != nil {
		return Metrics[float64]{}, nil, err
	}
	m := latencyMetrics(out, p.Size, p.Duration.Seconds())
	m.AllocsPerRecord = math.NaN()
	m.MBPerSec = float64(bulkDone) * float64(p.BulkSize) / 1e6 / elapsed.Seconds()
	m.LossObserved = n.LossRate()
	return m, out.lat, nil
}

func holCells(r *runner, trs []string) []cell {
	o := r.opts
	var out []cell
	for _, loss := range o.HOLLoss {
		out = append(out, cell{
			base:  Result{Case: CaseHOL, RecordSize: o.LatencySize, Streams: 2, Loss: loss},
			label: fmt.Sprintf("loss %g%%", loss*100),
			reps:  o.HeavyReps, transports: trs,
			run: func(ctx context.Context, tr string, rep int) (repOut, error) {
				m, lat, err := HOL(ctx, o.Transport, tr, HOLParams{
					Loss: loss, RTT: o.HOLRTT, Duration: o.HOLDuration, Warmup: o.HOLWarmup,
					Rate: o.HOLRate, Size: o.LatencySize, BulkSize: o.HOLBulkSize, Seed: o.Seed + uint64(rep),
				})
				return repOut{m: m, lat: lat}, err
			},
		})
	}
	return out
}
