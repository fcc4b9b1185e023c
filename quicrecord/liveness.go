package quicrecord

import (
	"time"

	"github.com/recordmux/recordmux/frames"
)

// Liveness probes. A peer that restarted on the same address with the
// same StatelessResetKey answers any packet of the old connection with a
// stateless reset, which ends the connection at once instead of after the
// idle timeout. But RFC 9000 (§10.3) lets it answer only packets larger
// than the reset, and quic-go sends none in reply to a packet of 42 bytes
// or less: its keep-alive PINGs and its ACKs are smaller. A sender whose
// records all reached the old peer's QUIC stack, unapplied when it died,
// has nothing else to send once its window is full, and would wait for
// the idle timeout (minutes, for an edge agent on a flaky link).
//
// So while records are in flight and no ack arrives, the writer sends a
// frame of a reserved type (docs/PROTOCOL.md §4.6: the peer skips it)
// carrying livenessPayload bytes: livenessFirst after the last progress,
// then at doubling gaps up to livenessMax. Its packet is large enough to
// be answered with a stateless reset. A live peer that is only slow to
// apply costs the probes' few bytes a second at most.
const (
	livenessFirst   = time.Second
	livenessMax     = 16 * time.Second
	livenessPayload = 32
	livenessType    = frames.Type(0x21) // the first reserved type
)

// livenessState is the writer's probe schedule (see writer.live).
type livenessState struct {
	at    time.Time     // the next probe; zero: nothing in flight
	gap   time.Duration // the gap before it
	acked uint64        // the ack seen when at was set
}

// probeLiveness sends a liveness probe when one is due, and schedules the
// next: a new ack (or nothing in flight) starts over. Called by the writer
// loop after each pass of a stream whose send direction is open.
func (s *RecordStream) probeLiveness(w *writer, now time.Time) error {
	acked, flushed := s.ctr.ackedSeq.Load(), s.ctr.flushedSeq.Load()
	p := &w.live
	switch {
	case flushed <= acked:
		p.at = time.Time{}
		return nil
	case p.at.IsZero() || acked != p.acked:
		p.at, p.gap, p.acked = now.Add(livenessFirst), livenessFirst, acked
		return nil
	case now.Before(p.at):
		return nil
	}
	var pad [livenessPayload]byte
	b := append(frames.AppendHeader(w.ctl[:0], livenessType, livenessPayload), pad[:]...)
	w.ctl = b
	if err := s.write(w, b); err != nil {
		return err
	}
	s.ctr.frameOut(kindUnknown)
	p.gap = min(2*p.gap, livenessMax)
	p.at = now.Add(p.gap)
	return s.abortWaiting()
}
