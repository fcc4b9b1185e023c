package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"
)

// item is one record to send and where the source is after it.
type item struct {
	seq  uint64 // the sequence number Send is expected to return
	data []byte
	off  int64 // tail: file offset just past the line; generate: 0
}

// source produces records in order. next returns io.EOF when the source
// is exhausted and ctx's error when ctx ends.
type source interface {
	next(ctx context.Context) (item, error)
	describe() string
}

// generator makes synthetic telemetry: record seq is the same bytes
// whenever it is made, so a restarted agent that makes a record again
// sends what the collector may already have (and the resumable stream
// drops it as a duplicate).
type generator struct {
	name  string
	seq   uint64 // next sequence number
	last  uint64 // last sequence number to make
	rate  float64
	start time.Time
	made  int64
}

func newGenerator(name string, first uint64, n int64, rate float64) *generator {
	return &generator{name: name, seq: first, last: first + uint64(n) - 1, rate: rate}
}

func (g *generator) describe() string {
	return fmt.Sprintf("generate seq %d..%d", g.seq, g.last)
}

func (g *generator) next(ctx context.Context) (item, error) {
	if g.seq > g.last {
		return item{}, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return item{}, err
	}
	if g.rate > 0 {
		// Coarse pacing: records go out in small bursts every few
		// milliseconds, which is plenty for telemetry and keeps the
		// agent off the CPU (examples/latency-service shows a precise
		// pacer).
		if g.start.IsZero() {
			g.start = time.Now()
		}
		due := g.start.Add(time.Duration(float64(g.made) / g.rate * float64(time.Second)))
		if d := time.Until(due); d > 2*time.Millisecond {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return item{}, ctx.Err()
			}
		}
	}
	it := item{seq: g.seq, data: telemetry(g.name, g.seq)}
	g.seq++
	g.made++
	return it, nil
}

// telemetry is the payload of generated record seq: a JSON object whose
// values are a function of the agent name and seq only.
func telemetry(name string, seq uint64) []byte {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", name, seq)
	v := h.Sum64()
	return fmt.Appendf(nil, `{"agent":%q,"n":%d,"cpu_pct":%.1f,"mem_mb":%d,"temp_c":%.1f}`,
		name, seq, float64(v%1000)/10, 512+(v>>10)%1024, 30+float64((v>>20)%300)/10)
}

// tailer follows a file like tail -F: every complete line becomes a record
// (without its newline), and at the end of the file it waits for more.
// When the file is truncated or replaced, it starts over at the beginning
// of the file now at the path.
type tailer struct {
	path string
	seq  uint64
	f    *os.File
	r    *bufio.Reader
	off  int64 // offset of the next byte r returns
	part []byte
	poll time.Duration
	warn func(string)
}

func newTailer(path string, first uint64, off int64, warn func(string)) (*tailer, error) {
	t := &tailer{path: path, seq: first, poll: 200 * time.Millisecond, warn: warn}
	if err := t.open(off); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tailer) describe() string {
	return fmt.Sprintf("tail %s from offset %d (seq %d)", t.path, t.off, t.seq)
}

func (t *tailer) open(off int64) error {
	f, err := os.Open(t.path)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil && fi.Size() < off {
		t.warn(fmt.Sprintf("%s is shorter (%d bytes) than the saved offset %d: reading it from the start", t.path, fi.Size(), off))
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		_ = f.Close()
		return err
	}
	if t.f != nil {
		_ = t.f.Close()
	}
	t.f, t.r, t.off, t.part = f, bufio.NewReaderSize(f, 64<<10), off, t.part[:0]
	return nil
}

func (t *tailer) close() {
	if t.f != nil {
		_ = t.f.Close()
	}
}

func (t *tailer) next(ctx context.Context) (item, error) {
	for {
		line, err := t.r.ReadSlice('\n')
		t.part = append(t.part, line...)
		t.off += int64(len(line))
		if err == nil {
			data := bytes.TrimSuffix(t.part[:len(t.part)-1], []byte("\r"))
			it := item{seq: t.seq, data: bytes.Clone(data), off: t.off}
			t.seq++
			t.part = t.part[:0]
			return it, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a long line: keep collecting it
		}
		if !errors.Is(err, io.EOF) {
			return item{}, err
		}
		// At the end of the file: wait, then check for truncation or
		// replacement.
		tm := time.NewTimer(t.poll)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return item{}, ctx.Err()
		}
		cur, err := t.f.Stat()
		if err != nil {
			return item{}, err
		}
		now, err := os.Stat(t.path)
		switch {
		case err != nil:
			// Gone for now (being rotated): keep reading the old file.
		case !os.SameFile(cur, now):
			t.warn(fmt.Sprintf("%s was replaced: reading the new file from the start", t.path))
			if err := t.open(0); err != nil {
				return item{}, err
			}
		case now.Size() < t.off:
			t.warn(fmt.Sprintf("%s was truncated: reading it from the start", t.path))
			if err := t.open(0); err != nil {
				return item{}, err
			}
		}
	}
}
