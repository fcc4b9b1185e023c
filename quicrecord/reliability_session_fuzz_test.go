package quicrecord

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// Windows of FuzzSession: small, so that a few operations fill them. The
// effective sender window is the smaller of the sender's caps and the
// receiver's announced backlog.
const (
	sessInFlightRecs  = 16
	sessInFlightBytes = 2048
	sessBacklogRecs   = 12
	sessBacklogBytes  = 1500
	sessMaxOps        = 64
)

// Session operations: the low 3 bits of each input byte; the high 5 bits
// are its argument.
const (
	sessOpSend    = iota // send arg%8+1 records of 16+8*(arg) bytes, each with a short deadline
	sessOpRecv           // receive up to arg%8+1 records
	sessOpAck            // ack everything received
	sessOpReject         // reject the next received, unapplied record
	sessOpStall          // sleep 10*arg ms
	sessOpBarrier        // Barrier with a 100 ms deadline
	sessOpClose          // the sender closes gracefully
	sessOpReset          // arg even: the sender resets; odd: the receiver does
)

// FuzzSession drives a sender and a receiver over simnet (inside a
// synctest bubble, a fresh connection per input) through a sequence of
// operations decoded from the input: send, receive, ack, reject, stall,
// Barrier, close, reset. After every operation the checker holds
// (received records are an ordered prefix of what was sent, without
// duplicates; acked ⊆ applied ⊆ sent) and so do the memory bounds:
// the sender's in-flight records and bytes stay within its window and the
// receiver's backlog within its caps. At the end, a stream that is still
// open is drained and its Barrier must succeed with applied == sent; one
// closed gracefully must have delivered every record before io.EOF; one
// reset must report the code on both sides as a *StreamError.
func FuzzSession(f *testing.F) {
	for _, seed := range sessionSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > sessMaxOps {
			ops = ops[:sessMaxOps]
		}
		synctest.Test(t, func(t *testing.T) { _ = runSession(t, ops, CompressionOff) })
	})
}

// FuzzSessionCompressed is FuzzSession with S2 compression on both
// sides and a 2 ms FlushDelay: the batches of 1 KiB and up that fill the
// receiver's window go compressed, and every invariant holds as without (the windows and the
// backlog count uncompressed bytes); at the end the receiver has decoded
// exactly the compressed batches the sender sent.
func FuzzSessionCompressed(f *testing.F) {
	for _, seed := range sessionSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > sessMaxOps {
			ops = ops[:sessMaxOps]
		}
		synctest.Test(t, func(t *testing.T) { _ = runSession(t, ops, CompressionS2) })
	})
}

// sessionSeeds are the seed inputs of the session fuzz targets.
func sessionSeeds() [][]byte {
	b := func(op, arg byte) byte { return op | arg<<3 }
	return [][]byte{
		{},
		{b(sessOpSend, 3), b(sessOpRecv, 3), b(sessOpAck, 0), b(sessOpBarrier, 0)},
		{b(sessOpSend, 31), b(sessOpSend, 31), b(sessOpStall, 5), b(sessOpBarrier, 0), b(sessOpRecv, 7), b(sessOpAck, 0), b(sessOpBarrier, 0)},
		{b(sessOpSend, 7), b(sessOpRecv, 7), b(sessOpReject, 0), b(sessOpRecv, 7), b(sessOpAck, 0), b(sessOpBarrier, 0)},
		{b(sessOpSend, 5), b(sessOpClose, 0), b(sessOpRecv, 7), b(sessOpRecv, 7)},
		{b(sessOpSend, 5), b(sessOpRecv, 2), b(sessOpAck, 0), b(sessOpReset, 0), b(sessOpRecv, 7)},
		{b(sessOpSend, 5), b(sessOpRecv, 2), b(sessOpReset, 1), b(sessOpSend, 1), b(sessOpBarrier, 0)},
		{b(sessOpSend, 31), b(sessOpSend, 31), b(sessOpSend, 31), b(sessOpRecv, 7), b(sessOpReject, 0), b(sessOpReject, 0), b(sessOpAck, 0), b(sessOpSend, 31), b(sessOpBarrier, 0)},
		{b(sessOpStall, 31), b(sessOpSend, 1), b(sessOpStall, 31), b(sessOpRecv, 1), b(sessOpAck, 0), b(sessOpClose, 0), b(sessOpBarrier, 0)},
	}
}

