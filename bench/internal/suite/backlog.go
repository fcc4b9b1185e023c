package suite

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/bench/internal/pace"
	"github.com/recordmux/recordmux/quicrecord"
)

// BacklogPoint is one sample of the backlog case. Heap figures are above
// the baseline taken after setup.
type BacklogPoint struct {
	T                   time.Duration
	Sent, Applied       uint64
	InFlight            uint64 // sent, not yet acked (raw: not yet applied)
	Backlog             uint64 // recordmux only: received, not yet applied
	HeapLive, HeapInUse int64
}

// BacklogTrace is the time series of one backlog run.
type BacklogTrace struct {
	Transport string
	Rep       int
	// Switch is when the consumer sped up; Stop when the producer
	// stopped.
	Switch, Stop time.Duration
	Points       []BacklogPoint
	// WindowBytes is the configured bound on buffered record bytes
	// (recordmux: its windows; others: the QUIC stream window).
	WindowBytes int64
}

// gcEvery is how many samples pass between forced garbage collections,
// which keep the live-heap metric current.
const gcEvery = 20

// throttle makes the consumer slow until switched.
type throttle struct {
	slow    atomic.Bool
	rate    float64
	p       *pace.Pacer // made by the consumer at its first record
	credits int
	applied atomic.Uint64
}

// apply accounts for one applied record, first waiting for the slow
// consumer's pace while slow. The pacer sleeps without spinning (a
// millisecond late at times), releasing records in bursts that keep the
// average rate. It is called by the consumer goroutine only.
func (t *throttle) apply() {
	if t.slow.Load() {
		if t.p == nil {
			t.p = pace.New(time.Now(), t.rate, &pace.Options{SpinWindow: -1})
		}
		if t.credits == 0 {
			t.credits, _ = t.p.Wait()
		}
		t.credits--
	}
	t.applied.Add(1)
}

// backlogOps is one transport as the backlog harness drives it.
type backlogOps struct {
	send     func(ctx context.Context, rec []byte) error
	flush    func() error
	inflight func(sent uint64) uint64
	backlog  func() uint64
	// extra returns the transport's own end-of-run figures.
	extra  func() map[string]float64
	finish func(ctx context.Context) error
	close  func() error
	window int64
}

func (r *runner) backlogRun(ctx context.Context, tr string, rep int) (map[string]float64, *BacklogTrace, error) {
	o := r.opts
	th := &throttle{rate: o.BacklogSlowRate}
	th.slow.Store(true)
	ops, err := r.backlogSetup(ctx, tr, th)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = ops.close() }()

	baseLive := int64(settleHeap())
	_, _, inUse := newRTStats().read()
	baseInUse := int64(inUse)
	rec := payload(o.BacklogSize, 4)
	var sent atomic.Uint64
	trace := &BacklogTrace{Transport: tr, Rep: rep, WindowBytes: ops.window, Switch: o.BacklogSlow, Stop: o.BacklogSlow + o.BacklogFast}

	m := startMeter()
	start := m.start
	samplerDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(samplerDone)
		rt := newRTStats()
		tk := time.NewTicker(o.Sample)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
			}
			if i%gcEvery == gcEvery-1 {
				runtime.GC()
			}
			_, live, inUse := rt.read()
			s, a := sent.Load(), th.applied.Load()
			pt := BacklogPoint{T: time.Since(start), Sent: s, Applied: a, InFlight: ops.inflight(s),
				HeapLive: int64(live) - baseLive, HeapInUse: int64(inUse) - baseInUse}
			if ops.backlog != nil {
				pt.Backlog = ops.backlog()
			}
			trace.Points = append(trace.Points, pt)
		}
	}()
	switchTimer := time.AfterFunc(o.BacklogSlow, func() { th.slow.Store(false) })
	defer switchTimer.Stop()

	// The producer offers BacklogRate records/s; after a blocked Send it
	// resumes the schedule with at most 64 records of catch-up.
	prod := pace.New(start, o.BacklogRate, &pace.Options{SpinWindow: -1})
	stopAt := start.Add(o.BacklogSlow + o.BacklogFast)
	var blocked time.Duration
	for err == nil {
		n, first := prod.Wait()
		if !first.Before(stopAt) {
			break
		}
		for range min(n, 64) {
			t0 := time.Now()
			err = ops.send(ctx, rec)
			blocked += time.Since(t0)
			if err != nil {
				break
			}
			sent.Add(1)
		}
		if err == nil && ops.flush != nil {
			t0 := time.Now()
			err = ops.flush()
			blocked += time.Since(t0)
		}
	}
	stopped := time.Since(start)
	if err == nil {
		err = ops.finish(ctx)
	}
	end := time.Now()
	reg := m.stopAt(end)
	close(stopSampling)
	<-samplerDone
	if err != nil {
		return nil, nil, err
	}
	trace.Stop = stopped
	return backlogMetrics(o, trace, ops, reg, blocked, sent.Load(), th.applied.Load()), trace, nil
}

