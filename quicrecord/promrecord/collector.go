package promrecord

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/diag"
)

// Source is what a Collector reads: the snapshots of a set of live record
// streams. [*quicrecord.Conn] and [*quicrecord.Listener] implement it.
//
// The Collector computes its summary from the same snapshots (with
// [quicrecord.Summarize]) rather than calling Diagnostics separately, so
// the totals and gauges of one scrape describe one set of streams.
type Source interface {
	Snapshots() []quicrecord.RecordSnapshot
}

// EndedSource is a Source that also totals the streams it no longer
// lists. [*quicrecord.Conn] and [*quicrecord.Listener] implement it; with
// it the Collector's counters are exact, including streams that opened and
// ended between two scrapes.
type EndedSource interface {
	Source
	EndedDiagnostics() quicrecord.DiagnosticsSummary
}

// Options configure a Collector. A nil *Options means the defaults.
type Options struct {
	// PerStream adds series for each live stream, labelled with its
	// scope, connection number, stream ID, data ID and role. Off by
	// default: each stream adds nine series, and scopes are
	// application strings of up to 1 KiB, so enable it only where the
	// number of streams (and scopes) is small and bounded.
	PerStream bool
	// ConstLabels are added to every series, for example
	// {"listener": "ingest"}, so that the collectors of several sources
	// can share one registry. nil means none.
	ConstLabels prometheus.Labels
}

// Collector is a prometheus.Collector for the record streams of a
// [Source]. Create it with [NewCollector] and register it with a
// prometheus.Registerer; each scrape takes the source's snapshots once.
//
// Counters (the _total metrics) are monotonic across stream ends. For an
// [EndedSource] (a Conn or a Listener) they are the live streams' counts
// plus the source's totals of ended streams: exact. For a plain Source a
// stream's counts are summed while it is live, and when it has left the
// source the counts last seen for it are carried over, so what an ended
// stream did after the last scrape that saw it, and streams that opened
// and ended between two scrapes, are not counted; the Collector then
// remembers the last counts of each live stream, a few hundred bytes per
// stream.
//
// Gauges describe the live streams at the scrape.
//
// A Collector is safe for concurrent use; concurrent scrapes are
// serialised.
type Collector struct {
	src  Source
	opts Options
	d    descs

	// mu serialises scrapes and owns last, next and retired.
	mu sync.Mutex
	// last indexes, by key, lastCounts: the counts of every stream seen
	// by the previous scrape. Keys are unique within a source for its
	// lifetime. next and nextCounts are what the next scrape fills; the
	// pairs are swapped after each scrape so that a scrape in the steady
	// state allocates neither (counts are too large to be map values
	// without an allocation each).
	last, next             map[streamKey]int
	lastCounts, nextCounts []diag.Counters
	// retired sums the last counts of streams that have left the source.
	retired diag.Counters
}

// streamKey names a stream within its source: scope, connection, stream
// ID and data ID, unique for the source's lifetime.
type streamKey struct {
	scope  string
	conn   uint64
	id     quicrecord.StreamID
	dataID uint64
}

func keyOf(s *quicrecord.RecordSnapshot) streamKey {
	id := &s.Identity
	return streamKey{scope: id.Scope, conn: id.Conn, id: id.StreamID, dataID: id.DataID}
}

// NewCollector returns a Collector for src.
func NewCollector(src Source, opts *Options) *Collector {
	c := &Collector{
		src:  src,
		last: make(map[streamKey]int),
		next: make(map[streamKey]int),
	}
	if opts != nil {
		c.opts = *opts
	}
	c.d = newDescs(c.opts.ConstLabels)
	return c
}

