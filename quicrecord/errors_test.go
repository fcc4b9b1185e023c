package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// TestRejectReasonCutOnRuneBoundary: a Reject reason longer than the
// limit reaches the sender cut before the multi-byte character that
// crosses the limit, so it stays valid UTF-8, both from Reject and from an
// Apply callback's error.
func TestRejectReasonCutOnRuneBoundary(t *testing.T) {
	long := strings.Repeat("a", frames.MaxReasonLen-1) + "€ and more"
	want := long[:frames.MaxReasonLen-1]
	for _, viaApply := range []bool{false, true} {
		t.Run(fmt.Sprintf("apply=%v", viaApply), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				p := newSimPair(t, nil, nil, nil, simRTT/2)
				o, a := p.openPair(t, false, StreamOptions{})
				send(t, o, 1)
				if viaApply {
					actx, cancel := context.WithCancel(ctx)
					defer cancel()
					go func() {
						_ = a.Apply(actx, func(Record) error { return &ApplicationError{Code: CodeApplicationMin, Reason: long} })
					}()
				} else {
					r, err := a.Recv(ctx)
					require.NoError(t, err)
					require.NoError(t, a.Reject(r.Seq, CodeApplicationMin, long))
				}
				err := o.Barrier(ctx)
				var re *RecordError
				require.ErrorAs(t, err, &re)
				require.Equal(t, CodeApplicationMin, re.Code)
				require.True(t, utf8.ValidString(re.Reason), "the reason stays valid UTF-8")
				require.Equal(t, want, re.Reason)
			})
		})
	}
}

