// Package examples holds runnable example programs for recordmux, one
// directory each, and the API tour (tour_test.go). See README.md here.
//
//   - quickstart: a listener and a client in one process; throughput,
//     latency and the diagnostics table.
//   - collector: a standalone server that writes records durably to a
//     sink and acknowledges them only then.
//   - edge-agent: tails a file or generates telemetry, and streams it to
//     the collector over a resumable stream that survives restarts.
//   - latency-service: request/response over record streams under a paced
//     load, and when (not) to call Barrier.
package examples
