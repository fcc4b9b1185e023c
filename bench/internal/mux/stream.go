package mux

import (
	"context"
	"fmt"
	"io"
)

// Stream is one logical record stream of a [Session]. Its methods are safe
// for concurrent use.
type Stream struct {
	s  *Session
	id uint64

	// Send direction, guarded by s.mu.
	sent       uint64        // sequence number of the last record sent
	acked      uint64        // highest cumulative ack from the peer
	sentBytes  uint64        // record bytes sent
	ackedBytes uint64        // record bytes acked
	cum        fifo[uint64]  // sentBytes after each unacked record
	out        fifo[[]byte]  // encoded OPEN, DATA and FIN frames not yet written
	finished   bool          // CloseSend was called
	sendWait   chan struct{} // closed when acked advances or the session ends

	// Receive direction, guarded by s.mu.
	in           fifo[[]byte] // received records not yet returned by Recv
	rcum         fifo[uint64] // recvBytes after each unapplied record
	received     uint64
	delivered    uint64
	applied      uint64
	ackSent      uint64
	recvBytes    uint64
	appliedBytes uint64
	ackQueued    bool
	finRecv      bool          // the peer finished the stream
	recvWait     chan struct{} // closed when a record or FIN arrives or the session ends
}

// ID returns the stream's number.
func (st *Stream) ID() uint64 { return st.id }

// Send queues a copy of rec as the stream's next record and returns its
// sequence number. It blocks while the stream's window is full.
func (st *Stream) Send(ctx context.Context, rec []byte) (uint64, error) {
	s := st.s
	if len(rec) > s.cfg.MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(rec), s.cfg.MaxRecordSize)
	}
	frame := AppendData(make([]byte, 0, DataLen(st.id, len(rec))), st.id, rec)
	s.mu.Lock()
	for {
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		if s.closing {
			s.mu.Unlock()
			return 0, ErrClosed
		}
		if st.finished {
			s.mu.Unlock()
			return 0, ErrFinished
		}
		inflight := st.sent - st.acked
		if inflight == 0 || inflight < uint64(s.cfg.WindowRecords) &&
			st.sentBytes-st.ackedBytes+uint64(len(rec)) <= uint64(s.cfg.WindowBytes) {
			break
		}
		ch := waitChan(&st.sendWait)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		s.mu.Lock()
	}
	st.sent++
	seq := st.sent
	st.sentBytes += uint64(len(rec))
	st.cum.push(st.sentBytes)
	st.out.push(frame)
	s.mu.Unlock()
	s.wakeWriter()
	return seq, nil
}

// ackedLocked applies a cumulative ack from the peer.
func (st *Stream) ackedLocked(seq uint64) error {
	if seq > st.sent || seq < st.acked {
		return fmt.Errorf("%w: stream %d acked %d after %d with %d sent", ErrAckRange, st.id, seq, st.acked, st.sent)
	}
	if seq == st.acked {
		return nil
	}
	st.ackedBytes = st.cum.popN(int(seq - st.acked))
	st.acked = seq
	notifyLocked(&st.sendWait)
	return nil
}

// Acked returns the highest sequence number the peer acknowledged.
func (st *Stream) Acked() uint64 {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	return st.acked
}

// WaitAcked blocks until the peer acknowledged seq, preferring an ack that
// already arrived over a done ctx or an ended session.
func (st *Stream) WaitAcked(ctx context.Context, seq uint64) error {
	s := st.s
	s.mu.Lock()
	for st.acked < seq {
		switch {
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return err
		case s.eof:
			s.mu.Unlock()
			return ErrClosed
		}
		ch := waitChan(&st.sendWait)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			ok := st.acked >= seq
			s.mu.Unlock()
			if ok {
				return nil
			}
			return context.Cause(ctx)
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// CloseSend finishes the stream's send direction: a FIN frame follows the
// records already sent, and the peer's Recv returns io.EOF after the last
// of them. Later Sends fail with ErrFinished; acks still arrive. It is
// idempotent.
func (st *Stream) CloseSend() error {
	s := st.s
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if st.finished {
		s.mu.Unlock()
		return nil
	}
	st.finished = true
	st.out.push(AppendControl(nil, TypeFin, st.id))
	s.mu.Unlock()
	s.wakeWriter()
	return nil
}

// Recv returns the next record and its sequence number; the record belongs
// to the caller. It returns io.EOF once the peer finished the stream (FIN)
// or the whole session and every record was returned. Records already
// received are returned even if ctx is done.
func (st *Stream) Recv(ctx context.Context) (uint64, []byte, error) {
	s := st.s
	s.mu.Lock()
	for {
		if st.in.len() > 0 {
			rec := st.in.pop()
			st.delivered++
			seq := st.delivered
			s.mu.Unlock()
			return seq, rec, nil
		}
		switch {
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return 0, nil, err
		case s.eof || st.finRecv:
			s.mu.Unlock()
			return 0, nil, io.EOF
		}
		ch := waitChan(&st.recvWait)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, context.Cause(ctx)
		}
		s.mu.Lock()
	}
}

// Ack acknowledges every record up to seq as applied; the writer sends the
// ack ahead of any data. seq must not exceed the last record Recv
// returned; acking an older seq is a no-op.
func (st *Stream) Ack(seq uint64) error {
	s := st.s
	s.mu.Lock()
	if seq > st.delivered {
		s.mu.Unlock()
		return ErrNotDelivered
	}
	if seq <= st.applied {
		s.mu.Unlock()
		return nil
	}
	st.appliedBytes = st.rcum.popN(int(seq - st.applied))
	st.applied = seq
	wake := !st.ackQueued
	if wake {
		st.ackQueued = true
		s.acks = append(s.acks, st)
	}
	s.mu.Unlock()
	if wake {
		s.wakeWriter()
	}
	return nil
}