// TestErrorMatrix pins what errors.Is matches for every error family:
// each error against every sentinel, net.ErrClosed and
// os.ErrDeadlineExceeded. A code matches only within its family.
func TestErrorMatrix(t *testing.T) {
	streamSentinels := []*StreamError{
		ErrInternal, ErrProtocolViolation, ErrFrameEncoding, ErrFrameTooLarge, ErrVersionMismatch, ErrRefused,
		ErrHelloTimeout, ErrAckOutOfRange, ErrAckRegression, ErrSequenceGap, ErrUnexpectedFrame, ErrCancelled,
		ErrResumeUnknown, ErrWindowExceeded,
	}
	targets := map[string]error{
		"net.ErrClosed": net.ErrClosed, "os.ErrDeadlineExceeded": os.ErrDeadlineExceeded,
		"ErrClosed": ErrClosed, "ErrRecordRejected": ErrRecordRejected, "ErrConnClosedByPeer": ErrConnClosedByPeer,
		"ErrRecordTooLarge": ErrRecordTooLarge, "ErrNotDelivered": ErrNotDelivered, "ErrAlreadyApplied": ErrAlreadyApplied,
		"ErrNotSent": ErrNotSent, "ErrConcurrentReceive": ErrConcurrentReceive, "ErrInvalidConfig": ErrInvalidConfig,
		"ErrHandshakeTimeout": ErrHandshakeTimeout, "ErrNoCertificate": ErrNoCertificate, "ErrALPNMismatch": ErrALPNMismatch,
	}
	for _, se := range streamSentinels {
		targets["stream "+se.Code.String()] = se
	}
	appClose := func(code ErrorCode, remote bool) *ConnError {
		qe := &quic.ApplicationError{ErrorCode: quic.ApplicationErrorCode(code), Remote: remote}
		return convertQUICError(qe, 0).(*ConnError)
	}
	for _, tc := range []struct {
		name string
		err  error
		want []string // the targets it matches; every other one it does not
	}{
		{"local refusal", &StreamError{Code: CodeRefused}, []string{"net.ErrClosed", "stream REFUSED"}},
		{"remote refusal, wrapped", fmt.Errorf("open: %w", &StreamError{Code: CodeRefused, Remote: true}), []string{"net.ErrClosed", "stream REFUSED"}},
		{"hello timeout", &StreamError{Code: CodeHelloTimeout}, []string{"net.ErrClosed", "os.ErrDeadlineExceeded", "stream HELLO_TIMEOUT"}},
		{"protocol violation", &StreamError{Code: CodeProtocolViolation, Remote: true}, []string{"net.ErrClosed", "stream PROTOCOL_VIOLATION"}},
		{"internal", &StreamError{Code: CodeInternal}, []string{"net.ErrClosed", "stream INTERNAL"}},
		{"record too large reset", &StreamError{Code: CodeRecordTooLarge, Remote: true}, []string{"net.ErrClosed"}},
		{"application reset", &StreamError{Code: CodeApplicationMin + 3, Remote: true}, []string{"net.ErrClosed"}},
		{"record rejected", &RecordError{Seq: 4, Code: CodeRejected}, []string{"ErrRecordRejected"}},
		{"record rejected with REFUSED", &RecordError{Seq: 4, Code: CodeRefused}, nil},
		{"record rejected, application code", &RecordError{Seq: 4, Code: CodeApplicationMin}, nil},
		{"barrier rejections", &RejectedError{Count: 3, Records: []RecordError{{Seq: 2, Code: CodeApplicationMin}, {Seq: 5, Code: CodeRejected}}}, []string{"ErrRecordRejected"}},
		{"peer closed the connection", appClose(CodeNoError, true), []string{"net.ErrClosed", "ErrConnClosedByPeer"}},
		{"peer closed the connection with REFUSED", appClose(CodeRefused, true), []string{"net.ErrClosed"}},
		{"this side closed the connection", appClose(CodeNoError, false), []string{"net.ErrClosed"}},
		{"idle timeout", convertQUICError(&quic.IdleTimeoutError{}, 0), []string{"net.ErrClosed", "os.ErrDeadlineExceeded"}},
		{"stateless reset", convertQUICError(&quic.StatelessResetError{}, 0), []string{"net.ErrClosed"}},
		{"closed here", fmt.Errorf("%w (code %s)", ErrClosed, CodeNoError), []string{"net.ErrClosed", "ErrClosed"}},
		{"Send too large", errTooLarge(10, 5), []string{"ErrRecordTooLarge"}},
		{"Ack beyond delivered", misuse(ErrNotDelivered, "Ack(9)"), []string{"ErrNotDelivered"}},
		{"Reject applied", misuse(ErrAlreadyApplied, "Reject(1)"), []string{"ErrAlreadyApplied"}},
		{"WaitAcked unsent", misuse(ErrNotSent, "WaitAcked(9)"), []string{"ErrNotSent"}},
		{"concurrent Recv", misuse(ErrConcurrentReceive, "Recv"), []string{"ErrConcurrentReceive"}},
		{"application error", &ApplicationError{Code: CodeApplicationMin}, nil},
		{"invalid config", &ConfigError{Field: "Config.AcceptBacklog", Value: -1, Reason: "must be 0 (default) or positive"}, []string{"ErrInvalidConfig"}},
		{"dial: handshake timeout", &DialError{Network: "udp", Addr: "127.0.0.1:1", Err: dialCause(context.Background(), &quic.IdleTimeoutError{}, time.Second)},
			[]string{"ErrHandshakeTimeout", "os.ErrDeadlineExceeded"}},
		{"dial: ALPN", &DialError{Network: "udp", Addr: "127.0.0.1:1", Err: dialCause(context.Background(), &quic.TransportError{ErrorCode: alertNoApplicationProtocol, Remote: true}, time.Second)},
			[]string{"ErrALPNMismatch"}},
		{"dial: TLS", &DialError{Network: "udp", Addr: "127.0.0.1:1", Err: dialCause(context.Background(), &quic.TransportError{ErrorCode: 0x12a}, time.Second)}, nil},
		{"no certificate", fmt.Errorf("%w: Listen", ErrNoCertificate), []string{"ErrNoCertificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, target := range targets {
				require.Equal(t, slices.Contains(tc.want, name), errors.Is(tc.err, target), "errors.Is(%v, %s)", tc.err, name)
			}
		})
	}
}

