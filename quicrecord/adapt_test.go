package quicrecord

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/simtest"
)

// pathCase is a simulated path for the adaptive-window tests: a round
// trip, an optional bottleneck (Mbit/s, with a drop-tail queue of
// bottleneckQueue), random loss, and a consumer whose time per record may
// change with the elapsed time (0: as fast as the CPU, which in virtual
// time costs nothing).
type pathCase struct {
	name     string
	rtt      time.Duration
	mbit     float64
	loss     float64
	size     int // record size
	duration time.Duration
	cost     func(elapsed time.Duration) time.Duration
}

// bottleneckQueue is the queue of a path's bottleneck, as a router with a
// generous buffer would have: a static window that overfills it shows
// its bufferbloat.
const bottleneckQueue = 200 * time.Millisecond

// pathRun is what one run over a path measured, in virtual time.
type pathRun struct {
	start   time.Time
	sent    []time.Time // by seq-1: when Send was called
	applied []time.Time // by seq-1: when the consumer applied it
	windows []windowAt  // the send window over time
	final   RecordSnapshot
}

type windowAt struct {
	at      time.Duration
	records uint64
	minAck  time.Duration
	queue   time.Duration
}

// runPath sends records flat out for pc.duration over pc with the
// sender's Config cfg, and records when each was sent and applied. It
// runs its own synctest bubble.
func runPath(t *testing.T, pc pathCase, cfg *Config) *pathRun {
	var run *pathRun
	synctest.Test(t, func(t *testing.T) {
		var router simnet.Router = simtest.NewRouter(simtest.Seed(t, 15), pc.loss)
		if pc.mbit > 0 {
			router = simtest.NewBottleneck(router, pc.mbit*1e6, bottleneckQueue)
		}
		p := newSimPair(t, cfg, nil, router, pc.rtt/2)
		tx, rx := p.openPair(t, false, StreamOptions{Scope: pc.name})
		run = &pathRun{start: time.Now()}
		var mu sync.Mutex // guards run.applied
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { applyWithCost(ctx, rx, pc, run, &mu) })
		wg.Go(func() { sampleWindow(ctx, tx, pc.rtt, run) })
		rec := make([]byte, pc.size)
		for time.Since(run.start) < pc.duration {
			binary.BigEndian.PutUint64(rec, uint64(time.Now().UnixNano()))
			mu.Lock()
			run.sent = append(run.sent, time.Now())
			mu.Unlock()
			_, err := tx.Send(ctx, rec)
			require.NoError(t, err)
		}
		run.final = tx.Snapshot()
		cancel()
		wg.Wait()
		require.NoError(t, tx.CloseWithError(CodeCancelled, "done"))
	})
	return run
}

// applyWithCost applies records, spending the path's cost per record (in
// sleeps of at least 100µs, so that a fast consumer does not cost a timer
// per record), and notes when each was applied.
func applyWithCost(ctx context.Context, rx *RecordStream, pc pathCase, run *pathRun, mu *sync.Mutex) {
	var owed time.Duration
	_ = rx.Apply(ctx, func(r Record) error {
		if pc.cost != nil {
			owed += pc.cost(time.Since(run.start))
			if owed >= 100*time.Microsecond {
				time.Sleep(owed)
				owed = 0
			}
		}
		mu.Lock()
		run.applied = append(run.applied, time.Now())
		mu.Unlock()
		return nil
	})
}

