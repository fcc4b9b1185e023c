package suite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/bench/internal/mux"
	"github.com/recordmux/recordmux/quicrecord"
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
}

// HOL runs the head-of-line case for transport tr (recordmux, mux or
// framer) and returns its metrics (p50_us, p99_us, p999_us of the latency
// stream, mb_per_sec of the bulk stream, loss_observed, samples) and the
// latency samples. Called inside a testing/synctest bubble it runs in
// virtual time: the network then decides everything and CPU speed
// nothing, which makes the comparison exact and repeatable (create env
// inside the bubble, so that its certificate is valid in virtual time).
func HOL(ctx context.Context, env *Env, tr string, p HOLParams, inBubble bool) (map[string]float64, []time.Duration, error) {
	return holRun(ctx, env, tr, holParams{
		loss: p.Loss, rtt: p.RTT, duration: p.Duration, warmup: p.Warmup, rate: p.Rate,
		size: p.Size, bulkSize: p.BulkSize, seed: p.Seed, sleepOnly: inBubble,
	})
}

// holParams describe one head-of-line run.
type holParams struct {
	loss      float64
	rtt       time.Duration
	duration  time.Duration
	warmup    time.Duration
	rate      float64 // latency stream, records/s
	size      int     // latency record size
	bulkSize  int
	seed      uint64
	sleepOnly bool // inside testing/synctest
}

// holLink is the connection of one transport over the lossy link: a bulk
// sender and receiver, and the latency stream.
type holLink struct {
	bulkSend func(ctx context.Context, rec []byte) error
	lat      *pacedStream
	// abort closes the connection, which unblocks every sender; wait
	// then collects the goroutines. Errors after the run are expected
	// and ignored.
	abort, wait func()
}

// holRun runs a bulk stream and a paced latency stream side by side over
// one connection on a simulated link with packet loss, and measures the
// latency stream's Send-to-applied latency.
func holRun(ctx context.Context, env *Env, tr string, prm holParams) (map[string]float64, []time.Duration, error) {
	router := newLossRouter(prm.loss, prm.seed)
	p, err := env.dialSim(ctx, router, prm.rtt, env.quicConfig())
	if err != nil {
		return nil, nil, err
	}
	var bulkBytes atomic.Int64
	countBulk := func(n int) { bulkBytes.Add(int64(n)) }
	var link *holLink
	switch tr {
	case Recordmux:
		link, err = holRecordmux(ctx, env, p, countBulk)
	case Mux:
		link, err = holMux(ctx, env, p, countBulk)
	case Framer:
		link, err = holFramer(ctx, p, countBulk)
	default:
		err = fmt.Errorf("hol: unknown transport %q", tr)
	}
	if err != nil {
		p.close()
		return nil, nil, err
	}
	var stop atomic.Bool
	var bulkWG sync.WaitGroup
	var bulkErr error
	rec := payload(prm.bulkSize, 5)
	router.on.Store(true)
	bulkWG.Go(func() {
		for !stop.Load() {
			if err := link.bulkSend(ctx, rec); err != nil {
				if !stop.Load() {
					bulkErr = err
				}
				return
			}
		}
	})
	bulkStart := bulkBytes.Load()
	start := time.Now()
	out, err := runPaced(ctx, link.lat, pacedParams{rate: prm.rate, duration: prm.duration, warmup: prm.warmup, size: prm.size, sleepOnly: prm.sleepOnly})
	elapsed := time.Since(start)
	bulk := bulkBytes.Load() - bulkStart
	stop.Store(true)
	link.abort()
	bulkWG.Wait()
	link.wait()
	p.close()
	if err == nil {
		err = bulkErr
	}
	if err != nil {
		return nil, nil, err
	}
	p50, p99, p999 := Quantiles(out.lat)
	return map[string]float64{
		MP50us:           p50,
		MP99us:           p99,
		MP999us:          p999,
		MMBPerSec:        float64(bulk) / 1e6 / elapsed.Seconds(),
		MRecordsPerSec:   float64(out.sent) / prm.duration.Seconds(),
		MAllocsPerRecord: nan(),
		MCPUCores:        out.region.cores,
		"loss_observed":  router.lossRate(),
		"samples":        float64(len(out.lat)),
	}, out.lat, nil
}

