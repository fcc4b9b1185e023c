package quicrecord

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord/diag"
)

// randomSnapshots returns n snapshots with random counters, states,
// versions and keys; about a third have no backlog or nothing in flight.
func randomSnapshots(rng *rand.Rand, n int) []RecordSnapshot {
	snaps := make([]RecordSnapshot, n)
	states := []StreamState{StateOpen, StateOpen, StateOpen, StateClosed, StateFailed}
	for i := range snaps {
		s := &snaps[i]
		u := func(max uint64) uint64 { return rng.Uint64N(max) }
		zeroish := func(max uint64) uint64 {
			if rng.IntN(3) == 0 {
				return 0
			}
			return 1 + u(max)
		}
		s.Identity = StreamIdentity{
			Scope: []string{"orders", "audit", ""}[rng.IntN(3)], Conn: u(4), StreamID: StreamID(4 * u(1000)),
			DataID: uint64(i), Role: Role(1 + rng.IntN(2)), Version: 1 + u(2),
		}
		s.Status.State = states[rng.IntN(len(states))]
		s.Out = diag.OutStats{TrafficTotals: diag.TrafficTotals{Records: u(1e6), Bytes: u(1e9), Batches: u(1e4)}, InFlightRecords: zeroish(100), InFlightBytes: u(1e5)}
		s.In = diag.InStats{
			TrafficTotals: diag.TrafficTotals{Records: u(1e6), Bytes: u(1e9), Batches: u(1e4)}, BacklogRecords: zeroish(100), BacklogBytes: u(1e5),
			BacklogPeakRecords: u(1e3), BacklogPeakBytes: u(1e6),
		}
		s.FramesOut = diag.FrameCounts{Hello: 1, Batch: u(1e4), Ack: u(1e3), Error: u(10), Unknown: u(3)}
		s.FramesIn = diag.FrameCounts{Hello: 1, Batch: u(1e4), Ack: u(1e3), Error: u(10), Unknown: u(3)}
		s.Acks = diag.AckStats{PiggybackedOut: u(1e3), StandaloneOut: u(1e3), PiggybackedIn: u(1e3), StandaloneIn: u(1e3)}
		s.Barrier = diag.BarrierStats{
			Calls: u(100), FlushWaitTotal: time.Duration(u(1e9)), FlushWaitMax: time.Duration(u(1e8)),
			AckWaitTotal: time.Duration(u(1e9)), AckWaitMax: time.Duration(u(1e8)),
		}
		s.Errors = diag.ErrorStats{RejectedByPeer: u(10), RejectedLocally: u(10), ProtocolViolations: u(2)}
		before := u(1e9)
		s.Compression = diag.CompressionStats{
			Out: diag.CompressionTotals{Compressed: u(1e4), BytesBefore: before, BytesAfter: before / (1 + u(5)), CodecTime: time.Duration(u(1e9))},
			In:  diag.CompressionTotals{Compressed: u(1e4), BytesBefore: before, BytesAfter: before, CodecTime: time.Duration(u(1e9))},
		}
	}
	return snaps
}

