package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/jsrecord"
)

func recs(from, to uint64) []quicrecord.Record {
	var rs []quicrecord.Record
	for s := from; s <= to; s++ {
		rs = append(rs, quicrecord.Record{Seq: s, Data: []byte("r" + string(rune('a'+s%26)))})
	}
	return rs
}

func sinkSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var l sinkLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("sink line %q: %v", line, err)
		}
		seqs = append(seqs, l.Seq)
	}
	return seqs
}

// TestJournalRecovery: a crash between the sink write and the state line
// leaves uncommitted bytes in the sink, and perhaps a torn state line;
// reopening cuts the sink back to the committed length and resumes from
// the committed position.
func TestJournalRecovery(t *testing.T) {
	dir := t.TempDir()
	sink, state := filepath.Join(dir, "sink.jsonl"), filepath.Join(dir, "state")
	j, rec, err := openJournal(sink, state, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if rec != (recovery{}) {
		t.Fatalf("fresh journal recovered %+v", rec)
	}
	k := streamOf("", "k")
	if _, _, err := j.commit(k, "s", recs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.commit(k, "s", recs(6, 8)); err != nil {
		t.Fatal(err)
	}
	j.close()

	// The crash: a group of records reached the sink, the state line
	// did not (or only half of it).
	f, err := os.OpenFile(sink, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"key":"k","scope":"s","seq":9,"data":"x"}` + "\n" + `{"key":"k","sco`)
	_ = f.Close()
	f, err = os.OpenFile(state, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"key":"k","seq":9,"sink_o`)
	_ = f.Close()

	j, rec, err = openJournal(sink, state, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if !rec.TornState || rec.Discarded == 0 || rec.Keys != 1 {
		t.Fatalf("recovery = %+v; want a torn state line, discarded sink bytes and one key", rec)
	}
	if seq, ok := j.applied(k); !ok || seq != 8 {
		t.Fatalf("applied(k) = %d, %v; want seq 8", seq, ok)
	}
	if got := sinkSeqs(t, sink); len(got) != 8 || got[7] != 8 {
		t.Fatalf("sink after recovery holds seqs %v; want 1..8", got)
	}
	// The producer sends 7..12 again (it had no ack past 6, say): 7 and 8
	// are acknowledged without being written twice.
	w, sk, err := j.commit(k, "s", recs(7, 12))
	if err != nil || w != 4 || sk != 2 {
		t.Fatalf("commit(7..12) = %d written, %d skipped, %v; want 4, 2", w, sk, err)
	}
	got := sinkSeqs(t, sink)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("sink seqs %v; want 1..12 once each", got)
		}
	}
	// The state file was compacted to one line per key on open.
	data, _ := os.ReadFile(state)
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Fatalf("state file has %d lines, want 2 (compacted + one commit):\n%s", n, data)
	}
}

// TestJournalSinkShorterThanState: a sink that lost committed bytes is
// an error, not something to paper over.
func TestJournalSinkShorterThanState(t *testing.T) {
	dir := t.TempDir()
	sink, state := filepath.Join(dir, "sink.jsonl"), filepath.Join(dir, "state")
	j, _, err := openJournal(sink, state, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.commit(streamOf("", "k"), "s", recs(1, 3)); err != nil {
		t.Fatal(err)
	}
	j.close()
	if err := os.Truncate(sink, 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openJournal(sink, state, io.Discard, false); err == nil || !strings.Contains(err.Error(), "truncated or replaced") {
		t.Fatalf("openJournal = %v; want the truncated-sink error", err)
	}
}

// TestJournalLoadApplied: the resume hook answers from the state of the
// opener's identity. Another identity using the same key finds nothing,
// exactly as for an unused key, and then has a stream of its own: the
// two commit the same sequence numbers without deduplicating each other.
func TestJournalLoadApplied(t *testing.T) {
	j, _, err := openJournal("-", "", io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte{1, 2, 3}
	alice, mallory := quicrecord.ResumeKeyInfo{Key: key, Peer: "alice"}, quicrecord.ResumeKeyInfo{Key: key, Peer: "mallory"}
	load := func(info quicrecord.ResumeKeyInfo) (uint64, bool) {
		t.Helper()
		seq, found, err := j.loadApplied(t.Context(), info)
		if err != nil {
			t.Fatalf("loadApplied(%s) = %v; no identity is ever refused", info.Peer, err)
		}
		return seq, found
	}
	commit := func(info quicrecord.ResumeKeyInfo, from, to uint64, wantWritten int) {
		t.Helper()
		w, sk, err := j.commit(streamOf(info.Peer, jsrecord.KeyName(info.Key)), "s", recs(from, to))
		if err != nil || w != wantWritten || sk != int(to-from+1)-wantWritten {
			t.Fatalf("commit(%s, %d..%d) = %d written, %d skipped, %v; want %d written", info.Peer, from, to, w, sk, err, wantWritten)
		}
	}
	commit(alice, 1, 4, 4)
	if seq, found := load(alice); seq != 4 || !found {
		t.Fatalf("loadApplied(alice) = %d, %v; want 4, true", seq, found)
	}
	unknown, unknownFound := load(quicrecord.ResumeKeyInfo{Key: []byte{9}, Peer: "mallory"})
	if seq, found := load(mallory); seq != unknown || found != unknownFound || found {
		t.Fatalf("loadApplied(mallory) = %d, %v; want what an unused key gets: %d, %v", seq, found, unknown, unknownFound)
	}
	// Mallory's records 1..6 are all written: alice's 1..4 are no
	// duplicates of them. Alice's position stays hers.
	commit(mallory, 1, 6, 6)
	commit(alice, 3, 5, 1)
	for _, c := range []struct {
		info quicrecord.ResumeKeyInfo
		want uint64
	}{{alice, 5}, {mallory, 6}} {
		if seq, found := load(c.info); seq != c.want || !found {
			t.Errorf("loadApplied(%s) = %d, %v; want %d, true", c.info.Peer, seq, found, c.want)
		}
	}
	if _, n := j.snapshot(); n != 2 {
		t.Errorf("the journal holds %d streams, want 2 (one key, two identities)", n)
	}
}

// TestJournalStatePerIdentity: the state file keeps one key's positions
// under two identities apart across a restart, the sink names each
// record's identity, and a state file of the earlier format (no identity,
// the raw identity in "peer", or none) is read as the state of that
// identity and rewritten in the new format.
func TestJournalStatePerIdentity(t *testing.T) {
	dir := t.TempDir()
	sink, state := filepath.Join(dir, "sink.jsonl"), filepath.Join(dir, "state")
	j, _, err := openJournal(sink, state, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := streamOf("alice", "plain/k"), streamOf("bob", "plain/k")
	for _, c := range []struct {
		id       streamID
		from, to uint64
	}{{alice, 1, 7}, {bob, 1, 3}, {alice, 8, 9}} {
		if _, _, err := j.commit(c.id, "s", recs(c.from, c.to)); err != nil {
			t.Fatal(err)
		}
	}
	j.close()

	j, rec, err := openJournal(sink, state, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Keys != 2 {
		t.Fatalf("recovered %d streams, want 2", rec.Keys)
	}
	for id, want := range map[streamID]uint64{alice: 9, bob: 3} {
		if seq, ok := j.applied(id); !ok || seq != want {
			t.Errorf("applied(%+v) = %d, %v after a restart; want %d", id, seq, ok, want)
		}
	}
	if w, _, err := j.commit(bob, "s", recs(1, 4)); err != nil || w != 1 {
		t.Fatalf("bob's commit of 1..4 after the restart wrote %d, %v; want only 4", w, err)
	}
	j.close()
	got := sinkStreams(t, sink)
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(got[alice], want) || !slices.Equal(got[bob], want[:4]) || len(got) != 2 {
		t.Fatalf("sink streams %v; want alice's 1..9 and bob's 1..4", got)
	}

	// The earlier format, as a collector before per-identity state wrote it.
	old := filepath.Join(dir, "old-state")
	lines := `{"key":"` + "0a0b" + `","peer":"alice","seq":5,"sink_off":0}` + "\n" +
		`{"key":"plain/x","seq":2,"sink_off":0}` + "\n" +
		`{"key":"","seq":0,"sink_off":0}` + "\n"
	if err := os.WriteFile(old, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	j, rec, err = openJournal("-", old, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if rec.Keys != 2 {
		t.Fatalf("recovered %d streams from the old format, want 2", rec.Keys)
	}
	if seq, found, _ := j.loadApplied(t.Context(), quicrecord.ResumeKeyInfo{Key: []byte{0x0a, 0x0b}, Peer: "alice"}); seq != 5 || !found {
		t.Errorf("loadApplied(alice) from an old line with peer alice = %d, %v; want 5", seq, found)
	}
	if seq, found, _ := j.loadApplied(t.Context(), quicrecord.ResumeKeyInfo{Key: []byte{0x0a, 0x0b}, Peer: "bob"}); found {
		t.Errorf("loadApplied(bob) from an old line with peer alice = %d, found; want not found", seq)
	}
	if seq, ok := j.applied(streamOf("", "plain/x")); !ok || seq != 2 {
		t.Errorf("an old line without a peer: applied(anonymous) = %d, %v; want 2", seq, ok)
	}
	data, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"identity":"` + jsrecord.IdentityName("") + `","key":"plain/x","seq":2,"sink_off":0}`; !strings.Contains(string(data), want+"\n") || strings.Contains(string(data), `"peer"`) {
		t.Errorf("the old state file was not rewritten in the new format:\n%s", data)
	}
}

// TestSinkLineEncoding: text records stay readable, others are base64.
func TestSinkLineEncoding(t *testing.T) {
	var out bytes.Buffer
	j, _, err := openJournal("-", "", &out, false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = j.commit(streamOf("", ""), "scope", []quicrecord.Record{{Seq: 1, Data: []byte(`hi "there"`)}, {Seq: 2, Data: []byte{0xff, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	// The first 16 bytes of SHA-256(""): the anonymous identity.
	const anon = "e3b0c44298fc1c149afbf4c8996fb924"
	want := `{"identity":"` + anon + `","key":"","scope":"scope","seq":1,"data":"hi \"there\""}` + "\n" +
		`{"identity":"` + anon + `","key":"","scope":"scope","seq":2,"data_b64":"/wA="}` + "\n"
	if out.String() != want {
		t.Fatalf("sink:\n%s\nwant:\n%s", out.String(), want)
	}
}

// sinkStreams reads a sink file and returns the sequence numbers of each
// stream's lines, in the order they appear.
func sinkStreams(t *testing.T, sink string) map[streamID][]uint64 {
	t.Helper()
	data, err := os.ReadFile(sink)
	if err != nil {
		t.Fatal(err)
	}
	got := map[streamID][]uint64{}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var l sinkLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("sink line %q: %v", line, err)
		}
		id := streamID{Identity: l.Identity, Key: l.Key}
		got[id] = append(got[id], l.Seq)
	}
	return got
}