// holRecordmux: two record streams, hence two QUIC streams.
func holRecordmux(ctx context.Context, env *Env, p *quicPair, countBulk func(int)) (*holLink, error) {
	cfg := env.rmConfig()
	cc, err := quicrecord.NewConn(p.client, cfg)
	if err != nil {
		return nil, err
	}
	sc, err := quicrecord.NewConn(p.server, cfg)
	if err != nil {
		_ = cc.Close()
		return nil, err
	}
	rp := &rmPair{client: cc, server: sc}
	tx, rx, err := rp.openStreams(ctx, 2, 1)
	if err != nil {
		rp.close()
		return nil, err
	}
	bulkDone := make(chan error, 1)
	go func() {
		bulkDone <- rx[0].Apply(ctx, func(r quicrecord.Record) error { countBulk(len(r.Data)); return nil })
	}()
	lat := rmPacedStream(ctx, tx[1], rx[1])
	return &holLink{
		bulkSend: func(ctx context.Context, rec []byte) error { _, err := tx[0].Send(ctx, rec); return err },
		lat:      lat,
		abort:    rp.close,
		wait: func() {
			<-bulkDone
			_ = lat.close()
		},
	}, nil
}

// holMux: both logical streams on ONE QUIC stream, with the same windows
// as recordmux's defaults.
func holMux(ctx context.Context, env *Env, p *quicPair, countBulk func(int)) (*holLink, error) {
	tx, rx, err := p.openStreams(ctx, 1, 1)
	if err != nil {
		return nil, err
	}
	rm := env.rmConfig()
	mc := &mux.Config{
		WindowRecords: orDefaultInt(rm.MaxInFlightRecords, quicrecord.DefaultMaxInFlightRecords),
		WindowBytes:   orDefaultInt(rm.MaxInFlightBytes, quicrecord.DefaultMaxInFlightBytes),
	}
	a, b := mux.New(tx[0], mc), mux.New(rx[0], mc)
	bulkTx, bulkRx := a.Stream(1), b.Stream(1)
	bulkDone := make(chan error, 1)
	go func() {
		for {
			seq, rec, err := bulkRx.Recv(ctx)
			if err != nil {
				bulkDone <- err
				return
			}
			countBulk(len(rec))
			if err := bulkRx.Ack(seq); err != nil {
				bulkDone <- err
				return
			}
		}
	}()
	lat := muxPacedStream(ctx, a.Stream(2), b.Stream(2))
	return &holLink{
		bulkSend: func(ctx context.Context, rec []byte) error { _, err := bulkTx.Send(ctx, rec); return err },
		lat:      lat,
		abort:    p.closeConns,
		wait: func() {
			_ = a.Close()
			_ = b.Close()
			<-bulkDone
			_ = lat.close()
		},
	}, nil
}

// holFramer: two framer streams, hence two QUIC streams.
func holFramer(ctx context.Context, p *quicPair, countBulk func(int)) (*holLink, error) {
	tx, rx, err := p.openStreams(ctx, 2, 1)
	if err != nil {
		return nil, err
	}
	bulkDone := make(chan error, 1)
	go func() { bulkDone <- framerReceive(rx[0], 0, func(r []byte) { countBulk(len(r)) }) }()
	bulk := framer.NewSender(tx[0], 0)
	lat := framerPacedStream(tx[1], rx[1])
	return &holLink{
		bulkSend: func(_ context.Context, rec []byte) error { _, err := bulk.Send(rec); return err },
		lat:      lat,
		abort:    p.closeConns,
		wait: func() {
			<-bulkDone
			_ = bulk.Close()
			_ = lat.close()
		},
	}, nil
}

func orDefaultInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
