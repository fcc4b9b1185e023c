package identity_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/identity"
)

func TestGenerate(t *testing.T) {
	t.Run("names", func(t *testing.T) {
		cert, err := identity.Generate("a.test", "127.0.0.1", "::1", "b.test")
		require.NoError(t, err)
		leaf := cert.Leaf
		require.NotNil(t, leaf)
		require.Equal(t, cert.Certificate[0], leaf.Raw)
		require.Equal(t, "a.test", leaf.Subject.CommonName)
		require.Equal(t, []string{"a.test", "b.test"}, leaf.DNSNames)
		require.Len(t, leaf.IPAddresses, 2)
		require.True(t, leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)))
		require.True(t, leaf.IPAddresses[1].Equal(net.IPv6loopback))
		require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
		require.False(t, leaf.IsCA)
		require.Equal(t, x509.ECDSA, leaf.PublicKeyAlgorithm)
		require.NoError(t, leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature), "self-signed")
		now := time.Now()
		require.True(t, leaf.NotBefore.Before(now))
		require.True(t, leaf.NotAfter.After(now.Add(identity.Validity-time.Hour)))
	})
	t.Run("defaults", func(t *testing.T) {
		cert, err := identity.Generate()
		require.NoError(t, err)
		require.Equal(t, []string{"localhost"}, cert.Leaf.DNSNames)
		require.Len(t, cert.Leaf.IPAddresses, 2)
		require.NoError(t, cert.Leaf.VerifyHostname("127.0.0.1"))
	})
	t.Run("a new key each time", func(t *testing.T) {
		a, err := identity.Generate()
		require.NoError(t, err)
		b, err := identity.Generate()
		require.NoError(t, err)
		require.NotEqual(t, identity.FingerprintOf(a.Leaf), identity.FingerprintOf(b.Leaf))
	})
	t.Run("usable as its own root for chain verification", func(t *testing.T) {
		// What a peer that does not pin can do: trust the very
		// certificate, as server and as client.
		cert, err := identity.Generate("svc.test")
		require.NoError(t, err)
		roots := x509.NewCertPool()
		roots.AddCert(cert.Leaf)
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
			require.NoError(t, err)
		}
	})
}

func TestFingerprintIsTheKeys(t *testing.T) {
	cert, err := identity.Generate("first.test")
	require.NoError(t, err)
	fp := identity.FingerprintOf(cert.Leaf)
	require.Equal(t, identity.Fingerprint(sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)), fp)
	require.NotEqual(t, identity.Fingerprint(sha256.Sum256(cert.Leaf.Raw)), fp, "not the certificate's hash")

	// A renewed certificate for the same key: other serial, names, dates.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "renewed.test"},
		DNSNames:     []string{"renewed.test"},
		NotBefore:    time.Now(),
		NotAfter:     time.Now().Add(time.Hour),
	}
	key := cert.PrivateKey.(crypto.Signer)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	renewed, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	require.NotEqual(t, cert.Leaf.Raw, renewed.Raw)
	require.Equal(t, fp, identity.FingerprintOf(renewed))
}

