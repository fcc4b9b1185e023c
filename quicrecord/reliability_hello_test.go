package quicrecord

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
)

// TestReliabilitySlowHelloOtherConns: one client connection opens a
// stream and sends its HELLO one byte a second. While that stream is
// pending on the Listener's side, a second client connection to the same
// Listener opens a stream, moves 1,000 records and passes a Barrier in a
// few round trips; the slow stream is refused with CodeHelloTimeout only
// at its timeout.
func TestReliabilitySlowHelloOtherConns(t *testing.T) {
	seed := simtest.Seed(t, 501) // record sizes
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const helloTimeout = 5 * time.Second
		n := newRelNet(t, linkOpts{latency: simRTT / 2})
		sconn := n.Endpoint(simServerAddr)
		slowConn := n.Endpoint(simClientAddr)
		fastConn := n.Endpoint(simClient2Addr)
		n.Start()
		stls, ctls := tlsPair(t)
		refused := make(chan *StreamError, 2)
		scfg := &Config{HelloTimeout: helloTimeout, OnStreamRefused: func(_ *AcceptInfo, err *StreamError) { refused <- err }}
		srv := listenSim(t, sconn, stls, scfg)
		conns := make(chan *Conn, 2)
		go func() {
			for range 2 {
				c, err := srv.ln.Accept(ctx)
				if err != nil {
					return
				}
				conns <- c
			}
		}()

		// The slow client, on raw quic-go: a HELLO byte each second.
		tr := &quic.Transport{Conn: slowConn}
		defer tr.Close()
		qc, err := tr.Dial(ctx, simServerAddr, withALPN(ctls.Clone()), simQUICConfig(nil))
		require.NoError(t, err)
		defer qc.CloseWithError(0, "")
		<-conns
		str, err := qc.OpenStreamSync(ctx)
		require.NoError(t, err)
		hello := rawHello().Append(nil)
		_, err = str.Write(hello[:1])
		require.NoError(t, err)
		slowStart := time.Now()
		dripDone := make(chan struct{})
		go func() {
			defer close(dripDone)
			for _, b := range hello[1 : len(hello)-1] { // never the last byte
				time.Sleep(time.Second)
				if _, err := str.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		defer func() { <-dripDone }()
		time.Sleep(simRTT) // the slow stream is pending on the server

		// The fast client: a full transfer while the slow one waits.
		fastStart := time.Now()
		fast, err := dialSim(ctx, t, fastConn, simServerAddr, ctls.Clone(), nil)
		require.NoError(t, err)
		fastSrv := <-conns
		o, err := fast.OpenRecordStream(ctx, StreamOptions{Scope: "fast", DataID: 2})
		require.NoError(t, err)
		a, err := fastSrv.AcceptRecordStream(ctx)
		require.NoError(t, err)
		chk := simtest.NewChecker(2)
		_, err = checkedTransfer(o, a, chk, transferOpts{n: 1000, maxLen: 64, seed: seed, timeout: time.Minute})
		require.NoError(t, err)
		took := time.Since(fastStart)
		t.Logf("second connection: handshake, open, 1000 records and Barrier in %v while the first waits for its HELLO", took)
		require.LessOrEqual(t, took, 10*simRTT)
		require.Empty(t, refused, "the slow stream is still pending")
		require.NoError(t, o.Close(context.Background()))
		require.NoError(t, a.Close(context.Background()))

		// The slow stream times out on its own schedule.
		se := <-refused
		require.ErrorIs(t, se, ErrHelloTimeout)
		require.Equal(t, simRTT/2+helloTimeout, time.Since(slowStart), "refused at its hello timeout, after its first byte arrived")
		newRawPeer(t, str).expectRefusal(CodeHelloTimeout)
	})
}
