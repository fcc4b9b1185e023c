package framer

// MaxRecordSize is the largest record, in bytes, that a [Sender] sends and a
// [Receiver] accepts. A Receiver rejects a larger length prefix before
// allocating anything for it.
const MaxRecordSize = 16 << 20

// defaultBufSize is the bufio buffer size used when 0 is passed to
// [NewSender] or [NewReceiver].
const defaultBufSize = 64 << 10

// Error is the type of this package's sentinel errors. Being a string type,
// its values are constants and are matched with [errors.Is].
type Error string

// Error returns the message.
func (e Error) Error() string { return string(e) }

const (
	// ErrRecordTooLarge means a record (to send, or announced by the peer's
	// length prefix) is larger than [MaxRecordSize].
	ErrRecordTooLarge Error = "framer: record too large"
	// ErrBadLength means a length prefix is not a valid uvarint.
	ErrBadLength Error = "framer: malformed length prefix"
	// ErrBadAck means the peer sent an ack that is malformed, decreases, or
	// acknowledges a record that was never sent.
	ErrBadAck Error = "framer: invalid ack from peer"
	// ErrNotSent means a sequence number was waited for or acked before the
	// record it names was sent or received.
	ErrNotSent Error = "framer: sequence number not sent or received yet"
	// ErrSizeChanged means a fixed-size Sender was given a record of
	// another size than its first.
	ErrSizeChanged Error = "framer: record size differs from the stream's fixed size"
	// ErrAcksEnded means the ack direction of the stream ended before the
	// awaited sequence number was acked. If the stream failed, the error
	// returned also wraps the stream's error.
	ErrAcksEnded Error = "framer: ack stream ended"
)
