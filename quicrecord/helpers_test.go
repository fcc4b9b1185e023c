package quicrecord

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

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

// simLink is a simulated network between a client and a server endpoint.
type simLink struct {
	net            *simnet.Simnet
	client, server *simnet.SimConn
}

var (
	simClientAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.1"), Port: 9001}
	simServerAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.2"), Port: 9002}
)

func newSimLink(t testing.TB, router simnet.Router, settings simnet.NodeBiDiLinkSettings) *simLink {
	t.Helper()
	n := &simnet.Simnet{Router: router}
	l := &simLink{
		net:    n,
		client: n.NewEndpoint(simClientAddr, settings),
		server: n.NewEndpoint(simServerAddr, settings),
	}
	require.NoError(t, n.Start())
	return l
}

// newSimQUIC connects two quic-go connections over simnet with the given
// one-way latency. It must run inside a synctest bubble.
func newSimQUIC(t testing.TB, clientCfg, serverCfg *Config, router simnet.Router, latency time.Duration) (client, server *quic.Conn) {
	t.Helper()
	if router == nil {
		router = &simnet.PerfectRouter{}
	}
	link := newSimLink(t, router, simnet.NodeBiDiLinkSettings{Latency: latency})
	t.Cleanup(func() {
		_ = link.client.Close()
		_ = link.server.Close()
		_ = link.net.Close()
	})
	return dialSimQUIC(t, link.client, link.server, clientCfg, serverCfg, 10*time.Second)
}

// dialSimQUIC connects a quic-go client on cconn to a server on sconn
// (at simServerAddr), with the recordmux ALPN and the QUIC settings of
// the two configs, within timeout; the connections, listener and
// transports are closed when the test ends. It must run inside a synctest
// bubble.
func dialSimQUIC(t testing.TB, cconn, sconn *simnet.SimConn, clientCfg, serverCfg *Config, timeout time.Duration) (client, server *quic.Conn) {
	t.Helper()
	stls, ctls := tlsPair(t)
	stls.NextProtos = []string{ALPN}
	ctls.NextProtos = []string{ALPN}
	str := &quic.Transport{Conn: sconn}
	ctr := &quic.Transport{Conn: cconn}
	ql, err := str.Listen(stls, simQUICConfig(serverCfg))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, err = ctr.Dial(ctx, simServerAddr, ctls, simQUICConfig(clientCfg))
	require.NoError(t, err)
	server, err = ql.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = client.CloseWithError(0, "")
		_ = server.CloseWithError(0, "")
		_ = ql.Close()
		_ = ctr.Close()
		_ = str.Close()
	})
	return client, server
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
