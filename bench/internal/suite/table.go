package suite

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recordmux/recordmux/bench/internal/svgplot"
)

// WriteTable writes the human-readable report: the machine, then one
// table per case with the median of the repetitions [min–max] and ratios
// of recordmux against the baselines, then the targets.
func WriteTable(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "recordbench %s (%s)\n", rep.Machine.Time.Format(time.DateTime+" MST"), rep.Elapsed.Round(time.Second))
	b.WriteString(rep.Machine.String())
	o := rep.Options
	fmt.Fprintf(&b, "recordmux config: FlushDelay=%v MaxBatchRecords=%s MaxBatchBytes=%s AckDelay=%s; figures: median of the repetitions [min–max]\n",
		o.Recordmux.FlushDelay, orDefaultLabel(o.Recordmux.MaxBatchRecords, "4096"), orDefaultLabel(o.Recordmux.MaxBatchBytes, "65536"), ackDelayLabel(o.Recordmux.AckDelay))
	byCase := map[string][]Result{}
	for _, r := range rep.Results {
		byCase[r.Case] = append(byCase[r.Case], r)
	}
	if rs := byCase[CaseThroughput]; len(rs) > 0 {
		throughputTable(&b, rs, o)
	}
	if rs := append(byCase[CasePingPong], byCase[CasePaced]...); len(rs) > 0 {
		latencyTable(&b, rs, o)
	}
	if rs := byCase[CaseBacklog]; len(rs) > 0 {
		backlogTable(&b, rs, o)
	}
	if rs := byCase[CaseManyStreams]; len(rs) > 0 {
		manyTable(&b, rs)
	}
	if rs := byCase[CaseHOL]; len(rs) > 0 {
		holTable(&b, rs, o)
	}
	targetsTable(&b, Targets(rep.Results))
	_, err := io.WriteString(w, b.String())
	return err
}

func orDefaultLabel(v int, def string) string {
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
		return "250µs"
	}
	return d.String()
}

func newTab(b *strings.Builder) *tabwriter.Writer {
	return tabwriter.NewWriter(b, 2, 0, 2, ' ', tabwriter.AlignRight)
}

// cellKey groups results of one cell.
type cellKey struct {
	size, streams int
	loss          float64
	c             string
}

func keyOf(r Result) cellKey { return cellKey{r.RecordSize, r.Streams, r.Loss, r.Case} }

// grouped returns the cells in first-seen order with their results by
// transport.
func grouped(rs []Result) ([]cellKey, map[cellKey]map[string]*Result) {
	var keys []cellKey
	m := map[cellKey]map[string]*Result{}
	for i := range rs {
		k := keyOf(rs[i])
		if m[k] == nil {
			m[k] = map[string]*Result{}
			keys = append(keys, k)
		}
		m[k][rs[i].Transport] = &rs[i]
	}
	return keys, m
}

// stat formats a metric as "median [min–max]" with f.
func stat(r *Result, name string, f func(float64) string) string {
	if r == nil {
		return "-"
	}
	s, ok := r.Metrics[name]
	if !ok || s.N == 0 {
		return "-"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.Median), f(s.Min), f(s.Max))
}

// ratio formats a/b of the medians of metric name.
func ratio(a, b *Result, name string) string {
	if a == nil || b == nil {
		return "-"
	}
	x, y := a.Get(name), b.Get(name)
	if math.IsNaN(x) || math.IsNaN(y) || y == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", x/y)
}

func f1(x float64) string { return fmt.Sprintf("%.1f", x) }
func f0(x float64) string { return fmt.Sprintf("%.0f", x) }
func f2(x float64) string { return fmt.Sprintf("%.2f", x) }
func si(x float64) string { return svgplot.Format(math.Round(x)) }

func throughputTable(b *strings.Builder, rs []Result, o Options) {
	how := fmt.Sprintf("%v per repetition", o.Duration)
	if o.Volume > 0 {
		how = fmt.Sprintf("%d payload bytes per repetition", o.Volume)
	}
	fmt.Fprintf(b, "\nTHROUGHPUT: MB/s of record payload, first Send to last record applied (%s); ratios are recordmux / baseline\n", how)
	tw := newTab(b)
	fmt.Fprintln(tw, "size\tstreams\trecordmux MB/s\traw MB/s\tframer MB/s\trm/raw\trm/framer\trm rec/s\tallocs/rec rm\tallocs/rec framer\t")
	keys, m := grouped(rs)
	for _, k := range keys {
		g := m[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sizeLabel(k.size), k.streams,
			stat(g[Recordmux], MMBPerSec, f1), stat(g[Raw], MMBPerSec, f1), stat(g[Framer], MMBPerSec, f1),
			ratio(g[Recordmux], g[Raw], MMBPerSec), ratio(g[Recordmux], g[Framer], MMBPerSec),
			stat(g[Recordmux], MRecordsPerSec, si), stat(g[Recordmux], MAllocsPerRecord, f2), stat(g[Framer], MAllocsPerRecord, f2))
	}
	_ = tw.Flush()
}

