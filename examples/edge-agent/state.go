package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// agentState is what the agent keeps across restarts in its -state file.
// Acked and Offset belong together: the collector applied every record up
// to Acked, and (tail mode) the line after record Acked starts at Offset.
type agentState struct {
	Key    string `json:"key"`              // the resume key, hex
	Acked  uint64 `json:"acked"`            // last record the collector applied
	Offset int64  `json:"offset,omitempty"` // tail mode: file offset after record Acked
	Source string `json:"source,omitempty"` // what the records come from, to catch a changed -tail
}

// loadState reads path, or makes a new state with a random key when path
// is "" or does not exist.
func loadState(path string) (agentState, bool, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var st agentState
			if err := json.Unmarshal(data, &st); err != nil {
				return st, false, fmt.Errorf("state file %s: %w", path, err)
			}
			if k, err := hex.DecodeString(st.Key); err != nil || len(k) == 0 {
				return st, false, fmt.Errorf("state file %s: bad key %q", path, st.Key)
			}
			return st, true, nil
		case !errors.Is(err, os.ErrNotExist):
			return agentState{}, false, err
		}
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	return agentState{Key: hex.EncodeToString(key)}, false, nil
}

// save writes the state atomically: a new file, synced, renamed over the
// old one.
func (st agentState) save(path string) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
