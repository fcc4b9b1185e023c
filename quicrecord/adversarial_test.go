package quicrecord

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// rawPeer speaks the wire protocol by hand on a quic-go stream, to play a
// buggy or hostile peer.
type rawPeer struct {
	t  testing.TB
	qs *quic.Stream
	fr *frames.Reader
}

func newRawPeer(t testing.TB, qs *quic.Stream) *rawPeer {
	return &rawPeer{t: t, qs: qs, fr: frames.NewReader(qs, 1<<22)}
}

func (r *rawPeer) write(b []byte) {
	r.t.Helper()
	_, err := r.qs.Write(b)
	require.NoError(r.t, err)
}

func rawHello() *frames.Hello {
	return &frames.Hello{
		MinVersion: 1, MaxVersion: 2, Features: frames.FeaturePiggybackAck,
		MaxFrameSize: 1 << 20, MaxRecordSize: 1 << 20, WindowRecords: 1000, WindowBytes: 1 << 20,
	}
}

// next reads the next known frame.
func (r *rawPeer) next() (frames.Type, []byte, error) {
	for {
		t, p, err := r.fr.ReadFrame()
		if err != nil || t.Known() {
			return t, p, err
		}
	}
}

func (r *rawPeer) readHello() {
	r.t.Helper()
	t, p, err := r.next()
	require.NoError(r.t, err)
	require.Equal(r.t, frames.TypeHello, t)
	_, _, err = frames.ParseHello(p)
	require.NoError(r.t, err)
}

// handshake sends h as the raw peer's HELLO, reads the reply and returns
// the stream conn accepted for it.
func (r *rawPeer) handshake(ctx context.Context, conn *Conn, h *frames.Hello) *RecordStream {
	r.t.Helper()
	r.write(h.Append(nil))
	r.readHello()
	s, err := conn.AcceptRecordStream(ctx)
	require.NoError(r.t, err)
	return s
}

// expectRefusal reads frames until the ERROR frame, checks its code, then
// checks that the stream was reset with the same code.
func (r *rawPeer) expectRefusal(code ErrorCode) {
	r.t.Helper()
	for {
		t, p, err := r.next()
		require.NoError(r.t, err, "expected an ERROR frame with %s", code)
		if t != frames.TypeError {
			continue
		}
		f, _, err := frames.ParseError(p)
		require.NoError(r.t, err)
		require.Equal(r.t, code, f.Code, "ERROR frame: %s", f.Reason)
		require.Zero(r.t, f.Seq)
		break
	}
	_, _, err := r.next()
	var se *quic.StreamError
	require.ErrorAs(r.t, err, &se)
	require.Equal(r.t, quic.StreamErrorCode(code), se.ErrorCode)
	require.True(r.t, se.Remote)
}

func batch(first uint64, recs ...string) []byte {
	rs := make([][]byte, len(recs))
	for i, r := range recs {
		rs[i] = []byte(r)
	}
	return frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: first}, rs)
}

func ackFrame(seq uint64) []byte { return frames.AppendAck(nil, seq) }

type hostileCase struct {
	name string
	code ErrorCode
	// before runs instead of the HELLO exchange when set (the violation
	// happens during the handshake).
	before func(r *rawPeer)
	// after runs once both HELLOs were exchanged; s is the recordmux side,
	// which has sent records 1..3.
	after func(r *rawPeer)
	cfg   *Config
	// halfClose makes the raw side announce FeatureHalfClose.
	halfClose bool
	// compression makes the raw side announce FeatureCompression and
	// accept S2 and zstd.
	compression bool
	// acked and received are what the recordmux side keeps from the
	// valid frames before the violation.
	acked, received uint64
}

// hello is the raw side's HELLO.
func (tc *hostileCase) hello() *frames.Hello {
	h := rawHello()
	if tc.halfClose {
		h.Features |= frames.FeatureHalfClose
	}
	if tc.compression {
		h.Features |= frames.FeatureCompression
		h.Extensions = append(h.Extensions, codecsExtension())
	}
	return h
}

func doneFrame(last uint64) []byte { return frames.AppendDone(nil, last) }

