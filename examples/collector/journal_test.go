package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recordmux/recordmux/quicrecord"
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
	if _, _, err := j.commit("k", "", "s", recs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.commit("k", "", "s", recs(6, 8)); err != nil {
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
	st, ok := j.applied("k")
	if !ok || st.Seq != 8 {
		t.Fatalf("applied(k) = %+v, %v; want seq 8", st, ok)
	}
	if got := sinkSeqs(t, sink); len(got) != 8 || got[7] != 8 {
		t.Fatalf("sink after recovery holds seqs %v; want 1..8", got)
	}
	// The producer sends 7..12 again (it had no ack past 6, say): 7 and 8
	// are acknowledged without being written twice.
	w, sk, err := j.commit("k", "", "s", recs(7, 12))
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
	if _, _, err := j.commit("k", "", "s", recs(1, 3)); err != nil {
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

// TestJournalLoadApplied: the resume hook answers from the state and
// keeps keys bound to their producer.
func TestJournalLoadApplied(t *testing.T) {
	j, _, err := openJournal("-", "", io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte{1, 2, 3}
	if _, _, err := j.commit(resumeKeyName(key), "alice", "s", recs(1, 4)); err != nil {
		t.Fatal(err)
	}
	seq, found, err := j.loadApplied(t.Context(), quicrecord.ResumeKeyInfo{Key: key, Peer: "alice"})
	if seq != 4 || !found || err != nil {
		t.Fatalf("loadApplied(alice) = %d, %v, %v; want 4, true, nil", seq, found, err)
	}
	if _, _, err := j.loadApplied(t.Context(), quicrecord.ResumeKeyInfo{Key: key, Peer: "mallory"}); err == nil {
		t.Fatal("loadApplied(mallory) succeeded; want an error")
	}
	if _, found, err := j.loadApplied(t.Context(), quicrecord.ResumeKeyInfo{Key: []byte{9}}); found || err != nil {
		t.Fatalf("loadApplied(unknown key) = %v, %v; want not found", found, err)
	}
}

// TestSinkLineEncoding: text records stay readable, others are base64.
func TestSinkLineEncoding(t *testing.T) {
	var out bytes.Buffer
	j, _, err := openJournal("-", "", &out, false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = j.commit("", "s", "scope", []quicrecord.Record{{Seq: 1, Data: []byte(`hi "there"`)}, {Seq: 2, Data: []byte{0xff, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key":"","scope":"scope","seq":1,"data":"hi \"there\""}` + "\n" +
		`{"key":"","scope":"scope","seq":2,"data_b64":"/wA="}` + "\n"
	if out.String() != want {
		t.Fatalf("sink:\n%s\nwant:\n%s", out.String(), want)
	}
}
