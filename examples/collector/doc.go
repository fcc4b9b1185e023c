// Collector is a standalone recordmux server: it accepts record streams,
// plain and resumable, writes every record to a sink as a JSON line, and
// acknowledges a record only after the write succeeded and was synced.
// With a state file it survives being killed: restarted, it tells each
// resumable producer where to continue, and the sink ends up with every
// record exactly once.
//
// Usage:
//
//	collector -gencert certs          # once: certificates to try it with
//	collector -cert certs/collector.pem -key certs/collector-key.pem \
//	    -sink records.jsonl -state collector.state -debug-addr 127.0.0.1:6060
//
// and, in another terminal, the producer of examples/edge-agent:
//
//	edge-agent -pin certs/collector.pem -generate 100000 -rate 5000 -state agent.state
//
// Flags:
//
//	-addr ADDR          UDP address to listen on (127.0.0.1:7450)
//	-cert, -key FILE    server certificate and key, PEM
//	-client-ca FILE     CA certificates for client certificates: mutual TLS
//	                    (tls.RequireAndVerifyClientCert); clients without a
//	                    valid certificate fail the handshake
//	-sink PATH          a file, appended to, or "-" for stdout (-)
//	-state PATH         the state file (none: state in memory only)
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
//	-gencert DIR        write certificates and exit (see below)
//	-hosts LIST         names the -gencert server certificate is for
//
// # The sink
//
// One JSON object per line, in the order records were applied:
//
//	{"key":"5f0c…","scope":"telemetry","seq":17,"data":"…"}
//
// key is the stream's resume key in hex for a resumable stream, "plain/"
// and the stream's "dedupe-key" metadata for a plain stream that has one,
// and "" otherwise. data is the record when it is valid UTF-8; other
// records are in "data_b64" instead, base64.
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
// The state file is a log of JSON lines {"key", "peer", "seq",
// "sink_off"}: after each commit, the last seq written for the key and
// the sink's length. That line is the commit point. On start the
// collector reads the log back (ignoring a last line cut short by a
// crash), cuts the sink back to the last committed length — records
// written after it were never acknowledged, so their producers still
// have them and send them again — and rewrites the log with one line per
// key. The state then answers quicrecord's ResumeStoreConfig.LoadApplied:
// a resumable stream whose in-memory resume state is gone (after a
// restart, or after -resume-ttl) continues right after the last record
// in the sink. A key stays bound to the client certificate that first
// used it, across restarts too.
//
// # Deduplication, belt and braces
//
// Before writing a record with a key, the collector compares its seq with
// the last seq the state holds for that key; a record at or below it is
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
// under the same "dedupe-key" resends from seq 1, and the records the
// sink already has are skipped.
//
// # Trying it out: -gencert
//
// collector -gencert DIR writes collector.pem and collector-key.pem (a
// self-signed server certificate for -hosts), client-ca.pem (a CA for
// client certificates; its key is not kept), and agent.pem and
// agent-key.pem (a client certificate from that CA), then prints the
// commands to use them. It refuses to overwrite files. The certificates
// are valid for 24 hours (the lifetime internal/tlsutil gives).
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
