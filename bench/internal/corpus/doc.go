// Package corpus generates the deterministic record corpora of the
// benchmark suite: telemetry (structured JSON log, metric and event lines
// from a simulated fleet of 48 hosts) and incompressible (random bytes of
// the same sizes). A kind and a seed give the same records on every
// machine and run (math/rand/v2's PCG source; TestGolden pins the bytes),
// so compression ratios and wire bytes per record compare across runs and
// hosts.
//
// # Usage
//
//	g := corpus.New(corpus.Telemetry, 1)
//	for range n {
//		rec = g.Append(rec[:0]) // 200–1,500 bytes
//		send(rec)
//	}
//
//	batches := corpus.Batches(corpus.Telemetry, 1, 64<<10, 64) // record sections, as a BATCH carries them
//
// # The telemetry corpus
//
// Each record is one JSON object: an HTTP access line (45 %), an
// application log line (20 %), a counter, gauge or histogram sample (20 %),
// a platform event (8 %) or an error with a Go stack trace (7 %). Every
// line carries a microsecond timestamp that advances by about 2 ms per
// line, a line number, the host, its service and pid, and a label set
// (region, zone, environment, version) fixed per host. Lines are 231 to
// 1,500 bytes long, half of them under 520 bytes. Much of each line
// repeats (keys, vocabulary, a host's labels); the rest is what a codec
// cannot predict: trace and span ids in hex, timestamps, durations, byte
// counts, object ids. That mix gives ratios like real log streams': in
// 64 KiB batches S2 shrinks the corpus about 3.3 times and zstd (fastest)
// about 4.9 times; zstd gains more because its entropy coding packs hex
// digits into about 4 bits, which S2's byte-oriented LZ77 cannot.
//
// # Concurrency
//
// A [Generator] is used by one goroutine; generators are independent.
package corpus