// sampleWindow logs the sender's window every round trip (at least every
// 5 ms).
func sampleWindow(ctx context.Context, tx *RecordStream, rtt time.Duration, run *pathRun) {
	tick := time.NewTicker(max(rtt, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w := tx.Snapshot().Window
		run.windows = append(run.windows, windowAt{at: time.Since(run.start), records: w.Records, minAck: w.MinAckDelay, queue: w.QueueDelay})
	}
}

// between returns the records applied in [from, to) after the start: how
// many, and their delivery latencies (Send called → applied), sorted.
func (r *pathRun) between(from, to time.Duration) (int, []time.Duration) {
	var lat []time.Duration
	for i, at := range r.applied {
		if d := at.Sub(r.start); d >= from && d < to {
			lat = append(lat, at.Sub(r.sent[i]))
		}
	}
	slices.Sort(lat)
	return len(lat), lat
}

// throughput is the records applied per second in [from, to).
func (r *pathRun) throughput(from, to time.Duration) float64 {
	n, _ := r.between(from, to)
	return float64(n) / (to - from).Seconds()
}

// p99 is the 99th percentile delivery latency of the records applied in
// [from, to).
func (r *pathRun) p99(from, to time.Duration) time.Duration {
	return r.quantile(from, to, 0.99)
}

// quantile is the q-quantile delivery latency of the records applied in
// [from, to).
func (r *pathRun) quantile(from, to time.Duration, q float64) time.Duration {
	_, lat := r.between(from, to)
	if len(lat) == 0 {
		return 0
	}
	return lat[int(float64(len(lat))*q)]
}

// logWindows writes the window over time to the test log, one line per
// tenth of the run.
func (r *pathRun) logWindows(t *testing.T, every time.Duration) {
	var next time.Duration
	for _, w := range r.windows {
		if w.at >= next {
			t.Logf("  t=%-8v window %6d records, min ack delay %v, queueing %v", w.at.Round(time.Millisecond), w.records, w.minAck, w.queue)
			next = w.at + every
		}
	}
}

// windowsBetween returns the logged windows in [from, to).
func (r *pathRun) windowsBetween(from, to time.Duration) []uint64 {
	var ws []uint64
	for _, w := range r.windows {
		if w.at >= from && w.at < to {
			ws = append(ws, w.records)
		}
	}
	return ws
}

func fixedConfig(w int) *Config {
	return &Config{Stream: StreamConfig{Window: WindowFixed, MaxInFlightRecords: w, MaxInFlightBytes: 64 << 20}}
}

// TestAdaptiveWindowPaths runs the default (adaptive) window over paths
// from loopback-like to a 100 ms round trip behind a 50 Mbit/s
// bottleneck, with and without loss, and a 5 Mbit/s uplink with a 50 ms
// round trip, against the best of a set of fixed windows on the same
// path. The adaptive window keeps at least 90% of the best fixed
// window's throughput, and the 99th percentile delivery
// latency within two round trips plus the queueing-delay target (the
// round trip is the network's, or the shortest Send→ack time the stream
// measured if that is longer, as with a consumer that acks once a
// millisecond); on the lossy path, where the records behind a lost packet
// wait for its retransmission whatever the window, no worse than the
// best fixed window of comparable throughput plus two round trips (the
// literal two-round-trip bound is out of reach of every window there);
// once converged it stays within a band (no oscillation). The windows
// over time are in the test log.
func TestAdaptiveWindowPaths(t *testing.T) {
	t.Parallel()
	for _, pc := range []struct {
		pathCase
		fixed []int // the fixed windows to compare with, around the path's needs
	}{
		// Loopback-like: no delay to speak of, the consumer's CPU (20 µs
		// per record) is the bottleneck.
		{pathCase{name: "loopback", rtt: 200 * time.Microsecond, size: 256, duration: 600 * time.Millisecond,
			cost: func(time.Duration) time.Duration { return 20 * time.Microsecond }}, []int{64, 256, 1024}},
		// 50 Mbit/s of 1 KiB records is about 6,100 a second: the
		// bandwidth-delay product is 122 records at 20 ms, 610 at 100 ms.
		{pathCase{name: "rtt20ms-50mbit", rtt: 20 * time.Millisecond, mbit: 50, size: 1024, duration: 2 * time.Second}, []int{64, 256, 1024}},
		{pathCase{name: "rtt100ms-50mbit", rtt: 100 * time.Millisecond, mbit: 50, size: 1024, duration: 4 * time.Second}, []int{256, 1024}},
		// A slow uplink: 5 Mbit/s is about 600 records of 1 KiB a
		// second, 30 in a round trip, and the writer's smallest batch
		// (8 KiB) takes 13 ms of it, longer than the target.
		{pathCase{name: "rtt50ms-5mbit", rtt: 50 * time.Millisecond, mbit: 5, size: 1024, duration: 20 * time.Second}, []int{16, 32, 64}},
		{pathCase{name: "rtt20ms-50mbit-loss1%", rtt: 20 * time.Millisecond, mbit: 50, loss: 0.01, size: 1024, duration: 8 * time.Second}, []int{64, 256, 1024}},
	} {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			from, to := pc.duration/3, pc.duration
			var best float64
			var bestW int
			fixed := map[int][2]float64{} // throughput, p99 in seconds
			for _, w := range pc.fixed {
				r := runPath(t, pc.pathCase, fixedConfig(w))
				tp, p99 := r.throughput(from, to), r.p99(from, to)
				t.Logf("fixed %5d: %7.0f records/s, p95 %v p99 %v p99.9 %v", w, tp, r.quantile(from, to, 0.95), p99, r.quantile(from, to, 0.999))
				fixed[w] = [2]float64{tp, p99.Seconds()}
				if tp > best {
					best, bestW = tp, w
				}
			}
			r := runPath(t, pc.pathCase, nil)
			tp, p99 := r.throughput(from, to), r.p99(from, to)
			t.Logf("adaptive:    %7.0f records/s (best fixed: %d, %.0f), p95 %v p99 %v p99.9 %v; %.1f records a batch; final window %+v", tp, bestW, best, r.quantile(from, to, 0.95), p99, r.quantile(from, to, 0.999),
				float64(r.final.Out.Records)/float64(max(r.final.Out.Batches, 1)), r.final.Window)
			r.logWindows(t, pc.duration/10)
			require.GreaterOrEqual(t, tp, 0.9*best, "throughput against the best fixed window")
			// The path's round trip as the application sees it: the
			// network's, or the shortest Send→ack time if longer (a
			// consumer that acks once a millisecond adds to it).
			base := max(pc.rtt, r.final.Window.MinAckDelay)
			limit := 2*base + DefaultQueueDelayTarget
			if pc.loss > 0 {
				// Records behind a lost packet wait for its detection and
				// retransmission, one to several round trips whatever the
				// window: no fixed window reaches 2 round trips either.
				// The adaptive window must do no worse than the best
				// fixed window that keeps 90% of the throughput, give
				// or take two round trips: at 1% loss the p99 sits on
				// the edge between the records that waited behind a
				// lost packet (one or two retransmission rounds) and
				// those that did not, so it moves by up to two round
				// trips from run to run (measured over seeds 1-8 and
				// under -race: fixed 64 from 110 to 172 ms, adaptive
				// from 84 to 135 ms). A window that bloats the path
				// (fixed 256: 417 ms) fails it by far.
				limit = 10 * base
				for _, f := range fixed {
					if f[0] >= 0.9*best {
						limit = min(limit, time.Duration(f[1]*float64(time.Second))+2*pc.rtt)
					}
				}
			}
			require.LessOrEqual(t, p99, limit, "delivery p99")
			// Converged: 20 round trips in (startup from a small window,
			// in step with QUIC's own slow start, takes up to ~17).
			ws := r.windowsBetween(max(from, 20*pc.rtt), to)
			slices.Sort(ws)
			lo, hi := ws[len(ws)*5/100], ws[len(ws)*95/100]
			band := 2.0
			if pc.loss > 0 {
				// It follows the loss episodes: more room for
				// lossRounds rounds after each, down to the floor of
				// 16 records after a quiet spell. Measured 5th..95th
				// percentiles over seeds and under -race: from 19..58
				// to 17..85 and 22..92; an oscillation between the floor
				// and the fixed windows' hundreds would be 16×.
				band = 6
			}
			require.LessOrEqual(t, float64(hi), band*float64(lo), "the window settles: 5th to 95th percentile %d..%d", lo, hi)
			w := r.final.Window
			require.Positive(t, w.MinAckDelay)
			require.GreaterOrEqual(t, w.MinAckDelay, pc.rtt, "the minimum ack delay is at least the round trip")
			require.Positive(t, w.RecordsPerSec)
		})
	}
}

