// Command recordbench runs the recordmux benchmark suite on loopback
// (127.0.0.1) and compares recordmux with raw quic-go and a hand-written
// framer in the same process, interleaving their repetitions.
//
// Usage:
//
//	go run ./bench/cmd/recordbench [flags]
//
// With no flags it runs every case (throughput, pingpong, paced, backlog,
// many-streams, hol) in about a minute on two cores, prints progress to
// stderr and a table to stdout. Useful flags:
//
//	-cases throughput,latency    run only these cases ("latency" = pingpong and paced)
//	-sizes 64B,1KiB -streams 1,10
//	-duration 500ms | -volume 256MiB
//	-reps 5 -heavy-reps 3
//	-flush-delay 100us -max-batch-records 1024 -max-batch-bytes 32KiB -ack-delay 500us
//	-json results.jsonl -plot charts/
//	-cpuprofile cpu.out
//
// Run it with -h for every flag. See bench/README.md for what each case
// measures and how to read the figures.
package main
