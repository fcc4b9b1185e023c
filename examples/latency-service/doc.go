// Latency-service measures request→reply latency over record streams
// under a paced load. A client sends requests on a record stream; the
// server's Apply callback answers each with a reply record on the same
// stream, the other way. Acks flow both ways too, and ride in the headers
// of requests and replies instead of travelling alone.
//
// Usage:
//
//	go run ./examples/latency-service [flags]
//
// Both ends run in one process on loopback (an in-memory certificate the
// client pins). Requests leave on an absolute schedule, request i at
// start + i/rate. Latency is measured from that scheduled time to the
// reply's Apply callback, so a sender that falls behind shows up in the
// numbers instead of quietly sending less (no coordinated omission). The
// pacer sleeps until a millisecond before each deadline (time.Sleep wakes
// up to a millisecond late) and then waits finely: on Linux with the
// nanosleep system call, which wakes within about 50 µs. -spin makes it
// spin (runtime.Gosched) instead, as precise pacers often do; try it to
// see why this one does not: a goroutine spinning in the same process
// keeps a processor busy, the runtime then polls the network less often,
// and on a 2-core machine the request→reply p50 went from about 0.1 ms to
// about 4 ms. It prints p50, p90, p99, p99.9 and the maximum, how late the
// pacer itself was, and the client connection's diagnostics table.
//
// Flags:
//
//	-rate R        requests per second (5000)
//	-duration D    measured time (3s), after -warmup D (500ms)
//	-streams N     streams, requests round-robin over them (1)
//	-size B        request size, at least 16 (64)
//	-reply-size B  reply size, at least 16 (64)
//	-spin          spin instead of nanosleep for the last millisecond
//	-linger D      Config.Stream.FlushDelay on both sides (0)
//	-ack-delay D   Config.Stream.AckDelay (0: quicrecord.DefaultAckDelay, 250µs; negative: never wait)
//	-progress D    progress interval on stderr (1s; 0: none)
//
// # When to call Barrier
//
// [quicrecord.RecordStream.Barrier] waits until the peer's application
// has applied every record sent before the call. It costs a round trip
// (plus the time the peer takes to apply what is queued), so call it
// where you need that knowledge and can afford the wait:
//
//   - before acknowledging upstream: a relay that read messages from a
//     queue acks them there only after a Barrier says the next hop
//     applied them;
//   - before deleting local data: an agent that spooled records to disk
//     truncates the spool after a Barrier;
//   - at shutdown: Barrier, then Close, so the process exits knowing
//     everything it sent was applied (this example does it once, at the
//     end).
//
// Do not call it per request on a latency path. Here the reply is the
// confirmation: it is sent by the server's Apply callback, so receiving it
// means the request was applied. A Barrier after every request would add
// a round trip and serialise the requests behind each other. Send, Flush
// and Barrier are three different promises: Send queues, Flush hands to
// QUIC, Barrier waits for the peer's application.
package main
