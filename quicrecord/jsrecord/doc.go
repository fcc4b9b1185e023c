// Package jsrecord lets a fleet of recordmux collectors apply resumable
// record streams into NATS JetStream, exactly once and in order, so that
// any collector of the fleet can continue any stream. Package quicrecord
// does not depend on NATS; this package does.
//
// # Usage
//
// Create the stream once (or with your own tooling, see [StreamConfig]),
// then give each collector a [Sink]:
//
//	js, _ := jetstream.New(nc)
//	_, _ = jsrecord.EnsureStream(ctx, js, nil, 3) // R3 on a cluster
//	sink, _ := jsrecord.New(ctx, js, nil)
//	cfg := &quicrecord.Config{
//		ResumeStore:   sink.NewResumeStore(),
//		AcceptHandler: sink.AcceptHandler,
//	}
//	ln, _ := quicrecord.Listen(addr, tlsConf, cfg)
//	for { conn, _ := ln.Accept(ctx); go func() {
//		for { s, err := conn.AcceptRecordStream(ctx); if err != nil { return }
//			go sink.Serve(ctx, s) }
//	}() }
//
// Agents open quicrecord.ResumableStreams; with
// quicrecord.FailoverDial they move to the next collector when one is
// unreachable or refuses.
//
// # Layout in JetStream
//
// Each resume key K (hex) has two subjects in the stream:
//
//   - PREFIX.rec.K holds the records, one message per record, in order.
//     Its message ID (Nats-Msg-Id) is K:SEQ and its header
//     Recordmux-Seq is SEQ, the record's sequence number in its stream.
//   - PREFIX.own.K holds the key's claims: a JSON message {peer,
//     collector, time} each time a collector takes the key. The first
//     claim binds the key to the client identity (peer) that opened it;
//     a claim's stream sequence is its identity.
//
// Resume state is read from the stream itself (the last message of each
// subject, from the stream leader: direct gets are off), not from a KV
// bucket: the record subject's last message is the resume position by
// construction, with no second write that could disagree with it, and
// the claim can fence the records because both live in one stream (an
// expected-last-subject-sequence check only sees its own stream).
//
// # Exactly once across collectors
//
// When a stream of K is opened on a collector, [Sink.AcceptHandler] reads
// K's last claim (refusing another client's key, or the stream while
// JetStream cannot be reached) and closes any stream of K still open on
// this collector. [Sink.LoadApplied], called by the quicrecord.ResumeStore
// for the stream, then claims K: it appends a claim with an expected last
// sequence on PREFIX.own.K equal to the claim it read, so of two
// collectors claiming at once only one wins, and only after that append
// reads the last record of K. Every batch is fenced on the claim of the
// collector that publishes it, so anything the previous holder got in
// came before the new claim and is in that read, and anything it sends
// later is refused. The agent's records after the last one read are then
// sent again to the new holder, exactly once.
//
// # Batches, fencing and acknowledgements
//
// [Sink.Serve] publishes what has arrived on a stream, up to
// Config.MaxBatch records, as one JetStream atomic batch (nats-server
// 2.12 or later, stream option allow_atomic): the records go out
// pipelined, without waiting, and the last one commits the batch. Its
// first message carries the fence, an expected last sequence of
// PREFIX.own.K equal to this collector's claim; JetStream checks it when
// it commits and stores the whole batch or nothing. Only when JetStream
// confirmed the batch does Serve acknowledge its last record to the
// agent, so acknowledgements are in order and a Barrier on the agent
// succeeds only for records JetStream holds.
//
// Why batches and not one publish per record: on a replicated stream
// JetStream refuses an expected-last-subject-sequence check while another
// message checked against the same subject is still being committed
// (error 10164), so per-record fences cannot be pipelined there; within an
// atomic batch one check covers every record. A stream's batches are
// therefore committed one after another, each up to MaxBatch records;
// while one commits, the next is collected from what the agent keeps
// sending into its window, and its records are sent as soon as it is full
// or the commit returned. Streams of different keys commit in parallel,
// up to Config.MaxInflightBatches batches per sink.
//
// A batch that fails or is not confirmed within Config.Timeout is never
// acknowledged: Serve resets the stream with [CodeUnavailable] (or
// [CodeSuperseded] when the fence refused it) instead of retrying it,
// because whether a timed-out batch was stored is unknown until the key's
// next claim reads it back. The agent's ResumableStream keeps the
// records, reconnects with backoff (new streams are refused with
// CodeUnavailable while JetStream is unreachable, and a ResumableStream
// retries that) and resumes after what JetStream holds. Its Barrier
// meanwhile waits, or fails with its context.
//
// # Cancellation
//
// Serve returns when its context ends, resetting nothing: the stream's
// connection or listener closing ends it. LoadApplied is bounded by the
// stream's handshake deadline, each JetStream request by Config.Timeout.
//
// # Concurrency
//
// A Sink is safe for concurrent use; run one Serve per stream. Serve
// starts no goroutine; nats.go's connection runs its own.
//
// # Limitations
//
//   - Only resumable streams are accepted: the subject, the fence and the
//     deduplication are per resume key.
//   - Exactly once rests on the claim fence, not on deduplication: the
//     message IDs catch a batch sent twice only within the stream's
//     deduplication window (two minutes by default), which is
//     time-windowed by design.
//   - Durability is JetStream's. By default it acknowledges a write once a
//     majority of replicas have it, but flushes to disk only every two
//     minutes (sync_interval); Jepsen's analysis "NATS 2.12.1" (Kyle
//     Kingsbury, December 2025) showed acknowledged writes lost after a
//     coordinated power failure, or one OS crash combined with pauses or
//     partitions, and after file corruption on a minority of nodes. Run
//     R3 across failure domains, and set sync_interval: always where a
//     lost acknowledged record is not acceptable (as the collector's
//     journal sink does with its fsync), at a cost in throughput.
//   - JetStream caps uncommitted atomic batches (50 per stream, 1,000 per
//     server by default) and their size (1,000 messages): keep
//     Config.MaxInflightBatches, summed over the collectors of a stream,
//     and Config.MaxBatch within them, or raise the server's limits.
//   - A stream's batches commit one at a time, so one key's throughput is
//     at most MaxBatch records per commit round trip.
//   - On a single-replica file stream JetStream writes each record twice
//     (it stages an atomic batch in a file store of its own before
//     committing it), and its stream loop is one goroutine per stream: on
//     small machines that, not the network, bounds the records per
//     second (see the collector's BenchmarkSinks).
//   - Identity binding uses the same client identity as
//     quicrecord.ResumeKeyInfo.Peer (quicrecord.AcceptInfo.PeerIdentity:
//     the SPKI fingerprint of a verified client certificate, or
//     Config.PeerIdentity's); connections without one share the identity
//     "" and resume only with Config.AllowAnonymous. Keys are one
//     JetStream subject each, across identities, so a client that
//     presents another identity's key is refused with CodeRefused
//     (ErrBoundToOtherPeer), which tells it the key is in use; quicrecord's
//     own ResumeStore keys state by (identity, key) and does not.
//   - A failure of JetStream between AcceptHandler's check and the claim
//     in LoadApplied (retried until the handshake deadline) refuses the
//     stream with CodeResumeUnknown, which ends an agent's
//     ResumableStream with its records in doubt.
package jsrecord