// TestCodeOf: nil is CodeNoError, the first coded error in the chain
// gives the code, anything else is CodeInternal.
func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want ErrorCode
	}{
		{"nil", nil, CodeNoError},
		{"stream error", &StreamError{Code: CodeVersionMismatch, Remote: true}, CodeVersionMismatch},
		{"wrapped stream error", fmt.Errorf("open: %w", &StreamError{Code: CodeRefused}), CodeRefused},
		{"record error", &RecordError{Code: CodeApplicationMin + 2}, CodeApplicationMin + 2},
		{"rejections", &RejectedError{Count: 2, Records: []RecordError{{Seq: 1, Code: CodeApplicationMin + 5}, {Seq: 2}}}, CodeApplicationMin + 5},
		{"connection closed with a code", &ConnError{Code: CodeApplicationMin + 9, app: true}, CodeApplicationMin + 9},
		{"idle timeout", convertQUICError(&quic.IdleTimeoutError{}, 0), CodeNoError},
		{"application error", fmt.Errorf("x: %w", &ApplicationError{Code: CodeApplicationMin + 1}), CodeApplicationMin + 1},
		{"barrier error", &BarrierError{Err: &StreamError{Code: CodeCancelled}}, CodeCancelled},
		{"the outer coded error wins", &StreamError{Code: CodeInternal, Err: &StreamError{Code: CodeRefused}}, CodeInternal},
		{"joined", errors.Join(errors.New("plain"), &StreamError{Code: CodeAckRegression}), CodeAckRegression},
		{"plain", errors.New("disk full"), CodeInternal},
		{"context", context.Canceled, CodeInternal},
		{"misuse", errTooLarge(2, 1), CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, CodeOf(tc.err))
		})
	}
}

// TestCallbackCode: an *ApplicationError anywhere in a callback's error
// chooses the code and reason; a protocol code other than the callback's
// own is replaced by it; any other error, even one wrapping some stream's
// *StreamError or *RecordError, gets the generic code and reason.
func TestCallbackCode(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		generic    ErrorCode
		reason     string
		wantCode   ErrorCode
		wantReason string
	}{
		{"application code", &ApplicationError{Code: CodeApplicationMin + 1, Reason: "quota"}, CodeRefused, reasonRefused, CodeApplicationMin + 1, "quota"},
		{"wrapped", fmt.Errorf("apply: %w", &ApplicationError{Code: CodeApplicationMin, Reason: "dup"}), CodeRejected, reasonRejected, CodeApplicationMin, "dup"},
		{"the callback's own code", &ApplicationError{Code: CodeRejected, Reason: "bad"}, CodeRejected, reasonRejected, CodeRejected, "bad"},
		{"a forged protocol code", &ApplicationError{Code: CodeAckRegression, Reason: "forged"}, CodeRejected, reasonRejected, CodeRejected, "forged"},
		{"REFUSED from Apply", &ApplicationError{Code: CodeRefused, Reason: "no"}, CodeRejected, reasonRejected, CodeRejected, "no"},
		{"another stream's error", fmt.Errorf("forward: %w", &StreamError{Code: CodeVersionMismatch, Reason: "other"}), CodeRejected, reasonRejected, CodeRejected, reasonRejected},
		{"another record's rejection", &RecordError{Seq: 3, Code: CodeApplicationMin + 4, Reason: "other"}, CodeRefused, reasonRefused, CodeRefused, reasonRefused},
		{"plain error", errors.New("disk full"), CodeRefused, reasonRefused, CodeRefused, reasonRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := callbackCode(tc.err, tc.generic, tc.reason)
			require.Equal(t, tc.wantCode, code)
			require.Equal(t, tc.wantReason, reason)
		})
	}
}

