package suite

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/bench/internal/corpus"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// corpusRecords is how many distinct records a corpus transfer cycles
// through: 4096 records of 200–1,500 bytes, about 3.5 MiB, more than any
// batch or codec window, so that no batch repeats an earlier one.
const corpusRecords = 4096

// CorpusResult is one measured transfer of corpus records.
type CorpusResult struct {
	ThroughputResult
	// PayloadBytes is the record bytes carried; WireBytes what the client
	// connection put on the wire meanwhile (UDP payloads: QUIC, TLS and
	// recordmux overhead included, acks of the other direction too), or
	// 0 when the transport cannot tell ([transport.WireCounter]).
	PayloadBytes, WireBytes uint64
}

// CorpusThroughput is a connection of one transport with streams ready to
// carry the records of a corpus. Create it with [NewCorpusThroughput];
// call Run once, then Close.
type CorpusThroughput struct {
	s       *session
	records [][]byte
	t       Throughput // for Close
}

// NewCorpusThroughput starts a server end of transport tr in env and
// connects to it with the given number of streams, each to carry records
// of kind (seed 1).
func NewCorpusThroughput(ctx context.Context, env *Env, tr string, kind corpus.Kind, streams int) (*CorpusThroughput, error) {
	s, err := env.dialStreams(ctx, tr, transport.Tuning{}, Consumer{}, streams)
	if err != nil {
		return nil, err
	}
	return &CorpusThroughput{s: s, records: corpus.Records(kind, 1, corpusRecords), t: Throughput{s: s}}, nil
}

// MeanRecordSize is the mean size of the records the transfer cycles
// through.
func (c *CorpusThroughput) MeanRecordSize() int {
	var n int
	for _, r := range c.records {
		n += len(r)
	}
	return n / len(c.records)
}

// Run carries total records spread evenly over the streams or, when total
// is 0, sends on every stream for d; each stream sends the corpus records
// in order, from its own starting point. Timing starts just before the
// first Send and ends when every stream's last record is applied.
func (c *CorpusThroughput) Run(ctx context.Context, total int64, d time.Duration) (CorpusResult, error) {
	var stop atomic.Bool
	var records, payload atomic.Int64
	n := int64(len(c.s.senders))
	errs := make([]error, n)
	gate := make(chan struct{})
	done := make(chan struct{}, n)
	for i, snd := range c.s.senders {
		limit := int64(math.MaxInt64)
		if total > 0 {
			limit = total/n + b2i(int64(i) < total%n)
		}
		go func() {
			defer func() { done <- struct{}{} }()
			<-gate
			sent, bytes, err := c.sendCorpus(ctx, snd, i*corpusRecords/int(n), limit, &stop)
			records.Add(sent)
			payload.Add(bytes)
			if err != nil {
				errs[i] = fmt.Errorf("stream %d: %w", i, err)
			}
		}()
	}
	wc, _ := c.s.conn.(transport.WireCounter)
	var wire0 uint64
	if wc != nil {
		wire0 = wc.WireBytesSent()
	}
	m := startMeter()
	close(gate)
	if total == 0 {
		tm := time.AfterFunc(d, func() { stop.Store(true) })
		defer tm.Stop()
	}
	for range n {
		<-done
	}
	reg := m.stopAt(time.Now())
	res := CorpusResult{
		ThroughputResult: ThroughputResult{Records: records.Load(), Elapsed: reg.elapsed, Allocs: reg.allocs, Cores: reg.cores},
		PayloadBytes:     uint64(payload.Load()),
	}
	if wc != nil {
		res.WireBytes = wc.WireBytesSent() - wire0
	}
	return res, firstErr(errs...)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// sendCorpus sends corpus records from index first on, up to limit of
// them (until stop when limit is MaxInt64), flushes and waits until the
// last is applied. It returns the records and bytes sent.
func (c *CorpusThroughput) sendCorpus(ctx context.Context, s transport.Sender, first int, limit int64, stop *atomic.Bool) (int64, int64, error) {
	var n, bytes int64
	var last uint64
	for n < limit && (limit != math.MaxInt64 || !stop.Load()) {
		rec := c.records[(first+int(n))%len(c.records)]
		seq, err := s.Send(ctx, rec)
		if err != nil {
			return n, bytes, err
		}
		last = seq
		n++
		bytes += int64(len(rec))
	}
	if err := s.Flush(); err != nil {
		return n, bytes, err
	}
	if last == 0 {
		return 0, 0, nil
	}
	return n, bytes, s.WaitApplied(ctx, last)
}

// Close ends the streams, the connection and the server end. It is
// idempotent.
func (c *CorpusThroughput) Close() error { return c.t.Close() }

// compressionCells are the cells of the compression case: each corpus on
// one stream.
func compressionCells(r *runner, trs []string) []cell {
	var out []cell
	for _, kind := range corpus.Kinds {
		out = append(out, cell{
			base:  Result{Case: CaseCompression, Corpus: kind.String(), Streams: 1},
			label: kind.String() + " x1",
			reps:  r.opts.Reps, transports: trs,
			run: func(ctx context.Context, tr string, _ int) (repOut, error) {
				return r.compressionRep(ctx, tr, kind)
			},
		})
	}
	return out
}

func (r *runner) compressionRep(ctx context.Context, tr string, kind corpus.Kind) (repOut, error) {
	t, err := NewCorpusThroughput(ctx, r.env, tr, kind, 1)
	if err != nil {
		return repOut{}, err
	}
	var total int64
	if r.opts.Volume > 0 {
		total = max(r.opts.Volume/int64(t.MeanRecordSize()), 1)
	}
	res, err := t.Run(ctx, total, r.opts.Duration)
	if err = firstErr(err, t.Close()); err != nil {
		return repOut{}, err
	}
	secs := res.Elapsed.Seconds()
	m := newMetrics()
	m.RecordsPerSec = float64(res.Records) / secs
	m.MBPerSec = float64(res.PayloadBytes) / 1e6 / secs
	m.AllocsPerRecord = float64(res.Allocs) / float64(max(res.Records, 1))
	m.CPUCores = res.Cores
	if res.WireBytes > 0 && res.Records > 0 {
		m.WireBytesPerRecord = float64(res.WireBytes) / float64(res.Records)
		m.WireRatio = float64(res.WireBytes) / float64(res.PayloadBytes)
	}
	withServer(&m, t.t.rep)
	return repOut{m: m}, nil
}