// TestSummarizeTotals: every total is the sum of the snapshots' fields,
// maxima are maxima, and streams are counted by state and version.
func TestSummarizeTotals(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 500} {
		snaps := randomSnapshots(rng, n)
		d := Summarize(snaps, nil)
		out, in, fo, fi, acks, bar, errs, inflight, backlog := sumSnapshots(snaps)
		require.Equal(t, out, d.Out)
		require.Equal(t, in, d.In)
		require.Equal(t, fo, d.FramesOut)
		require.Equal(t, fi, d.FramesIn)
		require.Equal(t, acks, d.Acks)
		require.Equal(t, bar, d.Barrier)
		require.Equal(t, errs, d.Errors)
		require.Equal(t, inflight, d.InFlight)
		require.Equal(t, backlog, d.Backlog)
		var z diag.CompressionStats
		for _, s := range snaps {
			z.Out.Compressed += s.Compression.Out.Compressed
			z.Out.BytesBefore += s.Compression.Out.BytesBefore
			z.Out.BytesAfter += s.Compression.Out.BytesAfter
			z.Out.CodecTime += s.Compression.Out.CodecTime
			z.In.Compressed += s.Compression.In.Compressed
			z.In.BytesBefore += s.Compression.In.BytesBefore
			z.In.BytesAfter += s.Compression.In.BytesAfter
			z.In.CodecTime += s.Compression.In.CodecTime
		}
		require.Equal(t, z, d.Compression)

		var peak diag.Volume
		states := map[StreamState]int{}
		versions := map[uint64]int{}
		for _, s := range snaps {
			peak.Records = max(peak.Records, s.In.BacklogPeakRecords)
			peak.Bytes = max(peak.Bytes, s.In.BacklogPeakBytes)
			states[s.Status.State]++
			versions[s.Identity.Version]++
		}
		require.Equal(t, peak, d.BacklogPeak)
		require.Equal(t, n, d.Streams.Total)
		require.Equal(t, states[StateOpen], d.Streams.Open)
		require.Equal(t, states[StateClosed], d.Streams.Closed)
		require.Equal(t, states[StateFailed], d.Streams.Failed)
		var byVersion []diag.VersionCount
		for _, v := range slices.Sorted(func(yield func(uint64) bool) {
			for v := range versions {
				if !yield(v) {
					return
				}
			}
		}) {
			byVersion = append(byVersion, diag.VersionCount{Version: v, Streams: versions[v]})
		}
		require.Equal(t, append([]diag.VersionCount{}, byVersion...), d.Streams.ByVersion)
		checkTop(t, snaps, d.TopBacklog, defaultTopN, func(s *RecordSnapshot) (uint64, uint64) {
			return s.In.BacklogRecords, s.In.BacklogBytes
		})
		checkTop(t, snaps, d.TopInFlight, defaultTopN, func(s *RecordSnapshot) (uint64, uint64) {
			return s.Out.InFlightRecords, s.Out.InFlightBytes
		})
	}
}

// checkTop compares a top list with the first n of all non-zero streams
// sorted by (records desc, bytes desc, key asc).
func checkTop(t *testing.T, snaps []RecordSnapshot, got []StreamLoad, n int, load func(*RecordSnapshot) (uint64, uint64)) {
	t.Helper()
	var want []StreamLoad
	for i := range snaps {
		s := &snaps[i]
		r, b := load(s)
		if r == 0 {
			continue
		}
		id := s.Identity
		want = append(want, StreamLoad{Scope: id.Scope, Conn: id.Conn, StreamID: id.StreamID, DataID: id.DataID, Role: id.Role, Records: r, Bytes: b})
	}
	slices.SortFunc(want, func(a, b StreamLoad) int {
		switch {
		case a.Records != b.Records:
			return -compareU64(a.Records, b.Records)
		case a.Bytes != b.Bytes:
			return -compareU64(a.Bytes, b.Bytes)
		}
		return compareKeys(a.key(), b.key())
	})
	want = want[:min(n, len(want))]
	require.Equal(t, append([]StreamLoad{}, want...), got)
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestSummarizeTopN: the lists are ordered by records, then bytes, then
// key; streams with nothing are left out; TopN sets the length.
func TestSummarizeTopN(t *testing.T) {
	backlog := []struct {
		scope   string
		records uint64
		bytes   uint64
	}{
		{"a", 5, 50}, {"b", 9, 10}, {"c", 0, 0}, {"d", 9, 90}, {"e", 3, 30}, {"f", 7, 70}, {"g", 1, 10}, {"h", 9, 10},
	}
	var snaps []RecordSnapshot
	for i, b := range backlog {
		var s RecordSnapshot
		s.Identity = StreamIdentity{Scope: b.scope, StreamID: StreamID(4 * i), Role: RoleAcceptor, Version: 2}
		s.Status.State = StateOpen
		s.In.BacklogRecords, s.In.BacklogBytes = b.records, b.bytes
		snaps = append(snaps, s)
	}
	// Shuffling the input changes nothing.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10 {
		rng.Shuffle(len(snaps), func(i, j int) { snaps[i], snaps[j] = snaps[j], snaps[i] })
		scopes := func(ls []StreamLoad) string {
			var b strings.Builder
			for _, l := range ls {
				b.WriteString(l.Scope)
			}
			return b.String()
		}
		require.Equal(t, "dbhfa", scopes(Summarize(snaps, nil).TopBacklog), "default five")
		require.Equal(t, "dbh", scopes(Summarize(snaps, &diag.Options{TopN: 3}).TopBacklog))
		require.Equal(t, "dbhfaeg", scopes(Summarize(snaps, &diag.Options{TopN: 100}).TopBacklog), "zero backlog left out")
		require.Empty(t, Summarize(snaps, &diag.Options{TopN: -1}).TopBacklog)
		require.Empty(t, Summarize(snaps, nil).TopInFlight)
	}
	top := Summarize(snaps, &diag.Options{TopN: 1}).TopBacklog
	require.Equal(t, []StreamLoad{{Scope: "d", StreamID: 12, Role: RoleAcceptor, Records: 9, Bytes: 90}}, top)
	require.Equal(t, streamKey{scope: "d", id: 12}, top[0].key())
}

