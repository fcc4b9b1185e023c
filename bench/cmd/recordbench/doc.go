// Command recordbench runs the recordmux benchmark suite: recordmux
// against raw quic-go, a hand-written framer, a single-QUIC-stream mux,
// grpc-go, yamux and smux, in the same run, interleaving their
// repetitions.
//
// Usage:
//
//	recordbench [run] [flags]                        every case, both ends in this process (127.0.0.1)
//	recordbench serve -listen HOST:PORT              the server end of a two-host run
//	recordbench run -connect HOST:PORT -pin SHA256   the cases against that server
//	recordbench compare [flags] OLD.jsonl NEW.jsonl  median changes, min–max overlap, a CI gate
//
// With no flags it runs every case (throughput, pingpong, paced,
// loaded-latency, backlog, many-streams, hol) in process, shows a progress
// bar on stderr when stderr is a terminal, and prints a table per case on
// stdout. Useful flags of run:
//
//	-cases throughput,latency    only these cases ("latency" = pingpong, paced, loaded-latency)
//	-transports recordmux,grpc   only these transports
//	-sizes 64B,1KiB -streams 1,10
//	-duration 500ms | -volume 256MiB
//	-reps 5 -heavy-reps 3
//	-json results.jsonl -plot charts/
//	-v                           one line per repetition
//
// "recordbench serve" makes an in-memory TLS identity and prints its
// SHA-256 public-key fingerprint; "run -connect" pins it with -pin.
//
// See bench/README.md for what each case and transport measures, the JSON
// fields, and how to read the figures.
package main
