package simtest

import (
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"
)

// TestBottleneckRateAndQueue sends a burst through a 10 Mbit/s link with
// a 10 ms queue and checks, in virtual time, that packets leave one
// transmission time apart and in order, that the queue holds 10 ms and
// drops the rest, and that the link drains at its rate.
func TestBottleneckRateAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			rate    = 10e6 // bits per second
			size    = 1250 // bytes: 1 ms at 10 Mbit/s
			latency = 5 * time.Millisecond
		)
		b := NewBottleneck(&simnet.PerfectRouter{}, rate, 10*time.Millisecond)
		n := &simnet.Simnet{Router: b}
		a := n.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("1.0.0.1"), Port: 1}, simnet.NodeBiDiLinkSettings{Latency: latency})
		c := n.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("1.0.0.2"), Port: 2}, simnet.NodeBiDiLinkSettings{Latency: latency})
		require.NoError(t, n.Start())
		defer func() {
			_ = a.Close()
			_ = c.Close()
			_ = n.Close()
		}()
		type arrival struct {
			idx int
			at  time.Duration
		}
		start := time.Now()
		got := make(chan arrival, 64)
		go func() {
			buf := make([]byte, size)
			for {
				_, _, err := c.ReadFrom(buf)
				if err != nil {
					close(got)
					return
				}
				got <- arrival{int(buf[0]), time.Since(start)}
			}
		}()
		// 20 packets at once: the first is transmitted at once, 10 more
		// wait up to 10 ms, the rest find the queue full.
		for i := range 20 {
			p := make([]byte, size)
			p[0] = byte(i)
			_, err := a.WriteTo(p, c.LocalAddr())
			require.NoError(t, err)
		}
		time.Sleep(100 * time.Millisecond)
		var arrivals []arrival
		for len(got) > 0 {
			arrivals = append(arrivals, <-got)
		}
		require.Len(t, arrivals, 11)
		for i, ar := range arrivals {
			require.Equal(t, i, ar.idx, "in order")
			require.Equal(t, time.Duration(i+1)*time.Millisecond+latency, ar.at, "packet %d", i)
		}
		st := b.StatsTo(c.LocalAddr())
		require.Equal(t, LinkStats{Sent: 11, Dropped: 9, Bytes: 11 * size, MaxWait: 10 * time.Millisecond}, st)

		// Halve the rate: a packet now takes 2 ms.
		b.SetRate(rate / 2)
		start = time.Now()
		_, err := a.WriteTo(make([]byte, size), c.LocalAddr())
		require.NoError(t, err)
		ar := <-got
		require.Equal(t, 2*time.Millisecond+latency, ar.at)
	})
}

// TestBottleneckComposesWithLoss puts a lossy Router behind the link.
func TestBottleneckComposesWithLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRouter(7, 0.5)
		b := NewBottleneck(r, 100e6, time.Second)
		n := &simnet.Simnet{Router: b}
		a := n.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("1.0.0.1"), Port: 1}, simnet.NodeBiDiLinkSettings{})
		c := n.NewEndpoint(&net.UDPAddr{IP: net.ParseIP("1.0.0.2"), Port: 2}, simnet.NodeBiDiLinkSettings{})
		require.NoError(t, n.Start())
		defer func() {
			_ = a.Close()
			_ = c.Close()
			_ = n.Close()
		}()
		for range 1000 {
			_, err := a.WriteTo(make([]byte, 100), c.LocalAddr())
			require.NoError(t, err)
		}
		time.Sleep(time.Second)
		require.Equal(t, uint64(1000), b.StatsTo(c.LocalAddr()).Sent)
		rs := r.StatsTo(c.LocalAddr())
		require.Equal(t, uint64(1000), rs.Sent, "every packet left the link for the lossy router")
		require.InDelta(t, 500, float64(rs.Lost), 60)
	})
}