// goldenSnapshots are four streams with round numbers, for the table.
func goldenSnapshots() []RecordSnapshot {
	mk := func(scope string, conn uint64, id StreamID, data uint64, role Role, v uint64, st StreamState) RecordSnapshot {
		return RecordSnapshot{Identity: StreamIdentity{Scope: scope, Conn: conn, StreamID: id, DataID: data, Role: role, Version: v}, Status: StreamStatus{State: st}}
	}
	a := mk("orders", 1, 0, 7, RoleAcceptor, 2, StateOpen)
	a.In = diag.InStats{TrafficTotals: diag.TrafficTotals{Records: 120000, Bytes: 7_680_000, Batches: 1500}, BacklogRecords: 300, BacklogBytes: 19200, BacklogPeakRecords: 4096, BacklogPeakBytes: 262144}
	a.Out = diag.OutStats{TrafficTotals: diag.TrafficTotals{Records: 2000, Bytes: 64000, Batches: 400}}
	a.FramesIn = diag.FrameCounts{Hello: 1, Batch: 1500, Ack: 10, Unknown: 2}
	a.FramesOut = diag.FrameCounts{Hello: 1, Batch: 400, Ack: 1100, Error: 3, Window: 2}
	a.Acks = diag.AckStats{PiggybackedOut: 390, StandaloneOut: 1100, PiggybackedIn: 395, StandaloneIn: 10}
	a.Errors = diag.ErrorStats{RejectedLocally: 3}

	b := mk("orders", 1, 4, 8, RoleOpener, 2, StateOpen)
	b.Out = diag.OutStats{TrafficTotals: diag.TrafficTotals{Records: 50000, Bytes: 52_428_800, Batches: 800}, InFlightRecords: 12, InFlightBytes: 12288}
	b.In = diag.InStats{TrafficTotals: diag.TrafficTotals{Records: 10, Bytes: 100, Batches: 2}}
	b.FramesOut = diag.FrameCounts{Hello: 1, Batch: 800, Ack: 2}
	b.FramesIn = diag.FrameCounts{Hello: 1, Batch: 2, Ack: 700, Error: 1, Window: 2}
	b.Window = diag.WindowStats{Records: 2048, Bytes: 512 << 10, RecordsPerSec: 125000, BytesPerSec: 128_000_000,
		MinAckDelay: 180 * time.Microsecond, QueueDelay: 1900 * time.Microsecond}
	b.Acks = diag.AckStats{PiggybackedOut: 0, StandaloneOut: 2, PiggybackedIn: 2, StandaloneIn: 700}
	b.Barrier = diag.BarrierStats{Calls: 40, FlushWaitTotal: 12 * time.Millisecond, FlushWaitMax: 1500 * time.Microsecond,
		AckWaitTotal: 1234567 * time.Microsecond, AckWaitMax: 98765 * time.Microsecond}
	b.Errors = diag.ErrorStats{RejectedByPeer: 1}
	b.Compression.Out = diag.CompressionTotals{Compressed: 790, BytesBefore: 52_480_000, BytesAfter: 15_904_000, CodecTime: 61234 * time.Microsecond}
	b.Compression.In = diag.CompressionTotals{BytesBefore: 110, BytesAfter: 110}

	c := mk("audit", 2, 0, 1, RoleAcceptor, 1, StateOpen)
	c.In = diag.InStats{TrafficTotals: diag.TrafficTotals{Records: 40, Bytes: 4000, Batches: 40}, BacklogRecords: 40, BacklogBytes: 4000, BacklogPeakRecords: 40, BacklogPeakBytes: 4000}
	c.FramesIn = diag.FrameCounts{Hello: 1, Batch: 40}
	c.FramesOut = diag.FrameCounts{Hello: 1}
	c.Errors = diag.ErrorStats{ProtocolViolations: 1}

	d := mk("audit", 2, 8, 2, RoleOpener, 1, StateFailed)
	d.Out = diag.OutStats{TrafficTotals: diag.TrafficTotals{Records: 5, Bytes: 500, Batches: 1}, InFlightRecords: 5, InFlightBytes: 500}
	d.FramesOut = diag.FrameCounts{Hello: 1, Batch: 1}
	d.FramesIn = diag.FrameCounts{Hello: 1}
	d.Window = diag.WindowStats{Records: 256, Bytes: 256 << 10}
	return []RecordSnapshot{a, b, c, d}
}