func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "ack beyond highest sent", code: CodeAckOutOfRange, after: func(r *rawPeer) { r.write(ackFrame(5)) }},
		{name: "ack going backwards", code: CodeAckRegression, acked: 2, after: func(r *rawPeer) { r.write(ackFrame(2)); r.write(ackFrame(1)) }},
		{name: "piggybacked ack beyond highest sent", code: CodeAckOutOfRange, after: func(r *rawPeer) {
			r.write(frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1, HasAck: true, Ack: 9}, [][]byte{[]byte("x")}))
		}},
		{name: "rejection of an unsent record", code: CodeAckOutOfRange, after: func(r *rawPeer) {
			f := frames.ErrorFrame{Seq: 7, Code: CodeRejected}
			r.write(f.Append(nil))
		}},
		{name: "seq gap", code: CodeSequenceGap, after: func(r *rawPeer) { r.write(batch(2, "a")) }},
		{name: "seq repeat", code: CodeSequenceGap, received: 2, after: func(r *rawPeer) { r.write(batch(1, "a", "b")); r.write(batch(2, "c")) }},
		{name: "frame longer than the max", code: CodeFrameTooLarge, cfg: &Config{Stream: StreamConfig{MaxRecordSize: 4096, MaxBatchBytes: 4096}}, after: func(r *rawPeer) {
			r.write(frames.AppendHeader(nil, frames.TypeBatch, 1<<20))
		}},
		{name: "unknown frame longer than the max", code: CodeFrameTooLarge, cfg: &Config{Stream: StreamConfig{MaxRecordSize: 4096, MaxBatchBytes: 4096}}, after: func(r *rawPeer) {
			r.write(frames.AppendHeader(nil, 0x21, 1<<20))
		}},
		{name: "record count beyond the records", code: CodeFrameEncoding, after: func(r *rawPeer) {
			b := []byte{0, 1, 2, 1, 'x'} // flags, first seq 1, count 2, one record
			r.write(append(frames.AppendHeader(nil, frames.TypeBatch, len(b)), b...))
		}},
		{name: "record length beyond the frame", code: CodeFrameEncoding, after: func(r *rawPeer) {
			b := []byte{0, 1, 1, 9, 'x'}
			r.write(append(frames.AppendHeader(nil, frames.TypeBatch, len(b)), b...))
		}},
		{name: "trailing bytes in a frame", code: CodeFrameEncoding, after: func(r *rawPeer) {
			b := []byte{0, 1, 1, 1, 'x', 0}
			r.write(append(frames.AppendHeader(nil, frames.TypeBatch, len(b)), b...))
		}},
		{name: "record larger than the max", code: CodeRecordTooLarge, cfg: &Config{Stream: StreamConfig{MaxRecordSize: 100, MaxBatchBytes: 4096}}, after: func(r *rawPeer) {
			r.write(batch(1, string(make([]byte, 101))))
		}},
		{name: "window exceeded", code: CodeWindowExceeded, cfg: &Config{Stream: StreamConfig{MaxApplyBacklogRecords: 2}}, after: func(r *rawPeer) {
			r.write(batch(1, "a", "b", "c"))
		}},
		{name: "second HELLO", code: CodeUnexpectedFrame, after: func(r *rawPeer) { r.write(rawHello().Append(nil)) }},
		{name: "oversized ERROR reason", code: CodeFrameEncoding, after: func(r *rawPeer) {
			reason := make([]byte, frames.MaxReasonLen+1)
			b := append([]byte{1, 0x10}, 0x44, 0x01) // seq 1, code 0x10, reason length 1025
			b = append(b, reason...)
			r.write(append(frames.AppendHeader(nil, frames.TypeError, len(b)), b...))
		}},
		{name: "truncated frame then FIN", code: CodeFrameEncoding, after: func(r *rawPeer) {
			full := batch(1, "abcdef")
			r.write(full[:len(full)-2])
			require.NoError(r.t, r.qs.Close())
		}},
		// PROTOCOL.md §4.8 and §8.4: DONE only with half-close, at the
		// last record received, once, and no BATCH after it.
		{name: "DONE without half-close", code: CodeUnexpectedFrame, after: func(r *rawPeer) { r.write(doneFrame(0)) }},
		{name: "DONE before the last record", code: CodeSequenceGap, halfClose: true, received: 1, after: func(r *rawPeer) {
			r.write(batch(1, "a"))
			r.write(doneFrame(2))
		}},
		{name: "BATCH after DONE", code: CodeUnexpectedFrame, halfClose: true, received: 1, after: func(r *rawPeer) {
			r.write(batch(1, "a"))
			r.write(doneFrame(1))
			r.write(batch(2, "b"))
		}},
		{name: "second DONE", code: CodeUnexpectedFrame, halfClose: true, after: func(r *rawPeer) { r.write(doneFrame(0)); r.write(doneFrame(0)) }},
		{name: "DONE before HELLO", code: CodeUnexpectedFrame, before: func(r *rawPeer) { r.write(doneFrame(0)) }},
		{name: "BATCH before HELLO", code: CodeUnexpectedFrame, before: func(r *rawPeer) { r.write(batch(1, "a")) }},
		{name: "ACK before HELLO", code: CodeUnexpectedFrame, before: func(r *rawPeer) { r.write(ackFrame(0)) }},
		// PROTOCOL.md §5.1: a direction that ends (FIN) before its HELLO
		// is a PROTOCOL_VIOLATION, on either side.
		{name: "FIN before HELLO", code: CodeProtocolViolation, before: func(r *rawPeer) { require.NoError(r.t, r.qs.Close()) }},
		{name: "unknown frame then FIN before HELLO", code: CodeProtocolViolation, before: func(r *rawPeer) {
			r.write(append(frames.AppendHeader(nil, 0x21, 2), 'h', 'i'))
			require.NoError(r.t, r.qs.Close())
		}},
		{name: "oversized HELLO", code: CodeFrameTooLarge, before: func(r *rawPeer) {
			r.write(frames.AppendHeader(nil, frames.TypeHello, frames.MaxHelloSize+1))
		}},
		{name: "malformed HELLO", code: CodeFrameEncoding, before: func(r *rawPeer) {
			h := rawHello()
			h.MinVersion = 0
			r.write(h.Append(nil))
		}},
	}
}

