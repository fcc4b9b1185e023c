package flow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWindowNetDelay pins what a delay sample loses before it is compared
// with the base: its batch's own transmission (records and bytes up to
// the acked one at the delivery rate, the larger of the two), at most
// half the sample; at most the target for a batch sent while nothing
// else was in flight; for a pipelined one, down to the minimum delay and
// no further.
func TestWindowNetDelay(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name           string
		recRate, bRate float64 // the windowed maximum rates (peak)
		roundRate      float64 // this round's record rate so far
		minDelay       time.Duration
		s              delaySample
		want           time.Duration
	}{
		{"no rate measured yet", 0, 0, 0, 0, delaySample{d: 20 * ms, recs: 10, bytes: 10_000}, 20 * ms},
		{"records at the rate", 10_000, 0, 0, 0, delaySample{d: 20 * ms, recs: 10}, 19 * ms},
		{"bytes take longer than records", 10_000, 1e6, 0, 0, delaySample{d: 20 * ms, recs: 10, bytes: 1_500}, 18500 * time.Microsecond},
		{"alone: at most the target", 10_000, 0, 0, 0, delaySample{d: 20 * ms, recs: 100}, 18 * ms},
		{"at most half the sample", 10_000, 0, 0, 0, delaySample{d: 2 * ms, recs: 15}, ms},
		{"the round's rate when higher", 5_000, 0, 20_000, 0, delaySample{d: 20 * ms, recs: 10}, 19500 * time.Microsecond},
		{"pipelined: beyond the target", 600, 0, 0, 50 * ms, delaySample{d: 60 * ms, recs: 6, pipelined: true}, 50 * ms},
		{"pipelined: not below the minimum delay", 300, 0, 0, 50 * ms, delaySample{d: 60 * ms, recs: 6, pipelined: true}, 50 * ms},
		{"pipelined: no more than alone", 10_000, 0, 0, 50 * ms, delaySample{d: 60 * ms, recs: 1, pipelined: true}, 59900 * time.Microsecond},
		{"pipelined, no minimum yet", 300, 0, 0, 0, delaySample{d: 60 * ms, recs: 6, pipelined: true}, 40 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(bigCaps(), 0, 0)
			w.recs.peak, w.bytes.peak, w.recs.roundRate = tc.recRate, tc.bRate, tc.roundRate
			w.minDelay = tc.minDelay
			require.InDelta(t, tc.want, w.net(tc.s), float64(time.Microsecond))
		})
	}
}

// selfClocked drives w on a path of round trip rtt behind a bottleneck
// of rate records per second (of size bytes each) and no other queue,
// the way a stream does: every ack frees room in the records and bytes
// windows, and the room becomes batches of at most maxBatch records,
// each acknowledged once the bottleneck has carried it and a round trip
// later. It returns the records delivered per second over the second
// half of the run.
func selfClocked(w *Window, rtt time.Duration, rate float64, maxBatch int64, size uint64, end time.Duration) float64 {
	type ack struct {
		at  time.Duration
		seq uint64
	}
	var (
		now      time.Duration
		sent     uint64
		acked    uint64
		linkFree time.Duration // when the bottleneck finishes what it has
		acks     []ack
		half     uint64
	)
	for now < end {
		room := func() int64 {
			return min(w.Records()-int64(sent-acked), (w.Bytes()-int64((sent-acked)*size))/int64(size))
		}
		for r := room(); r > 0; r = room() {
			n := min(r, maxBatch)
			first := sent + 1
			w.OnBatch(first, (first-1)*size, epoch.Add(now))
			sent += uint64(n)
			start := max(now, linkFree)
			linkFree = start + time.Duration(float64(n)/rate*float64(time.Second))
			acks = append(acks, ack{at: linkFree + rtt, seq: sent})
			if n == r {
				w.OnBlocked()
			}
		}
		a := acks[0]
		acks = acks[1:]
		if now < end/2 && a.at >= end/2 {
			half = acked
		}
		now, acked = a.at, a.seq
		w.OnAck(acked, acked*size, epoch.Add(now))
	}
	return float64(acked-half) / (end / 2).Seconds()
}

// TestWindowSelfClocked drives the adaptive window, as a stream would,
// behind a bottleneck with no queue but the window's own: every ack frees
// room and the room becomes batches of at most a given size, which queue
// behind each other at the bottleneck. The window fills the pipe: at
// 20 ms, 1 KiB records at 50 Mbit/s in batches of up to 16 or 64 records
// and 256 B records in batches of 64; 16 KiB records in batches of one
// and four (the window's floor of 16 records is then twice the pipe);
// and on slow links, 1 KiB records at 1 Mbit/s (100 ms), 5 Mbit/s
// (50 ms) and 10 Mbit/s (20 ms) in batches of 8 (the writer's smallest,
// 8 KiB, takes 66, 13 and 6.6 ms there, longer than the target). Before
// a pipelined batch's deduction could exceed the target, the window held
// at its floor of 16 records at 5 Mbit/s, 285 of 610 records/s, and
// delivered 107 of 122 at 1 Mbit/s.
//
// Not covered, because the window does not fill the pipe there: one
// batch that is the whole window and takes longer than the target to
// cross the bottleneck (1 KiB records at 6,000 a second, batches of any
// size). Each ack then frees the window whole, it leaves as one batch
// per round trip, and the last record's wait behind the rest of its
// batch cannot be told from a queue; the window held at 28 records, 1,136
// of 6,000 records/s. A stream's writer sends what Send has added as
// soon as it can, so its batches are small unless the writer falls
// behind (README, Limitations).
func TestWindowSelfClocked(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	for _, tc := range []struct {
		name     string
		rtt      time.Duration
		rate     float64 // records per second the bottleneck carries
		maxBatch int64
		size     uint64
	}{
		{"1KiB/batch1", 20 * ms, 6000, 1, 1024},
		{"1KiB/batch4", 20 * ms, 6000, 4, 1024},
		{"1KiB/batch16", 20 * ms, 6000, 16, 1024},
		{"1KiB/batch64", 20 * ms, 6000, 64, 1024},
		{"256B/batch64", 20 * ms, 24000, 64, 256},
		{"16KiB/batch1", 20 * ms, 380, 1, 16384},
		{"16KiB/batch4", 20 * ms, 380, 4, 16384},
		{"5mbit-50ms/batch8", 50 * ms, 610, 8, 1024},
		{"10mbit-20ms/batch8", 20 * ms, 1220, 8, 1024},
		{"1mbit-100ms/batch8", 100 * ms, 122, 8, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(bigCaps(), 0, 0)
			got := selfClocked(w, tc.rtt, tc.rate, tc.maxBatch, tc.size, 20*time.Second)
			st := w.Stats()
			t.Logf("%.0f of %.0f records/s; %+v", got, tc.rate, st)
			require.GreaterOrEqual(t, got, 0.95*tc.rate, "the window fills the pipe: %+v", st)
		})
	}
}
