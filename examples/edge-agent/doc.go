// Edge-agent streams records to the collector (examples/collector) over
// a quicrecord.ResumableStream. It follows a file (-tail: each new line
// is a record) or generates telemetry (-generate N records at -rate per
// second), and it survives the collector restarting: the resumable stream
// reconnects with backoff, learns from the collector the last record it
// applied, and sends again everything after it, so nothing is lost and
// nothing is applied twice. The agent has no resend buffer of its own.
//
// Usage:
//
//	edge-agent -pin certs/collector.pem -generate 100000 -rate 5000 -state agent.state
//	edge-agent -ca ca.pem -addr collector.example:7450 -tail /var/log/app.log -state app.state \
//	    -cert agent.pem -key agent-key.pem
//
// Flags:
//
//	-addr ADDR         collector address (127.0.0.1:7450); a comma-separated
//	                   list for a fleet that shares its resume state (such
//	                   as collectors with -jetstream): the stream tries them
//	                   in order and moves on when one is unreachable or
//	                   refuses (quicrecord.FailoverDial)
//	-pin PIN           trust exactly the collector key PIN names: its
//	                   fingerprint (sha256:…, as -gencert prints it) or a
//	                   certificate file (PEM) holding the key
//	-ca FILE           or trust certificates signed by these CAs (PEM)
//	-server-name NAME  with -ca, the name to verify (default: the host
//	                   of -addr)
//	-cert, -key FILE   client certificate for a collector with -client-ca
//	-tail PATH         follow PATH like tail -F (truncation and replacement
//	                   start the file over)
//	-generate N        or send N generated records, then exit
//	-rate R            with -generate: records per second (1000; 0: no limit)
//	-state PATH        resume key and position, kept across runs
//	-scope S           stream scope (telemetry)
//	-name NAME         agent name, in the metadata and the records (hostname)
//	-idle-timeout D    QUIC idle timeout: how long a silent collector takes
//	                   to count as gone (30s)
//	-min-backoff D     first reconnection delay (quicrecord.DefaultMinBackoff, 100ms), doubling up to
//	-max-backoff D     (quicrecord.DefaultMaxBackoff, 10s), with jitter
//	-progress D        progress line on stderr (1s; 0: none)
//	-checkpoint D      state file update interval (250ms)
//	-drain-timeout D   how long to wait at exit for the collector (30s)
//	-compression C     batch compression: auto (the default: S2, skipping
//	                   data that does not shrink), s2, zstd (smaller, more
//	                   CPU: slow or metered links) or off
//	-migrate-addr A    local address of the socket the connection moves to
//	                   on SIGHUP (any address, a new port when empty)
//	-migrate-after D   also move it once, D after the start (0: only on SIGHUP)
//
// Reconnections use 0-RTT (quicrecord.FailoverDialEarly): the resume
// HELLO, and behind it the records held across the lost connection (an
// optimistic resume, with a collector that offers it), ride in the first
// flight of every connection after the first, which saves the TLS and
// the HELLO round trips (the collector allows 0-RTT; see the README for
// why a replay of it is harmless). When the network changes
// under the agent (Wi-Fi to cellular), SIGHUP moves the live connection
// to a new socket by QUIC path probing: no reconnection, no replay; a path
// that does not answer within 5 s leaves the connection where it was.
//
// The collector is always verified: by its key with -pin (package
// identity: the handshake fails unless the collector proves it holds the
// pinned key; names and dates are not checked), or by its certificate
// chain and name with -ca. A TLS failure is not retried.
//
// # What it prints
//
// Connection events and a progress line on stderr (records sent, the last
// seq the collector applied, records retained for resending, resumes,
// replayed records, duplicates dropped, time disconnected), and at exit a
// summary on stdout from ResumableStream.Snapshot: records sent and
// acknowledged, connections and resumes, records replayed after
// reconnections, records dropped because the collector already had them,
// the time spent disconnected, and the compression ratio of what the stream
// sent on its last connection (record bytes before and after compression,
// batches compressed; a collector that does not accept compression gets
// plain batches, ratio 1.00x). That time counts from when the loss
// was noticed: after a collector dies silently (SIGKILL, a pulled cable)
// the agent notices only at the QUIC idle timeout, and -idle-timeout
// trades quick detection for keep-alive traffic.
//
// # Exit
//
// When -generate is done, or on SIGINT or SIGTERM, the agent stops
// reading, calls Barrier — a durability point: it returns once the
// collector applied everything sent, across reconnections — then Close,
// saves the state and prints the summary. A second signal exits at once.
// Stopped before it ever reached the collector, it prints the summary
// (nothing sent) and exits 0 as well.
//
// # The state file
//
// JSON: the resume key (hex), the last seq the collector acknowledged,
// and with -tail the file offset right after that record's line. It is
// written at start (so even an agent killed at once keeps its key), every
// -checkpoint and at exit. A restarted agent reopens the stream with the
// same key starting after that seq, re-reading the file from that offset
// (or regenerating the same records: generated record n is a function of
// -name and n).
//
// An agent killed while records were in flight can leave the collector
// ahead of its state file. The restarted agent continues anyway: the
// collector reports the last seq it applied, and the records the agent
// regenerates (or re-reads) up to it are dropped instead of sent, counted
// as "duplicates dropped" in the summary.
//
// # Limitations
//
// The records of a tailed file are identified by their position in this
// agent's stream: if the file is rewritten (not appended to) under the
// same state file, the agent cannot tell, and the collector receives the
// new content under sequence numbers it has already seen, which it drops.
// Remove the state file when the source changes.
package main
