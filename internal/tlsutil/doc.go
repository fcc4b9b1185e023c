// Package tlsutil builds in-memory TLS material for loopback use in
// examples, tests and benchmarks. Nothing is read from or written to disk.
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
