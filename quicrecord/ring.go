package quicrecord

// seqRing is a FIFO of cumulative byte counts, one per record, in sequence
// order. The sender keeps one for records in flight, the receiver one for
// records in its apply backlog, so that a cumulative ack of any sequence
// number turns into an exact byte count. It grows by doubling and is never
// larger than the window it serves.
type seqRing struct {
	buf  []uint64
	head int // index of the oldest entry
	n    int // number of entries
}

func (r *seqRing) len() int { return r.n }

func (r *seqRing) push(v uint64) {
	if r.n == len(r.buf) {
		nb := make([]uint64, max(16, 2*len(r.buf)))
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// pop removes k entries and returns the last one removed. k must be in
// [1, len].
func (r *seqRing) pop(k int) uint64 {
	v := r.buf[(r.head+k-1)%len(r.buf)]
	r.head = (r.head + k) % len(r.buf)
	r.n -= k
	if r.n == 0 {
		r.head = 0
	}
	return v
}
