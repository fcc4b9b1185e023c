package quicrecord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// StreamState is a stream's lifecycle state in a snapshot.
type StreamState uint8

// Stream states.
const (
	// StateOpen is a live stream.
	StateOpen StreamState = iota + 1
	// StateClosed is a stream that ended gracefully (Close on either side,
	// or its connection closed with CodeNoError).
	StateClosed
	// StateFailed is a stream that ended with an error: a reset, a
	// protocol violation, or its connection lost.
	StateFailed
)

// String returns "open", "closed" or "failed".
func (s StreamState) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateClosed:
		return "closed"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// MarshalText makes states readable in JSON.
func (s StreamState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *StreamState) UnmarshalText(b []byte) error {
	for _, v := range []StreamState{StateOpen, StateClosed, StateFailed} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("quicrecord: unknown stream state %q", b)
}

// MarshalText makes roles readable in JSON.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (r *Role) UnmarshalText(b []byte) error {
	for _, v := range []Role{RoleOpener, RoleAcceptor} {
		if string(b) == v.String() {
			*r = v
			return nil
		}
	}
	return fmt.Errorf("quicrecord: unknown role %q", b)
}

// RecordSnapshot is a point-in-time copy of one stream's diagnostics. It
// is a value: nothing in it changes after it is returned. Counters are
// cumulative since the stream opened and only grow; gauges (in-flight,
// backlog) are the value at the snapshot. Once a stream ended, its
// Snapshot is the one taken at that moment and never changes again.
//
// Taking a snapshot reads atomics only: it never takes a lock the
// stream's loops use, so it never delays the writer or the reader. The
// fields are read one after another, so a snapshot of a busy stream is
// not one instant: a counter read later may include traffic that an
// earlier one does not.
//
// RecordSnapshot marshals to JSON with snake_case keys, states and roles
// as text and durations as Go duration strings ("1.5ms").
type RecordSnapshot struct {
	Identity  StreamIdentity `json:"identity"`
	Out       OutStats       `json:"out"`
	In        InStats        `json:"in"`
	FramesOut FrameCounts    `json:"frames_out"`
	FramesIn  FrameCounts    `json:"frames_in"`
	Acks      AckStats       `json:"acks"`
	Barrier   BarrierStats   `json:"barrier"`
	Errors    ErrorStats     `json:"errors"`
	Window    WindowStats    `json:"window"`
}

// Key returns the stream's key in its registries.
func (s *RecordSnapshot) Key() StreamKey {
	id := &s.Identity
	return StreamKey{Scope: id.Scope, Conn: id.Conn, StreamID: id.StreamID, DataID: id.DataID}
}

// StreamIdentity says which stream a snapshot describes and its state.
type StreamIdentity struct {
	Scope      string        `json:"scope"`
	Conn       uint64        `json:"conn"` // connection number within its listener; 0 if dialed
	StreamID   quic.StreamID `json:"stream_id"`
	DataID     uint64        `json:"data_id"`
	Role       Role          `json:"role"`
	RemoteAddr string        `json:"remote_addr"`
	Version    uint64        `json:"version"`  // negotiated protocol version
	Features   Features      `json:"features"` // negotiated features (bit set)
	State      StreamState   `json:"state"`
	// Cause says why the stream ended; empty while open.
	Cause        string    `json:"cause,omitempty"`
	OpenedAt     time.Time `json:"opened_at"`
	LastActivity time.Time `json:"last_activity"` // last frame in or out
}

// OutStats describe the send direction. The traffic counters (Records,
// Bytes, Batches), LastSeq and the in-flight gauges are published when the
// writer loop takes records (or an ack arrives), not on every Send, so
// they may trail Send by the records still waiting for the writer.
//
// Records counts the records Send accepted on this stream, replays by a
// ResumableStream included; Bytes their record bytes; Batches the BATCH
// frames written. A stream that resumed an earlier one numbers its
// records after those the acceptor had already applied, so its LastSeq
// may exceed Records.
type OutStats struct {
	TrafficTotals
	LastSeq uint64 `json:"last_seq"` // sequence number of the last record sent
	// FlushedSeq is the last record handed to QUIC.
	FlushedSeq      uint64 `json:"flushed_seq"`
	AckedSeq        uint64 `json:"acked_seq"`         // last record the peer acknowledged as applied
	InFlightRecords uint64 `json:"in_flight_records"` // sent and not yet acknowledged (gauge)
	InFlightBytes   uint64 `json:"in_flight_bytes"`   // record bytes sent and not yet acknowledged (gauge)
}

