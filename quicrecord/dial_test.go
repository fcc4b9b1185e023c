package quicrecord

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/tlsutil"
)

// closedPort returns a loopback UDP address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := pc.LocalAddr().String()
	require.NoError(t, pc.Close())
	return addr
}

// TestDialErrors pins Dial's failures: the net.Dial shape with the
// address, what they match, and that none is a closed connection.
func TestDialErrors(t *testing.T) {
	t.Parallel()
	_, ctls := tlsPair(t)
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		addr := closedPort(t)
		start := time.Now()
		_, err := Dial(context.Background(), addr, ctls, &Config{HandshakeTimeout: 200 * time.Millisecond})
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
		require.EqualError(t, err, "quicrecord: dial udp "+addr+": handshake timeout: no answer within 200ms")
		var de *DialError
		require.ErrorAs(t, err, &de)
		require.Equal(t, DialError{Network: "udp", Addr: addr, Err: de.Err}, *de)
		require.ErrorIs(t, err, ErrHandshakeTimeout)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NotErrorIs(t, err, net.ErrClosed, "a connection that never opened is not a closed one")
		var ce *ConnError
		require.False(t, errors.As(err, &ce), "no *ConnError either")
	})
	t.Run("context deadline", func(t *testing.T) {
		t.Parallel()
		addr := closedPort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, addr, ctls, nil)
		require.EqualError(t, err, "quicrecord: dial udp "+addr+": "+os.ErrDeadlineExceeded.Error()+": "+context.DeadlineExceeded.Error())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NotErrorIs(t, err, ErrHandshakeTimeout)
		require.NotErrorIs(t, err, net.ErrClosed)
	})
	t.Run("wrong name", func(t *testing.T) {
		t.Parallel()
		ca, err := tlsutil.NewCA("test CA")
		require.NoError(t, err)
		cert, err := ca.IssueServer("localhost")
		require.NoError(t, err)
		ln, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, nil)
		require.NoError(t, err)
		defer ln.Close()
		addr := ln.Addr().String()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = Dial(ctx, addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "wrong.example"}, nil)
		var hostErr x509.HostnameError
		require.ErrorAs(t, err, &hostErr, "the TLS error is reachable")
		require.Equal(t, "wrong.example", hostErr.Host)
		require.EqualError(t, err, "quicrecord: dial udp "+addr+": CRYPTO_ERROR 0x12a (local): tls: failed to verify certificate: "+hostErr.Error())
		var te *quic.TransportError
		require.ErrorAs(t, err, &te, "and so is quic-go's error")
		require.False(t, te.Remote)
		require.NotErrorIs(t, err, net.ErrClosed)
		require.NotErrorIs(t, err, ErrHandshakeTimeout)
		require.Equal(t, CodeInternal, CodeOf(err))
	})
	t.Run("unresolvable", func(t *testing.T) {
		t.Parallel()
		_, err := Dial(context.Background(), "127.0.0.1:99999", ctls, nil)
		var de *DialError
		require.ErrorAs(t, err, &de)
		require.Equal(t, "127.0.0.1:99999", de.Addr)
		var ae *net.AddrError
		require.ErrorAs(t, err, &ae)
	})
}

// TestListenWithoutCertificate: a tls.Config that cannot serve a
// handshake fails Listen at once instead of every Dial later.
func TestListenWithoutCertificate(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]*tls.Config{
		"nil":       nil,
		"empty":     {},
		"ALPN only": {NextProtos: []string{ALPN}},
	} {
		_, err := Listen("127.0.0.1:0", tc, nil)
		require.ErrorIs(t, err, ErrNoCertificate, name)
		require.EqualError(t, err, "quicrecord: no server certificate: Listen needs a tls.Config with Certificates, GetCertificate or GetConfigForClient (package identity makes one)")
	}
	stls, _ := tlsPair(t)
	getCert := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &stls.Certificates[0], nil }}
	ln, err := Listen("127.0.0.1:0", getCert, nil)
	require.NoError(t, err, "GetCertificate is enough")
	require.NoError(t, ln.Close())
}

// TestGracefulPeerClose: a connection the peer closed cleanly reads as
// one: AcceptRecordStream and the streams' calls return a *ConnError that
// says the peer closed it, matching ErrConnClosedByPeer and
// net.ErrClosed, with no QUIC error text; a stream of it ends closed,
// not failed.
func TestGracefulPeerClose(t *testing.T) {
	t.Parallel()
	p := newLoopbackPair(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := p.client.OpenRecordStream(ctx, StreamOptions{})
	require.NoError(t, err)
	a, err := p.server.AcceptRecordStream(ctx)
	require.NoError(t, err)
	require.NoError(t, p.client.Close())
	_, err = o.Send(ctx, []byte("late"))
	require.ErrorIs(t, err, ErrClosed)
	_, err = p.server.AcceptRecordStream(ctx)
	require.EqualError(t, err, "quicrecord: connection closed by the peer")
	require.ErrorIs(t, err, ErrConnClosedByPeer)
	require.ErrorIs(t, err, net.ErrClosed)
	require.Equal(t, CodeNoError, CodeOf(err))
	_, err = a.Recv(ctx)
	require.ErrorIs(t, err, ErrConnClosedByPeer)
	<-a.Context().Done()
	require.Equal(t, StateClosed, a.Snapshot().Status.State)

	// The side that closed sees its own close, not the peer's.
	_, err = p.client.AcceptRecordStream(ctx)
	require.ErrorIs(t, err, ErrClosed)
	require.NotErrorIs(t, err, ErrConnClosedByPeer)
}
