package quicrecord

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
	"github.com/recordmux/recordmux/internal/tlsutil"
)

// pair is a connected client and server Conn.
type pair struct {
	client, server *Conn
	ln             *Listener
}

// tlsPair returns a server config and a client config pinned to it.
func tlsPair(t testing.TB) (*tls.Config, *tls.Config) {
	t.Helper()
	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, tlsutil.PinnedClientConfig(cert)
}

// newLoopbackPair connects a client and a server over real UDP sockets on
// 127.0.0.1.
func newLoopbackPair(t testing.TB, clientCfg, serverCfg *Config) *pair {
	t.Helper()
	stls, ctls := tlsPair(t)
	ln, err := Listen("127.0.0.1:0", stls, serverCfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := ln.Accept(ctx)
		accepted <- res{c, err}
	}()
	client, err := Dial(ctx, ln.Addr().String(), ctls, clientCfg)
	require.NoError(t, err)
	r := <-accepted
	require.NoError(t, r.err)
	p := &pair{client: client, server: r.c, ln: ln}
	t.Cleanup(p.close)
	return p
}

func (p *pair) close() {
	_ = p.client.Close()
	_ = p.server.Close()
	if p.ln != nil {
		_ = p.ln.Close()
	}
}

// Addresses of simulated endpoints.
var (
	simClientAddr  = simtest.ClientAddr
	simServerAddr  = simtest.ServerAddr
	simClient2Addr = simtest.Client2Addr
)

// newSimQUIC connects two quic-go connections over simnet with the given
// one-way latency. It must run inside a synctest bubble.
func newSimQUIC(t testing.TB, clientCfg, serverCfg *Config, router simnet.Router, latency time.Duration) (client, server *quic.Conn) {
	t.Helper()
	n := simtest.NewNet(t, router, simtest.Latency(latency))
	cconn, sconn := n.Endpoint(simClientAddr), n.Endpoint(simServerAddr)
	n.Start()
	return dialSimQUIC(t, cconn, sconn, clientCfg, serverCfg, 10*time.Second)
}

// dialSimQUIC connects a quic-go client on cconn to a server on sconn,
// with the recordmux ALPN and the QUIC settings of the two configs,
// within timeout; everything is closed when the test ends. It must run
// inside a synctest bubble.
func dialSimQUIC(t testing.TB, cconn, sconn *simnet.SimConn, clientCfg, serverCfg *Config, timeout time.Duration) (client, server *quic.Conn) {
	t.Helper()
	stls, ctls := tlsPair(t)
	return simtest.Connect(t, simtest.Endpoints{
		Client: cconn, Server: sconn,
		ClientTLS: withALPN(ctls), ServerTLS: withALPN(stls),
		ClientQUIC: simQUICConfig(clientCfg), ServerQUIC: simQUICConfig(serverCfg),
		Timeout: timeout,
	})
}

// newSimPair connects a recordmux client and server over simnet with the
// given one-way latency. It must run inside a synctest bubble.
func newSimPair(t testing.TB, clientCfg, serverCfg *Config, router simnet.Router, latency time.Duration) *pair {
	t.Helper()
	qc, qs := newSimQUIC(t, clientCfg, serverCfg, router, latency)
	client, err := NewConn(qc, clientCfg)
	require.NoError(t, err)
	server, err := NewConn(qs, serverCfg)
	require.NoError(t, err)
	p := &pair{client: client, server: server}
	t.Cleanup(p.close)
	return p
}

// openPair opens a stream from the client (or the server) and accepts it on
// the other side. It returns (opener, acceptor).
func (p *pair) openPair(t testing.TB, serverOpens bool, opts StreamOptions) (*RecordStream, *RecordStream) {
	t.Helper()
	opener, acceptor := p.client, p.server
	if serverOpens {
		opener, acceptor = p.server, p.client
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := opener.OpenRecordStream(ctx, opts)
	require.NoError(t, err)
	a, err := acceptor.AcceptRecordStream(ctx)
	require.NoError(t, err)
	return o, a
}

// newTestListener wraps ql with a valid cfg.
func newTestListener(t testing.TB, ql *quic.Listener, cfg *Config) *Listener {
	t.Helper()
	ln, err := NewListener(ql, cfg)
	require.NoError(t, err)
	return ln
}

// testSettings resolves a valid cfg.
func testSettings(t testing.TB, cfg *Config) *settings {
	t.Helper()
	set, err := cfg.settings()
	require.NoError(t, err)
	return set
}