// TestHostilePeer drives each violation from a raw quic-go stream, with
// the raw side opening and accepting. Each gets its code within one round
// trip, nothing of the bad frame is applied, and another stream on the
// same connection keeps working.
func TestHostilePeer(t *testing.T) {
	t.Parallel()
	for _, rawOpens := range []bool{true, false} {
		for _, tc := range hostileCases() {
			t.Run(fmt.Sprintf("rawOpens=%v/%s", rawOpens, tc.name), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) { runHostile(t, tc, rawOpens) })
			})
		}
	}
}

func runHostile(t *testing.T, tc hostileCase, rawOpens bool) {
	ctx := context.Background()
	rawConn, qs := newSimQUIC(t, nil, tc.cfg, nil, simRTT/2)
	var refused []*StreamError
	var mu sync.Mutex
	cfg := &Config{}
	if tc.cfg != nil {
		c := *tc.cfg
		cfg = &c
	}
	cfg.OnStreamRefused = func(_ *AcceptInfo, err *StreamError) {
		mu.Lock()
		refused = append(refused, err)
		mu.Unlock()
	}
	conn, err := NewConn(qs, cfg)
	require.NoError(t, err)
	defer conn.Close()

	var raw *rawPeer
	var s *RecordStream
	var openErr error
	openDone := make(chan struct{})
	if rawOpens {
		str, err := rawConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		raw = newRawPeer(t, str)
		close(openDone)
	} else {
		go func() {
			defer close(openDone)
			s, openErr = conn.OpenRecordStream(ctx, StreamOptions{Scope: "hostile"})
		}()
		str, err := rawConn.AcceptStream(ctx)
		require.NoError(t, err)
		raw = newRawPeer(t, str)
		raw.readHello()
	}

	if tc.before != nil {
		start := time.Now()
		tc.before(raw)
		raw.expectRefusal(tc.code)
		require.LessOrEqual(t, time.Since(start), simRTT, "refused within one round trip")
		<-openDone
		if rawOpens {
			mu.Lock()
			require.Len(t, refused, 1)
			require.Equal(t, tc.code, refused[0].Code)
			require.False(t, refused[0].Remote)
			mu.Unlock()
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := conn.AcceptRecordStream(actx)
			require.ErrorIs(t, err, context.DeadlineExceeded, "a refused stream is never accepted")
		} else {
			var se *StreamError
			require.ErrorAs(t, openErr, &se)
			require.Equal(t, tc.code, se.Code)
			require.False(t, se.Remote)
		}
		require.Empty(t, conn.Snapshots(), "no stream left behind")
		checkOtherStreamWorks(t, conn, rawConn)
		return
	}

	if rawOpens {
		h := tc.hello()
		h.Scope = "hostile"
		s = raw.handshake(ctx, conn, h)
	} else {
		raw.write(tc.hello().Append(nil))
		<-openDone
		require.NoError(t, openErr)
	}
	// The recordmux side sends three records; the raw side reads them.
	send(t, s, 3)
	require.NoError(t, s.Flush(ctx))
	for got := 0; got < 3; {
		typ, p, err := raw.next()
		require.NoError(t, err)
		require.Equal(t, frames.TypeBatch, typ)
		b, _, err := frames.ParseBatch(p, 1<<20)
		require.NoError(t, err)
		require.Equal(t, uint64(got+1), b.FirstSeq)
		got += b.Count
	}

	start := time.Now()
	tc.after(raw)
	raw.expectRefusal(tc.code)
	require.LessOrEqual(t, time.Since(start), simRTT, "reset within one round trip")

	// Records of earlier valid frames stay deliverable; then the error.
	for i := uint64(1); i <= tc.received; i++ {
		r, err := s.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, r.Seq)
	}
	_, err = s.Recv(ctx)
	var se *StreamError
	require.ErrorAs(t, err, &se)
	require.Equal(t, tc.code, se.Code)
	require.False(t, se.Remote, "this side detected the violation")
	err = s.Barrier(ctx)
	require.ErrorIs(t, err, &StreamError{Code: tc.code})
	var be *BarrierError
	require.ErrorAs(t, err, &be)
	require.Equal(t, tc.acked, be.Acked)
	snap := s.Snapshot()
	require.Equal(t, uint64(1), snap.Errors.ProtocolViolations)
	require.Equal(t, tc.received, snap.In.Records, "nothing of the bad frame was applied")
	require.Equal(t, tc.acked, snap.Out.AckedSeq, "no ack of the bad frame was applied")
	require.Equal(t, StateFailed, snap.Status.State)
	require.NoError(t, s.Close(context.Background()))
	checkOtherStreamWorks(t, conn, rawConn)
}

