package transport

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePin(t *testing.T) {
	id, err := NewIdentity()
	require.NoError(t, err)
	p := string(id.Pin())
	require.Len(t, p, 64)
	for _, in := range []string{p, strings.ToUpper(p), " " + p + "\n", colons(p)} {
		got, err := ParsePin(in)
		require.NoError(t, err, in)
		require.Equal(t, id.Pin(), got)
	}
	for _, bad := range []string{"", "abc", p[:62], p + "00", strings.Replace(p, p[:1], "g", 1)} {
		_, err := ParsePin(bad)
		require.Error(t, err, bad)
	}
}

func colons(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(p[i : i+2])
	}
	return b.String()
}

// TestPinHandshake: the pinned client completes a TLS handshake with the
// identity and fails with ErrPinMismatch against another one.
func TestPinHandshake(t *testing.T) {
	id, err := NewIdentity()
	require.NoError(t, err)
	other, err := NewIdentity()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	handshake := func(pin Pin) (error, error) {
		srvErr := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				srvErr <- err
				return
			}
			defer c.Close()
			srvErr <- tls.Server(c, id.ServerTLS("x")).Handshake()
		}()
		a, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer a.Close()
		c := tls.Client(a, pin.ClientTLS("x"))
		err = c.Handshake()
		if err == nil {
			leaf := c.ConnectionState().PeerCertificates[0]
			require.Equal(t, id.Pin(), PinOf(leaf))
		}
		_ = a.Close()
		return err, <-srvErr
	}
	cerr, serr := handshake(id.Pin())
	require.NoError(t, cerr)
	require.NoError(t, serr)
	cerr, _ = handshake(other.Pin())
	require.ErrorIs(t, cerr, ErrPinMismatch)
}
