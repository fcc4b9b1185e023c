package quicrecord

import (
	"context"
	"errors"
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

// MarshalText makes roles readable in JSON.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// RecordSnapshot is a point-in-time copy of one stream's diagnostics. It
// is a value: nothing in it changes after it is returned. Counters are
// cumulative since the stream opened and only grow; gauges (in-flight,
// backlog) are the value at the snapshot. Once a stream ended, its
// Snapshot is the one taken at that moment and never changes again.
type RecordSnapshot struct {
	Identity  StreamIdentity
	Out       OutStats
	In        InStats
	FramesOut FrameCounts
	FramesIn  FrameCounts
	Acks      AckStats
	Barrier   BarrierStats
	Errors    ErrorStats
}

// StreamIdentity says which stream a snapshot describes and its state.
type StreamIdentity struct {
	Scope      string
	Conn       uint64 // connection number within its listener; 0 if dialed
	StreamID   quic.StreamID
	DataID     uint64
	Role       Role
	RemoteAddr string
	Version    uint64   // negotiated protocol version
	Features   Features // negotiated features
	State      StreamState
	// Cause says why the stream ended; empty while open.
	Cause        string
	OpenedAt     time.Time
	LastActivity time.Time // last frame in or out
}

// OutStats describe the send direction. Records, Bytes, LastSeq and the
// in-flight gauges are published when the writer loop takes records (or
// an ack arrives), not on every Send, so they may trail Send by the
// records still waiting for the writer.
type OutStats struct {
	Records uint64 // records accepted by Send (counter)
	Bytes   uint64 // record bytes accepted by Send (counter)
	Batches uint64 // BATCH frames written (counter)
	LastSeq uint64 // sequence number of the last record sent
	// FlushedSeq is the last record handed to QUIC.
	FlushedSeq      uint64
	AckedSeq        uint64 // last record the peer acknowledged as applied
	InFlightRecords uint64 // sent and not yet acknowledged (gauge)
	InFlightBytes   uint64 // record bytes sent and not yet acknowledged (gauge)
}

// InStats describe the receive direction.
type InStats struct {
	Records    uint64 // records received (counter)
	Bytes      uint64 // record bytes received (counter)
	Batches    uint64 // BATCH frames received (counter)
	AppliedSeq uint64 // last record acked or rejected by the application
	// BacklogRecords and BacklogBytes are received and not yet applied
	// (gauges); the Peak fields are their maxima since open.
	BacklogRecords     uint64
	BacklogBytes       uint64
	BacklogPeakRecords uint64
	BacklogPeakBytes   uint64
}

// FrameCounts count frames by type (counters).
type FrameCounts struct {
	Hello   uint64
	Batch   uint64
	Ack     uint64
	Error   uint64
	Unknown uint64
}

// AckStats split acks into piggybacked (in a BATCH header) and standalone
// ACK frames, in each direction (counters).
type AckStats struct {
	PiggybackedOut uint64
	StandaloneOut  uint64
	PiggybackedIn  uint64
	StandaloneIn   uint64
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

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// BarrierStats split the time Barrier calls spent between waiting for
// records to be handed to QUIC (flush-wait) and waiting for the peer to
// apply them (ack-wait). Only barriers that succeeded are counted.
type BarrierStats struct {
	Calls          uint64
	FlushWaitTotal time.Duration
	FlushWaitMax   time.Duration
	AckWaitTotal   time.Duration
	AckWaitMax     time.Duration
}

// ErrorStats count failures (counters).
type ErrorStats struct {
	RejectedIn  uint64 // records of ours the peer rejected
	RejectedOut uint64 // peer records this side rejected
	// ProtocolViolations are peer violations this side detected.
	ProtocolViolations uint64
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
	c := &s.ctr
	var snap RecordSnapshot
	id := &snap.Identity
	id.Scope, id.Conn, id.StreamID, id.DataID = s.info.scope, s.conn.id, s.id, s.info.dataID
	id.Role, id.Version, id.Features = s.info.role, s.neg.Version, s.neg.Features
	if s.info.remote != nil {
		id.RemoteAddr = s.info.remote.String()
	}
	id.OpenedAt = s.info.openedAt
	id.LastActivity = time.Unix(0, c.lastActivityN.Load())
	id.State = StateOpen
	if s.ctx.Err() != nil {
		cause := context.Cause(s.ctx)
		id.Cause = cause.Error()
		id.State = stateOf(cause)
	}
	snap.Out = OutStats{
		Records: c.outRecords.Load(), Bytes: c.outBytes.Load(), Batches: c.outBatches.Load(),
		LastSeq: c.outRecords.Load(), FlushedSeq: c.flushedSeq.Load(), AckedSeq: c.ackedSeq.Load(),
		InFlightRecords: c.inflightRec.Load(), InFlightBytes: c.inflightB.Load(),
	}
	snap.In = InStats{
		Records: c.inRecords.Load(), Bytes: c.inBytes.Load(), Batches: c.inBatches.Load(),
		AppliedSeq: c.appliedSeq.Load(), BacklogRecords: c.backlogRec.Load(), BacklogBytes: c.backlogBytes.Load(),
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
	return snap
}

func frameCounts(a *[numFrameKinds]atomicCounter) FrameCounts {
	return FrameCounts{
		Hello: a[kindHello].Load(), Batch: a[kindBatch].Load(), Ack: a[kindAck].Load(),
		Error: a[kindError].Load(), Unknown: a[kindUnknown].Load(),
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