// fuzzSession is the state of one FuzzSession run.
type fuzzSession struct {
	t        *testing.T
	tx, rx   *RecordStream
	chk      *simtest.Checker
	closed   bool      // the sender closed gracefully
	reset    ErrorCode // non-zero once a side reset the stream
	resetBy  string
	rejected int // records rejected (Barrier reports them)
}

// runSession runs one session; it returns the batches sent compressed
// when the stream was not reset.
func runSession(t *testing.T, ops []byte, z Compression) uint64 {
	ccfg := &Config{Stream: StreamConfig{MaxInFlightRecords: sessInFlightRecs, MaxInFlightBytes: sessInFlightBytes, Compression: z}}
	if z != CompressionOff {
		// Batches linger, so that some reach the 1 KiB worth compressing.
		ccfg.Stream.FlushDelay = 2 * time.Millisecond
	}
	scfg := &Config{Stream: StreamConfig{MaxApplyBacklogRecords: sessBacklogRecs, MaxApplyBacklogBytes: sessBacklogBytes, Compression: z}}
	p := newSimPair(t, ccfg, scfg, nil, 5*time.Millisecond)
	tx, rx := p.openPair(t, false, StreamOptions{Scope: "session", DataID: 9})
	s := &fuzzSession{t: t, tx: tx, rx: rx, chk: simtest.NewChecker(9)}
	for i, b := range ops {
		s.step(b&7, int(b>>3))
		if t.Failed() {
			t.Fatalf("after op %d (%d, arg %d)", i, b&7, b>>3)
		}
	}
	s.finish()
	_ = tx.Close(context.Background())
	_ = rx.Close(context.Background())
	if s.reset == 0 {
		// Every batch sent arrived: the receiver decoded exactly the
		// compressed batches the sender sent.
		out, in := tx.Snapshot().Compression.Out, rx.Snapshot().Compression.In
		require.Equal(t, out.Compressed, in.Compressed)
		require.Equal(t, out.BytesBefore, in.BytesBefore)
		require.Equal(t, out.BytesAfter, in.BytesAfter)
		if z == CompressionOff {
			require.Zero(t, out.Compressed)
		}
		return out.Compressed
	}
	return 0
}

// TestSessionSeedsCompress: the seeds of FuzzSessionCompressed do take
// the compressed path, so that the fuzz target starts from inputs that
// exercise it.
func TestSessionSeedsCompress(t *testing.T) {
	var compressed uint64
	for _, seed := range sessionSeeds() {
		synctest.Test(t, func(t *testing.T) { compressed += runSession(t, seed, CompressionS2) })
	}
	require.Positive(t, compressed)
}

