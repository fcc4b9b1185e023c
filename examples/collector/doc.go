// Collector is a standalone recordmux server: it accepts record streams,
// plain and resumable, writes every record to a sink as a JSON line, and
// acknowledges a record only after the write succeeded and was synced.
// With a state file it survives being killed: restarted, it tells each
// resumable producer where to continue, and the sink ends up with every
// record exactly once.
//
// Usage:
//
//	collector -gencert certs          # once: identities to try it with
//	collector -cert certs/collector.pem -key certs/collector-key.pem \
//	    -sink records.jsonl -state collector.state -debug-addr 127.0.0.1:6060
//
// and, in another terminal, the producer of examples/edge-agent:
//
//	edge-agent -pin certs/collector.pem -generate 100000 -rate 5000 -state agent.state
//
// (-pin also takes the collector's key fingerprint, sha256:…, which
// -gencert prints and the collector logs when it starts.)
//
// Flags:
//
//	-addr ADDR          UDP address to listen on (127.0.0.1:7450)
//	-cert, -key FILE    server certificate and key, PEM
//	-client-ca FILE     certificates client certificates must chain to: CAs,
//	                    or the clients' own self-signed certificates (such
//	                    as -gencert's agent.pem); mutual TLS
//	                    (tls.RequireAndVerifyClientCert): clients without a
//	                    valid certificate fail the handshake
//	                    Without it agents resume anonymously: a resume key
//	                    is then a bearer token (ResumeStoreConfig.AllowAnonymous)
//	-sink PATH          a file, appended to, or "-" for stdout (-)
//	-state PATH         the state file (none: state in memory only); the
//	                    stateless reset key is kept beside it
//	-no-fsync           skip the fsyncs (faster; a machine crash may lose
//	                    acknowledged records; a process crash does not)
//	-debug-addr ADDR    HTTP: /debug/recordmux (JSON; ?format=text for the
//	                    summary table) and /metrics (Prometheus)
//	-idle-timeout D     QUIC idle timeout (30s)
//	-resume-ttl D       how long the in-memory resume state of a
//	                    disconnected stream lives (5m); the state file
//	                    outlives it
//	-max-batch N        records committed together, at most (1024)
//	-stats D            statistics line on stderr (10s; 0: none)
//	-jetstream URL      publish to NATS JetStream instead of -sink (package
//	                    quicrecord/jsrecord): a server URL shared by a fleet
//	                    of collectors, or "embedded" for a single-node
//	                    JetStream inside the collector, stored in jetstream/
//	                    beside -state; only resumable streams are accepted
//	-jetstream-listen A with -jetstream embedded: serve NATS clients on A
//	-jetstream-replicas N  replicas of the stream when the collector
//	                    creates it (1; 3 on a cluster)
//	-gencert DIR        write development identities and exit (see below)
//	-hosts LIST         names the -gencert server certificate is for
//
// # The sink
//
// One JSON object per line, in the order records were applied:
//
//	{"identity":"3f9a…","key":"5f0c…","scope":"telemetry","seq":17,"data":"…"}
//
// identity names the client that sent the record: the first 16 bytes of
// the SHA-256 of its identity (quicrecord.DefaultPeerIdentity, the SPKI
// fingerprint of its verified certificate; "" without -client-ca), in
// hex, as jsrecord.IdentityName names it in JetStream subjects;
// e3b0c44298fc1c149afbf4c8996fb924 is the anonymous "". key is the
// stream's resume key in hex for a resumable stream, "plain/" and the
// stream's "dedupe-key" metadata for a plain stream that has one, and ""
// otherwise. A stream is an (identity, key) pair: two clients that use
// the same key write two streams, each with its own sequence numbers,
// told apart by identity. data is the record when it is valid UTF-8;
// other records are in "data_b64" instead, base64.
//
// # Acknowledging after the write
//
// Each stream's loop takes what has arrived (Recv, then Recv with a done
// context to collect what is queued without waiting, up to -max-batch),
// writes the group to the sink with one write, syncs it, appends one line
// to the state file and syncs that, and only then calls Ack for the last
// record of the group. A record is never acknowledged before it is in
// the sink; a write that fails resets the stream (a resumable producer
// keeps its records and sends them again when it reconnects).
//
// # The state file and restarts
//
// The state file is a log of JSON lines {"identity", "key", "seq",
// "sink_off"} (identity and key as in the sink): after each commit, the
// last seq written for the stream and the sink's length. That line is
// the commit point. On start the collector reads the log back (ignoring a
// last line cut short by a crash), cuts the sink back to the last
// committed length — records written after it were never acknowledged,
// so their producers still have them and send them again — and rewrites
// the log with one line per stream. The state then answers quicrecord's
// ResumeStoreConfig.LoadApplied: a resumable stream whose in-memory
// resume state is gone (after a restart, or after -resume-ttl) continues
// right after the last record in the sink.
//
// State is per (client identity, key), as in quicrecord's ResumeStore,
// for resumable and plain streams alike: a client that uses a key
// another client holds gets a stream of its own, starting empty, and
// nothing it sees differs from what an unused key gives (the collector
// refuses no key on another client's account, so a refusal cannot tell a
// prober that a key exists). A state file of the earlier format, lines
// {"key", "peer", "seq", "sink_off"} without "identity", is still read:
// each line is the state of the identity in its "peer" ("" when absent,
// the anonymous identity), and the rewrite at start puts it in the new
// format. Identities of the form before SPKI fingerprints (a hash of the
// whole certificate) match no client any more: those keys start afresh.
//
// # Stateless resets
//
// With -state, the collector keeps a QUIC stateless reset key in
// STATE.reset-key (32 random bytes, mode 0600, made on the first start)
// and passes it as quicrecord.Config.StatelessResetKey. Restarted after a
// crash on the same address, it answers packets of its previous run's
// connections with stateless resets, so agents reconnect at once instead
// of after the QUIC idle timeout (30 s by default). The key is a secret
// (whoever has it can reset the collector's connections) and belongs with
// the state: moving one without the other costs only that idle timeout,
// once.
//
// # Deduplication, belt and braces
//
// Before writing a record with a key, the collector compares its seq with
// the last seq the state holds for that stream (the client's identity and
// the key); a record at or below it is
// acknowledged without being written (counted as duplicates_skipped).
// For resumable streams this should never fire: the resume protocol
// already restarts each stream right after the last record the collector
// applied, and the position it hands out comes from this very state, so
// nothing applied is sent again. The check is there anyway because it is
// cheap (one map lookup per record) and because it makes "each record
// once in the sink" rest on one invariant checked at the point of
// writing, not on every part of the resume path being right — a bug, a
// state file restored from an older copy than the resume store's memory,
// or a producer reusing a key with an old position all become skipped
// duplicates instead of double writes. For plain streams it is the only
// protection: a producer without resumption that retries on a new stream
// under the same "dedupe-key" (with the same client identity) resends
// from seq 1, and the records the sink already has are skipped.
//
// # A fleet on JetStream
//
// With -jetstream the records go to a JetStream stream (RECORDMUX, created
// if missing), one subject per resume key, and the resume state lives
// there too: several collectors on one NATS server or cluster form a fleet,
// and an agent given all their addresses (edge-agent -addr a,b) continues
// its stream on whichever it reaches. Each batch of records is
// acknowledged only once JetStream confirmed it; a collector that lost a
// key to another one is fenced off by JetStream. The -sink, -state
// journal, -max-batch and -no-fsync do not apply (JetStream's own sync
// settings do); -state only places the embedded store. See package
// quicrecord/jsrecord for the design and its limits.
//
// # Trying it out: -gencert
//
// collector -gencert DIR writes two development identities made with
// package identity (self-signed ECDSA P-256 certificates, private keys
// unencrypted with mode 0600): collector.pem and collector-key.pem for
// -hosts, and agent.pem and agent-key.pem for an agent. It prints both
// key fingerprints and the commands to use them, and refuses to
// overwrite files. The agent pins the collector's key (-pin with the
// fingerprint or collector.pem); for mutual TLS the collector trusts
// agent.pem itself as the root of its chain (-client-ca agent.pem), so
// that resume keys stay bound to the agent's verified certificate. The
// certificates are valid for identity.Validity (10 years); for anything
// beyond trying it out, provision keys and certificates your own way.
//
// # Limitations
//
// With the stdout sink nothing can be cut back after a crash: a crash
// between the write and its state line repeats that group after the
// restart. The sink and the state file belong together: pointing -state
// at a different sink is detected only when the sink is shorter than the
// state says. Commits of all streams are serialised through one sink;
// each syncs twice. The debug endpoint names scopes and peers: serve it
// on an internal address.
package main
