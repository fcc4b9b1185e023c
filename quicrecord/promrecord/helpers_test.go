package promrecord_test

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
	"github.com/recordmux/recordmux/quicrecord"
)

// simPair is a client Conn and the server Conn a Listener accepted, over
// a simulated network. It must be built inside a synctest bubble.
type simPair struct {
	client, server *quicrecord.Conn
	ln             *quicrecord.Listener
}

var (
	clientAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.1"), Port: 9001}
	serverAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.2"), Port: 9002}
)

func newSimPair(t *testing.T, latency time.Duration) *simPair {
	t.Helper()
	n := &simnet.Simnet{Router: &simnet.PerfectRouter{}}
	settings := simnet.NodeBiDiLinkSettings{Latency: latency}
	cconn := n.NewEndpoint(clientAddr, settings)
	sconn := n.NewEndpoint(serverAddr, settings)
	require.NoError(t, n.Start())

	cert, err := tlsutil.SelfSigned("localhost")
	require.NoError(t, err)
	stls := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicrecord.ALPN}}
	ctls := tlsutil.PinnedClientConfig(cert, quicrecord.ALPN)
	qconf := quicrecord.DefaultQUICConfig()
	qconf.DisablePathMTUDiscovery = true

	str := &quic.Transport{Conn: sconn}
	ctr := &quic.Transport{Conn: cconn}
	ql, err := str.Listen(stls, qconf)
	require.NoError(t, err)
	ln := quicrecord.NewListener(ql, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := ctr.Dial(ctx, serverAddr, ctls, qconf)
	require.NoError(t, err)
	client, err := quicrecord.NewConn(qc, nil)
	require.NoError(t, err)
	server, err := ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
		_ = ln.Close()
		_ = ctr.Close()
		_ = str.Close()
		_ = cconn.Close()
		_ = sconn.Close()
		_ = n.Close()
	})
	return &simPair{client: client, server: server, ln: ln}
}

// open opens a stream from the client and accepts it on the server.
func (p *simPair) open(t *testing.T, opts quicrecord.StreamOptions) (client, server *quicrecord.RecordStream) {
	t.Helper()
	ctx := context.Background()
	c, err := p.client.OpenRecordStream(ctx, opts)
	require.NoError(t, err)
	s, err := p.server.AcceptRecordStream(ctx)
	require.NoError(t, err)
	return c, s
}

// applyAll applies every record s receives until the test ends.
func applyAll(t *testing.T, s *quicrecord.RecordStream) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Apply(ctx, func(quicrecord.Record) error { return nil })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// sendN sends n records of size bytes each and waits until the peer
// applied them.
func sendN(t *testing.T, s *quicrecord.RecordStream, n, size int) {
	t.Helper()
	ctx := context.Background()
	rec := make([]byte, size)
	for range n {
		_, err := s.Send(ctx, rec)
		require.NoError(t, err)
	}
	require.NoError(t, s.Barrier(ctx))
}
