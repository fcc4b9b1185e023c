package simtest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/tlsutil"
)

func TestCheckerHappyPath(t *testing.T) {
	c := NewChecker(7)
	for seq := uint64(1); seq <= 10; seq++ {
		c.Sending(seq)
		c.Sent(seq)
	}
	for seq := uint64(1); seq <= 10; seq++ {
		require.NoError(t, c.Delivered(seq, Payload(7, seq, 40)))
		c.Applied(seq)
	}
	c.Acked(5)
	c.BarrierOK(10)
	require.NoError(t, c.Verify(true))
	sent, delivered, applied, acked := c.Counts()
	require.Equal(t, [4]uint64{10, 10, 10, 10}, [4]uint64{sent, delivered, applied, acked})
}

// TestCheckerCatches shows each violation the checker exists for.
func TestCheckerCatches(t *testing.T) {
	sent := func(n uint64) *Checker {
		c := NewChecker(1)
		for seq := uint64(1); seq <= n; seq++ {
			c.Sending(seq)
			c.Sent(seq)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		run  func(c *Checker)
		want string
	}{
		{"duplicate", func(c *Checker) {
			_ = c.Delivered(1, Payload(1, 1, 16))
			_ = c.Delivered(1, Payload(1, 1, 16))
		}, "duplicate"},
		{"gap", func(c *Checker) { _ = c.Delivered(2, Payload(1, 2, 16)) }, "out of order"},
		{"wrong stream", func(c *Checker) { _ = c.Delivered(1, Payload(2, 1, 16)) }, "arrived on stream"},
		{"corrupt", func(c *Checker) {
			p := Payload(1, 1, 32)
			p[20] ^= 1
			_ = c.Delivered(1, p)
		}, "corrupt"},
		{"never sent", func(c *Checker) {
			for seq := uint64(1); seq <= 4; seq++ {
				_ = c.Delivered(seq, Payload(1, seq, 16))
			}
		}, "never sent"},
		{"applied beyond delivered", func(c *Checker) { c.Applied(1) }, "beyond the last delivered"},
		{"ack beyond applied", func(c *Checker) {
			_ = c.Delivered(1, Payload(1, 1, 16))
			c.Acked(1)
		}, "receiver applied only 0"},
		{"barrier beyond applied", func(c *Checker) { c.BarrierOK(3) }, "Barrier(3) returned nil"},
		{"lost at the end", func(c *Checker) {
			_ = c.Delivered(1, Payload(1, 1, 16))
			c.Applied(1)
			c.BarrierOK(1)
		}, "lost records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sent(3)
			tc.run(c)
			require.ErrorContains(t, c.Verify(true), tc.want)
		})
	}
}

func TestCheckerSendFailed(t *testing.T) {
	c := NewChecker(1)
	c.Sending(1)
	c.SendFailed(1)
	c.Sending(1)
	c.Sent(1)
	require.NoError(t, c.Verify(false))
}