// descs are the metric descriptors, fixed at NewCollector.
type descs struct {
	records, bytes, batches, frames, acks         *prometheus.Desc
	barriers, barrierWait, rejections, violations *prometheus.Desc
	streams, versions                             *prometheus.Desc
	inflightRecs, inflightBytes                   *prometheus.Desc
	backlogRecs, backlogBytes                     *prometheus.Desc
	windowRecs, windowBytes, deliveryRate         *prometheus.Desc
	minAckDelay, queueDelay                       *prometheus.Desc
	zBytes, zBatches, zSeconds                    *prometheus.Desc

	// Per stream.
	sRecords, sBytes, sInflight, sBacklog *prometheus.Desc
	sWindow, sMinAckDelay, sQueueDelay    *prometheus.Desc
}

// streamLabels label the per-stream series.
var streamLabels = []string{"scope", "conn", "stream_id", "data_id", "role"}

func newDescs(cl prometheus.Labels) descs {
	nd := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("recordmux_"+name, help, labels, cl)
	}
	sl := func(extra ...string) []string { return append(append([]string(nil), streamLabels...), extra...) }
	return descs{
		records:     nd("records_total", "Records sent (direction=out) or received (direction=in) on record streams.", "direction"),
		bytes:       nd("record_bytes_total", "Record payload bytes sent or received (excluding framing).", "direction"),
		batches:     nd("batches_total", "BATCH frames sent or received.", "direction"),
		frames:      nd("frames_total", "Frames sent or received, by frame type.", "direction", "type"),
		acks:        nd("acks_total", "Acknowledgements of applied records sent (out) or received (in): piggybacked in a BATCH header or standalone ACK frames.", "direction", "kind"),
		barriers:    nd("barriers_total", "Barrier calls that completed."),
		barrierWait: nd("barrier_wait_seconds_total", "Time completed Barrier calls waited: for their records to be handed to QUIC (phase=flush), then for the peer to apply them (phase=ack).", "phase"),
		rejections:  nd("rejections_total", "Records rejected: of those this side sent, by the peer (direction=out); of those it received, by this side's application (direction=in).", "direction"),
		violations:  nd("protocol_violations_total", "Protocol violations by peers detected on this side's streams."),
		zBytes: nd("compression_bytes_total", "Record-section bytes of the BATCH frames sent (out) or received (in), before compression (stage=before) and on the wire (stage=after); plain batches count the same in both. before/after is the compression ratio.",
			"direction", "stage"),
		zBatches: nd("compressed_batches_total", "BATCH frames sent (out) or received (in) with a compressed record section.", "direction"),
		zSeconds: nd("compression_seconds_total", "Time spent compressing batches (out, tries that did not pay included) and decompressing them (in).", "direction"),

		streams:       nd("streams", "Record streams in the source, by state.", "state"),
		versions:      nd("streams_by_version", "Record streams in the source, by negotiated protocol version.", "version"),
		inflightRecs:  nd("inflight_records", "Records sent and not yet acknowledged as applied by the peer."),
		inflightBytes: nd("inflight_bytes", "Record bytes sent and not yet acknowledged as applied by the peer."),
		backlogRecs:   nd("apply_backlog_records", "Records received and not yet applied (acked or rejected) by the application."),
		backlogBytes:  nd("apply_backlog_bytes", "Record bytes received and not yet applied by the application."),
		windowRecs:    nd("send_window_records", "Records the streams' send windows allow in flight now (the adaptive windows, summed)."),
		windowBytes:   nd("send_window_bytes", "Record bytes the streams' send windows allow in flight now."),
		deliveryRate:  nd("delivery_rate_records_per_second", "Records per second the peers applied, as the streams' senders measure it (summed)."),
		minAckDelay:   nd("min_ack_delay_seconds", "The smallest estimated minimum Send to applied-ack delay of any stream."),
		queueDelay:    nd("queue_delay_seconds", "The largest queueing delay (Send to applied-ack delay above its minimum) of any stream, in its last round."),

		sRecords:     nd("stream_records_total", "Records sent or received on one stream.", sl("direction")...),
		sBytes:       nd("stream_record_bytes_total", "Record payload bytes sent or received on one stream.", sl("direction")...),
		sInflight:    nd("stream_inflight_records", "Records of one stream sent and not yet acknowledged as applied.", sl()...),
		sBacklog:     nd("stream_apply_backlog_records", "Records of one stream received and not yet applied.", sl()...),
		sWindow:      nd("stream_send_window_records", "Records one stream's send window allows in flight now.", sl()...),
		sMinAckDelay: nd("stream_min_ack_delay_seconds", "One stream's estimated minimum Send to applied-ack delay.", sl()...),
		sQueueDelay:  nd("stream_queue_delay_seconds", "One stream's queueing delay above its minimum, in its last round.", sl()...),
	}
}

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, x := range []*prometheus.Desc{
		d.records, d.bytes, d.batches, d.frames, d.acks, d.barriers, d.barrierWait, d.rejections, d.violations,
		d.streams, d.versions, d.inflightRecs, d.inflightBytes, d.backlogRecs, d.backlogBytes,
		d.windowRecs, d.windowBytes, d.deliveryRate, d.minAckDelay, d.queueDelay,
		d.zBytes, d.zBatches, d.zSeconds,
	} {
		ch <- x
	}
	if c.opts.PerStream {
		ch <- d.sRecords
		ch <- d.sBytes
		ch <- d.sInflight
		ch <- d.sBacklog
		ch <- d.sWindow
		ch <- d.sMinAckDelay
		ch <- d.sQueueDelay
	}
}