const goldenTable = `recordmux: 4 streams (3 open, 0 closed, 1 failed); by version: v1 2 v2 2
                       records       bytes     batches   rec/batch    rejected
out                      52005    50.1 MiB        1201        43.3           1
in                      120050    7.33 MiB        1542        77.9           3
frames                   hello       batch         ack       error      window
out                          4        1201        1102           3           2
in                           4        1542         710           1           2
acks               piggybacked  standalone   piggyback
out                        390        1102       26.1%
in                         397         710       35.9%
barrier waits            calls       total        mean         max
flush                       40        12ms       300µs       1.5ms
ack                         40      1.235s     30.86ms     98.77ms
queues                 records       bytes   peak recs  peak bytes
in-flight                   17    12.5 KiB           -           -
apply backlog              340    22.7 KiB        4096     256 KiB
send window            records       bytes       rec/s   min delay   max queue
total                     2304     768 KiB      125000       180µs       1.9ms
compression         compressed      before       after       ratio  codec time
out                        790    50.0 MiB    15.2 MiB       3.30x     61.23ms
in                           0       110 B       110 B       1.00x          0s
violations                   1
unknown frames in            2
top apply backlog      records       bytes
  1                        300    18.8 KiB  scope="orders" conn=1 stream=0 data=7 acceptor
  2                         40    3.91 KiB  scope="audit" conn=2 stream=0 data=1 acceptor
top in-flight          records       bytes
  1                         12    12.0 KiB  scope="orders" conn=1 stream=4 data=8 opener
  2                          5       500 B  scope="audit" conn=2 stream=8 data=2 opener
`

// TestDiagnosticsString checks the table against a golden copy, and that
// its layout does not depend on the values: the same rows, in the same
// order, with the same headers, whether the summary is empty or not.
func TestDiagnosticsString(t *testing.T) {
	d := Summarize(goldenSnapshots(), nil)
	require.Equal(t, goldenTable, d.String())

	labels := func(s string) []string {
		var ls []string
		for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n")[1:] {
			if strings.HasPrefix(line, "  ") {
				continue // a top-list entry
			}
			ls = append(ls, strings.Fields(line)[0])
		}
		return ls
	}
	empty := DiagnosticsSummary{}.String()
	require.Equal(t, labels(d.String()), labels(empty))
	require.Equal(t, labels(d.String()), labels(Summarize(nil, nil).String()))
	require.Contains(t, empty, "recordmux: 0 streams (0 open, 0 closed, 0 failed); by version: -\n")
	one := DiagnosticsSummary{Streams: diag.StreamCounts{Total: 1, Open: 1, ByVersion: []diag.VersionCount{{Version: 2, Streams: 1}}}}.String()
	require.True(t, strings.HasPrefix(one, "recordmux: 1 stream (1 open, 0 closed, 0 failed); by version: v2 1\n"), one)
	for _, row := range []string{"out", "in", "flush", "ack", "in-flight", "apply backlog", "violations"} {
		require.Contains(t, empty, "\n"+row+" ")
	}
	// Header rows are the same text for any values.
	for _, line := range strings.Split(empty, "\n") {
		if strings.Contains(line, "records") || strings.Contains(line, "hello") || strings.Contains(line, "calls") {
			require.Contains(t, d.String(), line+"\n")
		}
	}
	// Every row except the top-list entries fits in 80 columns.
	for _, line := range strings.Split(d.String(), "\n") {
		if !strings.HasPrefix(line, "  ") {
			require.LessOrEqual(t, len(line), 80, line)
		}
	}
}

func TestDiagnosticsRatios(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0s"}, {999, "999ns"}, {570989, "571µs"}, {11420000, "11.42ms"}, {18272000000, "18.27s"}, {time.Hour + 1, "1h0m0s"}} {
		require.Equal(t, c.want, dur(c.d))
	}
	for _, c := range []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.00 KiB"}, {1536, "1.50 KiB"}, {10 << 20, "10.0 MiB"}, {999 << 30, "999 GiB"}, {1<<64 - 1, "16.0 EiB"}} {
		require.Equal(t, c.want, bytesIEC(c.n))
	}
}

