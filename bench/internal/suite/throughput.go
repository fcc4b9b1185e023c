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

// ThroughputResult is one measured transfer.
type ThroughputResult struct {
	// Records is the number of records carried.
	Records int64
	// Elapsed runs from the first Send to the moment every stream's last
	// record is known to be applied.
	Elapsed time.Duration
	// Allocs counts heap allocations in this process during the transfer
	// (both ends in-process).
	Allocs uint64
	// Cores is this process's CPU time over the wall time.
	Cores float64
}

// Throughput is a connection of one transport with streams ready for one
// transfer. Create it with [NewThroughput]; call Run once, then Close.
type Throughput struct {
	s    *session
	size int
	rec  []byte
	rep  SinkReport
	once sync.Once
	err  error
}

// NewThroughput starts a server end of transport tr in env, connects to
// it with the given number of streams, each carrying records of size
// bytes.
func NewThroughput(ctx context.Context, env *Env, tr string, size, streams int) (*Throughput, error) {
	s, err := env.dialStreams(ctx, tr, transport.Tuning{}, Consumer{}, streams)
	if err != nil {
		return nil, err
	}
	return &Throughput{s: s, size: size, rec: payload(size, 1)}, nil
}

// Run carries total records spread evenly over the streams or, when total
// is 0, sends on every stream for d. Timing starts just before the first
// Send and ends when every stream's last record is applied.
func (t *Throughput) Run(ctx context.Context, total int64, d time.Duration) (ThroughputResult, error) {
	var stop atomic.Bool
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var records atomic.Int64
	errs := make([]error, len(t.s.senders))
	n := int64(len(t.s.senders))
	for i, snd := range t.s.senders {
		limit := int64(math.MaxInt64)
		if total > 0 {
			limit = total / n
			if int64(i) < total%n {
				limit++
			}
		}
		wg.Go(func() {
			<-gate
			sent, err := sendAll(ctx, snd, t.rec, limit, &stop)
			records.Add(sent)
			if err != nil {
				errs[i] = fmt.Errorf("stream %d: %w", i, err)
			}
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
	return ThroughputResult{Records: records.Load(), Elapsed: reg.elapsed, Allocs: reg.allocs, Cores: reg.cores}, firstErr(errs...)
}

// sendAll sends rec up to limit times (until stop when limit is
// MaxInt64), flushes and waits until the last record is applied.
func sendAll(ctx context.Context, s transport.Sender, rec []byte, limit int64, stop *atomic.Bool) (int64, error) {
	var n int64
	var last uint64
	for n < limit && (limit != math.MaxInt64 || !stop.Load()) {
		seq, err := s.Send(ctx, rec)
		if err != nil {
			return n, err
		}
		last = seq
		n++
	}
	if err := s.Flush(); err != nil {
		return n, err
	}
	if last == 0 {
		return 0, nil
	}
	return n, s.WaitApplied(ctx, last)
}

// Close ends the streams, the connection and the server end. It is
// idempotent.
func (t *Throughput) Close() error {
	t.once.Do(func() { t.rep, t.err = t.s.finish(context.Background()) })
	return t.err
}

// throughputCells are the cells of the throughput case: every record size
// with every stream count.
func throughputCells(r *runner, trs []string) []cell {
	o := r.opts
	var out []cell
	for _, size := range o.Sizes {
		for _, streams := range o.Streams {
			out = append(out, cell{
				base:  Result{Case: CaseThroughput, RecordSize: size, Streams: streams},
				label: fmt.Sprintf("%s x%d", sizeLabel(size), streams),
				reps:  o.Reps, transports: trs,
				run: func(ctx context.Context, tr string, _ int) (repOut, error) {
					return r.throughputRep(ctx, tr, size, streams)
				},
			})
		}
	}
	return out
}

func (r *runner) throughputRep(ctx context.Context, tr string, size, streams int) (repOut, error) {
	t, err := NewThroughput(ctx, r.env, tr, size, streams)
	if err != nil {
		return repOut{}, err
	}
	var total int64
	if r.opts.Volume > 0 {
		total = max(r.opts.Volume/int64(size), int64(streams))
	}
	res, err := t.Run(ctx, total, r.opts.Duration)
	if err = firstErr(err, t.Close()); err != nil {
		return repOut{}, err
	}
	secs := res.Elapsed.Seconds()
	m := newMetrics()
	m.RecordsPerSec = float64(res.Records) / secs
	m.MBPerSec = float64(res.Records) * float64(size) / 1e6 / secs
	m.AllocsPerRecord = float64(res.Allocs) / float64(max(res.Records, 1))
	m.CPUCores = res.Cores
	withServer(&m, t.rep)
	return repOut{m: m}, nil
}
