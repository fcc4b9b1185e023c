package transport

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// handshakeTimeout bounds a TLS handshake over TCP.
const handshakeTimeout = 10 * time.Second

// tlsAccept accepts a TCP connection from ln and runs the server's TLS
// handshake. A client that fails its handshake is dropped and the next
// one accepted.
func tlsAccept(ctx context.Context, ln net.Listener, conf *tls.Config) (*tls.Conn, error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		tc := tls.Server(c, conf)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err == nil {
			return tc, nil
		}
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

// tlsDial connects to addr of n over TCP and runs the client's TLS
// handshake.
func tlsDial(ctx context.Context, n Network, addr string, conf *tls.Config) (*tls.Conn, error) {
	c, err := n.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}
