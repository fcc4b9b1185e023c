package jsrecord

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

// peerLog records, for a collector, the identity quicrecord handed to
// LoadApplied and the one the sink computed in its accept handler.
type peerLog struct {
	mu              sync.Mutex
	loaded, handled []string
}

// TestKeyBoundToClientIdentity: a key opened by one client (mutual TLS)
// is bound to that client in JetStream: another client can continue it on
// no collector, while its owner continues it on any.
func TestKeyBoundToClientIdentity(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), 0)
	nc := connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, nc), nil, 1)
	require.NoError(t, err)

	ca, err := tlsutil.NewCA("fleet")
	require.NoError(t, err)
	serverCert, err := ca.IssueServer("localhost", "127.0.0.1")
	require.NoError(t, err)
	stls := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	clientTLS := func(name string) *tls.Config {
		cert, err := ca.IssueClient(name)
		require.NoError(t, err)
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), ServerName: "localhost"}
	}
	owner, other := clientTLS("owner"), clientTLS("other")

	collectors := make([]*collector, 2)
	logs := make([]*peerLog, 2)
	for i := range collectors {
		pl := &peerLog{}
		logs[i] = pl
		var sink *Sink
		qcfg := &quicrecord.Config{}
		qcfg.ResumeStore = quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{TTL: time.Nanosecond,
			LoadApplied: func(ctx context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
				pl.mu.Lock()
				pl.loaded = append(pl.loaded, info.Peer)
				pl.mu.Unlock()
				return sink.LoadApplied(ctx, info)
			}})
		qcfg.AcceptHandler = func(ctx context.Context, info *quicrecord.AcceptInfo) (*quicrecord.StreamConfig, error) {
			pl.mu.Lock()
			pl.handled = append(pl.handled, info.PeerIdentity)
			pl.mu.Unlock()
			return sink.AcceptHandler(ctx, info)
		}
		collectors[i] = startCollector(t, nc, stls, nil, qcfg)
		sink = collectors[i].sink
	}
	a, b := collectors[0], collectors[1]

	key := []byte("bound")
	rs, err := quicrecord.DialResumable(ctx, a.addr(), owner, nil, agentOpts(key))
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, rs, 1, 100))
	require.NoError(t, rs.Close(context.Background()))

	for _, c := range []*collector{a, b} {
		_, err := quicrecord.DialResumable(ctx, c.addr(), other, nil, agentOpts(key))
		require.ErrorIs(t, err, quicrecord.ErrRefused, "another client must not continue the key on %s", c.addr())
	}
	// The authoritative check, in the claim itself.
	_, _, err = b.sink.LoadApplied(ctx, quicrecord.ResumeKeyInfo{Key: key, Peer: "someone else"})
	require.ErrorIs(t, err, ErrBoundToOtherPeer)

	opts := agentOpts(key)
	opts.FirstSeq = 101
	rs, err = quicrecord.DialResumable(ctx, b.addr(), owner, nil, opts)
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, rs, 101, 200))
	require.NoError(t, rs.Close(context.Background()))
	requireExactlyOnce(t, readBack(t, newJS(t, nc), key), 200)

	// The sink binds keys to quicrecord's identity of the connection: the
	// SPKI fingerprint of the owner's verified certificate.
	ownerCert, err := x509.ParseCertificate(owner.Certificates[0].Certificate[0])
	require.NoError(t, err)
	want := identity.FingerprintOf(ownerCert).String()
	for i, pl := range logs {
		pl.mu.Lock()
		require.NotEmpty(t, pl.loaded, "collector %d", i)
		for _, p := range pl.loaded {
			require.Equal(t, want, p, "collector %d: LoadApplied saw the owner", i)
		}
		require.Contains(t, pl.handled, want)
		pl.mu.Unlock()
	}
}
