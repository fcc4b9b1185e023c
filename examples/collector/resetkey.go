package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
)

// resetKeyPath is where the collector keeps its stateless reset key:
// beside the state file, and with it.
func resetKeyPath(state string) string {
	return state + ".reset-key"
}

// loadOrCreateResetKey returns the QUIC stateless reset key kept in path,
// creating the file with 32 random bytes (mode 0600) when it does not
// exist. A collector restarted with the same key answers its previous
// run's connections with stateless resets, so their clients notice the
// restart with their next packet instead of at the idle timeout. The key
// must stay secret: whoever has it can reset the collector's
// connections.
func loadOrCreateResetKey(path string) (key *quic.StatelessResetKey, created bool, err error) {
	key = new(quic.StatelessResetKey)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(data) != len(key) {
			return nil, false, fmt.Errorf("reset key %s: %d bytes, want %d (remove the file to make a new key)", path, len(data), len(key))
		}
		copy(key[:], data)
		return key, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, err
	}
	if _, err := rand.Read(key[:]); err != nil {
		return nil, false, err
	}
	// Written whole to a temporary file (CreateTemp makes it 0600) and
	// renamed: a crash leaves either no key file or a complete one.
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.Write(key[:])
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return nil, false, err
	}
	return key, true, nil
}