func (s *fuzzSession) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func (s *fuzzSession) step(op byte, arg int) {
	t := s.t
	switch op {
	case sessOpSend:
		for range arg%8 + 1 {
			sent, _, _, _ := s.chk.Counts()
			seq := sent + 1
			ctx, cancel := s.ctx(50 * time.Millisecond)
			s.chk.Sending(seq)
			got, err := s.tx.Send(ctx, simtest.Payload(9, seq, 16+8*arg))
			cancel()
			if err != nil {
				s.chk.SendFailed(seq)
				s.expectSendErr(err)
				return
			}
			s.chk.Sent(got)
		}
	case sessOpRecv:
		for range arg%8 + 1 {
			ctx, cancel := s.ctx(10 * time.Millisecond)
			r, err := s.rx.Recv(ctx)
			cancel()
			if err != nil {
				s.expectRecvErr(err)
				return
			}
			require.NoError(t, s.chk.Delivered(r.Seq, r.Data))
		}
	case sessOpAck:
		_, delivered, _, _ := s.chk.Counts()
		s.chk.Applied(delivered)
		if err := s.rx.Ack(delivered); err != nil {
			s.expectRecvErr(err)
		}
	case sessOpReject:
		_, delivered, applied, _ := s.chk.Counts()
		if applied == delivered {
			return
		}
		s.chk.Applied(applied + 1)
		if err := s.rx.Reject(applied+1, CodeApplicationMin+1, "fuzz says no"); err != nil {
			s.expectRecvErr(err)
			return
		}
		s.rejected++
	case sessOpStall:
		time.Sleep(time.Duration(arg) * 10 * time.Millisecond)
	case sessOpBarrier:
		sent, _, _, _ := s.chk.Counts()
		ctx, cancel := s.ctx(100 * time.Millisecond)
		err := s.tx.Barrier(ctx)
		cancel()
		s.barrierResult(sent, err)
	case sessOpClose:
		if s.reset == 0 && !s.closed {
			require.NoError(t, s.tx.Close(context.Background()))
			s.closed = true
		}
	case sessOpReset:
		if s.reset != 0 || s.closed {
			return
		}
		code := CodeApplicationMin + 2 + ErrorCode(arg&1)
		if arg&1 == 0 {
			require.NoError(t, s.tx.CloseWithError(code, "sender reset"))
			s.resetBy = "sender"
		} else {
			require.NoError(t, s.rx.CloseWithError(code, "receiver reset"))
			s.resetBy = "receiver"
		}
		s.reset = code
	}
	s.checkBounds()
}

// barrierResult checks what Barrier returned for target.
func (s *fuzzSession) barrierResult(target uint64, err error) {
	var re *RejectedError
	var be *BarrierError
	switch {
	case err == nil:
		s.chk.BarrierOK(target)
	case errors.As(err, &re):
		// Rejections are reported once every record up to target was
		// applied: the Barrier itself completed.
		require.Equal(s.t, CodeApplicationMin+1, re.Records[0].Code)
		s.chk.BarrierOK(target)
	case errors.As(err, &be):
		require.Equal(s.t, target, be.Target)
		s.chk.Acked(be.Acked)
		if s.reset == 0 && !s.closed {
			require.ErrorIs(s.t, err, context.DeadlineExceeded, "an open stream's Barrier only fails at its deadline")
		}
	default:
		s.t.Fatalf("Barrier returned %T: %v", err, err)
	}
}

func (s *fuzzSession) expectSendErr(err error) {
	switch {
	case s.reset != 0:
		require.ErrorIs(s.t, err, &StreamError{Code: s.reset}, "%v", err)
	case s.closed:
		require.ErrorIs(s.t, err, ErrClosed)
	default:
		require.ErrorIs(s.t, err, context.DeadlineExceeded, "Send on an open stream only fails at its deadline (window full)")
	}
}

func (s *fuzzSession) expectRecvErr(err error) {
	switch {
	case s.reset != 0:
		if errors.Is(err, context.DeadlineExceeded) {
		}
		var se *StreamError
		require.ErrorAs(s.t, err, &se, "%v", err)
		require.Equal(s.t, s.reset, se.Code)
	case s.closed && errors.Is(err, io.EOF):
		sent, delivered, _, _ := s.chk.Counts()
		require.Equal(s.t, sent, delivered, "io.EOF after every record of a graceful close")
	default:
		require.ErrorIs(s.t, err, context.DeadlineExceeded, "%v", err)
	}
}

