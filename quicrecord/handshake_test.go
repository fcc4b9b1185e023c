package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// expectReset reads until the stream fails and checks that it was reset
// with code and that no ERROR frame came before.
func (r *rawPeer) expectReset(code ErrorCode) {
	r.t.Helper()
	for {
		t, _, err := r.next()
		if err != nil {
			var se *quic.StreamError
			require.ErrorAs(r.t, err, &se)
			require.Equal(r.t, quic.StreamErrorCode(code), se.ErrorCode)
			require.True(r.t, se.Remote)
			return
		}
		require.NotEqual(r.t, frames.TypeError, t, "no ERROR frame before the reset")
	}
}

// TestOpenRecordStreamErrors walks the failure paths of OpenRecordStream
// against a raw acceptor: each returns a typed error (a *StreamError, a
// *ConnError or the context's end, never a bare io.EOF), and what the
// acceptor sees matches: an ERROR and a reset with the code of a failure
// the opener detected, a reset with CodeCancelled after the acceptor's own
// refusal or a cancelled open, nothing for options refused before a
// stream exists.
func TestOpenRecordStreamErrors(t *testing.T) {
	bigMeta := map[string]string{}
	manyMeta := map[string]string{}
	for i := range 5 {
		bigMeta[fmt.Sprint(i)] = strings.Repeat("v", frames.MaxMetadataValueLen)
	}
	for i := range frames.MaxMetadataEntries + 1 {
		manyMeta[fmt.Sprint(i)] = "v"
	}
	const appCode = CodeApplicationMin + 9
	for _, tc := range []struct {
		name string
		opts StreamOptions
		cfg  *Config
		// ctxTimeout bounds the open when set.
		ctxTimeout time.Duration
		// acceptor plays the raw acceptor after it read the HELLO; nil:
		// no stream must reach it.
		acceptor func(r *rawPeer, rawConn *quic.Conn)
		check    func(t *testing.T, err error)
	}{
		{name: "scope over its limit", opts: StreamOptions{Scope: strings.Repeat("s", frames.MaxScopeLen+1)},
			check: localCode(CodeFrameEncoding)},
		{name: "too many metadata entries", opts: StreamOptions{Metadata: manyMeta}, check: localCode(CodeFrameEncoding)},
		{name: "HELLO over its limit", opts: StreamOptions{Metadata: bigMeta}, check: localCode(CodeFrameTooLarge)},
		{name: "refused by the acceptor", acceptor: func(r *rawPeer, _ *quic.Conn) {
			f := frames.ErrorFrame{Code: appCode, Reason: "not here"}
			r.write(f.Append(nil))
			r.qs.SetReliableBoundary()
			r.qs.CancelWrite(quic.StreamErrorCode(appCode))
			r.expectReset(CodeCancelled)
		}, check: func(t *testing.T, err error) {
			se := remoteCode(appCode)(t, err)
			require.Equal(t, "not here", se.Reason)
		}},
		{name: "acceptor resets before its HELLO", acceptor: func(r *rawPeer, _ *quic.Conn) {
			r.qs.CancelWrite(quic.StreamErrorCode(appCode))
			r.qs.CancelRead(quic.StreamErrorCode(appCode))
		}, check: func(t *testing.T, err error) { remoteCode(appCode)(t, err) }},
		{name: "FIN before HELLO", acceptor: func(r *rawPeer, _ *quic.Conn) {
			require.NoError(t, r.qs.Close())
			r.expectRefusal(CodeProtocolViolation)
		}, check: localCode(CodeProtocolViolation)},
		{name: "malformed reply", acceptor: func(r *rawPeer, _ *quic.Conn) {
			h := rawHello()
			h.MinVersion = 0
			r.write(h.Append(nil))
			r.expectRefusal(CodeFrameEncoding)
		}, check: localCode(CodeFrameEncoding)},
		{name: "no common version", acceptor: func(r *rawPeer, _ *quic.Conn) {
			h := rawHello()
			h.MinVersion, h.MaxVersion = 3, 4
			r.write(h.Append(nil))
			r.expectRefusal(CodeVersionMismatch)
		}, check: localCode(CodeVersionMismatch)},
		{name: "hello timeout", cfg: &Config{HelloTimeout: time.Second}, acceptor: func(r *rawPeer, _ *quic.Conn) {
			r.expectRefusal(CodeHelloTimeout)
		}, check: func(t *testing.T, err error) {
			localCode(CodeHelloTimeout)(t, err)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		}},
		{name: "context deadline", ctxTimeout: time.Second, acceptor: func(r *rawPeer, _ *quic.Conn) {
			r.expectReset(CodeCancelled)
		}, check: func(t *testing.T, err error) {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		}},
		{name: "connection closed during the exchange", acceptor: func(_ *rawPeer, rawConn *quic.Conn) {
			require.NoError(t, rawConn.CloseWithError(quic.ApplicationErrorCode(appCode), "bye"))
		}, check: func(t *testing.T, err error) {
			var ce *ConnError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, appCode, ce.Code)
			require.True(t, ce.Remote)
			require.ErrorIs(t, err, net.ErrClosed)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				qc, rawConn := newSimQUIC(t, tc.cfg, nil, nil, simRTT/2)
				conn, err := NewConn(qc, tc.cfg)
				require.NoError(t, err)
				defer conn.Close()
				ctx := context.Background()
				if tc.ctxTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
					defer cancel()
				}
				opened := make(chan error, 1)
				go func() {
					s, err := conn.OpenRecordStream(ctx, tc.opts)
					if s != nil {
						_ = s.Close(context.Background())
					}
					opened <- err
				}()
				actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				str, aerr := rawConn.AcceptStream(actx)
				if tc.acceptor == nil {
					require.ErrorIs(t, aerr, context.DeadlineExceeded, "no stream was opened")
				} else {
					require.NoError(t, aerr)
					raw := newRawPeer(t, str)
					raw.readHello()
					tc.acceptor(raw, rawConn)
				}
				err = <-opened
				require.Error(t, err)
				require.NotErrorIs(t, err, io.EOF)
				requireTyped(t, err)
				tc.check(t, err)
				require.Empty(t, conn.Snapshots(), "no stream left behind")
			})
		})
	}
}

// TestOpenRecordStreamClosedConn: opening on a closed connection fails at
// once with ErrClosed.
func TestOpenRecordStreamClosedConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		require.NoError(t, p.client.Close())
		_, err := p.client.OpenRecordStream(context.Background(), StreamOptions{})
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, err, net.ErrClosed)
	})
}

// requireTyped checks that err is one of the error types OpenRecordStream
// promises.
func requireTyped(t *testing.T, err error) {
	t.Helper()
	var se *StreamError
	var ce *ConnError
	ok := errors.As(err, &se) || errors.As(err, &ce) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
	require.True(t, ok, "untyped error %T: %v", err, err)
}

// localCode checks for a *StreamError this side chose, with code.
func localCode(code ErrorCode) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.Equal(t, code, se.Code, "%v", err)
		require.False(t, se.Remote)
	}
}

// remoteCode checks for a *StreamError the acceptor chose, with code, and
// returns it.
func remoteCode(code ErrorCode) func(*testing.T, error) *StreamError {
	return func(t *testing.T, err error) *StreamError {
		t.Helper()
		var se *StreamError
		require.ErrorAs(t, err, &se)
		require.Equal(t, code, se.Code, "%v", err)
		require.True(t, se.Remote)
		return se
	}
}
