// Package bench holds the recordmux benchmark suite: Go benchmarks of
// throughput and ping-pong latency for recordmux and its baselines, and,
// in its subpackages, the suite behind the recordbench command.
//
// # Usage
//
//	go test -run '^$' -bench . ./bench/                     # everything
//	go test -run '^$' -bench 'Throughput/64B' ./bench/      # 64 B records, all stream counts, all transports
//	go test -run '^$' -bench 'PingPong' -benchtime 5000x ./bench/
//	go run ./bench/cmd/recordbench                          # the full suite with tables and charts
//
// Benchmark names end in the transport, so one size and stream count of
// the three transports print side by side:
//
//	BenchmarkThroughput/1KiB/1stream/recordmux
//	BenchmarkThroughput/1KiB/1stream/raw
//	BenchmarkThroughput/1KiB/1stream/framer
//
// # Transports
//
//   - recordmux: quicrecord, the system under test, through its public
//     API (Listen, Dial, OpenRecordStream, Send, Barrier, Apply).
//   - raw: plain quic-go streams. For throughput a byte-stream ceiling:
//     the bytes the framed records would occupy, written in 64 KiB chunks
//     and read into a 64 KiB buffer, with a one-byte reply at the end.
//     For ping-pong an echo of the record.
//   - framer: bench/internal/framer, the hand-written baseline:
//     length-prefixed records and cumulative acks on a raw quic-go stream.
//
// All three use the same quic-go configuration
// (quicrecord.DefaultQUICConfig) over UDP on 127.0.0.1, one QUIC stream
// per logical stream; both ends run in the benchmark's process, so
// allocations and CPU count both ends.
//
// # Limitations
//
// Throughput benchmarks use b.N rather than b.Loop: the transfer is one
// pipelined stream whose drain (the wait until the last record is
// applied) belongs in the timing, and b.Loop would stop the timer before
// it. Absolute figures drift by tens of percent on shared machines;
// compare transports within one run.
package bench
