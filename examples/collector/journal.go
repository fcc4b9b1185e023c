package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/jsrecord"
)

// journal is the collector's durable side: the sink the records go to and
// the state file that says, for each stream (a client identity's key), the
// last sequence number written to the sink, and how long the sink was
// after that write.
//
// A commit writes a group of records to the sink, syncs it, then appends
// one line to the state file and syncs that. The state line is the commit
// point: on start, the sink is cut back to the length the last state line
// names, so records written after it (a crash between the two syncs) are
// removed and, never having been acknowledged, are sent again by their
// producer. Only then are records acknowledged.
//
// All methods are safe for concurrent use; commits are serialised.
type journal struct {
	mu       sync.Mutex
	sink     io.Writer
	sinkFile *os.File // nil when the sink is not a file (stdout)
	sinkOff  int64    // committed length of sinkFile
	state    *os.File // nil without a state file
	path     string   // of the state file
	lines    int      // lines in the state file since it was last compacted
	sync     bool
	keys     map[streamID]uint64 // last sequence number written to the sink, per stream
	buf      bytes.Buffer
	enc      *json.Encoder
	stats    journalStats
}

// streamID names a stream's state in the journal: a client identity's
// key. As in quicrecord's ResumeStore, the same key under two identities
// is two streams, each with its own position; neither can see or disturb
// the other's.
type streamID struct {
	// Identity is jsrecord.IdentityName of the client's identity
	// (quicrecord.DefaultPeerIdentity, "" without a client certificate):
	// 32 hex digits, as the JetStream sink names it in its subjects.
	Identity string
	// Key is the stream's key as the sink shows it: the resume key in hex
	// (jsrecord.KeyName; hex never contains the "/" of plain-stream keys),
	// "plain/" and the dedupe key of a plain stream, or "" for a stream
	// without a key, whose records are always written.
	Key string
}

// streamOf is the stream of key opened by the client identity peer.
func streamOf(peer, key string) streamID {
	return streamID{Identity: jsrecord.IdentityName(peer), Key: key}
}

// journalStats count the journal's work.
type journalStats struct {
	Written    uint64 // records written to the sink
	Duplicates uint64 // records acknowledged without writing: already in the sink
	Commits    uint64
}

// stateLine is one line of the state file, a JSON object. Identity is
// absent on lines without a key (they carry SinkOff only). Lines written
// before the state was kept per identity have Peer, the raw identity,
// instead of Identity: they are read as the state of that identity's key
// ("" when absent: the anonymous identity). Peer is never written.
type stateLine struct {
	Identity string `json:"identity,omitempty"`
	Key      string `json:"key"`
	Peer     string `json:"peer,omitempty"`
	Seq      uint64 `json:"seq"`
	SinkOff  int64  `json:"sink_off"`
}

// stream returns the stream a line with a key holds the state of.
func (l *stateLine) stream() streamID {
	if l.Identity == "" {
		return streamOf(l.Peer, l.Key) // the earlier format
	}
	return streamID{Identity: l.Identity, Key: l.Key}
}

// sinkLine is one line of the sink. Data holds the record when it is
// valid UTF-8; otherwise DataB64 holds it in base64 and Data is absent.
type sinkLine struct {
	Identity string  `json:"identity"`
	Key      string  `json:"key"`
	Scope    string  `json:"scope"`
	Seq      uint64  `json:"seq"`
	Data     *string `json:"data,omitempty"`
	DataB64  []byte  `json:"data_b64,omitempty"`
}

// recovery says what opening a journal found.
type recovery struct {
	Keys      int   // streams (identity, key) in the state file
	SinkOff   int64 // committed sink length
	Discarded int64 // sink bytes after the last commit, cut off
	TornState bool  // the state file ended in a partial line, ignored
}

// maxStateLines is when the state file is rewritten with one line per
// stream.
const maxStateLines = 100_000

// openJournal opens the sink (a file path, or "-" for stdout) and the
// state file (statePath, or "" for none), and recovers: the committed
// state is read back and the sink cut back to its committed length.
func openJournal(sinkPath, statePath string, stdout io.Writer, doSync bool) (*journal, recovery, error) {
	j := &journal{keys: make(map[streamID]uint64), path: statePath, sync: doSync}
	j.enc = json.NewEncoder(&j.buf)
	j.enc.SetEscapeHTML(false)
	var rec recovery
	if sinkPath == "-" {
		j.sink = stdout
	} else {
		f, err := os.OpenFile(sinkPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, rec, err
		}
		j.sink, j.sinkFile = f, f
	}
	if err := j.recover(&rec); err != nil {
		j.close()
		return nil, rec, err
	}
	return j, rec, nil
}

