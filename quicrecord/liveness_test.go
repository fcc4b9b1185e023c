package quicrecord

import (
	"context"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// restartRouter simulates a server process that dies and comes back at
// the same address: once restart is called, packets from the old server
// are lost and packets to its address reach the new one.
type restartRouter struct {
	simnet.Router
	mu       sync.Mutex
	old, new net.Addr // nil until restart
}

func (r *restartRouter) restart(old, new net.Addr) {
	r.mu.Lock()
	r.old, r.new = old, new
	r.mu.Unlock()
}

func (r *restartRouter) SendPacket(p simnet.Packet) error {
	r.mu.Lock()
	old, new := r.old, r.new
	r.mu.Unlock()
	if old != nil {
		if p.From.String() == old.String() {
			return nil // the old process is gone
		}
		if p.To.String() == old.String() {
			p.To = new
		}
	}
	return r.Router.SendPacket(p)
}

// TestLivenessProbeMeetsRestartedPeer: the server stops applying, so the
// client's window fills with records the server's QUIC stack has
// acknowledged, and the client has nothing left to send. Then the server
// dies and comes back at the same address with the same
// StatelessResetKey. quic-go answers only packets larger than 42 bytes
// with a stateless reset, and the client's keep-alive PINGs are smaller;
// its liveness probes are not, so the connection ends with the reset
// within seconds of the restart instead of at the 10-minute idle timeout.
func TestLivenessProbeMeetsRestartedPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var key quic.StatelessResetKey
		copy(key[:], "liveness-probe-restart-reset-key")
		q := DefaultQUICConfig()
		q.MaxIdleTimeout = 10 * time.Minute
		cfg := &Config{QUIC: q, Stream: StreamConfig{Window: WindowFixed, MaxInFlightRecords: 64}}
		router := &restartRouter{Router: simtest.NewRouter(1, 0)}
		n := simtest.NewNet(t, router, simtest.Latency(10*time.Millisecond))
		cconn, sconn, s2conn := n.Endpoint(simClientAddr), n.Endpoint(simServerAddr), n.Endpoint(simClient2Addr)
		n.Start()
		stls, ctls := tlsPair(t)
		listen := func(conn net.PacketConn) *quic.Listener {
			tr := &quic.Transport{Conn: conn, StatelessResetKey: &key}
			t.Cleanup(func() { _ = tr.Close() })
			ql, err := tr.Listen(withALPN(stls), simQUICConfig(cfg))
			require.NoError(t, err)
			return ql
		}
		ql := listen(sconn)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		qc, err := simtest.Transport(t, cconn).Dial(ctx, simServerAddr, withALPN(ctls), simQUICConfig(cfg))
		require.NoError(t, err)
		qs, err := ql.Accept(ctx)
		require.NoError(t, err)
		client, err := NewConn(qc, cfg)
		require.NoError(t, err)
		defer client.Close()
		server, err := NewConn(qs, cfg)
		require.NoError(t, err)
		defer server.Close()

		tx, err := client.OpenRecordStream(ctx, StreamOptions{})
		require.NoError(t, err)
		_, err = server.AcceptRecordStream(ctx) // and never applies
		require.NoError(t, err)
		sent := make(chan error, 1)
		go func() {
			for range 100 { // more than the window: the last Sends block
				if _, err := tx.Send(ctx, make([]byte, 100)); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		time.Sleep(5 * time.Second) // everything in flight reaches the server's QUIC stack; probes go unanswered
		synctest.Wait()
		require.Equal(t, uint64(64), tx.Snapshot().Out.FlushedSeq, "the window is full")
		require.Zero(t, tx.Snapshot().Out.AckedSeq)

		router.restart(simServerAddr, simClient2Addr)
		listen(s2conn) // the new process, with the same reset key
		restarted := time.Now()
		<-client.Context().Done()
		took := time.Since(restarted)
		var reset *quic.StatelessResetError
		require.ErrorAs(t, context.Cause(client.Context()), &reset)
		t.Logf("the connection ended %v after the restart (idle timeout %v); %d probes sent",
			took, q.MaxIdleTimeout, tx.Snapshot().FramesOut.Unknown)
		// The first probe goes livenessFirst after the last progress,
		// the next ones at doubling gaps: the restart is met by the
		// second or third.
		require.Less(t, took, 2*livenessFirst+4*livenessFirst)
		require.Positive(t, tx.Snapshot().FramesOut.Unknown)
		require.Error(t, <-sent)
	})
}