// Collect takes the source's snapshots and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if es, ok := c.src.(EndedSource); ok {
		// Ended totals first, then the live streams: a stream that ends
		// in between is in neither and is counted by the next scrape, so
		// no scrape counts it twice and the counters never go down.
		ended := es.EndedDiagnostics()
		snaps := c.src.Snapshots()
		total := ended.Counters
		for i := range snaps {
			cs := snaps[i].Counters()
			total.Add(&cs)
		}
		c.emit(ch, snaps, &total)
		return
	}
	snaps := c.src.Snapshots()

	c.mu.Lock()
	seen, seenCounts := c.next, c.nextCounts[:0]
	var total diag.Counters
	for i := range snaps {
		seenCounts = append(seenCounts, snaps[i].Counters())
		seen[keyOf(&snaps[i])] = i
		total.Add(&seenCounts[i])
	}
	for k, i := range c.last {
		if _, ok := seen[k]; !ok {
			c.retired.Add(&c.lastCounts[i])
		}
	}
	clear(c.last)
	c.last, c.next = seen, c.last
	c.lastCounts, c.nextCounts = seenCounts, c.lastCounts
	total.Add(&c.retired)
	c.mu.Unlock()
	c.emit(ch, snaps, &total)
}

// emitCompression sends the compression counters, each way.
func (c *Collector) emitCompression(ch chan<- prometheus.Metric, z *diag.CompressionStats) {
	d := &c.d
	for _, dir := range []struct {
		name string
		c    *diag.CompressionTotals
	}{{"out", &z.Out}, {"in", &z.In}} {
		ch <- prometheus.MustNewConstMetric(d.zBytes, prometheus.CounterValue, float64(dir.c.BytesBefore), dir.name, "before")
		ch <- prometheus.MustNewConstMetric(d.zBytes, prometheus.CounterValue, float64(dir.c.BytesAfter), dir.name, "after")
		ch <- prometheus.MustNewConstMetric(d.zBatches, prometheus.CounterValue, float64(dir.c.Compressed), dir.name)
		ch <- prometheus.MustNewConstMetric(d.zSeconds, prometheus.CounterValue, dir.c.CodecTime.Seconds(), dir.name)
	}
}

