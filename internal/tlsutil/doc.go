// Package tlsutil builds in-memory TLS material for loopback use in this
// repository's tests and benchmarks. Nothing is read from or written to
// disk.
//
// It stays because tests need what the public package
// github.com/recordmux/recordmux/identity deliberately does not offer: a
// certificate authority, for client certificates verified by their chain
// (quicrecord binds resume keys to chain-verified client certificates, and
// its TLS and resumption tests issue such certificates with [NewCA]).
// Examples, Examples in documentation and anything a user may copy use
// package identity instead: code outside this module cannot import an
// internal package.
//
// # Usage
//
// For a server whose certificate the client pins directly:
//
//	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
//	// server: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: ...}
//	client := tlsutil.PinnedClientConfig(cert, "my-alpn")
//
// For mutual TLS, create a [CA] with [NewCA], issue a server certificate with
// [CA.IssueServer] and client certificates with [CA.IssueClient], and use
// [CA.Pool] as the server's ClientCAs (and, if wanted, the client's RootCAs).
//
// # Security
//
// The material is meant for loopback and test use only: keys live in memory,
// certificates are short-lived (see [Validity]), and nothing is revoked.
// No configuration built here disables certificate verification.
//
// # Concurrency
//
// A [CA] is safe for concurrent use; issuing certificates does not mutate it.
//
// # Limitations
//
// Only ECDSA P-256 keys are generated. There is no intermediate CA support and
// no way to persist or load material.
package tlsutil
