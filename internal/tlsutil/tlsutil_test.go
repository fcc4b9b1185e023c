package tlsutil_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/recordmux/recordmux/internal/tlsutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pipeFunc returns two connected ends: client first, server second.
type pipeFunc func(t *testing.T) (net.Conn, net.Conn)

func memPipe(*testing.T) (net.Conn, net.Conn) {
	return net.Pipe()
}

func tcpPipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	var d net.Dialer
	client, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
	r := <-accepted
	if err != nil && r.c != nil {
		r.c.Close()
	}
	require.NoError(t, err)
	require.NoError(t, r.err)
	return client, r.c
}

// pipes are the transports for handshakes that should succeed. Failing
// handshakes run over TCP only: net.Pipe is unbuffered, so a client that
// aborts mid-flight blocks writing its alert while the server blocks writing
// the rest of its flight, until the handshake context expires.
func pipes() []namedPipe {
	return []namedPipe{{"pipe", memPipe}, {"tcp", tcpPipe}}
}

type namedPipe struct {
	name string
	pipe pipeFunc
}

// outcome is what each side of a handshake saw.
type outcome struct {
	clientErr, serverErr error
	clientState          tls.ConnectionState
	serverState          tls.ConnectionState
}

// handshake runs a TLS handshake between the two configurations. After a
// successful handshake the server sends one byte that the client reads, so a
// server-side rejection of the client certificate (which in TLS 1.3 happens
// after the client's handshake has returned) shows up as a client error too.
func handshake(t *testing.T, pipe pipeFunc, serverConf, clientConf *tls.Config) outcome {
	t.Helper()
	rawClient, rawServer := pipe(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	server := tls.Server(rawServer, serverConf)
	client := tls.Client(rawClient, clientConf)
	serverDone := make(chan struct{})
	var out outcome
	go func() {
		defer close(serverDone)
		// Close the raw connection, not the TLS one: a close_notify written
		// to an unbuffered net.Pipe nobody reads waits out its 5 s deadline.
		defer rawServer.Close()
		if out.serverErr = server.HandshakeContext(ctx); out.serverErr != nil {
			return
		}
		out.serverState = server.ConnectionState()
		_, out.serverErr = server.Write([]byte{'k'})
	}()
	out.clientErr = client.HandshakeContext(ctx)
	if out.clientErr == nil {
		out.clientState = client.ConnectionState()
		var b [1]byte
		_, out.clientErr = io.ReadFull(client, b[:])
	}
	rawClient.Close()
	<-serverDone
	return out
}

func serverConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"test/1"},
	}
}

func TestPinnedHandshake(t *testing.T) {
	ca, err := tlsutil.NewCA("test CA")
	require.NoError(t, err)
	issued, err := ca.IssueServer("localhost", "127.0.0.1")
	require.NoError(t, err)
	self, err := tlsutil.SelfSigned("example.test")
	require.NoError(t, err)

	for _, p := range pipes() {
		for _, c := range []struct {
			name string
			cert tls.Certificate
		}{{"self-signed", self}, {"ca-issued", issued}} {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				out := handshake(t, p.pipe, serverConfig(c.cert), tlsutil.PinnedClientConfig(c.cert, "test/1"))
				require.NoError(t, out.clientErr)
				require.NoError(t, out.serverErr)
				require.Equal(t, "test/1", out.clientState.NegotiatedProtocol)
				require.Equal(t, uint16(tls.VersionTLS13), out.clientState.Version)
				require.True(t, out.clientState.PeerCertificates[0].Equal(c.cert.Leaf))
			})
		}
	}
}

