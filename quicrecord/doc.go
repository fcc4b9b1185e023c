// Package quicrecord carries reliable, ordered record streams over QUIC.
//
// A [RecordStream] is one bidirectional QUIC stream carrying records both
// ways, each direction numbered from 1. Records are batched by one writer
// loop per stream; the receiver acknowledges what its application has
// applied, and the ack rides in the header of the next batch going the
// other way (or in its own ACK frame when that direction is idle). A
// sender can wait on [RecordStream.Barrier] until everything it sent is
// applied; records the peer rejected come back as a *[RejectedError]. The
// wire format is specified in docs/PROTOCOL.md and implemented by package
// frames; the measurement types of the diagnostics are in package
// quicrecord/diag.
//
// # Usage
//
// A server listens and accepts connections, then streams:
//
//	ln, _ := quicrecord.Listen("127.0.0.1:4433", serverTLS, nil)
//	conn, _ := ln.Accept(ctx)
//	s, _ := conn.AcceptRecordStream(ctx)
//	err := s.Apply(ctx, func(r quicrecord.Record) error {
//		return store(r.Seq, r.Data) // acked on success, rejected on error
//	})
//
// A client dials and opens streams:
//
//	conn, _ := quicrecord.Dial(ctx, "127.0.0.1:4433", clientTLS, nil)
//	s, _ := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "metrics"})
//	for _, rec := range records {
//		if _, err := s.Send(ctx, rec); err != nil { ... }
//	}
//	err := s.Barrier(ctx) // everything above is applied by the peer
//	s.Close(ctx)
//
// [NewConn] and [NewListener] wrap quic-go connections and listeners the
// application already has. [ResumableStream] survives the loss of its
// connection: it redials, and the acceptor (with a [ResumeStore]) continues
// exactly after the last record it applied. Package identity makes TLS
// identities that peers pin by fingerprint.
//
// # Configuration
//
// A [Config] (nil means every default) tunes a connection; Config.Stream,
// a [StreamConfig], holds the connection's defaults for the settings of
// each stream: batching, delays, windows, record size, close timeout. An
// opener overrides them for one stream with [StreamOptions].Config, an
// acceptor with the *StreamConfig its Config.AcceptHandler returns, so one
// connection carries a latency stream next to a bulk one. Zero means the
// default everywhere; [Config.Validate] reports an invalid value as a
// *[ConfigError] naming the field, and every constructor (and
// OpenRecordStream, for StreamOptions.Config) returns it.
//
// # Acks and Barrier
//
// An ack means the receiving application applied the record: it called
// [RecordStream.Ack] or [RecordStream.Reject] for it (or a later record),
// or [RecordStream.Apply]'s function returned for it. Acks are cumulative.
// Barrier returns nil once every record sent before the call is applied,
// a *[RejectedError] listing the records of that range the peer rejected,
// or a *[BarrierError] (carrying the last acked sequence number) when it
// can no longer succeed. [ResumableStream.Barrier] reports the same way.
//
// # Backpressure, latency and memory
//
// The sender bounds records and bytes in flight (sent, not yet acked):
// [RecordStream.Send] blocks while its window is full. The window sizes
// itself: the sender measures the delay from Send to the applied-ack and
// the rate at which the peer applies, and keeps in flight what that rate
// needs for the shortest delay it measured plus StreamConfig.QueueDelayTarget
// (2 ms by default), not more; a flat-out sender so waits in Send instead
// of queueing records ahead of a path or a consumer that cannot take
// them. The receiver does the same from its side: while its application
// keeps a standing backlog, it announces a smaller window (a WINDOW
// frame), so that even a sender with a fixed window stops. Batches are
// bounded in time too, so an ack never waits behind more than about a
// millisecond of data. The stream's MaxInFlightRecords and
// MaxInFlightBytes (lowered to the window the peer announced) are hard
// caps; StreamConfig.Window = WindowFixed keeps the window at them. The receiver bounds its
// apply backlog (received, not yet acked): at MaxApplyBacklogRecords or
// MaxApplyBacklogBytes it stops reading the QUIC stream and QUIC flow
// control pushes back. A stream's frame reader holds at most one frame
// (the maximum frame size follows from MaxRecordSize). No record is ever
// dropped. [RecordSnapshot.Window] shows the window and what the sender
// measures.
//
// # Lifecycle
//
// A stream lives until it is closed, fails, or its connection ends:
//
//   - [RecordStream.Close] ends it gracefully, bounded by a context and by
//     its CloseTimeout: what was sent is handed to QUIC and the peer's Recv
//     returns io.EOF after the last record; what the peer sends from then
//     on is discarded.
//   - [RecordStream.CloseWrite] ends only this side's records (a
//     half-close): the stream goes on receiving and acking the peer's, and
//     ends by itself once the peer closed too.
//   - [RecordStream.CloseWithError] resets it with a code the peer sees.
//
// [Conn.Close] ends a connection and its streams. [Listener.Close] stops
// accepting and, as quic-go's does, leaves accepted connections alone;
// [Listener.Shutdown] also ends them once their streams are gone.
//
// # Cancellation
//
// Every blocking call takes a context first. A call whose context ends
// returns its cause; a deadline also matches os.ErrDeadlineExceeded. A
// result that is already available is returned even if the context is
// done. The context passed to OpenRecordStream bounds the open only; to
// bound a stream's life by a context, close it when the context ends:
//
//	stop := context.AfterFunc(ctx, func() { _ = s.CloseWithError(quicrecord.CodeCancelled, "done") })
//	defer stop()
//
// [Conn.Context] and [RecordStream.Context] are cancelled, with a cause,
// when the connection or stream ends.
//
// # Errors
//
// Failures are typed, in families that errors.Is keeps apart:
// *[StreamError] (a stream reset or refused, with its [ErrorCode] and
// whether the peer chose it), *[RecordError] (one record the peer
// rejected), *[ConnError] (the connection ended; [ErrConnClosedByPeer]
// when the peer closed it cleanly), *[DialError] (no connection was ever
// made; [ErrHandshakeTimeout] when the peer did not answer). Sentinels
// such as [ErrRefused] and [ErrVersionMismatch] match by code within
// their family, whether the error was local or came from the peer;
// errors that end a stream or connection match net.ErrClosed. [CodeOf]
// gives the code of any error, for a switch over codes. Local misuse
// ([ErrRecordTooLarge], [ErrNotDelivered], [ErrAlreadyApplied],
// [ErrNotSent], [ErrConcurrentReceive], [ErrInvalidConfig]) comes wrapped
// with the numbers involved. An Apply function or accept handler chooses
// the code and reason the peer sees with an *[ApplicationError]; any
// other error of theirs gets a generic code, and its text stays on this
// side.
//
// # Concurrency
//
// All methods of Conn, Listener, RecordStream and ResumableStream are safe
// for concurrent use, with one rule for receiving: a stream has one
// receiver at a time (Recv and Apply fail with [ErrConcurrentReceive]
// while another runs), and Ack and Reject follow the order in which the
// records were applied. Concurrent Barriers share the peer's rejections:
// each is reported to the first Barrier that returns covering it.
//
// Each stream runs two goroutines, a writer loop that owns the write side
// (every outbound frame, the final ERROR of a reset included, is written
// there, whole) and a reader loop that owns the read side; each
// connection runs an accept loop and one short-lived goroutine per stream
// handshake. Close and Conn.Close return only after those goroutines have
// ended. Diagnostics are read from atomics and never block the loops.
//
// # Diagnostics
//
// Every stream counts what it does in atomics that only its own loops
// write: records, bytes and batches each way, frames by type, acks
// piggybacked and standalone, barrier waits split into flush-wait and
// ack-wait, rejections, protocol violations, and the in-flight and
// apply-backlog gauges. [RecordStream.Snapshot] copies them into a
// [RecordSnapshot] (its parts are types of package quicrecord/diag);
// taking one reads atomics only and never blocks the writer or reader
// loop. Once a stream ended its snapshot is frozen.
//
// Streams register in their Conn's registry and, when accepted through a
// Listener, in the Listener's too; [Conn.Snapshots] and
// [Listener.Snapshots] list them in key order. A stream leaves both
// registries when it or its connection ends, through context.AfterFunc:
// no goroutine waits per stream. [Conn.Diagnostics] and
// [Listener.Diagnostics] sum the live streams into a [DiagnosticsSummary]
// (counts by state and version, totals, the top streams by apply backlog
// and by records in flight), whose String method prints a fixed table;
// [Conn.EndedDiagnostics] totals the streams that ended, and [Summarize]
// summarises any snapshots. Package quicrecord/promrecord exports them as
// Prometheus metrics, and package quicrecord/debughttp serves them as JSON
// or as the table.
//
// Config.Logger, when set, receives stream open and end, and the causes
// of rejections and refusals, at debug level, and protocol violations at
// warn level.
//
// # Compatibility
//
// Each stream negotiates its protocol version and features in its HELLO
// exchange: the highest version both sides speak, and the features both
// announce. This library speaks versions [LowestProtocolVersion] (1) to
// [HighestProtocolVersion] (2); version 2 adds piggybacked acks,
// resumption, half-close and batch compression. Config.MinProtocolVersion,
// Config.MaxProtocolVersion and Config.DisableFeatures (per stream,
// StreamOptions.MaxProtocolVersion and DisableFeatures) pin a side down;
// streams of different versions can share a connection. Peers with no common version
// refuse the stream with CodeVersionMismatch.
//
// # Compression
//
// StreamConfig.Compression makes a stream's writer compress the batches
// it sends: [CompressionS2], [CompressionZstd] or [CompressionAuto] (S2,
// or zstd if that is all the peer takes); the default is
// [CompressionOff]. It takes effect with a peer that negotiated
// [FeatureCompression] (protocol version 2) and accepts the codec; a
// version 1 peer, or one without the feature, gets plain batches. A batch
// below 1 KiB goes plain, as does one that did not shrink by 12.5 %; after
// three of those in a row the writer stops trying for a while and probes
// again later, so random or already-compressed data costs little.
// Compression runs in the writer loop, not in Send, into a buffer the
// writer reuses. Every stream accepts S2 and zstd from its peer; the
// receiver checks the length a batch declares against its limits before
// it allocates or decodes anything, and never decodes more than declared:
// a batch it cannot decode ends the stream with [CodeCompression].
// Windows, backlogs and record limits count uncompressed bytes; the
// snapshots' Compression field counts the bytes before and after, each
// way, and the codec time. The early batches of an optimistic open
// (below) go plain.
//
// # Round trips
//
// StreamOptions.OptimisticOpen sends a stream's first records behind its
// HELLO, before the acceptor's reply, on a connection whose acceptor
// announced [FeatureEarlyRecords] (within [EarlyWindowRecords] and
// [EarlyWindowBytes]); a refusal then fails Send, Flush and Barrier.
// [DialEarly], [FailoverDialEarly] and ResumeOptions.ZeroRTT reconnect a
// [ResumableStream] with 0-RTT (the acceptor's listener needs
// Config.QUIC.Allow0RTT); plain streams never use 0-RTT, and a resume in
// 0-RTT takes a live stream's key only once the handshake completes (see
// the README for the replay trade-off). A ResumableStream whose previous
// acceptor announced [FeatureResumeEarly] reconnects with an optimistic
// resume: its held records follow the resume HELLO in the same flight,
// and the acceptor drops those it applied already. [Conn.Migrate] and
// [ResumableStream.Migrate] move a client connection to a new local
// socket by path probing; a NAT rebinding needs no call.
//
// # Limitations
//
//   - Records are at most the stream's MaxRecordSize
//     ([DefaultMaxRecordSize], 1 MiB) and are held in memory; there is no
//     streaming of a single record.
//   - Without resumption, records in flight when a connection dies are in
//     doubt: the application must resend them and the receiver dedupe.
//   - A ResumableStream carries records from opener to acceptor only.
//   - CloseWrite towards a peer without half-close (version 1, or the
//     feature disabled) ends the direction with a FIN: the peer's later
//     records are delivered but cannot be acked.
//   - CloseWithError, and a protocol violation, wait at most a second for
//     the frame being written before the ERROR; a peer that stopped
//     reading gets the reset with its code but without the reason.
//   - Ordering holds within a stream, not across streams.
//   - The first stream of a connection cannot open optimistically: the
//     opener learns the acceptor's early-records offer from a reply.
//   - An optimistic resume sends again the held records the acceptor
//     applied but whose acks were lost (at most one window); the
//     acceptor drops them. Before the reply it sends at most the early
//     window of records.
package quicrecord
