package quicrecord

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recordmux/recordmux/quicrecord/diag"
)

// DiagnosticsSummary is a point-in-time summary of a set of record
// streams: the live streams of a [Conn] or a [Listener] ([Conn.Diagnostics],
// [Listener.Diagnostics]), or any snapshots passed to [Summarize]. It is a
// value: nothing in it changes after it is returned.
//
// Counter totals (records, bytes, batches, frames, acks, barrier calls and
// waits, rejections, violations) are sums over the streams summarised, so
// they cover the streams' whole lives but only of the streams that are
// still registered: when a stream ends and detaches, its counts leave the
// totals and move to [Conn.EndedDiagnostics] (or
// [Listener.EndedDiagnostics]), so Diagnostics plus EndedDiagnostics
// covers every stream ever registered; package quicrecord/promrecord
// exports that sum as Prometheus counters.
//
// Gauges (in-flight, apply backlog) are sums of the values at the
// snapshots; peaks and barrier maxima are the largest of any one stream.
//
// The JSON form uses snake_case keys, states and roles as text, and
// durations as Go duration strings ("1.5ms"); [DiagnosticsSummary.String]
// prints a fixed table for people.
type DiagnosticsSummary struct {
	// Streams counts the streams summarised by state and by protocol
	// version.
	Streams diag.StreamCounts `json:"streams"`
	// Counters total the streams' counters (Out, In, FramesOut, FramesIn,
	// Acks, Barrier, Errors): the sum of their [RecordSnapshot.Counters].
	diag.Counters
	// InFlight is what this side sent and the peers have not yet
	// acknowledged as applied (gauge).
	InFlight diag.Volume `json:"in_flight"`
	// Backlog is what this side received and its application has not yet
	// applied (gauge); BacklogPeak the largest peak of any one stream.
	Backlog     diag.Volume `json:"backlog"`
	BacklogPeak diag.Volume `json:"backlog_peak"`
	// Window totals the streams' send windows and delivery rates, with
	// the smallest estimated minimum ack delay and the largest queueing
	// delay of any one stream (gauges).
	Window diag.WindowTotals `json:"window"`
	// TopBacklog lists the streams with the largest apply backlog in
	// records, largest first; TopInFlight those with the most records in
	// flight. Streams with none are left out, so the lists may be shorter
	// than diag.Options.TopN. Ties go to the smaller stream key.
	TopBacklog  []StreamLoad `json:"top_backlog"`
	TopInFlight []StreamLoad `json:"top_in_flight"`
}

// StreamLoad names a stream and an amount it holds: its apply backlog in
// [DiagnosticsSummary.TopBacklog], its records in flight in
// [DiagnosticsSummary.TopInFlight].
type StreamLoad struct {
	Scope    string   `json:"scope"`
	Conn     uint64   `json:"conn"`
	StreamID StreamID `json:"stream_id"`
	DataID   uint64   `json:"data_id"`
	Role     Role     `json:"role"`
	Records  uint64   `json:"records"`
	Bytes    uint64   `json:"bytes"`
}

func (l *StreamLoad) key() streamKey {
	return streamKey{scope: l.Scope, conn: l.Conn, id: l.StreamID, dataID: l.DataID}
}

// defaultTopN is the length of the top lists when diag.Options.TopN is 0.
const defaultTopN = 5

func topN(o *diag.Options) int {
	if o == nil || o.TopN == 0 {
		return defaultTopN
	}
	return max(o.TopN, 0)
}

// Diagnostics summarises the connection's live streams. It reads each
// stream's atomics and never blocks a stream's loops; the cost is
// O(n log n) in the number of streams (the registry is copied and sorted).
func (c *Conn) Diagnostics() DiagnosticsSummary { return diagnosticsOf(c.streams, nil) }

// Diagnostics summarises the live streams of every connection the
// listener accepted, like [Conn.Diagnostics].
func (l *Listener) Diagnostics() DiagnosticsSummary { return diagnosticsOf(l.streams, nil) }

// diagnosticsOf summarises a registry without building full snapshots:
// live streams skip the identity fields a summary does not use (the
// remote address string, timestamps), so the pass allocates only the
// registry copy and the result.
func diagnosticsOf(r *streamRegistry, opts *diag.Options) DiagnosticsSummary {
	sm := newSummarizer(opts)
	var snap RecordSnapshot
	r.Range(func(_ streamKey, s *RecordStream) bool {
		if f := s.freeze(); f != nil {
			sm.add(f)
			return true
		}
		snap = RecordSnapshot{}
		s.fillState(&snap.Identity, &snap.Status)
		s.fillCounters(&snap)
		sm.add(&snap)
		return true
	})
	return sm.result()
}