func TestPinnedToOtherCertificateFails(t *testing.T) {
	ca, err := tlsutil.NewCA("test CA")
	require.NoError(t, err)
	served, err := ca.IssueServer("localhost")
	require.NoError(t, err)
	sibling, err := ca.IssueServer("localhost")
	require.NoError(t, err)
	stranger, err := tlsutil.SelfSigned("localhost")
	require.NoError(t, err)

	for _, c := range []struct {
		name   string
		pinned tls.Certificate
	}{{"stranger", stranger}, {"same-ca-sibling", sibling}} {
		t.Run(c.name, func(t *testing.T) {
			out := handshake(t, tcpPipe, serverConfig(served), tlsutil.PinnedClientConfig(c.pinned, "test/1"))
			var unknown x509.UnknownAuthorityError
			require.ErrorAs(t, out.clientErr, &unknown)
			require.Error(t, out.serverErr)
		})
	}
}

func TestPinnedChecksExactLeaf(t *testing.T) {
	// Chain verification already rejects a leaf that is not the pinned one
	// (see above); the VerifyConnection hook is a second, exact check.
	self, err := tlsutil.SelfSigned("localhost")
	require.NoError(t, err)
	other, err := tlsutil.SelfSigned("localhost")
	require.NoError(t, err)
	conf := tlsutil.PinnedClientConfig(self)
	require.NotNil(t, conf.VerifyConnection)
	require.NoError(t, conf.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{self.Leaf}}))
	require.ErrorIs(t, conf.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{other.Leaf}}), tlsutil.ErrNotPinned)
	require.ErrorIs(t, conf.VerifyConnection(tls.ConnectionState{}), tlsutil.ErrNotPinned)
}

func TestClientAuth(t *testing.T) {
	ca, err := tlsutil.NewCA("test CA")
	require.NoError(t, err)
	otherCA, err := tlsutil.NewCA("other CA")
	require.NoError(t, err)
	serverCert, err := ca.IssueServer("localhost", "127.0.0.1")
	require.NoError(t, err)
	good, err := ca.IssueClient("alice")
	require.NoError(t, err)
	bad, err := otherCA.IssueClient("mallory")
	require.NoError(t, err)

	serverConf := func() *tls.Config {
		conf := serverConfig(serverCert)
		conf.ClientCAs = ca.Pool()
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		return conf
	}
	clientConf := func(cert tls.Certificate) *tls.Config {
		conf := tlsutil.PinnedClientConfig(serverCert, "test/1")
		conf.Certificates = []tls.Certificate{cert}
		return conf
	}

	for _, p := range pipes() {
		t.Run(p.name+"/same-ca", func(t *testing.T) {
			out := handshake(t, p.pipe, serverConf(), clientConf(good))
			require.NoError(t, out.clientErr)
			require.NoError(t, out.serverErr)
			require.Len(t, out.serverState.PeerCertificates, 1)
			require.Equal(t, "alice", out.serverState.PeerCertificates[0].Subject.CommonName)
			require.Len(t, out.serverState.VerifiedChains, 1)
			require.True(t, out.serverState.VerifiedChains[0][1].Equal(ca.Certificate()))
		})
	}
	t.Run("other-ca", func(t *testing.T) {
		// crypto/tls would not offer a certificate that the server's list of
		// acceptable CAs excludes; force it so the server has to reject it.
		conf := tlsutil.PinnedClientConfig(serverCert, "test/1")
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &bad, nil
		}
		out := handshake(t, tcpPipe, serverConf(), conf)
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, out.serverErr, &unknown)
		require.Error(t, out.clientErr)
	})
	t.Run("other-ca-not-offered", func(t *testing.T) {
		out := handshake(t, tcpPipe, serverConf(), clientConf(bad))
		require.Error(t, out.serverErr)
		require.Error(t, out.clientErr)
	})
	t.Run("no-client-cert", func(t *testing.T) {
		out := handshake(t, tcpPipe, serverConf(), tlsutil.PinnedClientConfig(serverCert, "test/1"))
		require.Error(t, out.serverErr)
		require.Error(t, out.clientErr)
	})
}

func TestCAPoolAsRoots(t *testing.T) {
	ca, err := tlsutil.NewCA("test CA")
	require.NoError(t, err)
	serverCert, err := ca.IssueServer("svc.test")
	require.NoError(t, err)
	clientConf := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool(), ServerName: "svc.test"}
	out := handshake(t, memPipe, serverConfig(serverCert), clientConf)
	require.NoError(t, out.clientErr)
	require.NoError(t, out.serverErr)
}