func latencyTable(b *strings.Builder, rs []Result, o Options) {
	fmt.Fprintf(b, "\nLATENCY: µs. pingpong = one %dB record, wait for its applied ack (raw: echo), %d round trips per repetition;\n", o.LatencySize, o.PingPongs)
	fmt.Fprintf(b, "  paced = %s records/s for %v, Send call to applied ack (WaitAcked probes after each burst; see bench/README.md)\n", svgplot.Format(o.PacedRate), o.PacedDuration)
	tw := newTab(b)
	fmt.Fprintln(tw, "case\ttransport\tp50\tp99\tp99.9\trec/s\tsend lag p99\tallocs/rec\tcores\tp50 rm/this\tp99 rm/this\t")
	keys, m := grouped(rs)
	for _, k := range keys {
		g := m[k]
		for _, tr := range []string{Recordmux, Raw, Framer} {
			r := g[tr]
			if r == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", k.c, tr,
				stat(r, MP50us, f0), stat(r, MP99us, f0), stat(r, MP999us, f0), stat(r, MRecordsPerSec, si),
				stat(r, "lag_p99_us", f0), stat(r, MAllocsPerRecord, f1), stat(r, MCPUCores, f2),
				ratio(g[Recordmux], r, MP50us), ratio(g[Recordmux], r, MP99us))
		}
	}
	_ = tw.Flush()
}

func backlogTable(b *strings.Builder, rs []Result, o Options) {
	fmt.Fprintf(b, "\nBACKLOG: %s records offered at %s/s; consumer applies %s/s for %v, then at full speed for %v.\n",
		sizeLabel(o.BacklogSize), svgplot.Format(o.BacklogRate), svgplot.Format(o.BacklogSlowRate), o.BacklogSlow, o.BacklogFast)
	fmt.Fprintf(b, "  recordmux windows: MaxInFlightRecords=MaxApplyBacklogRecords=%d, MaxInFlightBytes=MaxApplyBacklogBytes=%s; raw/framer are bounded only by the QUIC stream window.\n",
		o.BacklogWindowRecords, sizeLabel(o.BacklogWindowBytes))
	fmt.Fprintf(b, "  heap: live heap above the post-setup baseline (both ends, forced GC every %v), limit = window + 1 MiB\n", o.Sample*gcEvery)
	tw := newTab(b)
	fmt.Fprintln(tw, "transport\tpeak unapplied\tpeak in flight\tpeak backlog\tSend blocked ms\tdrain ms\tpeak heap MiB\theap in use MiB\twindow MiB\tlimit MiB\twithin\t")
	for i := range rs {
		r := &rs[i]
		within := "-"
		if h, l := r.Get("peak_heap_live_mib"), r.Get("heap_limit_mib"); !math.IsNaN(h) {
			within = map[bool]string{true: "yes", false: "NO"}[h <= l]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Transport,
			stat(r, "peak_unapplied_records", f0), stat(r, "peak_inflight_records", f0), stat(r, "peak_backlog_records", f0),
			stat(r, "send_blocked_ms", f0), stat(r, "drain_ms", f0), stat(r, "peak_heap_live_mib", f1),
			stat(r, "peak_heap_inuse_mib", f1), stat(r, "window_mib", f1), stat(r, "heap_limit_mib", f1), within)
	}
	_ = tw.Flush()
}

func manyTable(b *strings.Builder, rs []Result) {
	fmt.Fprintf(b, "\nMANY-STREAMS: %d concurrent streams on one connection (both ends in this process); one 64B record per stream in the round\n", rs[0].Streams)
	tw := newTab(b)
	fmt.Fprintln(tw, "transport\topens/s\tcloses/s\theap KiB/stream\tgoroutines/stream\tround ms\t")
	for i := range rs {
		r := &rs[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Transport, stat(r, "open_per_sec", si), stat(r, "close_per_sec", si),
			stat(r, "heap_kib_per_stream", f1), stat(r, "goroutines_per_stream", f2), stat(r, "round_ms", f0))
	}
	_ = tw.Flush()
}

