package identity_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
)

// A server with a development identity, and clients that pin its
// fingerprint: the right pin connects, another is refused.
func Example() {
	ctx := context.Background()
	server, err := identity.Generate() // in memory: for development only
	if err != nil {
		panic(err)
	}
	ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(server), nil)
	if err != nil {
		panic(err)
	}
	defer ln.Close()

	// The fingerprint travels out of band, as text.
	pin, err := identity.ParseFingerprint(identity.FingerprintOf(server.Leaf).String())
	if err != nil {
		panic(err)
	}
	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(pin), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("pinned server: connected")
	conn.Close()

	impostor, _ := identity.Generate()
	_, err = quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(identity.FingerprintOf(impostor.Leaf)), nil)
	fmt.Println("another pin: refused:", errors.Is(err, identity.ErrNotPinned))
	// Output:
	// pinned server: connected
	// another pin: refused: true
}

// A program keeps its identity across restarts: the first start makes it,
// later starts load it, and the fingerprint its peers pinned stays valid.
func ExampleLoadOrCreate() {
	dir, err := os.MkdirTemp("", "identity-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile := filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")

	first, created, err := identity.LoadOrCreate(certFile, keyFile, "node-1")
	if err != nil {
		panic(err)
	}
	fmt.Println("first start, created:", created)

	again, created, err := identity.LoadOrCreate(certFile, keyFile, "node-1")
	if err != nil {
		panic(err)
	}
	fmt.Println("restart, created:", created)
	fmt.Println("same fingerprint:", identity.FingerprintOf(first.Leaf) == identity.FingerprintOf(again.Leaf))
	// Output:
	// first start, created: true
	// restart, created: false
	// same fingerprint: true
}