// emit sends the metrics of one scrape: the counters in total, the gauges
// and per-stream series of the live snapshots.
func (c *Collector) emit(ch chan<- prometheus.Metric, snaps []quicrecord.RecordSnapshot, total *diag.Counters) {
	sum := quicrecord.Summarize(snaps, &diag.Options{TopN: -1})
	d := &c.d
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter(d.records, total.Out.Records, "out")
	counter(d.records, total.In.Records, "in")
	counter(d.bytes, total.Out.Bytes, "out")
	counter(d.bytes, total.In.Bytes, "in")
	counter(d.batches, total.Out.Batches, "out")
	counter(d.batches, total.In.Batches, "in")
	for _, f := range []struct {
		dir string
		c   *diag.FrameCounts
	}{{"out", &total.FramesOut}, {"in", &total.FramesIn}} {
		counter(d.frames, f.c.Hello, f.dir, "hello")
		counter(d.frames, f.c.Batch, f.dir, "batch")
		counter(d.frames, f.c.Ack, f.dir, "ack")
		counter(d.frames, f.c.Error, f.dir, "error")
		counter(d.frames, f.c.Window, f.dir, "window")
		counter(d.frames, f.c.Done, f.dir, "done")
		counter(d.frames, f.c.Unknown, f.dir, "unknown")
	}
	counter(d.acks, total.Acks.PiggybackedOut, "out", "piggybacked")
	counter(d.acks, total.Acks.StandaloneOut, "out", "standalone")
	counter(d.acks, total.Acks.PiggybackedIn, "in", "piggybacked")
	counter(d.acks, total.Acks.StandaloneIn, "in", "standalone")
	counter(d.barriers, total.Barrier.Calls)
	ch <- prometheus.MustNewConstMetric(d.barrierWait, prometheus.CounterValue, float64(total.Barrier.FlushWaitTotal)/1e9, "flush")
	ch <- prometheus.MustNewConstMetric(d.barrierWait, prometheus.CounterValue, float64(total.Barrier.AckWaitTotal)/1e9, "ack")
	counter(d.rejections, total.Errors.RejectedByPeer, "out")
	counter(d.rejections, total.Errors.RejectedLocally, "in")
	counter(d.violations, total.Errors.ProtocolViolations)
	c.emitCompression(ch, &total.Compression)

	gauge(d.streams, float64(sum.Streams.Open), "open")
	gauge(d.streams, float64(sum.Streams.Closed), "closed")
	gauge(d.streams, float64(sum.Streams.Failed), "failed")
	for _, v := range sum.Streams.ByVersion {
		gauge(d.versions, float64(v.Streams), strconv.FormatUint(v.Version, 10))
	}
	gauge(d.inflightRecs, float64(sum.InFlight.Records))
	gauge(d.inflightBytes, float64(sum.InFlight.Bytes))
	gauge(d.backlogRecs, float64(sum.Backlog.Records))
	gauge(d.backlogBytes, float64(sum.Backlog.Bytes))
	gauge(d.windowRecs, float64(sum.Window.Records))
	gauge(d.windowBytes, float64(sum.Window.Bytes))
	gauge(d.deliveryRate, float64(sum.Window.RecordsPerSec))
	gauge(d.minAckDelay, sum.Window.MinAckDelay.Seconds())
	gauge(d.queueDelay, sum.Window.QueueDelayMax.Seconds())

	if !c.opts.PerStream {
		return
	}
	for i := range snaps {
		s := &snaps[i]
		id := &s.Identity
		l := []string{
			id.Scope, strconv.FormatUint(id.Conn, 10), strconv.FormatInt(int64(id.StreamID), 10),
			strconv.FormatUint(id.DataID, 10), id.Role.String(),
		}
		with := func(v string) []string { return append(l[:len(l):len(l)], v) }
		counter(d.sRecords, s.Out.Records, with("out")...)
		counter(d.sRecords, s.In.Records, with("in")...)
		counter(d.sBytes, s.Out.Bytes, with("out")...)
		counter(d.sBytes, s.In.Bytes, with("in")...)
		gauge(d.sInflight, float64(s.Out.InFlightRecords), l...)
		gauge(d.sBacklog, float64(s.In.BacklogRecords), l...)
		gauge(d.sWindow, float64(s.Window.Records), l...)
		gauge(d.sMinAckDelay, s.Window.MinAckDelay.Seconds(), l...)
		gauge(d.sQueueDelay, s.Window.QueueDelay.Seconds(), l...)
	}
}
