// Package diag holds the measurement types of quicrecord's diagnostics:
// the per-direction statistics of a stream ([OutStats], [InStats]), the
// cumulative counters that add up across streams ([Counters] and its
// parts), and the pieces of a summary ([StreamCounts], [Volume],
// [Options]). They are plain values; quicrecord.RecordSnapshot and
// quicrecord.DiagnosticsSummary are made of them, and
// quicrecord.Summarize takes an *Options.
//
// # Usage
//
//	snap := stream.Snapshot()
//	fmt.Println(snap.Out.AckedSeq, snap.In.BacklogRecords)
//	var total diag.Counters
//	for _, s := range conn.Snapshots() {
//		c := s.Counters()
//		total.Add(&c)
//	}
//
// # Units
//
// Counts are plain numbers; bytes are record payload bytes (excluding
// framing); durations are time.Duration and marshal to JSON as Go
// duration strings ("1.5ms"). Fields documented as counters only grow;
// gauges are the value at the snapshot.
//
// # Concurrency
//
// The types are values with no shared state; the functions are safe for
// concurrent use.
package diag
