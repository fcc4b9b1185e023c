// Package suite is the recordmux benchmark suite behind the recordbench
// command and the Go benchmarks in bench/: it runs each case for every
// transport of bench/internal/transport, interleaving the repetitions of
// the transports so that drift on a shared machine hits them alike, and
// reports medians with their range as tables, JSON lines and charts.
//
// # Usage
//
// In process (both ends here, on 127.0.0.1):
//
//	opts := suite.DefaultOptions()
//	opts.Cases = []string{suite.CaseThroughput}
//	rep, err := suite.Run(ctx, opts)
//	err = suite.WriteTable(os.Stdout, rep)
//	err = suite.WriteJSONLines(f, rep.Results)
//	files, err := suite.WriteCharts("charts", rep)
//
// Across two hosts, the server end runs `recordbench serve` ([Listen] and
// [Server.Serve]) and the client connects to it:
//
//	env, err := suite.Connect(ctx, "server:7600", pin, opts.Transport)
//	rep, err := suite.RunIn(ctx, env, opts)
//
// Every repetition starts a fresh server end (a [Sink], in this process
// or on the server) and a fresh connection to it. [Compare] and
// [Regressions] compare two runs' JSON lines.
//
// # What is measured
//
//   - throughput: records of one size on 1, 10 or 100 streams of one
//     connection, from the first Send until every stream's last record is
//     acknowledged as applied.
//   - pingpong: one 256-byte record, then wait until it is applied.
//   - paced: 256-byte records at a fixed rate (10,000/s); latency from
//     the start of each Send until the record is known applied; how late
//     each Send started against the schedule is reported as lag.
//   - loaded-latency: the same latency with a flat-out sender, for
//     recordmux's default Config, its fixed windows of 1024 and 32768
//     records, and the others.
//   - backlog: the server applies slower than the producer offers, then at
//     full speed; samples records in flight and the heap.
//   - many-streams: N concurrent streams on one connection; heap and
//     goroutines per stream (both ends), open and close rates, one round.
//   - hol: a bulk stream and a paced latency stream over a simulated lossy
//     link (quic-go's simnet); in process only, QUIC transports only.
//
// Latency probes: see latency.go. In process, allocations and CPU count
// both ends of the connection; in a two-host run they count the client,
// and the server reports its own CPU time and peak heap per repetition.
//
// # Concurrency
//
// A run is sequential: one repetition at a time. A [Server] serves one
// client at a time.
//
// # Limitations
//
// The hol case cannot run across two hosts, and cannot run the TCP
// transports (simnet carries UDP only): the mux transport, every stream
// on one QUIC stream, stands in for their head-of-line blocking. Figures
// on a shared machine vary by tens of percent between runs: compare
// transports within one run and look at the min–max ranges.
package suite
