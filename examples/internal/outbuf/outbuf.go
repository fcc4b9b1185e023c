// Package outbuf is a test helper: a buffer that a program in a test
// writes its output to, and that the test waits on for a line.
package outbuf

import (
	"bytes"
	"context"
	"regexp"
	"sync"
)

// Buffer is an io.Writer safe for concurrent use that remembers
// everything written to it.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Wait waits until the output matches re, and returns the submatches of
// the first match; nil when ctx ends first.
func (b *Buffer) Wait(ctx context.Context, re *regexp.Regexp) []string {
	for {
		b.mu.Lock()
		m := re.FindStringSubmatch(b.b.String())
		if m == nil && b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch := b.changed
		b.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}
