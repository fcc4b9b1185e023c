// Package wire holds the frame reader that package frames and package
// quicrecord share: one implementation of cutting a byte stream into
// frames, with the buffer policy and the direct reads of large payloads
// that a record stream needs and a user of package frames does not.
//
// # Usage
//
// A [Reader] is told the frame format through a [Codec] (how a header
// parses, which types it knows, the error for a stream that ends inside
// a frame); frames.Reader wraps one with the frames codec and exposes only
// ReadFrame, SetMaxFrameSize and Buffered.
//
//	r := wire.NewReader(stream, wire.DefaultBuffer, maxFrameSize, codec)
//	r.SetDirect(typeBatch, 4<<10, alloc) // large batches into the caller's buffers
//	for {
//		f, err := r.Next()
//		...
//	}
//
// # Concurrency
//
// A Reader is not safe for concurrent use.
//
// # Limitations
//
// The maximum frame size is clamped to [MaxFrameSize] (1 GiB).
package wire
