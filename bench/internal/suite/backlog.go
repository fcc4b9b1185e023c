package suite

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/bench/internal/pace"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// BacklogPoint is one sample of the backlog case. Heap figures are this
// process's (both ends in-process, the client's in a two-host run), above
// the baseline taken after setup.
type BacklogPoint struct {
	T        time.Duration
	Sent     uint64
	InFlight uint64 // sent and not yet acknowledged as applied
	// HeapLive is the live heap as of the last GC, HeapInUse the heap in
	// use now, garbage included.
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
}

// gcEvery is how many samples pass between forced garbage collections,
// which keep the live-heap metric current.
const gcEvery = 20

// backlogCatchUp caps the records a producer sends at once after Send
// blocked, so that it resumes its schedule instead of bursting.
const backlogCatchUp = 64

func backlogCells(r *runner, trs []string) []cell {
	o := r.opts
	return []cell{{
		base:  Result{Case: CaseBacklog, RecordSize: o.BacklogSize, Streams: 1},
		label: sizeLabel(o.BacklogSize), reps: o.HeavyReps, transports: trs,
		run: r.backlogRep,
	}}
}

// backlogRep offers records at BacklogRate to a server that applies them
// slowly, then fast, and samples what piles up.
func (r *runner) backlogRep(ctx context.Context, tr string, rep int) (repOut, error) {
	o := r.opts
	tuning := transport.Tuning{WindowRecords: o.BacklogWindowRecords, WindowBytes: o.BacklogWindowBytes, AckEvery: 64}
	s, err := r.env.dialStreams(ctx, tr, tuning, Consumer{SlowRate: o.BacklogSlowRate, SlowFor: o.BacklogSlow}, 1)
	if err != nil {
		return repOut{}, err
	}
	snd := s.senders[0]
	baseLive := int64(settleHeap())
	_, _, inUse := newRTStats().read()
	trace := &BacklogTrace{Transport: tr, Rep: rep, Switch: o.BacklogSlow}
	var sent atomic.Uint64

	m := startMeter()
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		sampleBacklog(trace, o.Sample, m.start, stopSampling, func(pt *BacklogPoint) {
			pt.Sent = sent.Load()
			pt.InFlight = pt.Sent - min(snd.Applied(), pt.Sent)
			pt.HeapLive -= baseLive
			pt.HeapInUse -= int64(inUse)
		})
	}()
	blocked, last, err := produce(ctx, snd, payload(o.BacklogSize, 4), o.BacklogRate, m.start.Add(o.BacklogSlow+o.BacklogFast), &sent)
	trace.Stop = time.Since(m.start)
	if err == nil && last > 0 {
		err = snd.WaitApplied(ctx, last)
	}
	reg := m.stopAt(time.Now())
	close(stopSampling)
	<-sampled
	srv, ferr := s.finish(ctx)
	if err = firstErr(err, ferr); err != nil {
		return repOut{}, err
	}
	return repOut{m: backlogMetrics(o, trace, reg, blocked, srv), trace: trace}, nil
}

// sampleBacklog appends a point to trace every interval until stop,
// forcing a garbage collection every gcEvery points; fill completes each
// point.
func sampleBacklog(trace *BacklogTrace, interval time.Duration, start time.Time, stop <-chan struct{}, fill func(*BacklogPoint)) {
	rt := newRTStats()
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		if i%gcEvery == gcEvery-1 {
			runtime.GC()
		}
		_, live, inUse := rt.read()
		pt := BacklogPoint{T: time.Since(start), HeapLive: int64(live), HeapInUse: int64(inUse)}
		fill(&pt)
		trace.Points = append(trace.Points, pt)
	}
}

// produce sends rec at rate until stopAt (after a blocked Send it resumes
// the schedule with at most backlogCatchUp records at once), flushing
// after each burst, and returns the time spent inside Send and Flush and
// the last sequence number.
func produce(ctx context.Context, snd transport.Sender, rec []byte, rate float64, stopAt time.Time, sent *atomic.Uint64) (time.Duration, uint64, error) {
	p := pace.New(time.Now(), rate, &pace.Options{SpinWindow: -1})
	var blocked time.Duration
	var last uint64
	for {
		n, first := p.Wait()
		if !first.Before(stopAt) {
			return blocked, last, nil
		}
		t0 := time.Now()
		for range min(n, backlogCatchUp) {
			seq, err := snd.Send(ctx, rec)
			if err != nil {
				return blocked, last, err
			}
			last = seq
			sent.Add(1)
		}
		err := snd.Flush()
		blocked += time.Since(t0)
		if err != nil {
			return blocked, last, err
		}
	}
}

// backlogMetrics computes the figures of one backlog run.
func backlogMetrics(o *Options, trace *BacklogTrace, reg region, blocked time.Duration, srv SinkReport) Metrics[float64] {
	const mib = 1 << 20
	var peakInflight uint64
	var peakLive, peakInUse int64
	drain := time.Duration(-1)
	threshold := max(64, uint64(o.BacklogRate*0.002))
	for _, p := range trace.Points {
		peakInflight = max(peakInflight, p.InFlight)
		peakLive = max(peakLive, p.HeapLive)
		peakInUse = max(peakInUse, p.HeapInUse)
		if drain < 0 && p.T >= trace.Switch && p.InFlight <= threshold {
			drain = p.T - trace.Switch
		}
	}
	if drain < 0 {
		drain = reg.elapsed - trace.Switch
	}
	m := newMetrics()
	m.RecordsPerSec = float64(srv.Applied) / reg.elapsed.Seconds()
	m.MBPerSec = float64(srv.Applied) * float64(o.BacklogSize) / 1e6 / reg.elapsed.Seconds()
	m.AllocsPerRecord = float64(reg.allocs) / float64(max(srv.Applied, 1))
	m.CPUCores = reg.cores
	m.PeakInFlightRecords = float64(peakInflight)
	m.SendBlockedMs = float64(blocked) / float64(time.Millisecond)
	m.DrainMs = float64(drain) / float64(time.Millisecond)
	m.PeakHeapLiveMiB = float64(peakLive) / mib
	m.PeakHeapInUseMiB = float64(peakInUse) / mib
	if srv.HasBacklog {
		m.PeakBacklogRecords = float64(srv.PeakBacklogRecords)
		m.PeakBacklogMiB = float64(srv.PeakBacklogBytes) / mib
	}
	withServer(&m, srv)
	return m
}