// TestDiagnosticsJSON: summaries and snapshots marshal with readable
// states, roles and durations, and read back to the same value.
func TestDiagnosticsJSON(t *testing.T) {
	d := Summarize(goldenSnapshots(), nil)
	b, err := json.Marshal(d)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"streams", "out", "in", "frames_out", "frames_in", "acks", "barrier", "errors", "in_flight", "backlog", "backlog_peak", "top_backlog", "top_in_flight"} {
		require.Contains(t, m, k)
	}
	bar := m["barrier"].(map[string]any)
	require.Equal(t, "1.234567s", bar["ack_wait_total"])
	require.Equal(t, "30.864175ms", bar["ack_wait_mean"])
	require.Equal(t, "300µs", bar["flush_wait_mean"])
	require.Equal(t, float64(40), bar["calls"])
	top := m["top_backlog"].([]any)[0].(map[string]any)
	require.Equal(t, "acceptor", top["role"])
	require.Equal(t, "orders", top["scope"])
	require.Equal(t, []any{map[string]any{"version": float64(1), "streams": float64(2)}, map[string]any{"version": float64(2), "streams": float64(2)}},
		m["streams"].(map[string]any)["by_version"])

	var back DiagnosticsSummary
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, d, back)

	// An empty summary has empty lists, not nulls.
	b, err = json.Marshal(Summarize(nil, nil))
	require.NoError(t, err)
	require.Contains(t, string(b), `"top_backlog":[]`)
	require.Contains(t, string(b), `"by_version":[]`)

	snap := goldenSnapshots()[3]
	snap.Status.Cause = "quicrecord: stream 8: remote error 0x100"
	snap.Identity.OpenedAt = time.Unix(1700000000, 123).UTC()
	snap.Status.LastActivity = time.Unix(1700000060, 0).UTC()
	snap.Identity.RemoteAddr = "127.0.0.1:4242"
	b, err = json.Marshal(snap)
	require.NoError(t, err)
	require.Contains(t, string(b), `"state":"failed"`)
	require.Contains(t, string(b), `"role":"opener"`)
	require.Contains(t, string(b), `"opened_at":"2023-11-14T22:13:20.000000123Z"`)
	var sback RecordSnapshot
	require.NoError(t, json.Unmarshal(b, &sback))
	require.Equal(t, snap, sback)

	var st StreamState
	require.Error(t, st.UnmarshalText([]byte("bogus")))
	var r Role
	require.Error(t, r.UnmarshalText([]byte("bogus")))
	require.Error(t, json.Unmarshal([]byte(`{"flush_wait_total":"soon"}`), &diag.BarrierStats{}))
}

// TestSnapshotResumedStreamCounts: a stream that resumes at sequence
// number 100 counts only its own records in Out.Records (so sums over
// streams and the Prometheus counters do not count the earlier streams'
// records again), while LastSeq, AckedSeq and the in-flight gauge follow
// the sequence numbers.
func TestSnapshotResumedStreamCounts(t *testing.T) {
	s := &RecordStream{conn: &Conn{}, info: streamInfo{role: RoleOpener}}
	s.neg.Store(&Negotiated{})
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	defer s.cancel(nil)
	s.setBases(100, 0)
	snap := s.Snapshot()
	require.Zero(t, snap.Out.Records)
	require.Equal(t, uint64(100), snap.Out.LastSeq)
	require.Equal(t, uint64(100), snap.Out.AckedSeq)
	require.Zero(t, snap.Out.InFlightRecords)

	// Three records of 10 bytes taken by the writer.
	s.smu.Lock()
	s.snd.nextSeq += 3
	s.snd.sentBytes += 30
	s.publishSendLocked()
	s.smu.Unlock()
	snap = s.Snapshot()
	require.Equal(t, uint64(3), snap.Out.Records)
	require.Equal(t, uint64(30), snap.Out.Bytes)
	require.Equal(t, uint64(103), snap.Out.LastSeq)
	require.Equal(t, uint64(3), snap.Out.InFlightRecords)
	require.Equal(t, uint64(30), snap.Out.InFlightBytes)
}