func (j *journal) recover(rec *recovery) error {
	haveState := false
	if j.path != "" {
		data, err := os.ReadFile(j.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for i, line := range bytes.SplitAfter(data, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var l stateLine
			if err := json.Unmarshal(line, &l); err != nil || line[len(line)-1] != '\n' {
				if i == bytes.Count(data, []byte("\n")) {
					rec.TornState = true // a write cut short by a crash
					break
				}
				return fmt.Errorf("state file %s: line %d: %v", j.path, i+1, err)
			}
			haveState = true
			j.sinkOff = l.SinkOff
			if l.Key != "" {
				id := l.stream()
				j.keys[id] = max(j.keys[id], l.Seq)
			}
		}
	}
	rec.Keys = len(j.keys)
	if j.sinkFile != nil {
		fi, err := j.sinkFile.Stat()
		if err != nil {
			return err
		}
		switch size := fi.Size(); {
		case !haveState:
			j.sinkOff = size // a sink without state: append to it
		case size > j.sinkOff:
			// Written after the last commit and never acknowledged: the
			// producers send these records again.
			if err := j.sinkFile.Truncate(j.sinkOff); err != nil {
				return err
			}
			rec.Discarded = size - j.sinkOff
		case size < j.sinkOff:
			return fmt.Errorf("sink %s has %d bytes but the state file %s says %d were committed: "+
				"the sink was truncated or replaced; start with a new state file, or restore the sink",
				j.sinkFile.Name(), size, j.path, j.sinkOff)
		}
	} else {
		j.sinkOff = 0
	}
	rec.SinkOff = j.sinkOff
	if j.path == "" {
		return nil
	}
	return j.compactLocked()
}

// compactLocked rewrites the state file with one line per stream, atomically
// (a new file renamed over the old one), and reopens it for appending.
func (j *journal) compactLocked() error {
	if j.state != nil {
		_ = j.state.Close()
		j.state = nil
	}
	keys := make([]streamID, 0, len(j.keys))
	for id := range j.keys {
		keys = append(keys, id)
	}
	slices.SortFunc(keys, func(a, b streamID) int {
		return cmp.Or(cmp.Compare(a.Identity, b.Identity), cmp.Compare(a.Key, b.Key))
	})
	var b bytes.Buffer
	for _, id := range keys {
		appendJSONLine(&b, stateLine{Identity: id.Identity, Key: id.Key, Seq: j.keys[id], SinkOff: j.sinkOff})
	}
	if len(keys) == 0 {
		appendJSONLine(&b, stateLine{SinkOff: j.sinkOff})
	}
	tmp := j.path + ".tmp"
	if err := writeFileSync(tmp, b.Bytes()); err != nil {
		return err
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	j.state, j.lines = f, max(len(keys), 1)
	return nil
}

// applied returns the last sequence number written to the sink for the
// stream id, and whether the journal knows the stream.
func (j *journal) applied(id streamID) (uint64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seq, ok := j.keys[id]
	return seq, ok
}

// loadApplied is the ResumeStore's LoadApplied hook: after a restart, or
// once the store's in-memory state of a key expired, the resume position
// comes from the state file. The position is the opener's identity's:
// for a key only another identity used, the answer is "not found", as
// for a key nobody used.
func (j *journal) loadApplied(_ context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
	seq, ok := j.applied(streamOf(info.Peer, jsrecord.KeyName(info.Key)))
	return seq, ok, nil
}

// commit writes the records of one stream to the sink and records the new
// position, durably; after it returns nil the records may be acknowledged.
// A record whose seq is at or below the position already recorded for its
// stream is skipped: it is in the sink already. A stream whose id.Key is
// "" has no key: its records are always written.
func (j *journal) commit(id streamID, scope string, recs []quicrecord.Record) (written, skipped int, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf.Reset()
	last := j.keys[id]
	for _, r := range recs {
		if id.Key != "" && r.Seq <= last {
			skipped++
			continue
		}
		line := sinkLine{Identity: id.Identity, Key: id.Key, Scope: scope, Seq: r.Seq}
		if utf8.Valid(r.Data) {
			s := string(r.Data)
			line.Data = &s
		} else {
			line.DataB64 = r.Data
		}
		if err := j.enc.Encode(line); err != nil {
			return 0, 0, err
		}
		last = r.Seq
		written++
	}
	j.stats.Duplicates += uint64(skipped)
	if written == 0 {
		return 0, skipped, nil
	}
	n, err := j.sink.Write(j.buf.Bytes())
	if err == nil && j.sinkFile != nil && j.sync {
		err = j.sinkFile.Sync()
	}
	if err != nil {
		if j.sinkFile != nil && n > 0 {
			// Take back what this commit wrote, so that the sink holds
			// committed records only.
			_ = j.sinkFile.Truncate(j.sinkOff)
		}
		return 0, 0, fmt.Errorf("sink: %w", err)
	}
	if j.sinkFile != nil {
		j.sinkOff += int64(n)
	}
	if j.state != nil {
		l := stateLine{Key: id.Key, Seq: last, SinkOff: j.sinkOff}
		if id.Key != "" {
			l.Identity = id.Identity
		}
		if err := j.appendStateLocked(l); err != nil {
			return 0, 0, err
		}
	}
	if id.Key != "" {
		j.keys[id] = last
	}
	j.stats.Written += uint64(written)
	j.stats.Commits++
	return written, skipped, nil
}

func (j *journal) appendStateLocked(l stateLine) error {
	var b bytes.Buffer
	appendJSONLine(&b, l)
	if _, err := j.state.Write(b.Bytes()); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if j.sync {
		if err := j.state.Sync(); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
	}
	if j.lines++; j.lines > maxStateLines {
		return j.compactLocked()
	}
	return nil
}

// snapshot returns the counters and the number of streams with a key.
func (j *journal) snapshot() (journalStats, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats, len(j.keys)
}

func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.sinkFile != nil {
		_ = j.sinkFile.Close()
		j.sinkFile = nil
	}
	if j.state != nil {
		_ = j.state.Close()
		j.state = nil
	}
}

func appendJSONLine(b *bytes.Buffer, v any) {
	data, _ := json.Marshal(v) // plain structs: cannot fail
	b.Write(data)
	b.WriteByte('\n')
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
