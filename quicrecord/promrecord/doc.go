// Package promrecord exports the diagnostics of recordmux record streams
// as Prometheus metrics, so that package quicrecord itself does not depend
// on the Prometheus client.
//
// # Usage
//
// Register one [Collector] per [Source], a *quicrecord.Listener or a
// *quicrecord.Conn:
//
//	ln, err := quicrecord.Listen(addr, tlsConf, cfg)
//	...
//	prometheus.MustRegister(promrecord.NewCollector(ln, nil))
//
// Several sources can share a registry when each collector has its own
// [Options.ConstLabels].
//
// # Metrics
//
// Counters, summed over the source's streams and kept monotonic when
// streams end (see [Collector]):
//
//	recordmux_records_total{direction="out|in"}
//	recordmux_record_bytes_total{direction}
//	recordmux_batches_total{direction}
//	recordmux_frames_total{direction, type="hello|batch|ack|error|done|unknown"}
//	recordmux_acks_total{direction, kind="piggybacked|standalone"}
//	recordmux_barriers_total
//	recordmux_barrier_wait_seconds_total{phase="flush|ack"}
//	recordmux_rejections_total{direction}
//	recordmux_protocol_violations_total
//
// direction="out" is what this side sent, "in" what it received, for
// rejections too: "out" counts this side's records the peers rejected
// (quicrecord's ErrorStats.RejectedByPeer, the summary table's out row),
// "in" the peers' records this side rejected (RejectedLocally).
//
// Gauges, for the live streams at the scrape:
//
//	recordmux_streams{state="open|closed|failed"}
//	recordmux_streams_by_version{version}
//	recordmux_inflight_records, recordmux_inflight_bytes
//	recordmux_apply_backlog_records, recordmux_apply_backlog_bytes
//
// With [Options.PerStream], each stream also gets
// recordmux_stream_records_total{scope, conn, stream_id, data_id, role,
// direction}, recordmux_stream_record_bytes_total{…, direction},
// recordmux_stream_inflight_records{…} and
// recordmux_stream_apply_backlog_records{…}: six series per stream.
//
// Useful queries: rate(recordmux_records_total[1m]) for throughput;
// rate(recordmux_barrier_wait_seconds_total{phase="ack"}[5m]) /
// rate(recordmux_barriers_total[5m]) for the mean time a barrier waits on
// the peer; recordmux_acks_total{kind="piggybacked"} over all acks for
// the share of acks that rode in batches.
//
// # Concurrency
//
// A scrape takes the source's snapshots, which read atomics and never
// block the streams' loops. Scrapes of one Collector are serialised.
//
// # Limitations
//
// With a *quicrecord.Conn or *quicrecord.Listener the counters are exact:
// the source totals its ended streams (EndedDiagnostics). With any other
// [Source], the counts of a stream after the last scrape that saw it, and
// of streams that lived entirely between two scrapes, are not counted.
package promrecord
