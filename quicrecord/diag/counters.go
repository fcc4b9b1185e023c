package diag

import (
	"encoding/json"
	"fmt"
	"time"
)

// Counters are the cumulative counters of a stream, or the sums of those
// of several streams: the part of a quicrecord.RecordSnapshot that only
// grows while a stream lives, grouped so that sets of streams add up with
// [Counters.Add]. quicrecord.RecordSnapshot.Counters returns a stream's;
// a quicrecord.DiagnosticsSummary embeds their total, and
// quicrecord.Conn.EndedDiagnostics and package promrecord add them the
// same way.
//
// A new counter goes into the stream's atomics, into the struct here that
// holds it (and that struct's add), and into whatever prints it.
type Counters struct {
	// Out and In total the records, record bytes and BATCH frames sent
	// and received.
	Out TrafficTotals `json:"out"`
	In  TrafficTotals `json:"in"`
	// FramesOut and FramesIn count frames by type.
	FramesOut FrameCounts `json:"frames_out"`
	FramesIn  FrameCounts `json:"frames_in"`
	// Acks splits acks into piggybacked and standalone, each way.
	Acks AckStats `json:"acks"`
	// Barrier totals the successful Barrier calls and their waits; the
	// maxima are the longest wait of any one stream.
	Barrier BarrierStats `json:"barrier"`
	// Errors totals rejections and protocol violations.
	Errors ErrorStats `json:"errors"`
	// Compression totals the record bytes before and after batch
	// compression, each way, and the codec time.
	Compression CompressionStats `json:"compression"`
}

// Add adds the counters of o to c: totals add up, and the barrier maxima
// keep the larger.
func (c *Counters) Add(o *Counters) {
	c.Out.add(&o.Out)
	c.In.add(&o.In)
	c.FramesOut.add(&o.FramesOut)
	c.FramesIn.add(&o.FramesIn)
	c.Acks.add(&o.Acks)
	c.Barrier.add(&o.Barrier)
	c.Errors.add(&o.Errors)
	c.Compression.add(&o.Compression)
}

// TrafficTotals count one direction's records, record bytes and BATCH
// frames (counters).
type TrafficTotals struct {
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
	Batches uint64 `json:"batches"`
}

// RecordsPerBatch is the mean number of records per BATCH frame, a
// measure of how well the writer batches; 0 when there were no batches.
func (t TrafficTotals) RecordsPerBatch() float64 { return ratio(t.Records, t.Batches) }

func (t *TrafficTotals) add(o *TrafficTotals) {
	t.Records += o.Records
	t.Bytes += o.Bytes
	t.Batches += o.Batches
}

// FrameCounts count frames by type (counters). HELLO frames are counted
// by both sides of a negotiated stream; frames of a stream that was
// refused during its handshake are not counted anywhere. The ERROR that
// ends a stream (CloseWithError, a violation) is counted when the stream
// hands it to its writer, before the stream's snapshot is frozen; the
// writer drops it if the peer stops taking data within a second. A
// stream sends at most one DONE (its half-close); the summary table leaves
// the column out for that reason, the JSON and Prometheus outputs have it.
type FrameCounts struct {
	Hello   uint64 `json:"hello"`
	Batch   uint64 `json:"batch"`
	Ack     uint64 `json:"ack"`
	Error   uint64 `json:"error"`
	Window  uint64 `json:"window"`
	Done    uint64 `json:"done"`
	Unknown uint64 `json:"unknown"` // in: frame types this side does not know, skipped; out: reserved frames sent (liveness probes)
}

// Total is the number of frames of every type.
func (f FrameCounts) Total() uint64 {
	return f.Hello + f.Batch + f.Ack + f.Error + f.Window + f.Done + f.Unknown
}

func (f *FrameCounts) add(o *FrameCounts) {
	f.Hello += o.Hello
	f.Batch += o.Batch
	f.Ack += o.Ack
	f.Error += o.Error
	f.Window += o.Window
	f.Done += o.Done
	f.Unknown += o.Unknown
}

// AckStats split acks into piggybacked (in a BATCH header) and standalone
// ACK frames, in each direction (counters).
type AckStats struct {
	PiggybackedOut uint64 `json:"piggybacked_out"`
	StandaloneOut  uint64 `json:"standalone_out"`
	PiggybackedIn  uint64 `json:"piggybacked_in"`
	StandaloneIn   uint64 `json:"standalone_in"`
}

// PiggybackRatioOut is the share of acks sent that rode in a batch, in
// [0, 1]; 0 when none were sent.
func (a AckStats) PiggybackRatioOut() float64 {
	return ratio(a.PiggybackedOut, a.PiggybackedOut+a.StandaloneOut)
}

// PiggybackRatioIn is the share of acks received that rode in a batch.
func (a AckStats) PiggybackRatioIn() float64 {
	return ratio(a.PiggybackedIn, a.PiggybackedIn+a.StandaloneIn)
}