// TestAdaptiveWindowConsumerChange drops the consumer from 50,000 to
// 5,000 records/s and back on a 20 ms round trip. The window follows
// within a few round trips each way (down in about 10, back up twentyfold
// in about 12, doubling each round or two): while the consumer is slow, latency
// is back within two round trips plus the target once what was in flight
// at the slowdown has drained (no sender can recall it), and once it is
// fast again the throughput recovers.
func TestAdaptiveWindowConsumerChange(t *testing.T) {
	t.Parallel()
	const rtt = 20 * time.Millisecond
	slowFrom, slowTo := 600*time.Millisecond, 2400*time.Millisecond
	pc := pathCase{name: "consumer-change", rtt: rtt, size: 256, duration: 3200 * time.Millisecond,
		cost: func(elapsed time.Duration) time.Duration {
			if elapsed >= slowFrom && elapsed < slowTo {
				return 200 * time.Microsecond // 5,000 records/s
			}
			return 20 * time.Microsecond // 50,000 records/s
		}}
	r := runPath(t, pc, nil)
	r.logWindows(t, 100*time.Millisecond)
	windowAt := func(d time.Duration) uint64 {
		var w uint64
		for _, s := range r.windows {
			if s.at <= d {
				w = s.records
			}
		}
		return w
	}
	need := 5000 * (rtt + DefaultQueueDelayTarget).Seconds()
	require.LessOrEqual(t, float64(windowAt(slowFrom+10*rtt)), 3*need, "the window shrank within 10 round trips")
	drained := slowFrom + time.Duration(float64(windowAt(slowFrom))/5000*float64(time.Second)) + 10*rtt
	slowP99 := r.p99(drained, slowTo)
	t.Logf("drained at %v; p99 while slow %v; throughput while slow %.0f", drained, slowP99, r.throughput(drained, slowTo))
	require.LessOrEqual(t, slowP99, 2*rtt+DefaultQueueDelayTarget+time.Millisecond)
	require.InDelta(t, 5000, r.throughput(drained, slowTo), 500, "the slow consumer stays busy")
	fast := r.throughput(slowTo+15*rtt, pc.duration)
	before := r.throughput(slowFrom/2, slowFrom)
	t.Logf("throughput before the slowdown %.0f, after %.0f", before, fast)
	require.GreaterOrEqual(t, fast, 0.9*before, "throughput recovers within 15 round trips")
}

