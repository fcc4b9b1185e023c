package promrecord_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

// simPair is a client Conn and the server Conn a Listener accepted, over
// a simulated network. It must be built inside a synctest bubble.
type simPair struct {
	client, server *quicrecord.Conn
	ln             *quicrecord.Listener
}

func newSimPair(t *testing.T, latency time.Duration) *simPair {
	t.Helper()
	n := simtest.NewNet(t, nil, simtest.Latency(latency))
	cconn, sconn := n.Endpoint(simtest.ClientAddr), n.Endpoint(simtest.ServerAddr)
	n.Start()

	cert, err := tlsutil.SelfSigned("localhost")
	require.NoError(t, err)
	stls := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicrecord.ALPN}}
	ctls := tlsutil.PinnedClientConfig(cert, quicrecord.ALPN)
	qconf := quicrecord.DefaultQUICConfig()
	qconf.DisablePathMTUDiscovery = true

	ln, err := quicrecord.NewListener(simtest.Listen(t, sconn, stls, qconf), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := simtest.Transport(t, cconn).Dial(ctx, simtest.ServerAddr, ctls, qconf)
	require.NoError(t, err)
	client, err := quicrecord.NewConn(qc, nil)
	require.NoError(t, err)
	server, err := ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
		_ = ln.Close()
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