func (a *AckStats) add(o *AckStats) {
	a.PiggybackedOut += o.PiggybackedOut
	a.StandaloneOut += o.StandaloneOut
	a.PiggybackedIn += o.PiggybackedIn
	a.StandaloneIn += o.StandaloneIn
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// BarrierStats split the time Barrier calls spent between waiting for
// records to be handed to QUIC (flush-wait) and waiting for the peer to
// apply them (ack-wait). Only barriers that reached their target are
// counted, including those that return the peer's rejections; barriers
// that failed (stream ended, context done) are not. Calls and the totals
// are counters; the maxima only grow.
type BarrierStats struct {
	Calls          uint64
	FlushWaitTotal time.Duration
	FlushWaitMax   time.Duration
	AckWaitTotal   time.Duration
	AckWaitMax     time.Duration
}

// MeanFlushWait is the mean time a barrier waited for its records to be
// handed to QUIC; 0 when no barrier succeeded.
func (b BarrierStats) MeanFlushWait() time.Duration { return meanDur(b.FlushWaitTotal, b.Calls) }

// MeanAckWait is the mean time a barrier waited, after the flush, for the
// peer to apply its records; 0 when no barrier succeeded.
func (b BarrierStats) MeanAckWait() time.Duration { return meanDur(b.AckWaitTotal, b.Calls) }

func (b *BarrierStats) add(o *BarrierStats) {
	b.Calls += o.Calls
	b.FlushWaitTotal += o.FlushWaitTotal
	b.FlushWaitMax = max(b.FlushWaitMax, o.FlushWaitMax)
	b.AckWaitTotal += o.AckWaitTotal
	b.AckWaitMax = max(b.AckWaitMax, o.AckWaitMax)
}

func meanDur(total time.Duration, n uint64) time.Duration {
	if n == 0 {
		return 0
	}
	return time.Duration(uint64(total) / n)
}

// barrierJSON is the JSON form of BarrierStats: durations as Go duration
// strings, with the means included for readers of the raw JSON.
type barrierJSON struct {
	Calls          uint64 `json:"calls"`
	FlushWaitTotal string `json:"flush_wait_total"`
	FlushWaitMax   string `json:"flush_wait_max"`
	FlushWaitMean  string `json:"flush_wait_mean"`
	AckWaitTotal   string `json:"ack_wait_total"`
	AckWaitMax     string `json:"ack_wait_max"`
	AckWaitMean    string `json:"ack_wait_mean"`
}

// MarshalJSON writes durations as Go duration strings ("1.5ms"), which
// [time.ParseDuration] reads back exactly, and adds the two means.
func (b BarrierStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(barrierJSON{
		Calls:          b.Calls,
		FlushWaitTotal: b.FlushWaitTotal.String(), FlushWaitMax: b.FlushWaitMax.String(),
		FlushWaitMean: b.MeanFlushWait().String(),
		AckWaitTotal:  b.AckWaitTotal.String(), AckWaitMax: b.AckWaitMax.String(),
		AckWaitMean: b.MeanAckWait().String(),
	})
}

// UnmarshalJSON reads what MarshalJSON writes; the means are ignored.
func (b *BarrierStats) UnmarshalJSON(data []byte) error {
	var j barrierJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	var out BarrierStats
	out.Calls = j.Calls
	if err := parseDurations("barrier stats", []durationField{
		{&out.FlushWaitTotal, j.FlushWaitTotal}, {&out.FlushWaitMax, j.FlushWaitMax},
		{&out.AckWaitTotal, j.AckWaitTotal}, {&out.AckWaitMax, j.AckWaitMax},
	}); err != nil {
		return err
	}
	*b = out
	return nil
}

// durationField is a duration to read from its JSON string form.
type durationField struct {
	dst *time.Duration
	src string
}

// parseDurations reads the Go duration strings of fields into their
// destinations; an empty string leaves its destination alone. what names
// the value in an error.
func parseDurations(what string, fields []durationField) error {
	for _, f := range fields {
		if f.src == "" {
			continue
		}
		d, err := time.ParseDuration(f.src)
		if err != nil {
			return fmt.Errorf("diag: %s: %w", what, err)
		}
		*f.dst = d
	}
	return nil
}

// ErrorStats count failures (counters). Each rejection count names who
// rejected, so that it reads the same in every output: the summary
// table's out row and promrecord's direction="out" both count
// RejectedByPeer, records this side sent; the in row and direction="in"
// count RejectedLocally, records it received.
type ErrorStats struct {
	RejectedByPeer  uint64 `json:"rejected_by_peer"` // records this side sent that the peer rejected
	RejectedLocally uint64 `json:"rejected_locally"` // records this side received and rejected
	// ProtocolViolations are peer violations this side detected.
	ProtocolViolations uint64 `json:"protocol_violations"`
}

func (e *ErrorStats) add(o *ErrorStats) {
	e.RejectedByPeer += o.RejectedByPeer
	e.RejectedLocally += o.RejectedLocally
	e.ProtocolViolations += o.ProtocolViolations
}