// TestAdaptiveAcksDoNotQueueBehindData sends flat out in both directions
// over a 20 ms round trip behind a 50 Mbit/s bottleneck each way: an ack
// leaves within about a batch time of the Apply that produced it, whatever
// the same direction carries, so the sender learns of it within the round
// trip plus two batch times. FlushedSeq follows the batches handed to
// QUIC: it never runs ahead of what the peer can have received by more
// than the data in flight on the path.
func TestAdaptiveAcksDoNotQueueBehindData(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const rtt = 20 * time.Millisecond
		router := simtest.NewBottleneck(simtest.NewRouter(simtest.Seed(t, 16), 0), 50e6, bottleneckQueue)
		p := newSimPair(t, nil, nil, router, rtt/2)
		a, b := p.openPair(t, false, StreamOptions{Scope: "both-ways"})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		var mu sync.Mutex
		applied := map[uint64]time.Time{} // a's records, when b applied them
		var delays []time.Duration
		// Measured once both directions run at the path's rate, after
		// QUIC's slow start and the windows' startup.
		warm := time.Now().Add(time.Second)
		var wg sync.WaitGroup
		rec := make([]byte, 1024)
		sender := func(s *RecordStream, probe bool) {
			for ctx.Err() == nil {
				seq, err := s.Send(ctx, rec)
				if err != nil {
					return
				}
				if probe && seq%8 == 0 {
					wg.Go(func() {
						if s.WaitAcked(ctx, seq) != nil {
							return
						}
						now := time.Now()
						mu.Lock()
						if at, ok := applied[seq]; ok && at.After(warm) {
							delays = append(delays, now.Sub(at))
						}
						mu.Unlock()
					})
				}
			}
		}
		wg.Go(func() { sender(a, true) })
		wg.Go(func() { sender(b, false) })
		wg.Go(func() {
			_ = b.Apply(ctx, func(r Record) error {
				mu.Lock()
				applied[r.Seq] = time.Now()
				mu.Unlock()
				return nil
			})
		})
		wg.Go(func() { _ = a.Apply(ctx, func(Record) error { return nil }) })
		maxAhead := uint64(0)
		for range 130 {
			time.Sleep(30 * time.Millisecond)
			sa, sb := a.Snapshot(), b.Snapshot()
			require.LessOrEqual(t, sa.Out.AckedSeq, sa.Out.FlushedSeq)
			require.LessOrEqual(t, sa.Out.FlushedSeq, sa.Out.LastSeq)
			maxAhead = max(maxAhead, sa.Out.FlushedSeq-sb.In.Records)
		}
		cancel()
		wg.Wait()
		require.NotEmpty(t, delays)
		slices.Sort(delays)
		p99 := delays[len(delays)*99/100]
		t.Logf("%d ack delays (b's Apply → a learns of the ack): p50 %v p99 %v max %v; FlushedSeq at most %d records ahead of b",
			len(delays), delays[len(delays)/2], p99, delays[len(delays)-1], maxAhead)
		require.LessOrEqual(t, p99, rtt+2*batchTime+DefaultAckDelay, "ack delay p99")
		// What QUIC was handed and the peer did not receive yet is on
		// the path: at most the bottleneck's queue plus a round trip of
		// the link (50 Mbit/s of 1 KiB records is about 6,100 a second).
		require.LessOrEqual(t, maxAhead, uint64(6100*(bottleneckQueue+rtt).Seconds()), "FlushedSeq ahead of the peer")
	})
}

