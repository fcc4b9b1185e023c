package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"time"
)

// Validity is how long a certificate made by [Generate] is valid, from
// its creation. Pinned configurations ignore the dates; the long life is
// for peers that verify the certificate as a root of its own (a
// tls.Config pool holding the very certificate), so that an identity from
// [LoadOrCreate] does not expire under them.
const Validity = 10 * 365 * 24 * time.Hour

// clockSkew is how far NotBefore is backdated, so that peers whose clocks
// are a little behind accept a new certificate.
const clockSkew = time.Hour

// defaultNames are the certificate names of [Generate] called without any.
var defaultNames = []string{"localhost", "127.0.0.1", "::1"}

// Generate makes a development identity: a new ECDSA P-256 key and a
// self-signed certificate for it, in memory. Each name becomes a SAN, an
// IP address if it parses as one and a DNS name otherwise, and the first
// is the subject's common name; without names, the certificate is for
// "localhost", 127.0.0.1 and ::1. The certificate may serve both as a
// server and as a client certificate (extended key usages serverAuth and
// clientAuth) and is valid for [Validity]. The returned certificate has
// Leaf set.
//
// The names matter only to peers that check them; pinned configurations
// do not (see the package documentation). The key is lost when the
// process ends unless it is saved with [Save].
func Generate(names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		names = defaultNames
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: generate serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: parse certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Save writes cert to two new PEM files: its certificate chain to
// certFile (mode 0644) and its private key, unencrypted PKCS #8, to
// keyFile (mode 0600; both before the umask). It never overwrites: if
// either file exists it fails with an error matching [os.ErrExist], and
// on any failure it removes the files it created.
//
// The key file is the identity: whoever can read it can be this peer.
// See the package documentation on where to keep it.
func Save(cert tls.Certificate, certFile, keyFile string) error {
	if len(cert.Certificate) == 0 {
		return fmt.Errorf("identity: save: %w", ErrNoCertificate)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("identity: save: %w", err)
	}
	// The key first: a crash between the two leaves a key without a
	// certificate, which LoadOrCreate reports instead of replacing.
	if err := writeNew(keyFile, 0o600, func(w io.Writer) error {
		return pem.Encode(w, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}); err != nil {
		return err
	}
	err = writeNew(certFile, 0o644, func(w io.Writer) error {
		for _, der := range cert.Certificate {
			if err := pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = os.Remove(keyFile)
		return err
	}
	return nil
}

// writeNew creates path, which must not exist, with perm, and writes and
// syncs it. On failure it removes what it created.
func writeNew(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("identity: save: %w", err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("identity: save %s: %w", path, err)
	}
	return nil
}

// Load reads an identity from PEM files: a certificate chain (leaf first)
// and its private key, as [Save] writes them or as any CA issues them
// (anything [tls.LoadX509KeyPair] accepts). The returned certificate has
// Leaf set. Load does not check the key file's permissions.
func Load(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: load: %w", err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("identity: load %s: %w", certFile, err)
		}
	}
	return cert, nil
}

// LoadOrCreate is for a program's first start: when neither file exists,
// it makes an identity with [Generate] for names and writes it with
// [Save] (created is then true); when both exist, it loads them with
// [Load]. When only one of them exists it fails rather than replace a
// key that may already be pinned somewhere. It is not meant for several
// processes making the same files at the same moment.
func LoadOrCreate(certFile, keyFile string, names ...string) (cert tls.Certificate, created bool, err error) {
	certExists, err := exists(certFile)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	keyExists, err := exists(keyFile)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	switch {
	case certExists && keyExists:
		cert, err = Load(certFile, keyFile)
		return cert, false, err
	case certExists != keyExists:
		missing := keyFile
		if keyExists {
			missing = certFile
		}
		return tls.Certificate{}, false, fmt.Errorf("identity: %s is missing but its pair exists; restore it or remove both to make a new identity: %w", missing, os.ErrNotExist)
	}
	if cert, err = Generate(names...); err != nil {
		return tls.Certificate{}, false, err
	}
	if err = Save(cert, certFile, keyFile); err != nil {
		return tls.Certificate{}, false, err
	}
	return cert, true, nil
}

// exists reports whether path exists.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("identity: %w", err)
	}
}
