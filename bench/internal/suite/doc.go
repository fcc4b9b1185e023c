// Package suite is the recordmux benchmark suite behind the recordbench
// command and the Go benchmarks in bench/: it runs each case for
// recordmux and its baselines in one process, interleaving the
// repetitions of the transports (recordmux, raw, framer, recordmux, …) so
// that drift on a shared machine hits them alike, and reports medians
// with their range, tables, JSON lines and SVG charts.
//
// # Usage
//
//	opts := suite.DefaultOptions()
//	opts.Cases = []string{suite.CaseThroughput}
//	rep, err := suite.Run(ctx, opts)
//	err = suite.WriteTable(os.Stdout, rep)
//	err = suite.WriteJSONLines(f, rep.Results)
//	files, err := suite.WritePlots("charts", rep)
//
// [NewThroughput] and [NewPingPong] expose single transfers for Go
// benchmarks.
//
// # What is measured
//
//   - throughput: records of one size on 1, 10 or 100 streams of one
//     connection, timed from the first Send to the moment every stream's
//     last record is known to be applied (recordmux: Barrier; framer:
//     WaitAcked of the last record; raw: the receiver read everything and
//     replied with one byte). raw is a byte-stream ceiling: it writes the
//     bytes the framed records occupy in 64 KiB chunks.
//   - pingpong: one 256-byte record, then wait until it is applied
//     (raw: echoed).
//   - paced: 256-byte records at a fixed rate (10,000/s); latency runs
//     from the start of each Send call to when the record is known to be
//     applied. The pacer (bench/internal/pace) sleeps coarsely, then with
//     nanosleep; how late each Send started against the schedule is
//     reported as lag. Applied times come from probe goroutines (see
//     latency.go) calling WaitAcked, for recordmux and the framer alike;
//     raw uses each echo's arrival.
//   - backlog: the consumer applies slower than the producer offers, then
//     at full speed; samples every few ms of records sent but not
//     applied, in flight, recordmux's apply backlog, and the live heap
//     (forced GC every 100 ms, both ends, above a post-setup baseline).
//   - many-streams: N concurrent streams on one connection; heap and
//     goroutines per stream (both ends), open and close rates, and one
//     round of one record per stream.
//   - hol: a bulk stream and a paced latency stream over a simulated
//     lossy link (quic-go's simnet, real time outside testing/synctest);
//     recordmux and the framer use one QUIC stream each, the mux
//     (bench/internal/mux) both on ONE QUIC stream.
//
// Allocations and CPU (cpu_cores = process CPU time / wall time) count
// both ends of the connection and quic-go, since all run in one process.
//
// # Concurrency
//
// Run is sequential: one run at a time, each on fresh connections, after
// a garbage collection.
//
// # Limitations
//
// Loopback only (127.0.0.1) apart from the simulated link. Figures on a
// machine shared with other work vary by tens of percent between runs;
// compare transports within one run and look at the min–max ranges.
package suite