// EndedDiagnostics summarises the streams of the connection that have
// ended and detached: their final counters, totalled since the
// connection was created, and their number by final state and version.
// Its counters only grow, and Diagnostics plus EndedDiagnostics covers
// every stream the connection ever had. Gauges and top lists are empty.
func (c *Conn) EndedDiagnostics() DiagnosticsSummary { return c.ended.summary() }

// EndedDiagnostics summarises the ended streams of every connection the
// listener accepted, like [Conn.EndedDiagnostics].
func (l *Listener) EndedDiagnostics() DiagnosticsSummary { return l.ended.summary() }

// endedTotals folds the final snapshots of detached streams into a
// summary. Written by the registry's detach hook, read by
// EndedDiagnostics.
type endedTotals struct {
	mu sync.Mutex // guards sm
	sm *summarizer
}

func (e *endedTotals) add(s *RecordSnapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sm == nil {
		e.sm = newSummarizer(&diag.Options{TopN: -1})
	}
	e.sm.add(s)
}

func (e *endedTotals) summary() DiagnosticsSummary {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sm == nil {
		return newSummarizer(&diag.Options{TopN: -1}).result()
	}
	d := e.sm.result()
	d.Streams.ByVersion = slices.Clone(d.Streams.ByVersion)
	return d
}

// Summarize computes the summary of snaps, for example the snapshots of
// several connections together. [Conn.Diagnostics] is
// Summarize(c.Snapshots(), nil), computed without the intermediate slice.
func Summarize(snaps []RecordSnapshot, opts *diag.Options) DiagnosticsSummary {
	sm := newSummarizer(opts)
	for i := range snaps {
		sm.add(&snaps[i])
	}
	return sm.result()
}

// summarizer accumulates a DiagnosticsSummary one snapshot at a time.
type summarizer struct {
	d    DiagnosticsSummary
	topN int
}

func newSummarizer(opts *diag.Options) *summarizer {
	sm := &summarizer{topN: topN(opts)}
	sm.d.Streams.ByVersion = []diag.VersionCount{}
	sm.d.TopBacklog = make([]StreamLoad, 0, sm.topN)
	sm.d.TopInFlight = make([]StreamLoad, 0, sm.topN)
	return sm
}

func (sm *summarizer) add(s *RecordSnapshot) {
	d := &sm.d
	id := &s.Identity
	d.Streams.Total++
	switch s.Status.State {
	case StateOpen:
		d.Streams.Open++
	case StateClosed:
		d.Streams.Closed++
	case StateFailed:
		d.Streams.Failed++
	}
	d.Streams.ByVersion = countVersion(d.Streams.ByVersion, id.Version)

	c := s.Counters()
	d.Counters.Add(&c)

	d.InFlight.Records += s.Out.InFlightRecords
	d.InFlight.Bytes += s.Out.InFlightBytes
	d.Backlog.Records += s.In.BacklogRecords
	d.Backlog.Bytes += s.In.BacklogBytes
	d.BacklogPeak.Records = max(d.BacklogPeak.Records, s.In.BacklogPeakRecords)
	d.BacklogPeak.Bytes = max(d.BacklogPeak.Bytes, s.In.BacklogPeakBytes)
	d.Window.Add(&s.Window)

	if sm.topN > 0 {
		d.TopBacklog = pushTop(d.TopBacklog, sm.topN, id, s.In.BacklogRecords, s.In.BacklogBytes)
		d.TopInFlight = pushTop(d.TopInFlight, sm.topN, id, s.Out.InFlightRecords, s.Out.InFlightBytes)
	}
}

func (sm *summarizer) result() DiagnosticsSummary { return sm.d }

// countVersion adds one stream of version v to vs, kept in version order.
func countVersion(vs []diag.VersionCount, v uint64) []diag.VersionCount {
	i, found := slices.BinarySearchFunc(vs, v, func(e diag.VersionCount, v uint64) int { return cmp.Compare(e.Version, v) })
	if found {
		vs[i].Streams++
		return vs
	}
	return slices.Insert(vs, i, diag.VersionCount{Version: v, Streams: 1})
}

