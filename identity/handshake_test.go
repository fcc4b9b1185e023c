package identity_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// result is what each end of a handshake saw.
type result struct {
	clientErr, serverErr     error
	clientState, serverState tls.ConnectionState
}

// handshake runs a TLS handshake between the two configurations over a
// loopback TCP connection. After the handshake the server writes one byte
// and the client reads it: in TLS 1.3 the client's handshake returns
// before the server has checked the client's certificate, so a refused
// client learns of it on that read.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	var r result
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		raw, err := ln.Accept()
		if err != nil {
			r.serverErr = err
			return
		}
		defer raw.Close()
		s := tls.Server(raw, serverConf)
		if r.serverErr = s.HandshakeContext(ctx); r.serverErr != nil {
			return
		}
		r.serverState = s.ConnectionState()
		_, r.serverErr = s.Write([]byte{1})
	}()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	c := tls.Client(raw, clientConf)
	if r.clientErr = c.HandshakeContext(ctx); r.clientErr == nil {
		r.clientState = c.ConnectionState()
		var b [1]byte
		_, r.clientErr = io.ReadFull(c, b[:])
	}
	_ = raw.Close()
	<-serverDone
	return r
}
