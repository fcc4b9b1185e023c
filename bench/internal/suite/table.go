package suite

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the human-readable report: the machine (and server),
// then one table per case with the median of the repetitions [min–max].
func WriteTable(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "recordbench %s (%s)\n", rep.Machine.Time.Format(time.DateTime+" MST"), rep.Elapsed.Round(time.Second))
	b.WriteString(rep.Machine.String())
	if s := rep.Server; s != nil {
		fmt.Fprintf(&b, "two hosts: server %s, RTT %.0f µs (min) %.0f µs (median of %d, control connection)\n",
			s.Addr, s.RTTMinUs, s.RTTMedianUs, s.RTTSamples)
		fmt.Fprintf(&b, "server %s", s.Machine.String())
	}
	o := rep.Options
	r := o.Transport.Recordmux
	fmt.Fprintf(&b, "recordmux batching: FlushDelay=%v MaxBatchRecords=%s MaxBatchBytes=%s AckDelay=%s; figures: median of the repetitions [min–max]\n",
		r.FlushDelay, orDefault(r.MaxBatchRecords, "default"), orDefault(r.MaxBatchBytes, "default"), ackDelayLabel(r.AckDelay))
	for _, t := range tables {
		var rs []*Result
		for i := range rep.Results {
			if t.has(rep.Results[i].Case) {
				rs = append(rs, &rep.Results[i])
			}
		}
		if len(rs) > 0 {
			b.WriteString("\n")
			b.WriteString(t.title(o))
			writeRows(&b, t.cols, rs, rep.Server != nil)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDefault(v int, def string) string {
	if v <= 0 {
		return def
	}
	return fmt.Sprint(v)
}

func ackDelayLabel(d time.Duration) string {
	switch {
	case d < 0:
		return "off"
	case d == 0:
		return "default"
	}
	return d.String()
}

// column is one column of a table.
type column struct {
	head string
	cell func(*Result) string
}

// table is the table of some cases.
type table struct {
	cases []string
	title func(Options) string
	cols  []column
}

func (t table) has(c string) bool { return slices.Contains(t.cases, c) }

// serverCols are added to every table of a two-host run.
var serverCols = []column{
	{"server cores", func(r *Result) string { return stat(r.ServerCPUCores, f2) }},
	{"server heap MiB", func(r *Result) string { return stat(r.ServerPeakHeapMiB, f1) }},
}

var tables = []table{
	{
		cases: []string{CaseThroughput},
		title: func(o Options) string {
			how := fmt.Sprintf("%v per repetition", o.Duration)
			if o.Volume > 0 {
				how = fmt.Sprintf("%d payload bytes per repetition", o.Volume)
			}
			return fmt.Sprintf("THROUGHPUT: MB/s of record payload, first Send to last record applied (%s)\n", how)
		},
		cols: []column{
			{"size", func(r *Result) string { return sizeLabel(r.RecordSize) }},
			{"streams", func(r *Result) string { return fmt.Sprint(r.Streams) }},
			{"transport", func(r *Result) string { return r.Transport }},
			{"MB/s", func(r *Result) string { return stat(r.MBPerSec, f1) }},
			{"records/s", func(r *Result) string { return stat(r.RecordsPerSec, si) }},
			{"allocs/record", func(r *Result) string { return stat(r.AllocsPerRecord, f2) }},
			{"cores", func(r *Result) string { return stat(r.CPUCores, f2) }},
		},
	},
	{
		cases: []string{CaseCompression},
		title: func(o Options) string {
			how := fmt.Sprintf("%v per repetition", o.Duration)
			if o.Volume > 0 {
				how = fmt.Sprintf("%d payload bytes per repetition", o.Volume)
			}
			return fmt.Sprintf("COMPRESSION: records of a corpus (telemetry JSON lines, or random bytes of the same sizes, 200-1500 B) on one stream (%s);\n"+
				"  wire: bytes the client connection sent (quic-go ConnectionStats.BytesSent) per record and over the payload\n", how)
		},
		cols: []column{
			{"corpus", func(r *Result) string { return r.Corpus }},
			{"transport", func(r *Result) string { return r.Transport }},
			{"MB/s", func(r *Result) string { return stat(r.MBPerSec, f1) }},
			{"records/s", func(r *Result) string { return stat(r.RecordsPerSec, si) }},
			{"wire B/record", func(r *Result) string { return stat(r.WireBytesPerRecord, f0) }},
			{"wire/payload", func(r *Result) string { return stat(r.WireRatio, f2) }},
			{"allocs/record", func(r *Result) string { return stat(r.AllocsPerRecord, f2) }},
			{"cores", func(r *Result) string { return stat(r.CPUCores, f2) }},
		},
	},
	{
		cases: latencyCases,
		title: func(o Options) string {
			return fmt.Sprintf("LATENCY: µs from the start of Send until the record is known applied. pingpong: one %s record, wait for its ack, %d round trips;\n"+
				"  paced: %s records/s for %v (send lag: how late Send started against the schedule); loaded-latency: flat out for %v\n",
				sizeLabel(o.LatencySize), o.PingPongs, si(o.PacedRate), o.PacedDuration, o.LoadedDuration)
		},
		cols: []column{
			{"case", func(r *Result) string { return r.Case }},
			{"transport", func(r *Result) string { return r.Transport }},
			{"p50", func(r *Result) string { return stat(r.P50us, f0) }},
			{"p99", func(r *Result) string { return stat(r.P99us, f0) }},
			{"p99.9", func(r *Result) string { return stat(r.P999us, f0) }},
			{"records/s", func(r *Result) string { return stat(r.RecordsPerSec, si) }},
			{"send lag p99", func(r *Result) string { return stat(r.LagP99us, f0) }},
			{"allocs/record", func(r *Result) string { return stat(r.AllocsPerRecord, f1) }},
			{"cores", func(r *Result) string { return stat(r.CPUCores, f2) }},
		},
	},
	{
		cases: []string{CaseBacklog},
		title: func(o Options) string {
			return fmt.Sprintf("BACKLOG: %s records offered at %s/s; the server applies %s/s for %v, then at full speed; the producer stops after %v.\n"+
				"  recordmux and mux windows: %d records, %s; the others are bounded by their flow control.\n"+
				"  in flight: sent, not yet acknowledged as applied; heap: this process's live heap above its baseline (forced GC every %v)\n",
				sizeLabel(o.BacklogSize), si(o.BacklogRate), si(o.BacklogSlowRate), o.BacklogSlow, o.BacklogSlow+o.BacklogFast,
				o.BacklogWindowRecords, sizeLabel(o.BacklogWindowBytes), o.Sample*gcEvery)
		},
		cols: []column{
			{"transport", func(r *Result) string { return r.Transport }},
			{"peak in flight", func(r *Result) string { return stat(r.PeakInFlightRecords, f0) }},
			{"peak apply backlog", func(r *Result) string { return stat(r.PeakBacklogRecords, f0) }},
			{"Send blocked ms", func(r *Result) string { return stat(r.SendBlockedMs, f0) }},
			{"drain ms", func(r *Result) string { return stat(r.DrainMs, f0) }},
			{"peak heap MiB", func(r *Result) string { return stat(r.PeakHeapLiveMiB, f1) }},
			{"heap in use MiB", func(r *Result) string { return stat(r.PeakHeapInUseMiB, f1) }},
		},
	},
	{
		cases: []string{CaseManyStreams},
		title: func(o Options) string {
			return fmt.Sprintf("MANY-STREAMS: %d concurrent streams on one connection; heap and goroutines of both ends; one %dB record per stream in the round\n", o.ManyStreams, manySize)
		},
		cols: []column{
			{"transport", func(r *Result) string { return r.Transport }},
			{"opens/s", func(r *Result) string { return stat(r.OpenPerSec, si) }},
			{"closes/s", func(r *Result) string { return stat(r.ClosePerSec, si) }},
			{"heap KiB/stream", func(r *Result) string { return stat(r.HeapKiBPerStream, f1) }},
			{"goroutines/stream", func(r *Result) string { return stat(r.GoroutinesPerStream, f2) }},
			{"round ms", func(r *Result) string { return stat(r.RoundMs, f0) }},
		},
	},
	{
		cases: []string{CaseHOL},
		title: func(o Options) string {
			return fmt.Sprintf("HOL: bulk stream (%s records) + latency stream (%s at %s/s) on one connection over simnet, RTT %v, %v per run (first %v skipped)\n"+
				"  latency stream, Send to applied, ms. mux = both streams on ONE QUIC stream: it stands in for yamux, smux and gRPC,\n"+
				"  whose loss is TCP's, which simnet cannot simulate; recordmux and framer = one QUIC stream each\n",
				sizeLabel(o.HOLBulkSize), sizeLabel(o.LatencySize), si(o.HOLRate), o.HOLRTT, o.HOLDuration, o.HOLWarmup)
		},
		cols: []column{
			{"loss", func(r *Result) string { return fmt.Sprintf("%g%%", r.Loss*100) }},
			{"transport", func(r *Result) string { return r.Transport }},
			{"p50 ms", func(r *Result) string { return stat(r.P50us, ms) }},
			{"p99 ms", func(r *Result) string { return stat(r.P99us, ms) }},
			{"p99.9 ms", func(r *Result) string { return stat(r.P999us, ms) }},
			{"bulk MB/s", func(r *Result) string { return stat(r.MBPerSec, f2) }},
			{"observed loss", func(r *Result) string { return stat(r.LossObserved, pct) }},
		},
	},
}

// writeRows writes a right-aligned table of rs.
func writeRows(b *strings.Builder, cols []column, rs []*Result, server bool) {
	if server {
		cols = append(cols[:len(cols):len(cols)], serverCols...)
	}
	tw := tabwriter.NewWriter(b, 2, 0, 2, ' ', tabwriter.AlignRight)
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.head)
	}
	fmt.Fprintln(tw)
	for _, r := range rs {
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", c.cell(r))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

// stat formats a metric as "median [min–max]" with f, or "-" when it was
// not measured.
func stat(s Stat, f func(float64) string) string {
	switch {
	case s.N == 0:
		return "-"
	case s.N == 1 || f(s.Min) == f(s.Max):
		return f(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.Median), f(s.Min), f(s.Max))
}

func f0(x float64) string  { return fmt.Sprintf("%.0f", x) }
func f1(x float64) string  { return fmt.Sprintf("%.1f", x) }
func f2(x float64) string  { return fmt.Sprintf("%.2f", x) }
func ms(x float64) string  { return fmt.Sprintf("%.1f", x/1000) }
func pct(x float64) string { return fmt.Sprintf("%.1f%%", x*100) }

// si formats a number with an SI prefix and three significant digits:
// 950, 12.3k, 4.56M.
func si(x float64) string {
	a := math.Abs(x)
	switch {
	case a >= 1e9:
		return trim(x/1e9) + "G"
	case a >= 1e6:
		return trim(x/1e6) + "M"
	case a >= 1e3:
		return trim(x/1e3) + "k"
	}
	return trim(x)
}

// trim prints x with three significant digits, without trailing zeros.
func trim(x float64) string {
	var s string
	switch a := math.Abs(x); {
	case a >= 100:
		s = fmt.Sprintf("%.0f", x)
	case a >= 10:
		s = fmt.Sprintf("%.1f", x)
	default:
		s = fmt.Sprintf("%.2f", x)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
