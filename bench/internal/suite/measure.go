package suite

import (
	"math"
	"runtime"
	"runtime/metrics"
	"time"
)

// Runtime metrics the suite reads.
const (
	mAllocs     = "/gc/heap/allocs:objects"
	mTinyAllocs = "/gc/heap/tiny/allocs:objects"
	mHeapLive   = "/gc/heap/live:bytes"
	mHeapInUse  = "/memory/classes/heap/objects:bytes"
)

// rtStats reads a fixed set of runtime metrics without stopping the world.
type rtStats struct {
	samples []metrics.Sample
}

func newRTStats() *rtStats {
	names := []string{mAllocs, mTinyAllocs, mHeapLive, mHeapInUse}
	s := &rtStats{samples: make([]metrics.Sample, len(names))}
	for i, n := range names {
		s.samples[i].Name = n
	}
	return s
}

// read returns the allocation count (heap plus tiny objects, the count
// testing's allocs/op uses), the live heap as of the last GC, and the
// bytes in heap objects now, dead or alive.
func (s *rtStats) read() (allocs, live, inUse uint64) {
	metrics.Read(s.samples)
	get := func(i int) uint64 {
		if s.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s.samples[i].Value.Uint64()
	}
	return get(0) + get(1), get(2), get(3)
}

// meter measures one timed region: wall time, allocations and the CPU
// time of the whole process (both ends of the connection run in it).
type meter struct {
	rt     *rtStats
	start  time.Time
	allocs uint64
	cpu    time.Duration
}

func startMeter() *meter {
	m := &meter{rt: newRTStats()}
	m.allocs, _, _ = m.rt.read()
	m.cpu = processCPU()
	m.start = time.Now()
	return m
}

// region is what a meter measured.
type region struct {
	elapsed time.Duration
	allocs  uint64
	// cores is the process's CPU time divided by the wall time: how many
	// cores were busy on average. NaN where CPU time is not available.
	cores float64
}

// stopAt ends the region at end (taken by the caller at the right
// moment, so that reading the metrics is not timed).
func (m *meter) stopAt(end time.Time) region {
	a, _, _ := m.rt.read()
	cpu := processCPU()
	el := end.Sub(m.start)
	r := region{elapsed: el, allocs: a - m.allocs, cores: math.NaN()}
	if cpu >= 0 && m.cpu >= 0 && el > 0 {
		r.cores = float64(cpu-m.cpu) / float64(el)
	}
	return r
}

// settleHeap runs two garbage collections, so that the live heap metric
// reflects the current state, and returns it.
func settleHeap() uint64 {
	runtime.GC()
	runtime.GC()
	_, live, _ := newRTStats().read()
	return live
}
