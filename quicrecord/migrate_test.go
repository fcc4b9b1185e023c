package quicrecord

import (
	"context"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

const (
	migrateRecords = 100_000
	migrateLatency = 5 * time.Millisecond // one way
)

var (
	// natAddr is the address a NAT rebinding gives the client.
	natAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.9"), Port: 4000}
	// deadAddr is a client socket whose packets never get through.
	deadAddr = &net.UDPAddr{IP: net.ParseIP("1.0.0.4"), Port: 9004}
)

// natRouter is a PerfectRouter with a NAT in front of one client: that
// client's packets leave with the source address public, and packets to
// public reach it. Rebind changes public under the client, as a NAT that
// drops its mapping does; packets to the old address are lost.
type natRouter struct {
	simnet.PerfectRouter
	inside net.Addr

	mu     sync.Mutex
	public net.Addr // guarded by mu
}

func (r *natRouter) SendPacket(p simnet.Packet) error {
	r.mu.Lock()
	pub := r.public
	r.mu.Unlock()
	switch {
	case p.From.String() == r.inside.String():
		p.From = pub
	case p.To.String() == pub.String():
		p.To = r.inside
	case p.To.String() == r.inside.String() && pub.String() != r.inside.String():
		return nil // the old mapping is gone
	}
	if p.To.String() == deadAddr.String() || p.From.String() == deadAddr.String() {
		return nil
	}
	return r.PerfectRouter.SendPacket(p)
}

// Rebind gives the client a new public address.
func (r *natRouter) Rebind(addr net.Addr) {
	r.mu.Lock()
	r.public = addr
	r.mu.Unlock()
}

// migrationNet is a client and a server over a natRouter, with spare
// client sockets at simClient2Addr (working) and deadAddr (dead).
type migrationNet struct {
	*pair
	router *natRouter
	net    *simtest.Net
}

func newMigrationNet(t *testing.T) *migrationNet {
	t.Helper()
	r := &natRouter{inside: simClientAddr, public: simClientAddr}
	n := simtest.NewNet(t, r, simtest.Latency(migrateLatency))
	cconn, sconn := n.Endpoint(simClientAddr), n.Endpoint(simServerAddr)
	n.Endpoint(simClient2Addr)
	n.Endpoint(deadAddr)
	n.Start()
	qc, qs := dialSimQUIC(t, cconn, sconn, nil, nil, 10*time.Second)
	client, err := NewConn(qc, nil)
	require.NoError(t, err)
	server, err := NewConn(qs, nil)
	require.NoError(t, err)
	p := &pair{client: client, server: server}
	t.Cleanup(p.close)
	return &migrationNet{pair: p, router: r, net: n}
}

// transfer sends migrateRecords records from the client to the server,
// calling mid once a fifth of them were acked, and checks that every one
// was applied once, in order, on the same stream.
func (m *migrationNet) transfer(t *testing.T, mid func()) {
	t.Helper()
	o, a := m.openPair(t, false, StreamOptions{Scope: "migrate"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan uint64, 1)
	go func() { applied <- applyChecked(t, ctx, a) }()
	sent := make(chan error, 1)
	go func() {
		for seq := uint64(1); seq <= migrateRecords; seq++ {
			if _, err := o.Send(ctx, payloadFor(seq)); err != nil {
				sent <- err
				return
			}
		}
		sent <- o.Barrier(ctx)
	}()
	for o.AckedSeq() < migrateRecords/5 {
		time.Sleep(time.Millisecond)
	}
	require.Less(t, o.AckedSeq(), uint64(migrateRecords), "the change comes mid-transfer")
	mid()
	require.NoError(t, <-sent)
	cancel()
	require.Equal(t, uint64(migrateRecords), <-applied, "every record applied once, in order")
	so, sa := o.Snapshot(), a.Snapshot()
	require.Zero(t, so.Errors.ProtocolViolations)
	require.Zero(t, sa.Errors.ProtocolViolations)
	require.Equal(t, so.FramesOut.Batch, sa.FramesIn.Batch, "nothing replayed")
	require.NoError(t, o.Close(context.Background()))
}

// TestNATRebinding: the client's address changes under it mid-transfer;
// the server follows the new path by itself and the stream carries on.
func TestNATRebinding(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newMigrationNet(t)
		m.transfer(t, func() { m.router.Rebind(natAddr) })
		require.Equal(t, natAddr.String(), m.server.RemoteAddr().String(), "the server follows the rebinding")
		require.Zero(t, m.client.Migrations().Migrations, "no call, no migration")
	})
}

// TestMigrate: an explicit migration mid-transfer moves the client to a
// new socket through probe and switch; the stream carries on.
func TestMigrate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newMigrationNet(t)
		m.transfer(t, func() {
			require.NoError(t, m.client.Migrate(context.Background(), m.net.Conn(simClient2Addr)))
		})
		require.Equal(t, simClient2Addr.String(), m.client.LocalAddr().String())
		require.Equal(t, simClient2Addr.String(), m.server.RemoteAddr().String())
		require.Equal(t, MigrationStats{Migrations: 1}, m.client.Migrations())
	})
}

// TestMigrateDeadPath: a migration to a path nothing gets through fails
// cleanly when its context ends, and the connection goes on on its old
// path.
func TestMigrateDeadPath(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newMigrationNet(t)
		m.transfer(t, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := m.client.Migrate(ctx, m.net.Conn(deadAddr))
			require.ErrorIs(t, err, ErrMigrationFailed)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			var me *MigrationError
			require.ErrorAs(t, err, &me)
			require.Equal(t, deadAddr.String(), me.Local.String())
		})
		require.Equal(t, simClientAddr.String(), m.client.LocalAddr().String())
		require.Equal(t, simClientAddr.String(), m.server.RemoteAddr().String())
		require.Equal(t, MigrationStats{Failed: 1}, m.client.Migrations())
	})
}

// TestMigrateServerSide: a server-side connection cannot migrate.
func TestMigrateServerSide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMigrationNet(t)
		err := m.server.Migrate(context.Background(), m.net.Conn(simClient2Addr))
		require.ErrorIs(t, err, ErrMigrationFailed)
		require.Equal(t, MigrationStats{Failed: 1}, m.server.Migrations())
	})
}
