package simtest

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
)

// Addresses for simulated endpoints: a server and two clients.
var (
	ClientAddr  = &net.UDPAddr{IP: net.ParseIP("1.0.0.1"), Port: 9001}
	ServerAddr  = &net.UDPAddr{IP: net.ParseIP("1.0.0.2"), Port: 9002}
	Client2Addr = &net.UDPAddr{IP: net.ParseIP("1.0.0.3"), Port: 9003}
)

// Net is a simulated network for one test: endpoints are added with
// [Net.Endpoint], then [Net.Start] starts it, and everything is closed
// when the test ends. It must be used inside a synctest bubble.
type Net struct {
	t        testing.TB
	sim      *simnet.Simnet
	settings func(addr *net.UDPAddr) simnet.NodeBiDiLinkSettings
	conns    []*simnet.SimConn
}

// NewNet returns a network that routes packets with router (a perfect
// router when nil) and gives each endpoint the link settings settings
// returns for its address.
func NewNet(t testing.TB, router simnet.Router, settings func(addr *net.UDPAddr) simnet.NodeBiDiLinkSettings) *Net {
	if router == nil {
		router = &simnet.PerfectRouter{}
	}
	return &Net{t: t, sim: &simnet.Simnet{Router: router}, settings: settings}
}

// Latency returns link settings with a fixed one-way latency, for
// [NewNet].
func Latency(d time.Duration) func(*net.UDPAddr) simnet.NodeBiDiLinkSettings {
	return func(*net.UDPAddr) simnet.NodeBiDiLinkSettings { return simnet.NodeBiDiLinkSettings{Latency: d} }
}

// Endpoint adds a node at addr; call Start once all are added.
func (n *Net) Endpoint(addr *net.UDPAddr) *simnet.SimConn {
	c := n.sim.NewEndpoint(addr, n.settings(addr))
	n.conns = append(n.conns, c)
	return c
}

// Conn returns the endpoint added at addr, nil if there is none.
func (n *Net) Conn(addr *net.UDPAddr) *simnet.SimConn {
	for _, c := range n.conns {
		if c.LocalAddr().String() == addr.String() {
			return c
		}
	}
	return nil
}

// Start starts the network; it and its endpoints are closed when the test
// ends.
func (n *Net) Start() {
	n.t.Helper()
	if err := n.sim.Start(); err != nil {
		n.t.Fatalf("simnet: %v", err)
	}
	n.t.Cleanup(func() {
		for _, c := range n.conns {
			_ = c.Close()
		}
		_ = n.sim.Close()
	})
}

// Transport returns a quic-go transport on conn, closed when the test
// ends. One transport can dial any number of connections.
func Transport(t testing.TB, conn net.PacketConn) *quic.Transport {
	tr := &quic.Transport{Conn: conn}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// Listen starts a quic-go listener on conn; the listener and its transport
// are closed when the test ends.
func Listen(t testing.TB, conn net.PacketConn, tlsConf *tls.Config, qconf *quic.Config) *quic.Listener {
	t.Helper()
	ql, err := Transport(t, conn).Listen(tlsConf, qconf)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = ql.Close() })
	return ql
}

// Endpoints describe the two ends of [Connect]: the client's and the
// server's packet conns, TLS and QUIC configurations.
type Endpoints struct {
	Client, Server         net.PacketConn
	ClientTLS, ServerTLS   *tls.Config
	ClientQUIC, ServerQUIC *quic.Config
	// Timeout bounds the dial and accept; 0 means 10s.
	Timeout time.Duration
}

// Connect listens on e.Server, dials it from e.Client and returns both
// quic-go connections, within e.Timeout (10s when 0). The connections,
// the listener and the transports are closed when the test ends.
func Connect(t testing.TB, e Endpoints) (client, server *quic.Conn) {
	t.Helper()
	timeout := e.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ql := Listen(t, e.Server, e.ServerTLS, e.ServerQUIC)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, err := Transport(t, e.Client).Dial(ctx, e.Server.LocalAddr(), e.ClientTLS, e.ClientQUIC)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	server, err = ql.Accept(ctx)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() {
		_ = client.CloseWithError(0, "")
		_ = server.CloseWithError(0, "")
	})
	return client, server
}
