// Package identity gives programs TLS identities without certificate
// boilerplate, in the style of Syncthing and libp2p: a peer is known by
// the fingerprint of its public key, and peers trust each other by
// pinning those fingerprints instead of through a certificate authority.
//
// It depends on the standard library only, and works with any crypto/tls
// user; the configurations it builds are ready for quicrecord's Listen
// and Dial (which add their ALPN), or for tls.Server and tls.Client.
//
// # Usage
//
// A server makes (or, on later starts, loads) its identity and prints its
// fingerprint once, out of band, to the operators of its clients:
//
//	cert, created, err := identity.LoadOrCreate("server.pem", "server-key.pem")
//	fmt.Println("fingerprint:", identity.FingerprintOf(cert.Leaf))
//	ln, err := quicrecord.Listen(addr, identity.ServerConfig(cert), nil)
//
// A client pins that fingerprint:
//
//	pin, err := identity.ParseFingerprint("sha256:3f0c…")
//	conn, err := quicrecord.Dial(ctx, addr, identity.ClientConfig(pin), nil)
//
// For mutual authentication both sides have an identity and pin the
// other's: [MutualServerConfig] with the fingerprints of the clients it
// accepts, [MutualClientConfig] with the server's. [PeerFingerprint] tells
// a server which of its clients it is talking to.
//
// # Fingerprints
//
// A [Fingerprint] is the SHA-256 of a certificate's SubjectPublicKeyInfo
// (the DER encoding of its public key and algorithm), the value HTTP
// public key pinning (RFC 7469) and curl's --pinnedpubkey use. It names
// the key, not the certificate: a certificate renewed for the same key —
// new dates, new names, new issuer — keeps its fingerprint. It is written
// "sha256:" and 64 lowercase hex digits; for a PEM certificate,
//
//	openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
//
// prints the same hex digits.
//
// # What a pinned configuration checks
//
// Pinning is verification, not a skipped check: the configurations of
// this package replace certificate-chain verification with a comparison
// against the pins. crypto/tls offers only one way to do that, setting
// [tls.Config.InsecureSkipVerify] (on the client) or
// [tls.RequireAnyClientCert] (on the server) and verifying in
// [tls.Config.VerifyConnection], which crypto/tls calls for every full
// handshake and every resumption. A handshake with a pinned configuration
// succeeds only if:
//
//   - it negotiates TLS 1.3;
//   - the peer presents a certificate (a server that requires client
//     certificates refuses a client without one);
//   - the peer proves it holds the private key of that certificate's
//     public key: crypto/tls checks the peer's CertificateVerify
//     signature over the handshake whatever InsecureSkipVerify says (a
//     resumption proves instead that the peer holds the secret of a
//     session that passed these checks);
//   - the SHA-256 of the leaf certificate's SubjectPublicKeyInfo is one
//     of the pins; otherwise the handshake fails with a
//     [*NotPinnedError] (errors.Is [ErrNotPinned]).
//
// It does not check, on purpose, because the pinned key is the whole
// identity: the certificate's issuer and chain (other certificates the
// peer sends are ignored), its validity dates, its names (SANs, the
// ServerName the client dialled), its key usages, and revocation. To
// distrust a key, remove its pin.
//
// # Development and production
//
// For development and tests only:
//
//   - [Generate]'s certificates are self-signed. Nothing but a pin (or
//     adding the very certificate to a pool of roots) makes a peer trust
//     them; they are not a substitute for certificates from a CA that
//     browsers or other clients you do not control must accept.
//   - An identity that is only in memory ([Generate] without [Save]) is
//     gone when the process ends: its peers' pins stop matching on the
//     next start. Use [LoadOrCreate] for anything that restarts.
//   - [Save] writes the private key unencrypted, readable by its owner
//     only (0600). Keep the key file in a directory that only the
//     program's user can read, out of backups and version control; [Load]
//     does not check the file's permissions.
//
// Fine in production: pinning the known keys of a fleet — each program
// keeps its key (from [LoadOrCreate] or your own provisioning; [Load]
// reads any PEM certificate and key, including CA-issued ones), and every
// peer is configured with the fingerprints it may talk to. Rotating a key
// means adding the new pin everywhere before the old one is removed.
// Configurations that verify certificate chains (tls.Config RootCAs and
// ClientCAs) remain the right tool when identities come from a PKI.
//
// # Concurrency
//
// The functions are safe for concurrent use. The returned [tls.Config]
// values hold their own copy of the pins; each is a new value the caller
// may modify before use, as with any tls.Config.
//
// # Limitations
//
// Only ECDSA P-256 keys are generated ([Load] accepts whatever
// crypto/tls accepts). [PeerFingerprint] reports the peer's key whatever
// the configuration verified: it is an authenticated identity only on a
// connection whose configuration verified the peer (every configuration
// of this package does). quicrecord binds resume keys to chain-verified
// client certificates only, so a pinned client's resumable streams are
// not yet bound to its fingerprint.
package identity
