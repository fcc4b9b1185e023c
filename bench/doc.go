// Package bench holds the recordmux benchmark suite: Go benchmarks of
// throughput and ping-pong latency for recordmux, its baselines and the
// alternatives (grpc-go, yamux, smux), and, in its subpackages, the suite
// behind the recordbench command.
//
// # Usage
//
//	go test -run '^$' -bench . ./bench/                     # everything
//	go test -run '^$' -bench 'Throughput/64B' ./bench/      # 64 B records, all stream counts, all transports
//	go test -run '^$' -bench 'PingPong' -benchtime 5000x ./bench/
//	go run ./bench/cmd/recordbench                          # the full suite with tables and charts
//
// Benchmark names end in the transport, so one size and stream count of
// every transport print side by side:
//
//	BenchmarkThroughput/1KiB/1stream/recordmux
//	BenchmarkThroughput/1KiB/1stream/raw
//	BenchmarkThroughput/1KiB/1stream/framer
//	…
//	BenchmarkThroughput/1KiB/1stream/smux
//
// # Transports
//
// recordmux, raw, framer, mux, grpc, yamux and smux, as described in
// bench/internal/transport and bench/README.md. Both ends run in the
// benchmark's process over 127.0.0.1, so allocations and CPU count both
// ends.
//
// # Limitations
//
// Throughput benchmarks use b.N rather than b.Loop: the transfer is one
// pipelined stream whose drain (the wait until the last record is
// applied) belongs in the timing, and b.Loop would stop the timer before
// it. Absolute figures drift by tens of percent on shared machines;
// compare transports within one run.
package bench
