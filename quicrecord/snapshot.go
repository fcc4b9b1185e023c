package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/quicrecord/diag"
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
	Identity  StreamIdentity    `json:"identity"`
	Status    StreamStatus      `json:"status"`
	Out       diag.OutStats     `json:"out"`
	In        diag.InStats      `json:"in"`
	FramesOut diag.FrameCounts  `json:"frames_out"`
	FramesIn  diag.FrameCounts  `json:"frames_in"`
	Acks      diag.AckStats     `json:"acks"`
	Barrier   diag.BarrierStats `json:"barrier"`
	Errors    diag.ErrorStats   `json:"errors"`
	Window    diag.WindowStats  `json:"window"`
	// Compression counts the record bytes before and after batch
	// compression, each way (see StreamConfig.Compression).
	Compression diag.CompressionStats `json:"compression"`
}

// Counters returns the stream's cumulative counters.
func (s *RecordSnapshot) Counters() diag.Counters {
	return diag.Counters{
		Out: s.Out.TrafficTotals, In: s.In.TrafficTotals,
		FramesOut: s.FramesOut, FramesIn: s.FramesIn,
		Acks: s.Acks, Barrier: s.Barrier, Errors: s.Errors, Compression: s.Compression,
	}
}

// StreamIdentity says which stream a snapshot describes: what never
// changes while it lives. A stream is named by its scope, connection,
// stream ID and data ID, in that order, in snapshot lists and top lists.
type StreamIdentity struct {
	Scope string `json:"scope"`
	// Conn numbers the stream's connection within its listener (from 1);
	// 0 for a connection made by Dial or NewConn.
	Conn     uint64   `json:"conn"`
	StreamID StreamID `json:"stream_id"`
	// DataID is the identifier of the data the opener gave the stream
	// (see [StreamOptions].DataID); 0 when it gave none.
	DataID     uint64    `json:"data_id"`
	Role       Role      `json:"role"`
	RemoteAddr string    `json:"remote_addr"`
	Version    uint64    `json:"version"`  // negotiated protocol version
	Features   Features  `json:"features"` // negotiated features (bit set)
	OpenedAt   time.Time `json:"opened_at"`
}

// StreamStatus says where a stream is in its life at the snapshot.
type StreamStatus struct {
	State StreamState `json:"state"`
	// Cause says why the stream ended; empty while open.
	Cause        string    `json:"cause,omitempty"`
	LastActivity time.Time `json:"last_activity"` // last frame in or out
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
	s.fillState(id, &snap.Status)
	if s.info.remote != nil {
		id.RemoteAddr = s.info.remote.String()
	}
	id.OpenedAt = s.info.openedAt
	snap.Status.LastActivity = time.Unix(0, s.ctr.lastActivityN.Load())
	s.fillCounters(&snap)
	return snap
}

// fillState sets the identity fields a summary needs: the key, role,
// negotiated protocol and state. It allocates nothing for a live stream.
func (s *RecordStream) fillState(id *StreamIdentity, st *StreamStatus) {
	id.Scope, id.Conn, id.StreamID, id.DataID = s.info.scope, s.conn.id, s.id, s.info.dataID
	neg := s.negotiated()
	id.Role, id.Version, id.Features = s.info.role, neg.Version, neg.Features
	st.State = StateOpen
	if s.ctx.Err() != nil {
		cause := context.Cause(s.ctx)
		st.Cause = cause.Error()
		st.State = stateOf(cause)
	}
}

// fillCounters copies the counters and gauges: atomic loads only.
func (s *RecordStream) fillCounters(snap *RecordSnapshot) {
	c := &s.ctr
	// outRecords holds the last sequence number sent; a resumed stream
	// starts numbering after sendBase, the records of its predecessors.
	last := c.outRecords.Load()
	snap.Out = diag.OutStats{
		TrafficTotals: diag.TrafficTotals{Records: last - s.sendBase, Bytes: c.outBytes.Load(), Batches: c.outBatches.Load()},
		LastSeq:       last, FlushedSeq: c.flushedSeq.Load(), AckedSeq: c.ackedSeq.Load(),
		InFlightRecords: c.inflightRec.Load(), InFlightBytes: c.inflightB.Load(),
	}
	snap.In = diag.InStats{
		TrafficTotals: diag.TrafficTotals{Records: c.inRecords.Load(), Bytes: c.inBytes.Load(), Batches: c.inBatches.Load()},
		AppliedSeq:    c.appliedSeq.Load(), BacklogRecords: c.backlogRec.Load(), BacklogBytes: c.backlogBytes.Load(),
		BacklogPeakRecords: c.backlogPeakR.Load(), BacklogPeakBytes: c.backlogPeakB.Load(),
	}
	snap.FramesOut = frameCounts(&c.outFrames)
	snap.FramesIn = frameCounts(&c.inFrames)
	snap.Acks = diag.AckStats{
		PiggybackedOut: c.acksPiggyOut.Load(), StandaloneOut: c.acksSoloOut.Load(),
		PiggybackedIn: c.acksPiggyIn.Load(), StandaloneIn: c.acksSoloIn.Load(),
	}
	snap.Barrier = diag.BarrierStats{
		Calls:          c.barrierCalls.Load(),
		FlushWaitTotal: time.Duration(c.barrierFlushNs.Load()), FlushWaitMax: time.Duration(c.barrierFlushMax.Load()),
		AckWaitTotal: time.Duration(c.barrierAckNs.Load()), AckWaitMax: time.Duration(c.barrierAckMax.Load()),
	}
	snap.Errors = diag.ErrorStats{
		RejectedByPeer: c.rejectedByPeer.Load(), RejectedLocally: c.rejectedLocally.Load(), ProtocolViolations: c.violations.Load(),
	}
	snap.Window = diag.WindowStats{
		Records: c.winRecs.Load(), Bytes: c.winBytes.Load(),
		PeerRecords: c.peerWinRecs.Load(), PeerBytes: c.peerWinBytes.Load(),
		AnnouncedRecords: c.annRecs.Load(), AnnouncedBytes: c.annBytes.Load(),
		MinAckDelay: time.Duration(c.minDelayNs.Load()), QueueDelay: time.Duration(max(c.queueDelayNs.Load(), 0)),
		RecordsPerSec: c.rateRecs.Load(), BytesPerSec: c.rateBytes.Load(),
	}
	snap.Compression = diag.CompressionStats{
		Out: diag.CompressionTotals{Compressed: c.zOutBatches.Load(), BytesBefore: c.zOutRaw.Load(), BytesAfter: c.zOutWire.Load(), CodecTime: time.Duration(c.zOutNs.Load())},
		In:  diag.CompressionTotals{Compressed: c.zInBatches.Load(), BytesBefore: c.zInRaw.Load(), BytesAfter: c.zInWire.Load(), CodecTime: time.Duration(c.zInNs.Load())},
	}
}

func frameCounts(a *[numFrameKinds]atomic.Uint64) diag.FrameCounts {
	return diag.FrameCounts{
		Hello: a[kindHello].Load(), Batch: a[kindBatch].Load(), Ack: a[kindAck].Load(),
		Error: a[kindError].Load(), Window: a[kindWindow].Load(), Done: a[kindDone].Load(), Unknown: a[kindUnknown].Load(),
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