// TestRejectLog drives the rejection bookkeeping of Barrier directly:
// each rejection reaches exactly one Barrier, the first that returns
// covering it, whether it was kept whole or only counted.
func TestRejectLog(t *testing.T) {
	rec := func(seq uint64) RecordError { return RecordError{Seq: seq, Code: CodeRejected} }
	seqs := func(re *RejectedError) []uint64 {
		var out []uint64
		for _, r := range re.Records {
			out = append(out, r.Seq)
		}
		return out
	}
	t.Run("kept, two barriers", func(t *testing.T) {
		var l rejectLog
		l.wait(5)
		l.add(rec(2))
		l.add(rec(4))
		l.wait(10)
		l.add(rec(7))
		re := l.take(10) // the later Barrier returns first and takes all
		require.Equal(t, 3, re.Count)
		require.Equal(t, []uint64{2, 4, 7}, seqs(re))
		require.Nil(t, l.take(5), "nothing is left for the earlier one")
		require.Empty(t, l.waits)
	})
	t.Run("counted beyond the kept ones", func(t *testing.T) {
		var l rejectLog
		for seq := uint64(1); seq <= MaxReportedRejections; seq++ {
			l.add(rec(seq))
		}
		l.wait(100)
		l.add(rec(90))  // counted under 100
		l.add(rec(101)) // above every target
		l.wait(200)     // 101 moves under 200
		l.add(rec(150))
		re := l.take(100)
		require.Equal(t, MaxReportedRejections+1, re.Count)
		require.Len(t, re.Records, MaxReportedRejections)
		require.Equal(t, uint64(1), re.Records[0].Seq)
		l.add(rec(201)) // still counted: 101 and 150 are not reported yet
		l.wait(300)
		re = l.take(200)
		require.Equal(t, 2, re.Count, "101 and 150")
		require.Empty(t, re.Records)
		re = l.take(300)
		require.Equal(t, 1, re.Count, "201")
		l.add(rec(301))
		l.wait(400)
		re = l.take(400)
		require.Equal(t, []uint64{301}, seqs(re), "kept again once nothing is only counted")
	})
	t.Run("a failed barrier hands its count on", func(t *testing.T) {
		var l rejectLog
		for seq := uint64(1); seq <= MaxReportedRejections; seq++ {
			l.add(rec(seq))
		}
		l.wait(70)
		l.wait(80)
		l.add(rec(65)) // under 70
		l.add(rec(75)) // under 80
		l.abandon(70)  // 65 moves under 80
		l.wait(80)
		re := l.take(80)
		require.Equal(t, MaxReportedRejections+2, re.Count)
		l.abandon(80) // the second Barrier for 80 fails: nothing left to move
		require.Empty(t, l.waits)
		require.Zero(t, l.above)
	})
}

// TestMisuseErrors: local mistakes name the call and the numbers, match
// their sentinel, and leave the stream usable.
func TestMisuseErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := newSimPair(t, nil, &Config{Stream: StreamConfig{MaxRecordSize: 1000}}, nil, simRTT/2)
		o, a := p.openPair(t, false, StreamOptions{})
		_, err := o.Send(ctx, make([]byte, 2000))
		require.ErrorIs(t, err, ErrRecordTooLarge)
		require.EqualError(t, err, "quicrecord: Send: record of 2000 bytes exceeds the stream's limit of 1000")
		send(t, o, 4)
		err = o.WaitAcked(ctx, 9)
		require.ErrorIs(t, err, ErrNotSent)
		require.EqualError(t, err, "quicrecord: WaitAcked(9): the last record sent is 4")
		err = a.Ack(3)
		require.ErrorIs(t, err, ErrNotDelivered)
		require.EqualError(t, err, "quicrecord: Ack(3): the last record delivered is 0")
		for range 4 {
			_, err := a.Recv(ctx)
			require.NoError(t, err)
		}
		require.NoError(t, a.Ack(4))
		require.NoError(t, o.WaitAcked(ctx, 4), "the stream went on")
	})
}

// TestRemoteReasonsQuoted: a reason the peer sent is untrusted text: the
// error texts quote it (as %q does), so a newline or a terminal escape in
// it cannot forge a log line; a reason this side chose is as it is.
func TestRemoteReasonsQuoted(t *testing.T) {
	const hostile = "ok\n2026-01-01 INFO forged line \x1b[2J"
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"remote stream error", &StreamError{Code: CodeRefused, Remote: true, StreamID: 4, Reason: hostile},
			`quicrecord: stream 4: remote error REFUSED: "ok\n2026-01-01 INFO forged line \x1b[2J"`},
		{"record error", &RecordError{Seq: 7, Code: CodeRejected, Reason: hostile},
			`quicrecord: record 7 rejected by the peer: REJECTED: "ok\n2026-01-01 INFO forged line \x1b[2J"`},
		{"remote connection close", &ConnError{Code: CodeApplicationMin, Reason: hostile, Remote: true, app: true},
			`quicrecord: connection closed by the peer with code APPLICATION(0x100): "ok\n2026-01-01 INFO forged line \x1b[2J"`},
		{"local stream error", &StreamError{Code: CodeCancelled, StreamID: 4, Reason: "closed by us"},
			"quicrecord: stream 4: local error CANCELLED: closed by us"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.err.Error())
			require.NotContains(t, tc.err.Error(), "\n")
		})
	}
}
