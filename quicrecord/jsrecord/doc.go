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
// Resume state is per (client identity, key), as in quicrecord's own
// ResumeStore: the same key under two identities is two streams that
// neither can see or disturb. Each pair has two subjects in the stream,
// named by I, the identity's [IdentityName] (the first 16 bytes of
// SHA-256 of the identity string, in hex: identities are arbitrary
// strings and never appear raw in a subject), and K, the key's
// [KeyName] (hex):
//
//   - PREFIX.rec.I.K holds the records, one message per record, in
//     order ([RecordSubject]). Its message ID (Nats-Msg-Id) is I.K:SEQ
//     ([MsgID]) and its header Recordmux-Seq is SEQ, the record's
//     sequence number in its stream.
//   - PREFIX.own.I.K holds the claims ([ClaimSubject]): a JSON message
//     {peer, collector, epoch, time} each time a collector takes the
//     key, with the identity itself in peer and in the header
//     Recordmux-Peer for people reading the stream, and the opener's
//     resume epoch in epoch. A claim's stream sequence is its identity.
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
// When a stream of K is opened on a collector by identity I,
// [Sink.AcceptHandler] reads the last claim of I.K (refusing the stream
// while JetStream cannot be reached) and closes any stream of I.K still
// open on this collector. [Sink.LoadApplied], called by the
// quicrecord.ResumeStore for the stream, then claims I.K: it refuses an
// opener whose resume epoch is older than the last claim's (see below),
// appends a claim with an expected last sequence on PREFIX.own.I.K equal
// to the claim it read, so of two collectors claiming at once only one
// wins, and only after that append reads the last record of I.K. Every record is fenced on the claim of the
// collector that publishes it, so anything the previous holder got in
// came before the new claim and is in that read, and anything it sends
// later is refused. The agent's records after the last one read are then
// sent again to the new holder, exactly once.
//
// # Takeover with epochs
//
// The claims carry the opener's resume epoch
// (quicrecord.ResumeKeyInfo.Epoch), so the fleet orders the openers of
// a key as one acceptor does (quicrecord.FeatureResumeEpoch): an opener
// older than the last claim is refused by LoadApplied with
// [ErrSupersededClaim], which the ResumeStore sends as SUPERSEDED (or
// REFUSED to an opener without epochs), without claiming anything; a
// newer or equal one claims the key. A stream whose key was taken over
// ends with the code quicrecord's ResumeStore ends a superseded stream
// with: [CodeSuperseded] when the new holder's opener is newer and the
// stream negotiated epochs (its opener then stops instead of
// reconnecting), quicrecord.CodeCancelled otherwise (the same opener
// reconnected elsewhere, or one without epochs). On the collector where
// the new stream opens that happens at once; on another collector, when
// the fence refuses the old stream's next record (see Limitations).
//
// # Batches, fencing and acknowledgements
//
// [Sink.Serve] publishes a stream's records pipelined, without waiting
// for each, and acknowledges them to the agent in order, each only once
// JetStream confirmed it, so a Barrier on the agent succeeds only for
// records JetStream holds. Every record is fenced: JetStream stores it
// only while the last message of PREFIX.own.I.K is this collector's claim
// (an expected last sequence of PREFIX.own.I.K). How depends on the stream:
//
//   - Without replication (one replica, as on a single server), records
//     go out as fast batches (nats-server 2.14 or later, stream option
//     allow_batched). JetStream stores each message as it arrives, checks
//     the fence on each, against its store, one after another, and
//     reports its progress every 16 messages; the stream's reply handler
//     acknowledges up to each report as it arrives, while the batch goes
//     on, so the agent's window keeps sliding while JetStream works. A
//     batch is committed only when nothing else is left to do: no record
//     is waiting and the last ones sent are below the next report (only
//     the commit confirms them), or JetStream confirmed every record and
//     none arrived for a millisecond; when it holds Config.MaxBatch
//     records or more while another stream of the sink waits for a batch
//     token (so that the streams take turns); when the stream ends. The
//     next batch starts only once JetStream confirmed the commit. The
//     batch's gap mode is "fail": a record JetStream refuses, or one lost
//     on the way (a reconnect), ends the batch there and no later record
//     of it is stored, so what JetStream holds of a key is always a
//     prefix of its records, whichever record failed.
//   - Replicated, JetStream refuses an expected-last-subject-sequence
//     check while another message checked against the same subject is
//     still being committed (error 10164), so per-record fences cannot be
//     pipelined there. Records go out as atomic batches (nats-server 2.12
//     or later, allow_atomic) of up to Config.MaxBatch records: sent
//     pipelined, the last one committing the batch, the first carrying
//     the fence, which JetStream checks at the commit, storing the whole
//     batch or nothing. While one batch commits, the next is collected
//     from what the agent keeps sending; Serve acknowledges a batch's
//     last record once JetStream confirmed it. Config.AtomicBatches
//     picks this path on every stream.
//
// Why not plain pipelined publishes, each record with its fence
// (PublishAsync): a record refused, or lost in a reconnect while later
// ones are delivered from the client's reconnect buffer, would leave a gap
// in the key's records that the next claim cannot see (it resumes after
// the last record stored), and the record would be lost. A fast batch in
// gap mode "fail" stores nothing after it.
//
// Why two paths: on a stream without replication JetStream stages an
// atomic batch in a file store created for it, synced to disk (fsync) at
// the commit, and then stores every record again, so atomic batches cost
// an fsync per batch and two writes per record; a fast batch is stored
// once, as plain publishes are. In the collector's BenchmarkSinks (one
// stream of 256-byte records, embedded JetStream, on a busy 2-core
// machine) that is 36–52 k records/s instead of 0.75–1.9 k in the same
// runs; see the README for the figures and the profile. A
// stream without replication that is scaled up while a sink runs refuses
// its pipelined fences (10164): the stream is reset with
// [CodeUnavailable] and the sink publishes atomic batches from then on.
//
// Streams of different keys publish in parallel, up to
// Config.MaxInflightBatches batches per sink.
//
// A record that fails or is not confirmed in time is never acknowledged,
// nor is any after it: an atomic batch must be confirmed within
// Config.Timeout of its commit; a fast batch whose records wait for
// confirmation while JetStream confirms nothing for Config.Timeout is
// committed, and its commit must be confirmed within Config.Timeout. Serve
// then resets the stream with [CodeUnavailable] (or, when the fence
// refused it, the takeover code above)
// instead of retrying, because whether a timed-out record was stored is
// unknown until the key's next claim reads it back. Records JetStream
// confirmed before the failure stay acknowledged. The agent's
// ResumableStream keeps the rest, reconnects with backoff (new streams are
// refused with CodeUnavailable while JetStream is unreachable, and a
// ResumableStream retries that) and resumes after what JetStream holds.
// Its Barrier meanwhile waits, or fails with its context.
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
// publishes on the caller's goroutine. On a stream without replication it
// subscribes to the replies of its fast batches, which nats.go hands to a
// goroutine of its own per subscription: that goroutine acknowledges the
// records. On the atomic path Serve starts one goroutine per batch commit,
// which waits for JetStream's verdict while the next batch is collected,
// and waits for it before returning. nats.go's connection runs its own
// goroutines besides.
//
// # Limitations
//
//   - Only resumable streams are accepted: the subject, the fence and the
//     deduplication are per client identity and resume key.
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
//   - JetStream caps open batches: atomic ones at 50 per stream and 1,000
//     per server, 1,000 messages each; fast ones at 1,000 per stream and
//     50,000 per server (by default). Keep Config.MaxInflightBatches,
//     summed over the collectors of a stream, and Config.MaxBatch within
//     them, or raise the server's limits.
//   - A stream's batches commit one at a time, so one key's throughput on
//     a replicated stream is at most MaxBatch records per commit round
//     trip; without replication, a commit round trip is spent when the
//     agent's records pause with records sent since JetStream's last
//     progress report (fewer than 16), or after a millisecond with all
//     of them confirmed.
//   - On the fast path JetStream drops a record whose message ID it
//     already holds and reports it stored. Only a collector whose key was
//     taken over meets that (its successor published the record, which
//     is therefore stored once); the fence refuses the first record the
//     successor has not published. Stats.DuplicateRefused counts atomic
//     batches only.
//   - JetStream's stream loop is one goroutine per stream, which stores
//     every record with a write system call on a stream without
//     replication: on small machines that, not the network, bounds the
//     records per second (see the collector's BenchmarkSinks).
//   - State is keyed by the same client identity as
//     quicrecord.ResumeKeyInfo.Peer (quicrecord.AcceptInfo.PeerIdentity:
//     the SPKI fingerprint of a verified client certificate, or
//     Config.PeerIdentity's); connections without one share the identity
//     "" and resume only with Config.AllowAnonymous, where a key is a
//     bearer token among them. A client that presents another
//     identity's key reaches its own state of that key, so what it sees
//     does not depend on whether another identity holds the key. A
//     refused resume still leaves the opener's own claim, which its next
//     attempt with that key meets. Nothing caps the keys an identity
//     claims in JetStream (quicrecord's per-identity quota applies to
//     the keys live on one collector): bound the stream with JetStream's
//     limits.
//   - The subject layout changed when state became per identity
//     (PREFIX.rec.K became PREFIX.rec.I.K): a sink does not read keys an
//     earlier version wrote, whose agents then resume with their records
//     in doubt (CodeResumeUnknown), and collectors of both versions on
//     one stream would apply a key twice. Upgrade a fleet at once, after
//     its agents have finished their streams.
//   - A stream superseded on another collector ends when the fence
//     refuses its next record, not at once as on one collector: until
//     then it stays open, idle, and nothing of it is applied.
//   - A failure of JetStream between AcceptHandler's check and the claim
//     in LoadApplied (retried until the handshake deadline) refuses the
//     stream with CodeResumeUnknown, which ends an agent's
//     ResumableStream with its records in doubt.
package jsrecord
