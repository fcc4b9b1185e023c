package identity_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/identity"
)

// newIdentity is identity.Generate that fails the test on error.
func newIdentity(t *testing.T, names ...string) (tls.Certificate, identity.Fingerprint) {
	t.Helper()
	cert, err := identity.Generate(names...)
	require.NoError(t, err)
	return cert, identity.FingerprintOf(cert.Leaf)
}

// requireNotPinned checks that err is a NotPinnedError naming peer.
func requireNotPinned(t *testing.T, err error, peer identity.Fingerprint) {
	t.Helper()
	require.ErrorIs(t, err, identity.ErrNotPinned)
	var np *identity.NotPinnedError
	require.ErrorAs(t, err, &np)
	require.False(t, np.NoCertificate)
	require.Equal(t, peer, np.Peer)
}

func TestClientConfigPinnedServer(t *testing.T) {
	server, serverFP := newIdentity(t, "server.test")
	_, otherFP := newIdentity(t)

	for _, tc := range []struct {
		name string
		pins []identity.Fingerprint
	}{
		{"the one pin", []identity.Fingerprint{serverFP}},
		{"one of several pins", []identity.Fingerprint{otherFP, serverFP}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := handshake(t, identity.ServerConfig(server), identity.ClientConfig(tc.pins...))
			require.NoError(t, r.clientErr)
			require.NoError(t, r.serverErr)
			require.Equal(t, uint16(tls.VersionTLS13), r.clientState.Version)
			got, ok := identity.PeerFingerprint(r.clientState)
			require.True(t, ok)
			require.Equal(t, serverFP, got)
			_, ok = identity.PeerFingerprint(r.serverState)
			require.False(t, ok, "the server asked for no client certificate")
		})
	}
}

func TestClientConfigRejectsOtherServer(t *testing.T) {
	server, serverFP := newIdentity(t, "server.test")
	_, otherFP := newIdentity(t, "server.test") // same names, another key

	for _, tc := range []struct {
		name string
		pins []identity.Fingerprint
	}{
		{"another key pinned", []identity.Fingerprint{otherFP}},
		{"no pins", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := handshake(t, identity.ServerConfig(server), identity.ClientConfig(tc.pins...))
			requireNotPinned(t, r.clientErr, serverFP)
			require.Error(t, r.serverErr, "the server sees the client's alert")
		})
	}
}

func TestMutualConfigs(t *testing.T) {
	server, serverFP := newIdentity(t, "server.test")
	client, clientFP := newIdentity(t, "client")
	stranger, strangerFP := newIdentity(t, "client")

	t.Run("both pinned", func(t *testing.T) {
		r := handshake(t,
			identity.MutualServerConfig(server, strangerFP, clientFP),
			identity.MutualClientConfig(client, serverFP))
		require.NoError(t, r.clientErr)
		require.NoError(t, r.serverErr)
		got, ok := identity.PeerFingerprint(r.serverState)
		require.True(t, ok)
		require.Equal(t, clientFP, got, "the server knows which client it talks to")
		got, ok = identity.PeerFingerprint(r.clientState)
		require.True(t, ok)
		require.Equal(t, serverFP, got)
	})
	t.Run("wrong client", func(t *testing.T) {
		r := handshake(t,
			identity.MutualServerConfig(server, clientFP),
			identity.MutualClientConfig(stranger, serverFP))
		requireNotPinned(t, r.serverErr, strangerFP)
		require.Error(t, r.clientErr, "the client learns of the refusal on its first read")
	})
	t.Run("wrong server", func(t *testing.T) {
		r := handshake(t,
			identity.MutualServerConfig(stranger, clientFP),
			identity.MutualClientConfig(client, serverFP))
		requireNotPinned(t, r.clientErr, strangerFP)
		require.Error(t, r.serverErr)
	})
	t.Run("client without a certificate", func(t *testing.T) {
		r := handshake(t,
			identity.MutualServerConfig(server, clientFP),
			identity.ClientConfig(serverFP))
		require.Error(t, r.serverErr, "RequireAnyClientCert refuses before the pins are consulted")
		require.Error(t, r.clientErr)
	})
}

func TestVerifyConnectionWithoutCertificate(t *testing.T) {
	// A peer with no certificate never reaches VerifyConnection through
	// these configurations (crypto/tls refuses it first); the hook still
	// refuses it on its own.
	_, fp := newIdentity(t)
	for _, conf := range []*tls.Config{identity.ClientConfig(fp), identity.MutualServerConfig(tls.Certificate{}, fp)} {
		err := conf.VerifyConnection(tls.ConnectionState{})
		require.ErrorIs(t, err, identity.ErrNotPinned)
		var np *identity.NotPinnedError
		require.ErrorAs(t, err, &np)
		require.True(t, np.NoCertificate)
	}
}

func TestConfigFields(t *testing.T) {
	cert, fp := newIdentity(t)
	pins := []identity.Fingerprint{fp}

	client := identity.ClientConfig(pins...)
	require.Equal(t, uint16(tls.VersionTLS13), client.MinVersion)
	require.True(t, client.InsecureSkipVerify, "chain verification is replaced by the pin check")
	require.NotNil(t, client.VerifyConnection)
	require.Empty(t, client.Certificates)
	require.Empty(t, client.NextProtos, "quicrecord sets its own ALPN")

	// The hook keeps its own copy of the pins.
	pins[0] = identity.Fingerprint{}
	require.NoError(t, client.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}))

	server := identity.ServerConfig(cert)
	require.Equal(t, uint16(tls.VersionTLS13), server.MinVersion)
	require.Equal(t, tls.NoClientCert, server.ClientAuth)
	require.Len(t, server.Certificates, 1)

	mutual := identity.MutualServerConfig(cert, fp)
	require.Equal(t, tls.RequireAnyClientCert, mutual.ClientAuth)
	require.NotNil(t, mutual.VerifyConnection)
	require.Len(t, identity.MutualClientConfig(cert, fp).Certificates, 1)
}
