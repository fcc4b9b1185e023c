package flow

import (
	"container/heap"
	"slices"
	"time"
)

// pathModel is a discrete-event model of one direction of a record
// stream: a flat-out sender limited by a Window, a path with a fixed
// round trip, and a receiver that applies records one at a time at a rate
// that may change, acking after each batch. It runs in model time, with
// no goroutines and no clock.
type pathModel struct {
	rtt      time.Duration
	rate     func(now time.Duration) float64 // records per second the consumer applies
	size     int                             // bytes per record
	maxBatch int                             // records per batch
	linkRate float64                         // records per second of the path, if it is the bottleneck (0: not)
	w        *Window
	rx       *Backlog // nil: the receiver announces nothing
	caps     [2]int64 // the sender's caps before any announcement

	now      time.Duration
	events   eventHeap
	nextSeq  uint64 // next record to send
	acked    uint64
	applied  time.Duration   // when the consumer finishes its last queued record
	created  []time.Duration // when each record was sent: created[seq-1] (seqs are contiguous from 1)
	latency  []time.Duration // creation → applied, per record
	appliedN []appliedAt
	winLog   []windowAt
}

type appliedAt struct {
	at  time.Duration
	seq uint64
}

type windowAt struct {
	at  time.Duration
	win int64
}

type event struct {
	at    time.Duration
	kind  int // evArrive, evApplied, evAck or evWindow
	first uint64
	last  uint64
	wait  time.Duration // evApplied: how long the batch waited for the consumer
	win   [2]int64      // evWindow: the announced window
}

const (
	evArrive = iota
	evApplied
	evAck
	evWindow
)

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].kind > h[j].kind // acks first at the same instant
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newPathModel(w *Window, rtt time.Duration, rate func(time.Duration) float64) *pathModel {
	return &pathModel{rtt: rtt, rate: rate, size: 256, maxBatch: 256, w: w, nextSeq: 1,
		caps: [2]int64{int64(w.recs.max), int64(w.bytes.max)}}
}

// send creates batches while the window allows.
func (m *pathModel) send() {
	for {
		inflight := int64(m.nextSeq - 1 - m.acked)
		room := min(m.w.Records()-inflight, (m.w.Bytes()-inflight*int64(m.size))/int64(m.size))
		if room <= 0 {
			m.w.OnBlocked()
			return
		}
		k := min(room, int64(m.maxBatch))
		if m.linkRate > 0 {
			// The writer bounds a batch to a millisecond of the link.
			k = min(k, max(1, int64(m.linkRate/1000)))
		}
		first := m.nextSeq
		m.w.OnBatch(first, (first-1)*uint64(m.size), epoch.Add(m.now))
		for range k {
			m.created = append(m.created, m.now)
		}
		m.nextSeq += uint64(k)
		heap.Push(&m.events, event{at: m.now + m.rtt/2, kind: evArrive, first: first, last: m.nextSeq - 1})
	}
}

// run simulates until the model time reaches end.
func (m *pathModel) run(end time.Duration) {
	// Size the per-record logs for the consumer's starting rate over the
	// whole run, so that they are not copied as they grow (costly under
	// the race detector); append still grows them if more arrive.
	if n := int(end.Seconds() * m.rate(0)); n > 0 {
		m.created = slices.Grow(m.created, n)
		m.latency = slices.Grow(m.latency, n)
		m.appliedN = slices.Grow(m.appliedN, n)
	}
	m.send()
	lastLog := time.Duration(-1)
	for m.events.Len() > 0 {
		e := heap.Pop(&m.events).(event)
		if e.at > end {
			return
		}
		m.now = e.at
		switch e.kind {
		case evArrive:
			wait := max(m.applied-m.now, 0) // until the consumer starts on the batch
			lastAck := m.applied
			for s := e.first; s <= e.last; s++ {
				start := max(m.applied, m.now)
				m.applied = start + time.Duration(float64(time.Second)/m.rate(start))
				m.latency = append(m.latency, m.applied-m.created[s-1])
				m.appliedN = append(m.appliedN, appliedAt{m.applied, s})
				// The consumer acks at the end of a batch, and within a
				// long batch every millisecond of applying.
				if s < e.last && m.applied-lastAck >= time.Millisecond {
					heap.Push(&m.events, event{at: m.applied + m.rtt/2, kind: evAck, last: s})
					lastAck = m.applied
				}
			}
			heap.Push(&m.events, event{at: m.applied, kind: evApplied, last: e.last, wait: wait})
		case evApplied:
			if m.rx != nil && m.rx.OnApplied(e.wait, e.last, e.last*uint64(m.size), m.rtt, epoch.Add(m.now)) {
				heap.Push(&m.events, event{at: m.now + m.rtt/2, kind: evWindow, win: [2]int64{m.rx.Records(), m.rx.Bytes()}})
			}
			heap.Push(&m.events, event{at: m.now + m.rtt/2, kind: evAck, last: e.last})
		case evWindow:
			m.w.SetCaps(min(m.caps[0], e.win[0]), min(m.caps[1], e.win[1]))
		case evAck:
			m.acked = e.last
			m.w.OnAck(e.last, e.last*uint64(m.size), epoch.Add(m.now))
			if m.now-lastLog >= m.rtt+time.Millisecond {
				m.winLog = append(m.winLog, windowAt{m.now, m.w.Records()})
				lastLog = m.now
			}
			m.send()
		}
	}
}

// throughput is the records applied per second in [from, to).
func (m *pathModel) throughput(from, to time.Duration) float64 {
	var n int
	for _, a := range m.appliedN {
		if a.at >= from && a.at < to {
			n++
		}
	}
	return float64(n) / (to - from).Seconds()
}

// latencyQuantile returns the q-quantile of the delivery latency of the
// records applied in [from, to).
func (m *pathModel) latencyQuantile(q float64, from, to time.Duration) time.Duration {
	var l []time.Duration
	for i, a := range m.appliedN {
		if a.at >= from && a.at < to {
			l = append(l, m.latency[i])
		}
	}
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// windowsIn returns the logged windows in [from, to).
func (m *pathModel) windowsIn(from, to time.Duration) []int64 {
	var ws []int64
	for _, w := range m.winLog {
		if w.at >= from && w.at < to {
			ws = append(ws, w.win)
		}
	}
	return ws
}
