package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestResetKeyFile: the first start makes a random 32-byte key file,
// readable by its owner only; later starts read the same key; a damaged
// file is an error, not a reason to make a new key silently.
func TestResetKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := resetKeyPath(filepath.Join(dir, "collector.state"))
	if path != filepath.Join(dir, "collector.state.reset-key") {
		t.Fatalf("reset key path %s is not beside the state file", path)
	}

	first, created, err := loadOrCreateResetKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created %v, err %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("key file: mode %v, %d bytes; want 0600, 32 bytes", fi.Mode().Perm(), fi.Size())
	}
	if *first == [32]byte{} {
		t.Error("the key is all zeros")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v (%v); want only the key file, no temporary file", entries, err)
	}

	again, created, err := loadOrCreateResetKey(path)
	if err != nil || created {
		t.Fatalf("restart: created %v, err %v", created, err)
	}
	if *again != *first {
		t.Error("a restarted collector has another reset key")
	}

	other, _, err := loadOrCreateResetKey(filepath.Join(dir, "other.reset-key"))
	if err != nil {
		t.Fatal(err)
	}
	if *other == *first {
		t.Error("two new key files hold the same key")
	}

	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, 31), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateResetKey(path); err == nil {
		t.Error("a 31-byte key file was accepted")
	}
}