// windowRawStream opens a stream from a raw peer announcing hello over
// simnet and returns the raw peer and the library's stream. It must run
// inside a synctest bubble.
func windowRawStream(t *testing.T, hello *frames.Hello) (*rawPeer, *RecordStream) {
	ctx := context.Background()
	rawConn, qs := newSimQUIC(t, nil, nil, nil, simRTT/2)
	conn, err := NewConn(qs, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	str, err := rawConn.OpenStreamSync(ctx)
	require.NoError(t, err)
	raw := newRawPeer(t, str)
	return raw, raw.handshake(ctx, conn, hello)
}

// TestWindowFrames plays a peer that negotiates window-update: each
// WINDOW it sends caps what the library keeps in flight, in records and
// in bytes, until the next one; a WINDOW on a stream without the feature,
// above the HELLO's limits, or zero ends the stream with its code.
func TestWindowFrames(t *testing.T) {
	windowHello := func() *frames.Hello {
		h := rawHello()
		h.Features |= frames.FeatureWindowUpdate
		return h
	}
	t.Run("honoured", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			raw, s := windowRawStream(t, windowHello())
			require.True(t, s.Negotiated().Features.Has(FeatureWindowUpdate))
			sendUntilBlocked := func() uint64 {
				sctx, cancel := context.WithTimeout(ctx, simRTT)
				defer cancel()
				for {
					if _, err := s.Send(sctx, make([]byte, 100)); err != nil {
						break
					}
				}
				return s.Snapshot().Out.InFlightRecords
			}
			raw.write(frames.WindowFrame{Records: 10, Bytes: 1 << 20}.Append(nil))
			time.Sleep(simRTT)
			require.Equal(t, uint64(10), sendUntilBlocked(), "a window of 10 records")
			require.Equal(t, uint64(10), s.Snapshot().Window.PeerRecords)
			raw.write(ackFrame(10))
			raw.write(frames.WindowFrame{Records: 1000, Bytes: 500}.Append(nil))
			time.Sleep(simRTT)
			require.Equal(t, uint64(5), sendUntilBlocked(), "a window of 500 bytes holds five 100-byte records")
			require.NoError(t, s.CloseWithError(CodeCancelled, "done"))
		})
	})
	for _, tc := range []struct {
		name  string
		hello *frames.Hello
		frame []byte
		code  ErrorCode
	}{
		{"without the feature", rawHello(), frames.WindowFrame{Records: 1, Bytes: 1}.Append(nil), CodeUnexpectedFrame},
		{"above the HELLO", windowHello(), frames.WindowFrame{Records: 1001, Bytes: 1}.Append(nil), CodeProtocolViolation},
		{"zero", windowHello(), append(frames.AppendHeader(nil, frames.TypeWindow, 2), 0, 1), CodeFrameEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				raw, s := windowRawStream(t, tc.hello)
				raw.write(tc.frame)
				raw.expectRefusal(tc.code)
				<-s.Context().Done()
				require.ErrorIs(t, context.Cause(s.Context()), &StreamError{Code: tc.code})
				require.Equal(t, uint64(1), s.Snapshot().Errors.ProtocolViolations)
			})
		})
	}
}

// TestReceiverAnnouncesWindow: a sender with a fixed window of 32,768
// records (as an older or misconfigured peer might keep) and a consumer
// that applies 5,000 records/s. The receiver's WINDOW frames bring what
// the sender keeps in flight down to what the consumer drains in a few
// round trips, so that records wait tens of milliseconds, not the 6.5 s a
// full window would queue.
func TestReceiverAnnouncesWindow(t *testing.T) {
	t.Parallel()
	const rtt = 20 * time.Millisecond
	pc := pathCase{name: "slow-consumer", rtt: rtt, size: 256, duration: 12 * time.Second,
		cost: func(time.Duration) time.Duration { return 200 * time.Microsecond }}
	r := runPath(t, pc, &Config{Stream: StreamConfig{Window: WindowFixed}})
	from, to := 8*time.Second, pc.duration
	p99 := r.p99(from, to)
	t.Logf("fixed sender, slow consumer: final window %+v; frames in %+v; p99 %v, %.0f records/s",
		r.final.Window, r.final.FramesIn, p99, r.throughput(from, to))
	require.Positive(t, r.final.FramesIn.Window, "the receiver announced windows")
	require.Less(t, r.final.Window.PeerRecords, uint64(DefaultMaxApplyBacklogRecords))
	require.LessOrEqual(t, p99, 200*time.Millisecond)
	require.InDelta(t, 5000, r.throughput(from, to), 500, "the consumer stays busy")
}
