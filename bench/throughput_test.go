package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

var sizes = []struct {
	name string
	size int
}{{"64B", 64}, {"1KiB", 1024}, {"16KiB", 16 << 10}}

func tlsConfigs(b testing.TB) (*tls.Config, *tls.Config) {
	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
	require.NoError(b, err)
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicrecord.ALPN}},
		tlsutil.PinnedClientConfig(cert, quicrecord.ALPN)
}

func recordmuxPair(b testing.TB, cfg *quicrecord.Config) (*quicrecord.RecordStream, *quicrecord.RecordStream, func()) {
	stls, ctls := tlsConfigs(b)
	ln, err := quicrecord.Listen("127.0.0.1:0", stls, cfg)
	require.NoError(b, err)
	ctx := context.Background()
	acc := make(chan *quicrecord.Conn, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err == nil {
			acc <- c
		}
		close(acc)
	}()
	cc, err := quicrecord.Dial(ctx, ln.Addr().String(), ctls, cfg)
	require.NoError(b, err)
	sc := <-acc
	tx, err := cc.OpenRecordStream(ctx, quicrecord.StreamOptions{})
	require.NoError(b, err)
	rx, err := sc.AcceptRecordStream(ctx)
	require.NoError(b, err)
	return tx, rx, func() {
		_ = tx.Close()
		_ = rx.Close()
		_ = cc.Close()
		_ = sc.Close()
		_ = ln.Close()
	}
}

func BenchmarkThroughputRecordmux(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			tx, rx, done := recordmuxPair(b, nil)
			defer done()
			rec := make([]byte, sz.size)
			ctx := context.Background()
			go func() {
				_ = rx.Apply(ctx, func(quicrecord.Record) error { return nil })
			}()
			b.SetBytes(int64(sz.size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := tx.Send(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Barrier(ctx); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
		})
	}
}

func BenchmarkThroughputFramer(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			stls, ctls := tlsConfigs(b)
			stls.NextProtos = []string{"bench"}
			ctls.NextProtos = []string{"bench"}
			qconf := quicrecord.DefaultQUICConfig()
			ln, err := quic.ListenAddr("127.0.0.1:0", stls, qconf)
			require.NoError(b, err)
			defer ln.Close()
			ctx := context.Background()
			cc, err := quic.DialAddr(ctx, ln.Addr().String(), ctls, qconf)
			require.NoError(b, err)
			defer cc.CloseWithError(0, "")
			sc, err := ln.Accept(ctx)
			require.NoError(b, err)
			defer sc.CloseWithError(0, "")
			cs, err := cc.OpenStreamSync(ctx)
			require.NoError(b, err)
			_, _ = cs.Write([]byte{0})
			ss, err := sc.AcceptStream(ctx)
			require.NoError(b, err)
			var one [1]byte
			_, _ = io.ReadFull(ss, one[:])
			tx := framer.NewSender(cs, 0)
			rx := framer.NewReceiver(ss, 0)
			go func() {
				for {
					seq, _, err := rx.Next()
					if err != nil {
						return
					}
					_ = rx.AckLazy(seq)
					if rx.Buffered() == 0 {
						_ = rx.FlushAcks()
					}
				}
			}()
			rec := make([]byte, sz.size)
			b.SetBytes(int64(sz.size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var last uint64
			for range b.N {
				if last, err = tx.Send(rec); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := tx.WaitAcked(ctx, last); err != nil {
				b.Fatal(fmt.Errorf("wait: %w", err))
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
		})
	}
}