// backlogMetrics computes the figures of one backlog run.
func backlogMetrics(o *Options, trace *BacklogTrace, ops *backlogOps, reg region, blocked time.Duration, sent, applied uint64) map[string]float64 {
	const mib = 1 << 20
	var peakUnapplied, peakInflight uint64
	var peakLive, peakInUse int64
	drain := time.Duration(-1)
	threshold := max(64, uint64(o.BacklogRate*0.002))
	for _, p := range trace.Points {
		peakUnapplied = max(peakUnapplied, p.Sent-min(p.Applied, p.Sent))
		peakInflight = max(peakInflight, p.InFlight)
		peakLive = max(peakLive, p.HeapLive)
		peakInUse = max(peakInUse, p.HeapInUse)
		if drain < 0 && p.T >= trace.Switch && p.Sent-min(p.Applied, p.Sent) <= threshold {
			drain = p.T - trace.Switch
		}
	}
	if drain < 0 {
		drain = reg.elapsed - trace.Switch
	}
	m := map[string]float64{
		MRecordsPerSec:           float64(applied) / reg.elapsed.Seconds(),
		MMBPerSec:                float64(applied) * float64(o.BacklogSize) / 1e6 / reg.elapsed.Seconds(),
		MAllocsPerRecord:         float64(reg.allocs) / float64(max(sent, 1)),
		MCPUCores:                reg.cores,
		"peak_unapplied_records": float64(peakUnapplied),
		"peak_inflight_records":  float64(peakInflight),
		"send_blocked_ms":        float64(blocked) / float64(time.Millisecond),
		"drain_ms":               float64(drain) / float64(time.Millisecond),
		"peak_heap_live_mib":     float64(peakLive) / mib,
		"peak_heap_inuse_mib":    float64(peakInUse) / mib,
		"window_mib":             float64(ops.window) / mib,
		"heap_limit_mib":         float64(ops.window)/mib + 1,
	}
	if ops.extra != nil {
		for k, v := range ops.extra() {
			m[k] = v
		}
	}
	return m
}

// backlogSetup connects transport tr and starts its throttled consumer.
func (r *runner) backlogSetup(ctx context.Context, tr string, th *throttle) (*backlogOps, error) {
	o := r.opts
	switch tr {
	case Recordmux:
		cfg := r.env.rmConfig()
		cfg.MaxInFlightRecords, cfg.MaxApplyBacklogRecords = o.BacklogWindowRecords, o.BacklogWindowRecords
		cfg.MaxInFlightBytes, cfg.MaxApplyBacklogBytes = o.BacklogWindowBytes, o.BacklogWindowBytes
		p, tx, rx, err := r.env.openRecordmux(ctx, cfg, 1, 1)
		if err != nil {
			return nil, err
		}
		applied := make(chan error, 1)
		go func() {
			applied <- rx[0].Apply(ctx, func(quicrecord.Record) error { th.apply(); return nil })
		}()
		return &backlogOps{
			send:     func(ctx context.Context, rec []byte) error { _, err := tx[0].Send(ctx, rec); return err },
			inflight: func(uint64) uint64 { return tx[0].Snapshot().Out.InFlightRecords },
			backlog:  func() uint64 { return rx[0].Snapshot().In.BacklogRecords },
			extra: func() map[string]float64 {
				in := rx[0].Snapshot().In
				return map[string]float64{
					"peak_backlog_records": float64(in.BacklogPeakRecords),
					"peak_backlog_mib":     float64(in.BacklogPeakBytes) / (1 << 20),
					"window_records":       float64(o.BacklogWindowRecords),
				}
			},
			finish: tx[0].Barrier,
			close: func() error {
				err := tx[0].Close()
				err = firstErr(err, <-applied, rx[0].Close())
				p.close()
				return err
			},
			window: int64(o.BacklogWindowBytes),
		}, nil
	case Framer, Raw:
		qc := r.env.quicConfig()
		p, tx, rx, err := r.env.openLoopback(ctx, qc, 1, 1)
		if err != nil {
			return nil, err
		}
		var ops *backlogOps
		if tr == Framer {
			ops = framerBacklog(tx[0], rx[0], th)
		} else {
			ops = rawBacklog(tx[0], rx[0], th, o.BacklogSize)
		}
		ops.window = int64(qc.MaxStreamReceiveWindow)
		inner := ops.close
		ops.close = func() error { err := inner(); p.close(); return err }
		return ops, nil
	}
	return nil, fmt.Errorf("backlog: unknown transport %q", tr)
}

// framerBacklog: the receiver acks lazily, flushing when its buffer is
// empty or every 64 records (a slow consumer rarely sees an empty
// buffer).
func framerBacklog(tx, rx *quic.Stream, th *throttle) *backlogOps {
	done := make(chan error, 1)
	go func() { done <- framerReceive(rx, 64, func([]byte) { th.apply() }) }()
	s := framer.NewSender(tx, 0)
	var last uint64
	return &backlogOps{
		send: func(_ context.Context, rec []byte) error {
			seq, err := s.Send(rec)
			last = seq
			return err
		},
		flush:    s.Flush,
		inflight: func(sent uint64) uint64 { return sent - min(s.Acked(), sent) },
		finish: func(ctx context.Context) error {
			if err := s.Flush(); err != nil {
				return err
			}
			return s.WaitAcked(ctx, last)
		},
		close: func() error { return firstErr(s.Close(), <-done) },
	}
}

// rawBacklog: the consumer reads fixed-size messages; nothing is acked,
// so in flight means not yet applied.
func rawBacklog(tx, rx *quic.Stream, th *throttle, size int) *backlogOps {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(rx, buf); err != nil {
				done <- firstErr(err, rx.Close())
				return
			}
			th.apply()
		}
	}()
	finished := false
	return &backlogOps{
		send:     func(_ context.Context, rec []byte) error { _, err := tx.Write(rec); return err },
		inflight: func(sent uint64) uint64 { return sent - min(th.applied.Load(), sent) },
		finish: func(context.Context) error {
			finished = true
			if err := tx.Close(); err != nil {
				return err
			}
			return <-done
		},
		close: func() error {
			if !finished {
				_ = tx.Close()
				return <-done
			}
			return nil
		},
	}
}