// pushTop inserts a stream into top, a list of at most n kept in order:
// most records first, then most bytes, then the smaller key. A stream with
// no records is not a candidate.
func pushTop(top []StreamLoad, n int, id *StreamIdentity, records, bytes uint64) []StreamLoad {
	if records == 0 {
		return top
	}
	l := StreamLoad{
		Scope: id.Scope, Conn: id.Conn, StreamID: id.StreamID, DataID: id.DataID, Role: id.Role,
		Records: records, Bytes: bytes,
	}
	if len(top) == n && !loadBefore(&l, &top[n-1]) {
		return top
	}
	i := len(top)
	for i > 0 && loadBefore(&l, &top[i-1]) {
		i--
	}
	if len(top) == n {
		top = top[:n-1]
	}
	return slices.Insert(top, i, l)
}

// loadBefore orders top lists.
func loadBefore(a, b *StreamLoad) bool {
	if a.Records != b.Records {
		return a.Records > b.Records
	}
	if a.Bytes != b.Bytes {
		return a.Bytes > b.Bytes
	}
	return compareKeys(a.key(), b.key()) < 0
}

// String prints the summary as a fixed table, the same rows and columns
// every time, for logs and debug pages. Counts are exact; byte amounts use
// binary units (KiB, MiB, ...) and durations four significant digits; a
// dash stands for a ratio or mean with no data. The compression rows
// count the record sections of every batch before and after compression
// (plain batches count the same on both sides), with the codec's time. The "rejected" column
// counts, on the out row, records of this side the peers rejected and, on
// the in row, peer records this side rejected. From a listener with three
// streams, one of whose consumers stopped applying:
//
//	recordmux: 3 streams (3 open, 0 closed, 0 failed); by version: v2 3
//	                       records       bytes     batches   rec/batch    rejected
//	out                      25000    4.77 MiB          96       260.4           0
//	in                       62000    11.8 MiB         238       260.5          10
//	frames                   hello       batch         ack       error      window
//	out                          3          96          83          10           0
//	in                           3         238          36           0           0
//	acks               piggybacked  standalone   piggyback
//	out                          6          83        6.7%
//	in                           3          36        7.7%
//	barrier waits            calls       total        mean         max
//	flush                       20     15.36ms       768µs     3.448ms
//	ack                         20     46.91ms     2.345ms     9.935ms
//	queues                 records       bytes   peak recs  peak bytes
//	in-flight                 3000     586 KiB           -           -
//	apply backlog             2000     391 KiB        2916     570 KiB
//	send window            records       bytes       rec/s   min delay   max queue
//	total                      768     768 KiB       41250       412µs      2.11ms
//	compression         compressed      before       after       ratio  codec time
//	out                         90    4.80 MiB    1.45 MiB       3.31x     6.529ms
//	in                           0    11.9 MiB    11.9 MiB       1.00x          0s
//	violations                   0
//	unknown frames in            0
//	top apply backlog      records       bytes
//	  1                       2000     391 KiB  scope="audit" conn=2 stream=0 data=7 acceptor
//	top in-flight          records       bytes
//	  1                       3000     586 KiB  scope="audit" conn=2 stream=0 data=7 acceptor
func (d DiagnosticsSummary) String() string {
	var b strings.Builder
	t := table{&b}
	st := d.Streams
	noun := "streams"
	if st.Total == 1 {
		noun = "stream"
	}
	fmt.Fprintf(&b, "recordmux: %d %s (%d open, %d closed, %d failed); by version:",
		st.Total, noun, st.Open, st.Closed, st.Failed)
	if len(st.ByVersion) == 0 {
		b.WriteString(" -")
	}
	for _, v := range st.ByVersion {
		fmt.Fprintf(&b, " v%d %d", v.Version, v.Streams)
	}
	b.WriteByte('\n')

	t.row("", "records", "bytes", "batches", "rec/batch", "rejected")
	// Rejections in a row's terms: of the records sent, how many the
	// peers rejected; of those received, how many this side rejected.
	t.row("out", num(d.Out.Records), bytesIEC(d.Out.Bytes), num(d.Out.Batches),
		perBatch(d.Out), num(d.Errors.RejectedByPeer))
	t.row("in", num(d.In.Records), bytesIEC(d.In.Bytes), num(d.In.Batches),
		perBatch(d.In), num(d.Errors.RejectedLocally))

	t.row("frames", "hello", "batch", "ack", "error", "window")
	for _, f := range []struct {
		label string
		c     *diag.FrameCounts
	}{{"out", &d.FramesOut}, {"in", &d.FramesIn}} {
		t.row(f.label, num(f.c.Hello), num(f.c.Batch), num(f.c.Ack), num(f.c.Error), num(f.c.Window))
	}

	a := d.Acks
	t.row("acks", "piggybacked", "standalone", "piggyback")
	t.row("out", num(a.PiggybackedOut), num(a.StandaloneOut), percent(a.PiggybackedOut, a.PiggybackedOut+a.StandaloneOut))
	t.row("in", num(a.PiggybackedIn), num(a.StandaloneIn), percent(a.PiggybackedIn, a.PiggybackedIn+a.StandaloneIn))

	br := d.Barrier
	t.row("barrier waits", "calls", "total", "mean", "max")
	t.row("flush", num(br.Calls), dur(br.FlushWaitTotal), meanOrDash(br.MeanFlushWait(), br.Calls), dur(br.FlushWaitMax))
	t.row("ack", num(br.Calls), dur(br.AckWaitTotal), meanOrDash(br.MeanAckWait(), br.Calls), dur(br.AckWaitMax))

	t.row("queues", "records", "bytes", "peak recs", "peak bytes")
	t.row("in-flight", num(d.InFlight.Records), bytesIEC(d.InFlight.Bytes), "-", "-")
	t.row("apply backlog", num(d.Backlog.Records), bytesIEC(d.Backlog.Bytes),
		num(d.BacklogPeak.Records), bytesIEC(d.BacklogPeak.Bytes))

	w := d.Window
	t.row("send window", "records", "bytes", "rec/s", "min delay", "max queue")
	t.row("total", num(w.Records), bytesIEC(w.Bytes), num(w.RecordsPerSec), durOrDash(w.MinAckDelay), dur(w.QueueDelayMax))

	t.row("compression", "compressed", "before", "after", "ratio", "codec time")
	for _, z := range []struct {
		label string
		c     diag.CompressionTotals
	}{{"out", d.Compression.Out}, {"in", d.Compression.In}} {
		t.row(z.label, num(z.c.Compressed), bytesIEC(z.c.BytesBefore), bytesIEC(z.c.BytesAfter), ratioOrDash(z.c), dur(z.c.CodecTime))
	}

	t.row("violations", num(d.Errors.ProtocolViolations))
	t.row("unknown frames in", num(d.FramesIn.Unknown))

	t.top("top apply backlog", d.TopBacklog)
	t.top("top in-flight", d.TopInFlight)
	return b.String()
}

