package quicrecord

import "github.com/recordmux/recordmux/frames"

// retainChunkSize is the capacity of a retain log chunk; a larger record
// gets a chunk of its own.
const retainChunkSize = 64 << 10

// retainLog keeps the records a resumable stream sent but the acceptor has
// not acknowledged, encoded back to back in chunks, so they can be sent
// again on a new connection. Records are appended at the tail and dropped
// from the head as acks arrive. A chunk's bytes below len(buf) never change
// once written, so a reader may use a record slice without the lock while
// the record is still retained.
//
// Not safe for concurrent use; ResumableStream guards it with its mutex.
type retainLog struct {
	chunks  []*logChunk
	first   uint64 // sequence number of the oldest retained record
	headOff int    // offset of that record in chunks[0].buf
	next    uint64 // sequence number the next record gets
	bytes   int    // record bytes retained
}

type logChunk struct {
	buf   []byte
	first uint64 // sequence number of the first record in buf
	count int
	bytes int // record bytes in buf
}

func newRetainLog(next uint64) *retainLog {
	return &retainLog{first: next, next: next}
}

func (l *retainLog) len() int { return int(l.next - l.first) }

// append stores a copy of rec and returns its sequence number.
func (l *retainLog) append(rec []byte) uint64 {
	rl := frames.RecordLen(len(rec))
	var c *logChunk
	if n := len(l.chunks); n > 0 && cap(l.chunks[n-1].buf)-len(l.chunks[n-1].buf) >= rl && l.chunks[n-1].first+uint64(l.chunks[n-1].count) == l.next {
		c = l.chunks[n-1]
	} else {
		c = &logChunk{buf: make([]byte, 0, max(retainChunkSize, rl)), first: l.next}
		l.chunks = append(l.chunks, c)
	}
	c.buf = frames.AppendRecord(c.buf, rec)
	c.count++
	c.bytes += len(rec)
	l.bytes += len(rec)
	seq := l.next
	l.next++
	return seq
}

// dropThrough forgets every record up to and including seq.
func (l *retainLog) dropThrough(seq uint64) {
	seq = min(seq, l.next-1)
	for l.first <= seq {
		c := l.chunks[0]
		it := frames.NewRecordIter(c.buf[l.headOff:], l.first)
		for l.first <= seq {
			_, rec, ok := it.Next()
			if !ok {
				break
			}
			l.bytes -= len(rec)
			l.first++
		}
		l.headOff = len(c.buf) - len(it.Remaining())
		if l.first == c.first+uint64(c.count) {
			// Every record of the chunk is gone; a later record goes
			// to a new chunk.
			l.chunks[0] = nil
			l.chunks = l.chunks[1:]
			l.headOff = 0
		}
	}
}

// logCursor walks the log in sequence order.
type logCursor struct {
	seq uint64 // sequence number of the next record to return
	c   *logChunk
	off int // offset of that record in c.buf
}

// seek positions cur at seq, which must be retained or equal to next.
func (l *retainLog) seek(cur *logCursor, seq uint64) {
	cur.seq, cur.c, cur.off = seq, nil, 0
	for _, c := range l.chunks {
		if seq < c.first+uint64(c.count) {
			cur.c = c
			it := frames.NewRecordIter(c.buf, c.first)
			for s := c.first; s < seq; s++ {
				it.Next()
			}
			cur.off = len(c.buf) - len(it.Remaining())
			return
		}
	}
}

// nextAt returns the record at the cursor and advances it; ok is false when
// the cursor is at the tail.
func (l *retainLog) nextAt(cur *logCursor) (seq uint64, rec []byte, ok bool) {
	if cur.seq >= l.next {
		return 0, nil, false
	}
	if cur.c == nil || cur.off >= len(cur.c.buf) {
		l.seek(cur, cur.seq)
	}
	it := frames.NewRecordIter(cur.c.buf[cur.off:], cur.seq)
	s, rec, _ := it.Next()
	cur.off = len(cur.c.buf) - len(it.Remaining())
	cur.seq++
	return s, rec, true
}