// InStats describe the receive direction: the records, record bytes and
// BATCH frames received (TrafficTotals), how far the application got,
// and its apply backlog.
type InStats struct {
	TrafficTotals
	AppliedSeq uint64 `json:"applied_seq"` // last record acked or rejected by the application
	// BacklogRecords and BacklogBytes are received and not yet applied
	// (gauges); the Peak fields are their maxima since open.
	BacklogRecords     uint64 `json:"backlog_records"`
	BacklogBytes       uint64 `json:"backlog_bytes"`
	BacklogPeakRecords uint64 `json:"backlog_peak_records"`
	BacklogPeakBytes   uint64 `json:"backlog_peak_bytes"`
}

// Counters are the cumulative counters of a stream, or the sums of those
// of several streams: the part of a [RecordSnapshot] that only grows
// while a stream lives, grouped so that sets of streams add up with
// [Counters.Add]. [RecordSnapshot.Counters] returns a stream's; a
// [DiagnosticsSummary] embeds their total, and [Conn.EndedDiagnostics]
// and package promrecord add them the same way.
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
}

// Counters returns the stream's cumulative counters.
func (s *RecordSnapshot) Counters() Counters {
	return Counters{
		Out: s.Out.TrafficTotals, In: s.In.TrafficTotals,
		FramesOut: s.FramesOut, FramesIn: s.FramesIn,
		Acks: s.Acks, Barrier: s.Barrier, Errors: s.Errors,
	}
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
// writer drops it if the peer stops taking data within a second.
type FrameCounts struct {
	Hello   uint64 `json:"hello"`
	Batch   uint64 `json:"batch"`
	Ack     uint64 `json:"ack"`
	Error   uint64 `json:"error"`
	Window  uint64 `json:"window"`
	Unknown uint64 `json:"unknown"` // frame types this side does not know, skipped
}

// Total is the number of frames of every type.
func (f FrameCounts) Total() uint64 {
	return f.Hello + f.Batch + f.Ack + f.Error + f.Window + f.Unknown
}

func (f *FrameCounts) add(o *FrameCounts) {
	f.Hello += o.Hello
	f.Batch += o.Batch
	f.Ack += o.Ack
	f.Error += o.Error
	f.Window += o.Window
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

// WindowStats describe a stream's windows and what its sender measures of
// its path (gauges: the values at the snapshot). With adaptation on (the
// default) the send window follows the measurements, see
// Config.QueueDelayTarget; with Config.FixedWindow it is the caps, and the
// measurements are still shown.
type WindowStats struct {
	// Records and Bytes are the send window: the most records and record
	// bytes Send lets be in flight now, within Config.MaxInFlightRecords
	// and MaxInFlightBytes and the peer's window.
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
	// PeerRecords and PeerBytes are the window the peer announced last:
	// its HELLO's, or its latest WINDOW frame.
	PeerRecords uint64 `json:"peer_records"`
	PeerBytes   uint64 `json:"peer_bytes"`
	// AnnouncedRecords and AnnouncedBytes are the window this side
	// announces to the peer now.
	AnnouncedRecords uint64 `json:"announced_records"`
	AnnouncedBytes   uint64 `json:"announced_bytes"`
	// MinAckDelay is the estimated minimum Send→applied-ack delay: the
	// round trip plus the peer's time for one batch, the floor the
	// queueing delay is measured above (the smallest in the last 10 s,
	// refreshed by a short probe when older); 0 until measured.
	MinAckDelay time.Duration `json:"min_ack_delay"`
	// QueueDelay is the last round's smallest Send→ack delay above
	// MinAckDelay: the queueing the window holds near the target.
	QueueDelay time.Duration `json:"queue_delay"`
	// RecordsPerSec and BytesPerSec are the delivery rate: records and
	// record bytes the peer applied per second (the largest of the last
	// rounds).
	RecordsPerSec uint64 `json:"records_per_sec"`
	BytesPerSec   uint64 `json:"bytes_per_sec"`
}

// windowJSON is the JSON form of WindowStats: durations as Go duration
// strings.
type windowJSON struct {
	Records          uint64 `json:"records"`
	Bytes            uint64 `json:"bytes"`
	PeerRecords      uint64 `json:"peer_records"`
	PeerBytes        uint64 `json:"peer_bytes"`
	AnnouncedRecords uint64 `json:"announced_records"`
	AnnouncedBytes   uint64 `json:"announced_bytes"`
	MinAckDelay      string `json:"min_ack_delay"`
	QueueDelay       string `json:"queue_delay"`
	RecordsPerSec    uint64 `json:"records_per_sec"`
	BytesPerSec      uint64 `json:"bytes_per_sec"`
}

// MarshalJSON writes the delays as Go duration strings ("1.5ms").
func (w WindowStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(windowJSON{
		Records: w.Records, Bytes: w.Bytes, PeerRecords: w.PeerRecords, PeerBytes: w.PeerBytes,
		AnnouncedRecords: w.AnnouncedRecords, AnnouncedBytes: w.AnnouncedBytes,
		MinAckDelay: w.MinAckDelay.String(), QueueDelay: w.QueueDelay.String(),
		RecordsPerSec: w.RecordsPerSec, BytesPerSec: w.BytesPerSec,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (w *WindowStats) UnmarshalJSON(data []byte) error {
	var j windowJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := WindowStats{
		Records: j.Records, Bytes: j.Bytes, PeerRecords: j.PeerRecords, PeerBytes: j.PeerBytes,
		AnnouncedRecords: j.AnnouncedRecords, AnnouncedBytes: j.AnnouncedBytes,
		RecordsPerSec: j.RecordsPerSec, BytesPerSec: j.BytesPerSec,
	}
	if err := parseDurations("window stats", []durationField{{&out.MinAckDelay, j.MinAckDelay}, {&out.QueueDelay, j.QueueDelay}}); err != nil {
		return err
	}
	*w = out
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
			return fmt.Errorf("quicrecord: %s: %w", what, err)
		}
		*f.dst = d
	}
	return nil
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

// ErrorStats count failures (counters).
type ErrorStats struct {
	RejectedIn  uint64 `json:"rejected_in"`  // records of ours the peer rejected
	RejectedOut uint64 `json:"rejected_out"` // peer records this side rejected
	// ProtocolViolations are peer violations this side detected.
	ProtocolViolations uint64 `json:"protocol_violations"`
}

func (e *ErrorStats) add(o *ErrorStats) {
	e.RejectedIn += o.RejectedIn
	e.RejectedOut += o.RejectedOut
	e.ProtocolViolations += o.ProtocolViolations
}

// Snapshot returns the stream's diagnostics. After the stream ended it
// returns the final snapshot, frozen at that moment.
func (s *RecordStream) Snapshot() RecordSnapshot {
	if f := s.freeze(); f != nil {
		return *f
	}
	return s.snapshot()
}

func (s *RecordStream) snapshot() RecordSnapshot {
	var snap RecordSnapshot
	id := &snap.Identity
	s.fillState(id)
	if s.info.remote != nil {
		id.RemoteAddr = s.info.remote.String()
	}
	id.OpenedAt = s.info.openedAt
	id.LastActivity = time.Unix(0, s.ctr.lastActivityN.Load())
	s.fillCounters(&snap)
	return snap
}

// fillState sets the identity fields a summary needs: the key, role,
// negotiated protocol and state. It allocates nothing for a live stream.
func (s *RecordStream) fillState(id *StreamIdentity) {
	id.Scope, id.Conn, id.StreamID, id.DataID = s.info.scope, s.conn.id, s.id, s.info.dataID
	id.Role, id.Version, id.Features = s.info.role, s.neg.Version, s.neg.Features
	id.State = StateOpen
	if s.ctx.Err() != nil {
		cause := context.Cause(s.ctx)
		id.Cause = cause.Error()
		id.State = stateOf(cause)
	}
}

// fillCounters copies the counters and gauges: atomic loads only.
func (s *RecordStream) fillCounters(snap *RecordSnapshot) {
	c := &s.ctr
	// outRecords holds the last sequence number sent; a resumed stream
	// starts numbering after sendBase, the records of its predecessors.
	last := c.outRecords.Load()
	snap.Out = OutStats{
		TrafficTotals: TrafficTotals{Records: last - s.sendBase, Bytes: c.outBytes.Load(), Batches: c.outBatches.Load()},
		LastSeq:       last, FlushedSeq: c.flushedSeq.Load(), AckedSeq: c.ackedSeq.Load(),
		InFlightRecords: c.inflightRec.Load(), InFlightBytes: c.inflightB.Load(),
	}
	snap.In = InStats{
		TrafficTotals: TrafficTotals{Records: c.inRecords.Load(), Bytes: c.inBytes.Load(), Batches: c.inBatches.Load()},
		AppliedSeq:    c.appliedSeq.Load(), BacklogRecords: c.backlogRec.Load(), BacklogBytes: c.backlogBytes.Load(),
		BacklogPeakRecords: c.backlogPeakR.Load(), BacklogPeakBytes: c.backlogPeakB.Load(),
	}
	snap.FramesOut = frameCounts(&c.outFrames)
	snap.FramesIn = frameCounts(&c.inFrames)
	snap.Acks = AckStats{
		PiggybackedOut: c.acksPiggyOut.Load(), StandaloneOut: c.acksSoloOut.Load(),
		PiggybackedIn: c.acksPiggyIn.Load(), StandaloneIn: c.acksSoloIn.Load(),
	}
	snap.Barrier = BarrierStats{
		Calls:          c.barrierCalls.Load(),
		FlushWaitTotal: time.Duration(c.barrierFlushNs.Load()), FlushWaitMax: time.Duration(c.barrierFlushMax.Load()),
		AckWaitTotal: time.Duration(c.barrierAckNs.Load()), AckWaitMax: time.Duration(c.barrierAckMax.Load()),
	}
	snap.Errors = ErrorStats{
		RejectedIn: c.rejectedIn.Load(), RejectedOut: c.rejectedOut.Load(), ProtocolViolations: c.violations.Load(),
	}
	snap.Window = WindowStats{
		Records: c.winRecs.Load(), Bytes: c.winBytes.Load(),
		PeerRecords: c.peerWinRecs.Load(), PeerBytes: c.peerWinBytes.Load(),
		AnnouncedRecords: c.annRecs.Load(), AnnouncedBytes: c.annBytes.Load(),
		MinAckDelay: time.Duration(c.minDelayNs.Load()), QueueDelay: time.Duration(max(c.queueDelayNs.Load(), 0)),
		RecordsPerSec: c.rateRecs.Load(), BytesPerSec: c.rateBytes.Load(),
	}
}

func frameCounts(a *[numFrameKinds]atomic.Uint64) FrameCounts {
	return FrameCounts{
		Hello: a[kindHello].Load(), Batch: a[kindBatch].Load(), Ack: a[kindAck].Load(),
		Error: a[kindError].Load(), Window: a[kindWindow].Load(), Unknown: a[kindUnknown].Load(),
	}
}

// stateOf classifies the cause a stream ended with.
func stateOf(cause error) StreamState {
	if errors.Is(cause, ErrClosed) {
		return StateClosed
	}
	var se *StreamError
	if errors.As(cause, &se) && se.Code == CodeNoError {
		return StateClosed
	}
	var ce *ConnError
	if errors.As(cause, &ce) && ce.Code == CodeNoError && ce.Err != nil {
		var ae *quic.ApplicationError
		if errors.As(ce.Err, &ae) {
			return StateClosed
		}
	}
	return StateFailed
}

// Snapshots returns the snapshots of the connection's live streams,
// ordered by (scope, stream ID, data ID).
func (c *Conn) Snapshots() []RecordSnapshot { return snapshotsOf(c.streams) }

// Snapshots returns the snapshots of the live streams of every connection
// the listener accepted, ordered by (scope, connection, stream ID, data ID).
func (l *Listener) Snapshots() []RecordSnapshot { return snapshotsOf(l.streams) }

func snapshotsOf(r *streamRegistry) []RecordSnapshot {
	streams := r.Snapshot()
	out := make([]RecordSnapshot, len(streams))
	for i, s := range streams {
		out[i] = s.Snapshot()
	}
	return out
}
