package quicrecord

// seqRing is a FIFO of cumulative byte counts, one per record, in sequence
// order. The sender keeps one for records in flight, the receiver one for
// records in its apply backlog, so that a cumulative ack of any sequence
// number turns into an exact byte count. Its size is a power of two; it
// grows by doubling, is never larger than the window it serves, and keeps
// its size once grown.
type seqRing struct {
	buf  []uint64
	head int // index of the oldest entry
	n    int // number of entries
}

func (r *seqRing) push(v uint64) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *seqRing) grow() {
	nb := make([]uint64, max(16, 2*len(r.buf)))
	for i := range r.n {
		nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = nb, 0
}

// pop removes k entries and returns the last one removed. k must be in
// [1, len].
func (r *seqRing) pop(k int) uint64 {
	mask := len(r.buf) - 1
	v := r.buf[(r.head+k-1)&mask]
	r.head = (r.head + k) & mask
	r.n -= k
	return v
}
