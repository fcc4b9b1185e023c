// Quickstart runs a recordmux listener and a client in one process, on
// loopback, and moves records both ways over a few record streams of one
// QUIC connection. It needs nothing but Go and this repository: the
// server's identity is made in memory with package identity, and the
// client trusts exactly its key (pinned by fingerprint: the handshake
// fails unless the server proves it holds that key).
//
// Usage:
//
//	go run ./examples/quickstart [flags]
//
// By default it sends 400,000 records of 256 bytes over 4 streams, half
// from the client and half from the server, so that each side's acks ride
// in the headers of its own outgoing batches (piggybacking). It prints a
// progress line to stderr every half second, then on stdout:
//
//   - throughput: records and MiB per second, both directions together,
//     from the first Send until every record was applied by the peer and
//     its ack was back (the end is a Barrier on every stream);
//   - delivery latency: from Send to the peer's Apply callback, measured
//     for every record (both ends share one clock: the record carries its
//     send time);
//   - ack latency: from the Send call to the peer's applied-ack arriving
//     back at the sender, for every 64th record (-sample-every), measured
//     with RecordStream.WaitAcked. The senders run flat out, so this and
//     the delivery latency are mostly queueing behind the in-flight
//     window, not network time: the adaptive windows keep that near the
//     shortest Send→ack time plus the queueing-delay target (-target),
//     a fixed one (-window) at its size; see examples/latency-service for
//     latency under a paced load;
//   - the client connection's diagnostics table
//     (quicrecord.Conn.Diagnostics): records, bytes and batches each way,
//     frames by type, the share of piggybacked acks, Barrier waits,
//     in-flight and apply-backlog gauges.
//
// Flags:
//
//	-records N        records in total, split over streams and directions (400000)
//	-size B           record size in bytes, at least 8 (256)
//	-streams N        record streams on the connection (4)
//	-linger D         Config.Stream.FlushDelay (0: send as soon as the writer is free)
//	-batch-records N  Config.Stream.MaxBatchRecords (0: quicrecord.DefaultMaxBatchRecords, 4096)
//	-batch-bytes N    Config.Stream.MaxBatchBytes (0: quicrecord.DefaultMaxBatchBytes, 64 KiB)
//	-ack-delay D      Config.Stream.AckDelay (0: quicrecord.DefaultAckDelay, 250µs; negative: acks never wait)
//	-window N         a fixed window of N records: Config.Stream.Window = WindowFixed, with
//	                  MaxInFlightRecords and MaxApplyBacklogRecords N (0: the default, adaptive windows)
//	-target D         Config.Stream.QueueDelayTarget of the adaptive windows (0: quicrecord.DefaultQueueDelayTarget, 2ms)
//	-sample-every N   measure the ack latency of every Nth record (64)
//	-progress D       progress interval on stderr (500ms; 0: none)
//
// Try -linger 1ms for bigger batches, -ack-delay -1ns to see acks leave as
// standalone ACK frames, or -streams 64 to see the per-stream overhead.
// The numbers are from one process on loopback and share its CPUs between
// the two ends: they show the library's costs, not a network's.
package main