func TestFingerprintText(t *testing.T) {
	cert, err := identity.Generate()
	require.NoError(t, err)
	fp := identity.FingerprintOf(cert.Leaf)
	s := fp.String()
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, s)

	for _, in := range []string{s, strings.ToUpper(s), strings.TrimPrefix(s, "sha256:"), "SHA256:" + s[7:]} {
		got, err := identity.ParseFingerprint(in)
		require.NoError(t, err, in)
		require.Equal(t, fp, got, in)
	}
	for _, bad := range []string{
		"",
		"sha256:",
		s[:len(s)-1],       // 63 digits
		s + "0",            // 65 digits
		s[:len(s)-1] + "g", // not hex
		"sha1:" + s[7:],    // another hash
		"md5:" + s[7:len(s)-2],
		" " + s,
	} {
		_, err := identity.ParseFingerprint(bad)
		require.ErrorIs(t, err, identity.ErrMalformedFingerprint, "%q", bad)
	}

	// encoding/json and flag.TextVar through the text methods.
	b, err := json.Marshal(map[string]identity.Fingerprint{"pin": fp})
	require.NoError(t, err)
	require.Equal(t, `{"pin":"`+s+`"}`, string(b))
	var back map[string]identity.Fingerprint
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, fp, back["pin"])
	require.Error(t, json.Unmarshal([]byte(`{"pin":"sha256:00"}`), &back))

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var pin identity.Fingerprint
	fs.TextVar(&pin, "pin", identity.Fingerprint{}, "server fingerprint")
	require.NoError(t, fs.Parse([]string{"-pin", s}))
	require.Equal(t, fp, pin)
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "id.pem"), filepath.Join(dir, "id-key.pem")
	cert, err := identity.Generate("saved.test")
	require.NoError(t, err)
	require.NoError(t, identity.Save(cert, certFile, keyFile))

	key, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), key.Mode().Perm(), "the key is readable by its owner only")
	crt, err := os.Stat(certFile)
	require.NoError(t, err)
	require.Zero(t, crt.Mode().Perm()&0o022, "the certificate is writable by its owner only")
	require.NotZero(t, crt.Mode().Perm()&0o400)

	loaded, err := identity.Load(certFile, keyFile)
	require.NoError(t, err)
	require.Equal(t, cert.Certificate, loaded.Certificate)
	require.NotNil(t, loaded.Leaf)
	require.Equal(t, identity.FingerprintOf(cert.Leaf), identity.FingerprintOf(loaded.Leaf))
	require.True(t, cert.PrivateKey.(interface{ Equal(crypto.PrivateKey) bool }).Equal(loaded.PrivateKey), "the same private key")

	fp, err := identity.LoadFingerprint(certFile)
	require.NoError(t, err)
	require.Equal(t, identity.FingerprintOf(cert.Leaf), fp)

	// Never overwritten; the existing files stay as they were.
	other, err := identity.Generate()
	require.NoError(t, err)
	require.ErrorIs(t, identity.Save(other, certFile, filepath.Join(dir, "new-key.pem")), os.ErrExist)
	require.NoFileExists(t, filepath.Join(dir, "new-key.pem"), "a failed Save removes the key it wrote")
	require.ErrorIs(t, identity.Save(other, filepath.Join(dir, "new.pem"), keyFile), os.ErrExist)
	require.NoFileExists(t, filepath.Join(dir, "new.pem"))
	again, err := identity.Load(certFile, keyFile)
	require.NoError(t, err)
	require.Equal(t, cert.Certificate, again.Certificate)

	_, err = identity.Load(certFile, filepath.Join(dir, "missing.pem"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "id.pem"), filepath.Join(dir, "id-key.pem")

	first, created, err := identity.LoadOrCreate(certFile, keyFile, "node-1")
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, "node-1", first.Leaf.Subject.CommonName)

	second, created, err := identity.LoadOrCreate(certFile, keyFile, "ignored")
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, identity.FingerprintOf(first.Leaf), identity.FingerprintOf(second.Leaf), "a restart keeps the identity")

	// Half a pair is an error, not a reason to make a new key.
	require.NoError(t, os.Remove(certFile))
	_, _, err = identity.LoadOrCreate(certFile, keyFile)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoFileExists(t, certFile)
}

func TestLoadFingerprintErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := identity.LoadFingerprint(filepath.Join(dir, "missing.pem"))
	require.ErrorIs(t, err, os.ErrNotExist)

	keyOnly := filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(keyOnly, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), 0o600))
	_, err = identity.LoadFingerprint(keyOnly)
	require.ErrorIs(t, err, identity.ErrNoCertificate)

	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0o600))
	_, err = identity.LoadFingerprint(garbage)
	require.Error(t, err)
}