func (s *fuzzSession) checkBounds() {
	t := s.t
	ts, rs := s.tx.Snapshot(), s.rx.Snapshot()
	s.chk.Acked(ts.Out.AckedSeq)
	require.LessOrEqual(t, ts.Out.InFlightRecords, uint64(sessBacklogRecs), "in-flight records within the window")
	require.LessOrEqual(t, ts.Out.InFlightBytes, uint64(sessBacklogBytes), "in-flight bytes within the window")
	require.LessOrEqual(t, rs.In.BacklogRecords, uint64(sessBacklogRecs), "backlog records within the cap")
	require.LessOrEqual(t, rs.In.BacklogBytes, uint64(sessBacklogBytes), "backlog bytes within the cap")
	require.LessOrEqual(t, rs.In.BacklogPeakRecords, uint64(sessBacklogRecs))
	require.LessOrEqual(t, rs.In.BacklogPeakBytes, uint64(sessBacklogBytes))
	require.NoError(t, s.chk.Err())
}

// finish drains what is left and checks the end state.
func (s *fuzzSession) finish() {
	t := s.t
	switch {
	case s.reset != 0:
		// Both sides see the code, as a *StreamError; the side that did
		// not reset sees it as the peer's.
		// The application acks as it drains, as in the other cases.
		ctx, cancel := s.ctx(time.Second)
		defer cancel()
		_, delivered, _, _ := s.chk.Counts()
		s.chk.Applied(delivered)
		_ = s.rx.Ack(delivered) // fails once the stream failed
		var err error
		for err == nil {
			var r Record
			if r, err = s.rx.Recv(ctx); err == nil {
				require.NoError(t, s.chk.Delivered(r.Seq, r.Data))
				s.chk.Applied(r.Seq)
				_ = s.rx.Ack(r.Seq)
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
		}
		var se *StreamError
		require.ErrorAs(t, err, &se, "%v", err)
		require.Equal(t, s.reset, se.Code)
		require.Equal(t, s.resetBy == "sender", se.Remote)
		sent, _, _, _ := s.chk.Counts()
		err = s.tx.Barrier(ctx)
		s.barrierResult(sent, err)
		if errors.As(err, new(*BarrierError)) {
			require.ErrorIs(t, err, &StreamError{Code: s.reset})
		}
		require.NoError(t, s.chk.Verify(false))
	case s.closed:
		// A graceful close delivers every record, then io.EOF. The
		// application acks what it holds first: received records count
		// against the backlog, and the FIN is read only once there is
		// room.
		ctx, cancel := s.ctx(10 * time.Second)
		defer cancel()
		_, delivered, _, _ := s.chk.Counts()
		s.chk.Applied(delivered)
		require.NoError(t, s.rx.Ack(delivered))
		for {
			r, err := s.rx.Recv(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			require.NoError(t, s.chk.Delivered(r.Seq, r.Data))
			s.chk.Applied(r.Seq)
			require.NoError(t, s.rx.Ack(r.Seq))
		}
		sent, delivered, _, _ := s.chk.Counts()
		require.Equal(t, sent, delivered, "a graceful close delivers everything")
		require.NoError(t, s.chk.Verify(false))
	default:
		// Drain, ack and pass a Barrier: nothing lost.
		ctx, cancel := s.ctx(time.Minute)
		defer cancel()
		sent, _, _, _ := s.chk.Counts()
		barrier := make(chan error, 1)
		go func() { barrier <- s.tx.Barrier(ctx) }()
		for {
			_, delivered, _, _ := s.chk.Counts()
			if delivered == sent {
				break
			}
			r, err := s.rx.Recv(ctx)
			require.NoError(t, err)
			require.NoError(t, s.chk.Delivered(r.Seq, r.Data))
			s.chk.Applied(r.Seq)
			require.NoError(t, s.rx.Ack(r.Seq))
		}
		_, delivered, _, _ := s.chk.Counts()
		s.chk.Applied(delivered)
		require.NoError(t, s.rx.Ack(delivered))
		s.barrierResult(sent, <-barrier)
		require.NoError(t, s.chk.Verify(true))
		s.checkBounds()
	}
}
