package simtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// PayloadHeader is the size of the header [Payload] puts in every record:
// the stream's data ID and the record's sequence number.
const PayloadHeader = 16

// Payload returns the content of record seq of the stream with the given
// data ID: the data ID and seq (big endian), then n-16 bytes derived from
// both, in runs of 16 equal bytes so that batches of them compress (S2
// shrinks them about 4×). A record delivered on the wrong stream, at the
// wrong position or corrupted fails [CheckPayload]. n below 16 is raised
// to 16.
func Payload(dataID, seq uint64, n int) []byte {
	n = max(n, PayloadHeader)
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, dataID)
	binary.BigEndian.PutUint64(b[8:], seq)
	x := byte(dataID*31 + seq)
	for i := PayloadHeader; i < n; i++ {
		b[i] = x ^ byte(i>>4)
	}
	return b
}

// CheckPayload reports whether data is what [Payload] makes for dataID and
// seq, whatever its length.
func CheckPayload(dataID, seq uint64, data []byte) error {
	if len(data) < PayloadHeader {
		return fmt.Errorf("record %d: %d bytes, shorter than the %d-byte header", seq, len(data), PayloadHeader)
	}
	if got := binary.BigEndian.Uint64(data); got != dataID {
		return fmt.Errorf("record %d: belongs to stream %d, arrived on stream %d", seq, got, dataID)
	}
	if got := binary.BigEndian.Uint64(data[8:]); got != seq {
		return fmt.Errorf("record %d of stream %d: carries seq %d", seq, dataID, got)
	}
	x := byte(dataID*31 + seq)
	for i := PayloadHeader; i < len(data); i++ {
		if data[i] != x^byte(i>>4) {
			return fmt.Errorf("record %d of stream %d: corrupt byte at offset %d", seq, dataID, i)
		}
	}
	return nil
}

// Checker verifies the delivery guarantees of one direction of one record
// stream. The sender reports each record before and after Send, the
// receiver each record it receives and applies, and the sender what it
// learns of acknowledgements. Checker then holds, at every step and in
// [Checker.Verify]:
//
//   - delivered is an ordered prefix of sent: record k is delivered only
//     after record k-1 and only once, with the content Payload gave it;
//   - acked ⊆ applied ⊆ delivered ⊆ sent (as prefixes: each is a highest
//     sequence number, and the sets are 1..n);
//   - a Barrier that returned nil covered only applied records, and when
//     the last Barrier covered everything sent, applied equals sent.
//
// Records carry the content of [Payload], so a record of another stream
// is caught too. The first violation is kept; Verify returns it.
type Checker struct {
	dataID uint64

	mu        sync.Mutex
	attempted uint64 // highest seq handed to Send (it may still fail)
	sent      uint64 // highest seq Send returned
	delivered uint64 // highest seq received, in order
	applied   uint64 // highest seq acked or rejected by the receiver
	acked     uint64 // highest seq the sender learned was applied
	barrier   uint64 // highest target of a Barrier that returned nil
	err       error
}

// NewChecker returns a Checker for the stream with the given data ID.
func NewChecker(dataID uint64) *Checker { return &Checker{dataID: dataID} }

func (c *Checker) failLocked(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("stream %d: "+format, append([]any{c.dataID}, args...)...)
	}
}

// Sending records that seq is about to be handed to Send. It must be one
// more than the last seq sent: records are sent in order.
func (c *Checker) Sending(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq != c.sent+1 {
		c.failLocked("sending seq %d after %d", seq, c.sent)
	}
	c.attempted = seq
}

// Sent records that Send returned seq for the record reported by Sending.
func (c *Checker) Sent(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq != c.attempted {
		c.failLocked("Send returned seq %d for record %d", seq, c.attempted)
	}
	c.sent = max(c.sent, seq)
}

// SendFailed records that Send refused the record reported by Sending: it
// was never queued, so the receiver must never see it.
func (c *Checker) SendFailed(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.delivered >= seq {
		c.failLocked("record %d, refused by Send, was delivered", seq)
	}
	c.attempted = c.sent
}

// Delivered checks a record the receiver got, and returns the violation
// if it is not the next record in order with the right content.
func (c *Checker) Delivered(seq uint64, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case seq <= c.delivered:
		c.failLocked("duplicate: record %d delivered again after %d", seq, c.delivered)
	case seq != c.delivered+1:
		c.failLocked("out of order: record %d delivered after %d (%d lost)", seq, c.delivered, seq-c.delivered-1)
	case seq > c.attempted:
		c.failLocked("record %d delivered but never sent (highest sent %d)", seq, c.attempted)
	default:
		if err := CheckPayload(c.dataID, seq, data); err != nil {
			c.failLocked("%v", err)
		}
		c.delivered = seq
		return c.err
	}
	return c.err
}

// Applied records that the receiver acked or rejected every record up to
// seq. Call it before the ack is given to the stream.
func (c *Checker) Applied(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq > c.delivered {
		c.failLocked("applied %d beyond the last delivered record %d", seq, c.delivered)
	}
	c.applied = max(c.applied, seq)
}

// Acked records that the sender learned the peer applied every record up
// to seq (from a snapshot or a BarrierError): it must have been applied.
func (c *Checker) Acked(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq > c.applied {
		c.failLocked("sender saw ack %d, receiver applied only %d", seq, c.applied)
	}
	if seq < c.acked {
		c.failLocked("ack went backwards from %d to %d", c.acked, seq)
	}
	c.acked = max(c.acked, seq)
}

// BarrierOK records that a Barrier covering records up to target returned
// nil: every one of them must have been applied and acked.
func (c *Checker) BarrierOK(target uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if target > c.applied {
		c.failLocked("Barrier(%d) returned nil, receiver applied only %d", target, c.applied)
	}
	c.acked = max(c.acked, target)
	c.barrier = max(c.barrier, target)
}

// Counts returns the highest sequence numbers sent, delivered, applied and
// acked so far.
func (c *Checker) Counts() (sent, delivered, applied, acked uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.delivered, c.applied, c.acked
}

// Err returns the first violation seen so far.
func (c *Checker) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Verify returns the first violation, and checks the prefix relations
// acked ≤ applied ≤ delivered ≤ sent once more. With complete set (the
// transfer is over and its final Barrier returned nil) it also requires
// that everything sent was delivered, applied and acked.
func (c *Checker) Verify(complete bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	var errs []error
	if c.delivered > c.sent {
		errs = append(errs, fmt.Errorf("delivered %d > sent %d", c.delivered, c.sent))
	}
	if c.applied > c.delivered {
		errs = append(errs, fmt.Errorf("applied %d > delivered %d", c.applied, c.delivered))
	}
	if c.acked > c.applied {
		errs = append(errs, fmt.Errorf("acked %d > applied %d", c.acked, c.applied))
	}
	if complete {
		if c.barrier != c.sent {
			errs = append(errs, fmt.Errorf("last successful Barrier covered %d of %d records", c.barrier, c.sent))
		}
		if c.applied != c.sent || c.delivered != c.sent {
			errs = append(errs, fmt.Errorf("sent %d, delivered %d, applied %d: lost records", c.sent, c.delivered, c.applied))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stream %d: %w", c.dataID, errors.Join(errs...))
	}
	return nil
}
