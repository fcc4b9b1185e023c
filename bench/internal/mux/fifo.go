package mux

// fifo is a slice-backed queue. Popped slots are zeroed so the garbage
// collector can take what they pointed to; the backing array is reused
// once the queue runs empty.
type fifo[T any] struct {
	buf  []T
	head int
}

func (q *fifo[T]) len() int { return len(q.buf) - q.head }

func (q *fifo[T]) push(v T) { q.buf = append(q.buf, v) }

// pop removes and returns the oldest element. The queue must not be empty.
func (q *fifo[T]) pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return v
}

// popN removes the n oldest elements and returns the last of them. n must
// be between 1 and len.
func (q *fifo[T]) popN(n int) T {
	v := q.buf[q.head+n-1]
	clear(q.buf[q.head : q.head+n])
	q.head += n
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return v
}
