package quicrecord

import (
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/frames"
)

// frameKind indexes per-type frame counters.
type frameKind int

const (
	kindHello frameKind = iota
	kindBatch
	kindAck
	kindError
	kindWindow
	kindDone
	kindUnknown
	numFrameKinds
)

func kindOf(t frames.Type) frameKind {
	switch t {
	case frames.TypeHello:
		return kindHello
	case frames.TypeBatch:
		return kindBatch
	case frames.TypeAck:
		return kindAck
	case frames.TypeError:
		return kindError
	case frames.TypeWindow:
		return kindWindow
	case frames.TypeDone:
		return kindDone
	}
	return kindUnknown
}

// counters are a stream's diagnostics. Every field is written by the owner
// noted beside it and read by snapshots at any time; they are atomics so a
// snapshot never takes a lock the loops use. When the stream ends its
// final snapshot is taken once and kept, so what callers see stops
// changing even while the loops wind down.
type counters struct {
	// Send direction.
	outRecords  atomic.Uint64 // writer and reader (under smu): records accepted by Send
	outBytes    atomic.Uint64 // writer and reader (under smu): record bytes accepted
	outBatches  atomic.Uint64 // writer
	outFrames   [numFrameKinds]atomic.Uint64
	ackedSeq    atomic.Uint64 // reader (under smu)
	inflightRec atomic.Uint64 // writer and reader (under smu)
	inflightB   atomic.Uint64 // writer and reader (under smu)
	flushedSeq  atomic.Uint64 // writer (under smu)

	// Receive direction.
	inRecords     atomic.Uint64 // reader
	inBytes       atomic.Uint64 // reader
	inBatches     atomic.Uint64 // reader
	inFrames      [numFrameKinds]atomic.Uint64
	appliedSeq    atomic.Uint64 // Ack/Reject (under rmu)
	backlogRec    atomic.Uint64 // reader and Ack (under rmu)
	backlogBytes  atomic.Uint64 // reader and Ack (under rmu)
	backlogPeakR  atomic.Uint64 // reader (under rmu)
	backlogPeakB  atomic.Uint64 // reader (under rmu)
	lastActivityN atomic.Int64  // reader and writer: unix nanos of the last frame in or out

	// Acks.
	acksPiggyOut atomic.Uint64 // writer
	acksSoloOut  atomic.Uint64 // writer
	acksPiggyIn  atomic.Uint64 // reader
	acksSoloIn   atomic.Uint64 // reader

	// Barrier.
	barrierCalls    atomic.Uint64 // Barrier callers
	barrierFlushNs  atomic.Uint64
	barrierFlushMax atomic.Uint64
	barrierAckNs    atomic.Uint64
	barrierAckMax   atomic.Uint64
	rejectedByPeer  atomic.Uint64 // reader: our records the peer rejected
	rejectedLocally atomic.Uint64 // Reject: peer records we rejected
	violations      atomic.Uint64 // reader or writer: protocol violations detected here

	// Windows (gauges; see adapt.go).
	winRecs      atomic.Uint64 // reader (under smu): the send window
	winBytes     atomic.Uint64 // reader (under smu)
	peerWinRecs  atomic.Uint64 // reader (under smu): the peer's latest announcement
	peerWinBytes atomic.Uint64 // reader (under smu)
	annRecs      atomic.Uint64 // Ack/Reject (under rmu): what this side announces
	annBytes     atomic.Uint64 // Ack/Reject (under rmu)
	minDelayNs   atomic.Uint64 // reader (under smu): windowed minimum Send→ack delay
	queueDelayNs atomic.Int64  // reader (under smu): last round's delay above the minimum
	rateRecs     atomic.Uint64 // reader (under smu): delivery rate, records per second
	rateBytes    atomic.Uint64 // reader (under smu): delivery rate, bytes per second
	windowsOut   atomic.Uint64 // writer: WINDOW frames announcing a window below the HELLO's

	// Compression: record-section bytes of every BATCH before and after
	// compression (equal for plain batches), the batches sent
	// compressed, and the time in the codec.
	zOutRaw, zOutWire, zOutBatches, zOutNs atomic.Uint64 // writer
	zInRaw, zInWire, zInBatches, zInNs     atomic.Uint64 // reader
}

func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func (c *counters) frameOut(k frameKind) {
	c.outFrames[k].Add(1)
}

func (c *counters) frameIn(k frameKind) {
	c.inFrames[k].Add(1)
}

func (c *counters) touch(now time.Time) { c.lastActivityN.Store(now.UnixNano()) }

func (c *counters) barrier(flush, ack time.Duration) {
	c.barrierCalls.Add(1)
	c.barrierFlushNs.Add(uint64(flush))
	storeMax(&c.barrierFlushMax, uint64(flush))
	c.barrierAckNs.Add(uint64(ack))
	storeMax(&c.barrierAckMax, uint64(ack))
}
