package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Fingerprint identifies a public key: the SHA-256 of a certificate's
// DER-encoded SubjectPublicKeyInfo. Compare fingerprints with ==. Its text
// form, from [Fingerprint.String] and [Fingerprint.MarshalText], is
// "sha256:" followed by 64 lowercase hex digits; [ParseFingerprint] and
// [Fingerprint.UnmarshalText] read it back. Implementing both text
// methods, it works with flag.TextVar and encoding/json.
type Fingerprint [sha256.Size]byte

// fingerprintPrefix names the hash in a fingerprint's text form.
const fingerprintPrefix = "sha256:"

var (
	// ErrMalformedFingerprint is matched (errors.Is) by the errors of
	// [ParseFingerprint] and [Fingerprint.UnmarshalText].
	ErrMalformedFingerprint = errors.New("identity: malformed fingerprint")
	// ErrNoCertificate is matched by the errors of [Save] and
	// [LoadFingerprint] when there is no certificate to work with.
	ErrNoCertificate = errors.New("identity: no certificate")
)

// FingerprintOf returns the fingerprint of cert's public key: the SHA-256
// of cert.RawSubjectPublicKeyInfo. Certificates for the same key have the
// same fingerprint, whatever else differs. For a [tls.Certificate] from
// [Generate], [Load] or [LoadOrCreate], pass its Leaf.
func FingerprintOf(cert *x509.Certificate) Fingerprint {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// LoadFingerprint returns the fingerprint of the first certificate in a
// PEM file, such as the certFile of [Save]: a way to pin a peer whose
// certificate file you were given.
func LoadFingerprint(certFile string) (Fingerprint, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("identity: %w", err)
	}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return Fingerprint{}, fmt.Errorf("identity: %s: no PEM certificate: %w", certFile, ErrNoCertificate)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return Fingerprint{}, fmt.Errorf("identity: %s: %w", certFile, err)
		}
		return FingerprintOf(cert), nil
	}
}

// PeerFingerprint returns the fingerprint of the certificate the peer of
// a TLS connection presented (cs.PeerCertificates[0]), and false when it
// presented none. It is an authenticated identity only when the
// connection's configuration verified that certificate: every pinned
// configuration of this package does, and so does chain verification
// (then cs.VerifiedChains is not empty); a server with
// [tls.RequestClientCert] or [tls.RequireAnyClientCert] and no
// VerifyConnection of its own verifies nothing.
func PeerFingerprint(cs tls.ConnectionState) (Fingerprint, bool) {
	if len(cs.PeerCertificates) == 0 {
		return Fingerprint{}, false
	}
	return FingerprintOf(cs.PeerCertificates[0]), true
}

// String returns "sha256:" and the fingerprint in 64 lowercase hex digits.
func (f Fingerprint) String() string {
	return fingerprintPrefix + hex.EncodeToString(f[:])
}

// ParseFingerprint reads a fingerprint in the form [Fingerprint.String]
// writes. The hex digits may be upper or lower case, and the "sha256:"
// prefix may be left out.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	digits := s
	if len(digits) >= len(fingerprintPrefix) && strings.EqualFold(digits[:len(fingerprintPrefix)], fingerprintPrefix) {
		digits = digits[len(fingerprintPrefix):]
	}
	if len(digits) != hex.EncodedLen(len(f)) {
		return Fingerprint{}, fmt.Errorf("%w %q: want %s and %d hex digits", ErrMalformedFingerprint, s, fingerprintPrefix, hex.EncodedLen(len(f)))
	}
	if _, err := hex.Decode(f[:], []byte(digits)); err != nil {
		return Fingerprint{}, fmt.Errorf("%w %q: %w", ErrMalformedFingerprint, s, err)
	}
	return f, nil
}

// MarshalText implements [encoding.TextMarshaler] with the form of
// [Fingerprint.String].
func (f Fingerprint) MarshalText() ([]byte, error) {
	return []byte(f.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with
// [ParseFingerprint].
func (f *Fingerprint) UnmarshalText(text []byte) error {
	p, err := ParseFingerprint(string(text))
	if err != nil {
		return err
	}
	*f = p
	return nil
}
