package quicrecord

import (
	"math"
	"time"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/flow"
)

// The adaptive windows, and batches bounded in time. The sender's in-flight window (sendState.win, a
// flow.Window guarded by smu) is fed by Send, which stamps each batch it
// starts and reports when the window is full, and by the reader, which
// hands it every new ack and the peer's WINDOW frames. The receiver's
// announced window (recvState.backlog, a flow.Backlog guarded by rmu) is
// fed by Recv/Apply, which note how long each batch waited for the
// application, and by Ack/Reject, which report it applied; when it moves
// far enough the writer sends a WINDOW frame. See package flow for the
// algorithms.

// applyMark is a batch the application started on: its last record and
// how long it waited in the backlog before that.
type applyMark struct {
	last uint64
	wait time.Duration
}

// initWindows sets up both windows from the stream's settings and
// negotiation, at the stream's current sequence numbers. Called by
// newStream and again by setBases, before the loops start.
func (s *RecordStream) initWindows() {
	target := s.set.queueTarget
	s.snd.win = flow.NewWindow(flow.WindowParams{
		Target:     target,
		MaxRecords: int64(s.windowRecs),
		MaxBytes:   int64(s.windowBytes),
		Fixed:      s.set.fixedWindow,
	}, s.snd.ackedSeq, s.snd.ackedBytes)
	// Until the writer has a rate (noteWrite), batches are the smallest
	// the time bound allows: a flat-out sender's first batch would
	// otherwise be a whole MaxBatchBytes, which on a slow link (64 KiB
	// is 107 ms at 5 Mbit/s) inflates the first delay samples, and with
	// them the minimum delay the window is sized from, for the 10 s until
	// it probes for a new one.
	s.batchLimit.Store(min(minBatchBytes, s.batchBytes.Load()))
	s.rcv.backlog = flow.NewBacklog(flow.BacklogParams{
		Target:     target,
		MaxRecords: int64(s.set.maxBacklogRecs),
		MaxBytes:   int64(s.set.maxBacklogBytes),
		// Without the feature the peer cannot be told of a smaller window.
		Fixed: s.set.fixedWindow || !s.negotiated().Features.Has(FeatureWindowUpdate),
	})
	s.ctr.peerWinRecs.Store(s.negotiated().PeerLimits.MaxInFlightRecords)
	s.ctr.peerWinBytes.Store(s.negotiated().PeerLimits.MaxInFlightBytes)
	s.ctr.annRecs.Store(uint64(s.set.maxBacklogRecs))
	s.ctr.annBytes.Store(uint64(s.set.maxBacklogBytes))
	s.publishWindowLocked()
}

// roomLocked reports whether the window lets Send queue a record of n
// bytes now; when it does not, the window learns that the sender is
// window-limited. One record may always go when nothing is in flight.
// Called with smu held.
func (s *RecordStream) roomLocked(n int) bool {
	inflight := s.snd.nextSeq - 1 - s.snd.ackedSeq
	if inflight == 0 {
		return true
	}
	w := s.snd.win
	if inflight < uint64(w.Records()) && s.snd.sentBytes-s.snd.ackedBytes+uint64(n) <= uint64(w.Bytes()) {
		return true
	}
	w.OnBlocked()
	return false
}

// batchTime is how long a batch should take to hand to QUIC: the writer
// sizes batches (see noteWrite) so that an ack or rejection produced
// while it writes waits at most about this long behind data, and so that
// a batch adds little queueing.
const batchTime = time.Millisecond

// minBatchBytes is the smallest batch the time bound shrinks a batch to.
const minBatchBytes = 8 << 10

// noteWrite takes the duration of one BATCH Write of n bytes: the writer
// keeps a moving average of how fast its Writes move bytes (on a path
// limited by its bandwidth, QUIC's Write blocks while the data is sent),
// and bounds the batches Send fills to batchTime of that rate, between
// minBatchBytes and the configured batch size. The bound starts at
// minBatchBytes (see initWindows), and Writes that small are too short
// to time: until one was timed, a delivery rate the acks measured that
// fills twice minBatchBytes in batchTime (130 Mbit/s and more) lifts the
// bound to batchTime of it, so that a fast path's batches grow to where
// their Writes can be timed. (Twice: a slower path gains little from
// larger batches, and an early, inflated rate sample must not give a
// slow link batches longer than the target.) Called by the writer loop.
func (s *RecordStream) noteWrite(w *writer, n int, took time.Duration) {
	if n < minBatchBytes || took <= 0 {
		// Too small to say how fast the path is.
		if w.writeRate == 0 {
			if limit := int64(float64(s.ctr.rateBytes.Load()) * batchTime.Seconds()); limit >= 2*minBatchBytes {
				s.batchLimit.Store(min(limit, s.batchBytes.Load()))
			}
		}
		return
	}
	rate := float64(n) / took.Seconds()
	if w.writeRate == 0 {
		w.writeRate = rate
	} else {
		w.writeRate += (rate - w.writeRate) / 8
	}
	limit := int64(w.writeRate * batchTime.Seconds())
	s.batchLimit.Store(min(max(limit, minBatchBytes), s.batchBytes.Load()))
}