// table writes rows of a fixed grid: a label column, then value columns
// right-aligned.
type table struct{ b *strings.Builder }

const (
	labelWidth = 18
	cellWidth  = 12
)

func (t table) row(label string, cells ...string) {
	line := fmt.Sprintf("%-*s", labelWidth, label)
	for _, c := range cells {
		line += fmt.Sprintf("%*s", cellWidth, c)
	}
	t.b.WriteString(strings.TrimRight(line, " "))
	t.b.WriteByte('\n')
}

func (t table) top(title string, loads []StreamLoad) {
	t.row(title, "records", "bytes")
	if len(loads) == 0 {
		t.row("  (none)")
		return
	}
	for i, l := range loads {
		t.b.WriteString(fmt.Sprintf("%-*s%*s%*s  scope=%q conn=%d stream=%d data=%d %s\n",
			labelWidth, fmt.Sprintf("  %d", i+1), cellWidth, num(l.Records), cellWidth, bytesIEC(l.Bytes),
			l.Scope, l.Conn, l.StreamID, l.DataID, l.Role))
	}
}

func num(v uint64) string { return fmt.Sprint(v) }

func perBatch(t diag.TrafficTotals) string {
	if t.Batches == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", t.RecordsPerBatch())
}

func percent(a, b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// ratioOrDash prints a compression ratio as "3.21x", or a dash when no
// batch went.
func ratioOrDash(c diag.CompressionTotals) string {
	if c.BytesAfter == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", c.Ratio())
}

func durOrDash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return dur(d)
}

func meanOrDash(d time.Duration, n uint64) string {
	if n == 0 {
		return "-"
	}
	return dur(d)
}

// dur prints a duration rounded to four significant digits: "571µs",
// "11.42ms", "1.235s".
func dur(d time.Duration) string {
	unit := time.Duration(1)
	for v := d; v >= 10000; v /= 10 {
		unit *= 10
	}
	return d.Round(unit).String()
}

// bytesIEC prints a byte count in binary units with three significant
// digits: "300 B", "1.17 KiB", "58.6 MiB", "586 GiB".
func bytesIEC(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	unit := 0
	for v >= 1024 && unit < len(iecUnits)-1 {
		v /= 1024
		unit++
	}
	switch {
	case v < 9.995:
		return fmt.Sprintf("%.2f %s", v, iecUnits[unit])
	case v < 99.95:
		return fmt.Sprintf("%.1f %s", v, iecUnits[unit])
	}
	return fmt.Sprintf("%.0f %s", v, iecUnits[unit])
}

var iecUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
