package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity is how long certificates made by this package stay valid, counted
// from their creation. NotBefore is backdated by [clockSkew] so that small
// clock differences between goroutines or processes never matter.
const Validity = 24 * time.Hour

// clockSkew is how far NotBefore is backdated.
const clockSkew = time.Hour

// defaultServerName is the TLS server name used when a certificate has no SAN
// that can serve as one.
const defaultServerName = "localhost"

// Error is the type of this package's sentinel errors. Being a string type,
// its values can be constants and are matched with [errors.Is].
type Error string

// Error returns the message.
func (e Error) Error() string { return string(e) }

const (
	// ErrNotPinned is returned by the VerifyConnection hook of a
	// [PinnedClientConfig] when the peer's leaf is not the pinned certificate.
	ErrNotPinned Error = "tlsutil: peer certificate is not the pinned certificate"
	// ErrNoCertificate is returned when a [tls.Certificate] holds no
	// certificate to work with.
	ErrNoCertificate Error = "tlsutil: tls.Certificate holds no certificate"
)

// CA is an in-memory ECDSA P-256 certificate authority. Create one with
// [NewCA]. It is safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed ECDSA P-256 certificate authority whose subject
// common name is name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: generate CA key: %w", err)
	}
	tmpl, err := template(name)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: parse CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key}, nil
}

// Certificate returns the CA's own certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate {
	return ca.cert
}

// Pool returns a new certificate pool that holds only the CA's certificate,
// suitable for [tls.Config.RootCAs] or [tls.Config.ClientCAs].
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// IssueServer issues a server certificate (ExtKeyUsageServerAuth) signed by
// the CA. Each host is parsed as an IP address if it is one and otherwise used
// as a DNS name; with no hosts, the SANs are "localhost", 127.0.0.1 and ::1.
// The first host is also the subject common name.
func (ca *CA) IssueServer(hosts ...string) (tls.Certificate, error) {
	tmpl, err := serverTemplate(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	return ca.issue(tmpl)
}

// IssueClient issues a client certificate (ExtKeyUsageClientAuth) signed by
// the CA, with the given subject common name.
func (ca *CA) IssueClient(commonName string) (tls.Certificate, error) {
	tmpl, err := template(commonName)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.issue(tmpl)
}

// issue signs tmpl with the CA key for a freshly generated key pair.
func (ca *CA) issue(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: create certificate: %w", err)
	}
	return certificate(der, key)
}

// Renew issues a new client certificate for the key of cert (a new
// serial number and validity window, the same subject and public key), as
// a certificate renewal does.
func (ca *CA) Renew(cert tls.Certificate) (tls.Certificate, error) {
	leaf, err := leafOf(cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return tls.Certificate{}, Error("tlsutil: not an ECDSA certificate")
	}
	tmpl, err := template(leaf.Subject.CommonName)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl.KeyUsage, tmpl.ExtKeyUsage = leaf.KeyUsage, leaf.ExtKeyUsage
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: create certificate: %w", err)
	}
	return certificate(der, key)
}

// SelfSigned creates a self-signed ECDSA P-256 server certificate
// (ExtKeyUsageServerAuth). Hosts are treated as in [CA.IssueServer]. Clients
// trust it through [PinnedClientConfig].
func SelfSigned(hosts ...string) (tls.Certificate, error) {
	tmpl, err := serverTemplate(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: create certificate: %w", err)
	}
	return certificate(der, key)
}

// PinnedClientConfig returns a TLS 1.3 client configuration that trusts
// exactly cert: its leaf is the only root, and the connection is additionally
// rejected unless the peer presents that very leaf. ServerName is the leaf's
// first DNS SAN, else its first IP SAN, else "localhost". alpn becomes
// NextProtos.
//
// If cert holds no parsable leaf, the returned configuration trusts nothing:
// every handshake with it fails with that parse error (or [ErrNoCertificate]).
func PinnedClientConfig(cert tls.Certificate, alpn ...string) *tls.Config {
	leaf, err := leafOf(cert)
	pool := x509.NewCertPool()
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: defaultServerName,
		NextProtos: append([]string(nil), alpn...),
	}
	if err != nil {
		conf.VerifyConnection = func(tls.ConnectionState) error { return err }
		return conf
	}
	pool.AddCert(leaf)
	switch {
	case len(leaf.DNSNames) > 0:
		conf.ServerName = leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		conf.ServerName = leaf.IPAddresses[0].String()
	}
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(leaf) {
			return ErrNotPinned
		}
		return nil
	}
	return conf
}

// leafOf returns cert's parsed leaf, parsing it if Leaf is unset.
func leafOf(cert tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, ErrNoCertificate
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("tlsutil: parse leaf: %w", err)
	}
	return leaf, nil
}

// certificate wraps a leaf DER and its key as a [tls.Certificate] with Leaf
// set.
func certificate(der []byte, key *ecdsa.PrivateKey) (tls.Certificate, error) {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: parse certificate: %w", err)
	}
	return tls.Certificate{
		Certificate: [][]byte{der},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// serverTemplate is the template of a server certificate for hosts.
func serverTemplate(hosts []string) (*x509.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{defaultServerName, "127.0.0.1", "::1"}
	}
	tmpl, err := template(hosts[0])
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.BasicConstraintsValid = true
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// template is the common part of every certificate: a random 128-bit serial,
// the subject common name and the validity window.
func template(commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("tlsutil: generate serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(Validity),
	}, nil
}