func holTable(b *strings.Builder, rs []Result, o Options) {
	fmt.Fprintf(b, "\nHOL: bulk stream (%s records) + latency stream (%dB at %s/s) on one connection over simnet, RTT %v, %v per run (first %v skipped)\n",
		sizeLabel(o.HOLBulkSize), o.LatencySize, svgplot.Format(o.HOLRate), o.HOLRTT, o.HOLDuration, o.HOLWarmup)
	fmt.Fprintln(b, "  latency stream, Send to applied ack, ms; mux = both logical streams on ONE QUIC stream; framer = two QUIC streams")
	tw := newTab(b)
	fmt.Fprintln(tw, "loss\ttransport\tp50 ms\tp99 ms\tp99.9 ms\tbulk MB/s\tobserved loss\tp99 rm/this\t")
	keys, m := grouped(rs)
	ms := func(x float64) string { return fmt.Sprintf("%.1f", x/1000) }
	for _, k := range keys {
		g := m[k]
		for _, tr := range []string{Recordmux, Mux, Framer} {
			r := g[tr]
			if r == nil {
				continue
			}
			fmt.Fprintf(tw, "%g%%\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", k.loss*100, tr, stat(r, MP50us, ms), stat(r, MP99us, ms), stat(r, MP999us, ms),
				stat(r, MMBPerSec, f2), stat(r, "loss_observed", func(x float64) string { return fmt.Sprintf("%.1f%%", x*100) }),
				ratio(g[Recordmux], r, MP99us))
		}
	}
	_ = tw.Flush()
}

func targetsTable(b *strings.Builder, ts []Target) {
	if len(ts) == 0 {
		return
	}
	b.WriteString("\nTARGETS (medians)\n")
	tw := tabwriter.NewWriter(b, 2, 0, 2, ' ', 0)
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", map[bool]string{true: "met   ", false: "MISSED"}[t.Met], t.Name, t.Detail)
	}
	_ = tw.Flush()
}

// Target is one of the performance targets, checked against a
// run's results.
type Target struct {
	Name   string
	Met    bool
	Detail string
}

// Targets checks the targets that the results allow to check.
func Targets(rs []Result) []Target {
	var out []Target
	keys, m := grouped(rs)
	for _, k := range keys {
		g := m[k]
		rm := g[Recordmux]
		switch k.c {
		case CaseThroughput:
			if k.size >= 1<<10 && g[Raw] != nil && rm != nil {
				x := rm.Get(MMBPerSec) / g[Raw].Get(MMBPerSec)
				out = append(out, Target{fmt.Sprintf("throughput %s x%d >= 0.95x raw", sizeLabel(k.size), k.streams), x >= 0.95, fmt.Sprintf("%.2fx", x)})
			}
			if k.size == 64 && g[Framer] != nil && rm != nil {
				x := rm.Get(MMBPerSec) / g[Framer].Get(MMBPerSec)
				out = append(out, Target{fmt.Sprintf("throughput 64B x%d >= 1.05x framer", k.streams), x >= 1.05, fmt.Sprintf("%.2fx", x)})
			}
		case CasePingPong:
			if g[Framer] != nil && rm != nil {
				x := rm.Get(MP50us) / g[Framer].Get(MP50us)
				out = append(out, Target{"ping-pong p50 <= 1.1x framer", x <= 1.1, fmt.Sprintf("%.2fx (%.0f vs %.0f µs)", x, rm.Get(MP50us), g[Framer].Get(MP50us))})
			}
		case CaseHOL:
			if k.loss == 0.01 && g[Mux] != nil && rm != nil {
				x := rm.Get(MP99us) / g[Mux].Get(MP99us)
				out = append(out, Target{"hol 1% loss: p99 <= 0.5x single-stream mux", x <= 0.5, fmt.Sprintf("%.2fx (%.1f vs %.1f ms)", x, rm.Get(MP99us)/1000, g[Mux].Get(MP99us)/1000)})
			}
		case CaseBacklog:
			if rm != nil {
				h, l := rm.Get("peak_heap_live_mib"), rm.Get("heap_limit_mib")
				out = append(out, Target{"backlog: peak heap <= windows + 1 MiB", h <= l, fmt.Sprintf("%.1f MiB vs %.1f MiB", h, l)})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Target) int { return strings.Compare(targetOrder(a.Name), targetOrder(b.Name)) })
	return out
}

// targetOrder keeps throughput targets first, in the order.
func targetOrder(name string) string {
	for i, p := range []string{"throughput", "ping", "hol", "backlog"} {
		if strings.HasPrefix(name, p) {
			return fmt.Sprint(i)
		}
	}
	return "9"
}
