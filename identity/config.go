package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
)

// ErrNotPinned is matched (errors.Is) by [*NotPinnedError].
var ErrNotPinned = errors.New("identity: peer not pinned")

// NotPinnedError is the error with which a pinned configuration fails a
// handshake whose peer is not pinned. It reaches the side that checked:
// the client for a server, the server for a client (in TLS 1.3 the client
// then learns of it as an alert, often only on its first read).
type NotPinnedError struct {
	// Peer is the fingerprint of the certificate the peer presented; zero
	// when NoCertificate.
	Peer Fingerprint
	// NoCertificate is true when the peer presented no certificate.
	NoCertificate bool
}

// Error names the peer's fingerprint, so that it can be pinned if it
// should have been.
func (e *NotPinnedError) Error() string {
	if e.NoCertificate {
		return "identity: peer presented no certificate"
	}
	return fmt.Sprintf("identity: peer %v is not pinned", e.Peer)
}

// Is reports whether target is [ErrNotPinned].
func (e *NotPinnedError) Is(target error) bool {
	return target == ErrNotPinned
}

// ServerConfig returns a TLS 1.3 server configuration presenting cert,
// without client authentication. Clients trust it by pinning its
// fingerprint with [ClientConfig] (or, for a certificate from a CA, by
// verifying its chain).
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}
}

// ClientConfig returns a TLS 1.3 client configuration that accepts a
// server only if its certificate's key is one of serverPins. With no pins
// it accepts no server.
//
// It sets InsecureSkipVerify, which turns off crypto/tls's chain and name
// verification only; VerifyConnection then checks the pin, and crypto/tls
// still checks that the server holds the pinned key. The package
// documentation lists what is and is not checked. ServerName is left
// empty (quic-go and tls.Dial fill it from the address; it is sent as SNI
// and not verified).
func ClientConfig(serverPins ...Fingerprint) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Replaced, not skipped: verifyPinned checks the server's key.
		InsecureSkipVerify: true,
		VerifyConnection:   verifyPinned(serverPins),
	}
}

// MutualServerConfig returns a TLS 1.3 server configuration presenting
// cert that requires a client certificate and accepts a client only if
// its key is one of clientPins. With no pins it accepts no client.
// [PeerFingerprint] of a connection's state tells which client it is.
func MutualServerConfig(cert tls.Certificate, clientPins ...Fingerprint) *tls.Config {
	conf := ServerConfig(cert)
	// RequireAnyClientCert: a certificate is required and its chain is
	// not verified; verifyPinned checks its key instead.
	conf.ClientAuth = tls.RequireAnyClientCert
	conf.VerifyConnection = verifyPinned(clientPins)
	return conf
}

// MutualClientConfig returns [ClientConfig] for serverPins that also
// presents cert to the server, for servers configured with
// [MutualServerConfig] (or that verify client certificates otherwise).
func MutualClientConfig(cert tls.Certificate, serverPins ...Fingerprint) *tls.Config {
	conf := ClientConfig(serverPins...)
	conf.Certificates = []tls.Certificate{cert}
	return conf
}

// verifyPinned returns a VerifyConnection hook that accepts a peer whose
// leaf certificate's key is one of pins. It keeps its own copy of pins.
func verifyPinned(pins []Fingerprint) func(tls.ConnectionState) error {
	pins = slices.Clone(pins)
	return func(cs tls.ConnectionState) error {
		fp, ok := PeerFingerprint(cs)
		if !ok {
			return &NotPinnedError{NoCertificate: true}
		}
		if !slices.Contains(pins, fp) {
			return &NotPinnedError{Peer: fp}
		}
		return nil
	}
}