// windowAckLocked hands the window a new cumulative ack. Called by the
// reader with smu held, after the send state took the ack.
func (s *RecordStream) windowAckLocked(now time.Time) {
	s.snd.win.OnLoss(s.conn.qc.ConnectionStats().PacketsLost)
	s.snd.win.OnAck(s.snd.ackedSeq, s.snd.ackedBytes, now)
	s.publishWindowLocked()
}

// publishWindowLocked copies the window's model to the atomics snapshots
// read. Called with smu held (or before the loops start).
func (s *RecordStream) publishWindowLocked() {
	st := s.snd.win.Stats()
	s.ctr.winRecs.Store(uint64(st.Records))
	s.ctr.winBytes.Store(uint64(st.Bytes))
	s.ctr.minDelayNs.Store(uint64(st.MinDelay))
	s.ctr.queueDelayNs.Store(int64(st.QueueDelay))
	s.ctr.rateRecs.Store(uint64(math.Round(st.RecordsPerSec)))
	s.ctr.rateBytes.Store(uint64(math.Round(st.BytesPerSec)))
}

// handleWindow applies the peer's WINDOW frame: the send window's caps
// become the announced window, within the HELLO's limits and this side's
// own. Called by the reader loop.
func (s *RecordStream) handleWindow(payload []byte) error {
	if !s.negotiated().Features.Has(FeatureWindowUpdate) {
		return s.protocolError(CodeUnexpectedFrame, "WINDOW on a stream that did not negotiate window-update", nil)
	}
	f, _, err := frames.ParseWindow(payload)
	if err != nil {
		return s.frameError(err)
	}
	if pl := s.negotiated().PeerLimits; f.Records > pl.MaxInFlightRecords || f.Bytes > pl.MaxInFlightBytes {
		return s.protocolError(CodeProtocolViolation, "WINDOW above the limits of the peer's HELLO", nil)
	}
	s.smu.Lock()
	s.snd.win.SetCaps(int64(min(uint64(s.windowRecs), f.Records)), int64(min(uint64(s.windowBytes), f.Bytes)))
	s.ctr.peerWinRecs.Store(f.Records)
	s.ctr.peerWinBytes.Store(f.Bytes)
	s.publishWindowLocked()
	// A larger window may let a blocked Send go on.
	s.snd.wait.notify()
	s.smu.Unlock()
	return nil
}

// startBatchLocked notes that the application starts on b, once per
// batch: the time the batch waited in the backlog goes to the announced
// window once the batch is applied. Called with rmu held, when a record
// of b is delivered.
func (s *RecordStream) startBatchLocked(b *inBatch) {
	if b.started {
		return
	}
	b.started = true
	s.rcv.marks = append(s.rcv.marks, applyMark{last: b.last, wait: time.Since(b.arrived)})
}

// appliedLocked tells the announced window about the batches that seq
// completes; when the window moved far enough, the writer owes the peer a
// WINDOW frame. Called with rmu held, after applied and applBytes took
// seq. It reports whether a WINDOW became due.
func (s *RecordStream) appliedLocked(seq uint64) bool {
	n := 0
	for n < len(s.rcv.marks) && s.rcv.marks[n].last <= seq {
		n++
	}
	if n == 0 {
		return false
	}
	now := time.Now()
	rtt := s.conn.qc.ConnectionStats().SmoothedRTT
	due := false
	for _, m := range s.rcv.marks[:n] {
		if s.rcv.backlog.OnApplied(m.wait, s.rcv.applied, s.rcv.applBytes, rtt, now) {
			due = true
		}
	}
	s.rcv.marks = append(s.rcv.marks[:0], s.rcv.marks[n:]...)
	if due {
		s.rcv.windowDue = true
		s.ctr.annRecs.Store(uint64(s.rcv.backlog.Records()))
		s.ctr.annBytes.Store(uint64(s.rcv.backlog.Bytes()))
	}
	return due
}

// takeWindowLocked returns the WINDOW frame the writer owes the peer, if
// any. Called with rmu held, by the writer.
func (s *RecordStream) takeWindowLocked() (frames.WindowFrame, bool) {
	if !s.rcv.windowDue {
		return frames.WindowFrame{}, false
	}
	s.rcv.windowDue = false
	return frames.WindowFrame{Records: uint64(s.rcv.backlog.Records()), Bytes: uint64(s.rcv.backlog.Bytes())}, true
}