// TestRouterLossAndBlackout sends packets through a Router between two
// simnet endpoints and checks the loss rate per direction, that a seed
// gives the same pattern twice, and that blackouts and cuts drop all.
func TestRouterLossAndBlackout(t *testing.T) {
	run := func(seed uint64) (pattern []bool, stats Stats) {
		synctest.Test(t, func(t *testing.T) {
			r := NewRouter(seed, 0.1)
			n := &simnet.Simnet{Router: r}
			a := n.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("1.0.0.1"), Port: 1}, simnet.NodeBiDiLinkSettings{Latency: time.Millisecond})
			b := n.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("1.0.0.2"), Port: 2}, simnet.NodeBiDiLinkSettings{Latency: time.Millisecond})
			require.NoError(t, n.Start())
			defer func() {
				_ = a.Close()
				_ = b.Close()
				_ = n.Close()
			}()
			got := make(chan int, 4096)
			go func() {
				buf := make([]byte, 10)
				for {
					_, _, err := b.ReadFrom(buf)
					if err != nil {
						close(got)
						return
					}
					got <- int(buf[0])<<8 | int(buf[1])
				}
			}()
			const n1 = 2000
			for i := range n1 {
				_, err := a.WriteTo([]byte{byte(i >> 8), byte(i)}, b.LocalAddr())
				require.NoError(t, err)
			}
			time.Sleep(10 * time.Millisecond)
			pattern = make([]bool, n1)
			for len(got) > 0 {
				pattern[<-got] = true
			}
			stats = r.StatsTo(b.LocalAddr())
			require.Equal(t, uint64(n1), stats.Sent)
			require.InDelta(t, 0.1*n1, float64(stats.Lost), 0.03*n1)

			r.Blackout(time.Second)
			_, _ = a.WriteTo([]byte{0, 1}, b.LocalAddr())
			time.Sleep(time.Second)
			r.Cut()
			_, _ = a.WriteTo([]byte{0, 1}, b.LocalAddr())
			time.Sleep(10 * time.Millisecond)
			require.Empty(t, got, "nothing arrives during a blackout or after a cut")
			require.Equal(t, uint64(2), r.StatsTo(b.LocalAddr()).Dark)
		})
		return pattern, stats
	}
	p1, s1 := run(42)
	p2, s2 := run(42)
	require.Equal(t, p1, p2, "the same seed loses the same packets")
	require.Equal(t, s1.Lost, s2.Lost)
	p3, _ := run(43)
	require.NotEqual(t, p1, p3)
}

func TestJitterRange(t *testing.T) {
	f := Jitter(1, "x", 20*time.Millisecond, 15*time.Millisecond)
	g := Jitter(1, "x", 20*time.Millisecond, 15*time.Millisecond)
	var lo, hi time.Duration = time.Hour, 0
	for range 10000 {
		d := f(simnet.Packet{})
		require.Equal(t, d, g(simnet.Packet{}), "same seed and name, same delays")
		lo, hi = min(lo, d), max(hi, d)
	}
	require.Equal(t, 5*time.Millisecond, lo.Round(time.Millisecond))
	require.Equal(t, 35*time.Millisecond, hi.Round(time.Millisecond))
	require.GreaterOrEqual(t, lo, 5*time.Millisecond)
	require.LessOrEqual(t, hi, 35*time.Millisecond)
}

// TestConnect: Connect joins a client and a server over a Net with the
// given latency; Conn finds an endpoint by address; everything is closed
// at the end of the test (synctest.Test fails on a leaked goroutine).
func TestConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const latency = 5 * time.Millisecond
		n := NewNet(t, nil, Latency(latency))
		cconn, sconn := n.Endpoint(ClientAddr), n.Endpoint(ServerAddr)
		n.Start()
		require.Same(t, sconn, n.Conn(ServerAddr))
		require.Nil(t, n.Conn(Client2Addr))

		cert, err := tlsutil.SelfSigned("localhost")
		require.NoError(t, err)
		stls := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"simtest"}}
		ctls := tlsutil.PinnedClientConfig(cert, "simtest")
		qconf := &quic.Config{DisablePathMTUDiscovery: true}
		client, server := Connect(t, Endpoints{Client: cconn, Server: sconn, ClientTLS: ctls, ServerTLS: stls, ClientQUIC: qconf, ServerQUIC: qconf})
		require.Equal(t, ServerAddr.String(), client.RemoteAddr().String())

		ctx := context.Background()
		str, err := client.OpenStreamSync(ctx)
		require.NoError(t, err)
		start := time.Now()
		_, err = str.Write([]byte("ping"))
		require.NoError(t, err)
		acc, err := server.AcceptStream(ctx)
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(acc, buf)
		require.NoError(t, err)
		require.Equal(t, "ping", string(buf))
		require.Equal(t, latency, time.Since(start), "one way, in virtual time")
	})
}
