package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// TestCodeOf: the one error-to-code mapping takes the code and reason of
// a *StreamError or *RecordError anywhere in the chain, and the caller's
// fallback with the error's text for anything else.
func TestCodeOf(t *testing.T) {
	plain := errors.New("disk full")
	for _, tc := range []struct {
		name       string
		err        error
		fallback   ErrorCode
		wantCode   ErrorCode
		wantReason string
	}{
		{"stream error", &StreamError{Code: CodeApplicationMin + 1, Reason: "quota"}, CodeRefused, CodeApplicationMin + 1, "quota"},
		{"record error", &RecordError{Code: CodeApplicationMin + 2, Reason: "bad row"}, CodeRejected, CodeApplicationMin + 2, "bad row"},
		{"wrapped stream error", fmt.Errorf("apply: %w", &StreamError{Code: CodeCancelled, Reason: "stop"}), CodeRejected, CodeCancelled, "stop"},
		{"wrapped record error", fmt.Errorf("apply: %w", &RecordError{Code: CodeRejected, Reason: "dup"}), CodeRefused, CodeRejected, "dup"},
		{"plain error, Apply", plain, CodeRejected, CodeRejected, "disk full"},
		{"plain error, accept handler", plain, CodeRefused, CodeRefused, "disk full"},
		{"plain error, writer", plain, CodeInternal, CodeInternal, "disk full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := codeOf(tc.err, tc.fallback)
			require.Equal(t, tc.wantCode, code)
			require.Equal(t, tc.wantReason, reason)
			se := asStreamError(tc.err, tc.fallback)
			require.Equal(t, tc.wantCode, se.Code)
			require.Equal(t, tc.wantReason, se.Reason)
			require.ErrorIs(t, se, &StreamError{Code: tc.wantCode})
		})
	}
	se := &StreamError{Code: CodeAckRegression}
	require.Same(t, se, asStreamError(fmt.Errorf("x: %w", se), CodeRefused), "a *StreamError is returned as it is")
}

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
						_ = a.Apply(actx, func(Record) error { return &RecordError{Code: CodeApplicationMin, Reason: long} })
					}()
				} else {
					r, err := a.Recv(ctx)
					require.NoError(t, err)
					require.NoError(t, a.Reject(r.Seq, CodeApplicationMin, long))
				}
				err := o.Barrier(ctx)
				var re *RecordError
				require.ErrorAs(t, err, &re)
				require.True(t, re.Remote)
				require.Equal(t, CodeApplicationMin, re.Code)
				require.True(t, utf8.ValidString(re.Reason), "the reason stays valid UTF-8")
				require.Equal(t, want, re.Reason)
			})
		})
	}
}