// checkOtherStreamWorks opens a well-behaved stream on the same connection.
func checkOtherStreamWorks(t *testing.T, conn *Conn, rawConn *quic.Conn) {
	ctx := context.Background()
	peer, err := NewConn(rawConn, nil)
	require.NoError(t, err)
	defer peer.Close()
	o, err := peer.OpenRecordStream(ctx, StreamOptions{Scope: "good"})
	require.NoError(t, err)
	a, err := conn.AcceptRecordStream(ctx)
	require.NoError(t, err)
	go func() {
		_ = a.Apply(ctx, func(Record) error { return nil })
	}()
	send(t, o, 5)
	require.NoError(t, o.Barrier(ctx))
	require.NoError(t, o.Close(context.Background()))
	require.NoError(t, a.Close(context.Background()))
}

// TestPeerResetMidFrame: a peer that resets its stream in the middle of a
// frame ends the stream with the peer's code; nothing partial is applied.
func TestPeerResetMidFrame(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rawConn, qs := newSimQUIC(t, nil, nil, nil, simRTT/2)
		conn, err := NewConn(qs, nil)
		require.NoError(t, err)
		defer conn.Close()
		str, err := rawConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		raw := newRawPeer(t, str)
		s := raw.handshake(ctx, conn, rawHello())
		raw.write(batch(1, "complete"))
		full := batch(2, "partial record")
		raw.write(full[:5])
		time.Sleep(simRTT) // both writes arrive and are read
		start := time.Now()
		str.CancelWrite(quic.StreamErrorCode(CodeApplicationMin + 3))
		str.CancelRead(quic.StreamErrorCode(CodeApplicationMin + 3))
		r, err := s.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "complete", string(r.Data))
		_, err = s.Recv(ctx)
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.Equal(t, CodeApplicationMin+3, se.Code)
		require.True(t, se.Remote)
		require.LessOrEqual(t, time.Since(start), simRTT/2)
		require.Equal(t, uint64(1), s.Snapshot().In.Records)
		require.NoError(t, s.Close(context.Background()))
		checkOtherStreamWorks(t, conn, rawConn)
	})
}