func TestCertificateContents(t *testing.T) {
	ca, err := tlsutil.NewCA("root")
	require.NoError(t, err)
	caCert := ca.Certificate()
	require.True(t, caCert.IsCA)
	require.Equal(t, "root", caCert.Subject.CommonName)
	require.NoError(t, caCert.CheckSignatureFrom(caCert))
	require.True(t, ca.Pool().Equal(ca.Pool()))

	t.Run("server SANs", func(t *testing.T) {
		cert, err := ca.IssueServer("a.test", "127.0.0.1", "::1", "b.test")
		require.NoError(t, err)
		require.Equal(t, []string{"a.test", "b.test"}, cert.Leaf.DNSNames)
		require.Len(t, cert.Leaf.IPAddresses, 2)
		require.True(t, cert.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)))
		require.True(t, cert.Leaf.IPAddresses[1].Equal(net.IPv6loopback))
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, cert.Leaf.ExtKeyUsage)
		require.False(t, cert.Leaf.IsCA)
		require.NoError(t, cert.Leaf.CheckSignatureFrom(caCert))
		require.NoError(t, cert.Leaf.VerifyHostname("127.0.0.1"))
		require.NoError(t, cert.Leaf.VerifyHostname("b.test"))
	})
	t.Run("server defaults", func(t *testing.T) {
		cert, err := ca.IssueServer()
		require.NoError(t, err)
		require.Equal(t, []string{"localhost"}, cert.Leaf.DNSNames)
		require.Len(t, cert.Leaf.IPAddresses, 2)
	})
	t.Run("client", func(t *testing.T) {
		cert, err := ca.IssueClient("bob")
		require.NoError(t, err)
		require.Equal(t, "bob", cert.Leaf.Subject.CommonName)
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.Leaf.ExtKeyUsage)
		_, err = cert.Leaf.Verify(x509.VerifyOptions{
			Roots:     ca.Pool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		require.NoError(t, err)
	})
	t.Run("validity", func(t *testing.T) {
		cert, err := tlsutil.SelfSigned()
		require.NoError(t, err)
		now := time.Now()
		require.True(t, cert.Leaf.NotBefore.Before(now))
		require.True(t, cert.Leaf.NotAfter.After(now.Add(tlsutil.Validity-time.Minute)))
		leaf := cert.Leaf
		require.NoError(t, leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature))
	})
}

func TestPinnedClientConfigFields(t *testing.T) {
	dns, err := tlsutil.SelfSigned("127.0.0.1", "first.test", "second.test")
	require.NoError(t, err)
	ipOnly, err := tlsutil.SelfSigned("127.0.0.1")
	require.NoError(t, err)

	conf := tlsutil.PinnedClientConfig(dns, "a", "b")
	require.Equal(t, "first.test", conf.ServerName)
	require.Equal(t, []string{"a", "b"}, conf.NextProtos)
	require.False(t, conf.InsecureSkipVerify)
	require.NotNil(t, conf.RootCAs)
	require.Equal(t, uint16(tls.VersionTLS13), conf.MinVersion)

	require.Equal(t, "127.0.0.1", tlsutil.PinnedClientConfig(ipOnly).ServerName)

	// Without Leaf, the DER is parsed.
	noLeaf := dns
	noLeaf.Leaf = nil
	require.Equal(t, "first.test", tlsutil.PinnedClientConfig(noLeaf).ServerName)

	empty := tlsutil.PinnedClientConfig(tls.Certificate{})
	require.Equal(t, "localhost", empty.ServerName)
	require.False(t, empty.InsecureSkipVerify)
	require.ErrorIs(t, empty.VerifyConnection(tls.ConnectionState{}), tlsutil.ErrNoCertificate)
	out := handshake(t, tcpPipe, serverConfig(dns), empty)
	require.Error(t, out.clientErr)
}
