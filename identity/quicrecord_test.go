package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
)

// TestOverQuicrecord runs the pinned configurations where they are meant
// to be used: quicrecord's Listen and Dial on loopback.
func TestOverQuicrecord(t *testing.T) {
	server, serverFP := newIdentity(t)
	client, clientFP := newIdentity(t, "client")
	_, strangerFP := newIdentity(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	t.Run("pinned server", func(t *testing.T) {
		ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(server), nil)
		require.NoError(t, err)
		defer ln.Close()

		conn, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(serverFP), nil)
		require.NoError(t, err)
		require.NoError(t, conn.Close())

		_, err = quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(strangerFP), nil)
		requireNotPinned(t, err, serverFP)
	})

	t.Run("mutual", func(t *testing.T) {
		ln, err := quicrecord.Listen("127.0.0.1:0", identity.MutualServerConfig(server, clientFP), nil)
		require.NoError(t, err)
		defer ln.Close()

		accepted := make(chan identity.Fingerprint, 1)
		go func() {
			conn, err := ln.Accept(ctx)
			if err != nil {
				close(accepted)
				return
			}
			defer conn.Close()
			fp, _ := identity.PeerFingerprint(conn.QUIC().ConnectionState().TLS)
			accepted <- fp
			s, err := conn.AcceptRecordStream(ctx)
			if err != nil {
				return
			}
			defer s.Close(context.Background())
			_ = s.Apply(ctx, func(quicrecord.Record) error { return nil })
		}()

		conn, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.MutualClientConfig(client, serverFP), nil)
		require.NoError(t, err)
		defer conn.Close()
		require.Equal(t, clientFP, <-accepted, "the server sees the pinned client's fingerprint")
		s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "pinned"})
		require.NoError(t, err)
		_, err = s.Send(ctx, []byte("hello"))
		require.NoError(t, err)
		require.NoError(t, s.Barrier(ctx))
		require.NoError(t, s.Close(context.Background()))

		// A client the server does not pin: in TLS 1.3 its Dial may
		// complete before the server checked its certificate, so the
		// refusal arrives at the latest with the first stream.
		stranger, _ := newIdentity(t, "client")
		conn2, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.MutualClientConfig(stranger, serverFP), nil)
		if err == nil {
			_, err = conn2.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "pinned"})
			_ = conn2.Close()
		}
		var te *quic.TransportError
		require.ErrorAs(t, err, &te)
		require.True(t, te.Remote && te.ErrorCode.IsCryptoError(), "a TLS alert from the server: %v", err)
	})
}
