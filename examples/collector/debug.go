package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/debughttp"
	"github.com/recordmux/recordmux/quicrecord/promrecord"
)

// debugMux serves the listener's diagnostics: JSON (or, with
// ?format=text, the summary table) at /debug/recordmux, and Prometheus
// metrics at /metrics, the library's and the collector's own. Serve it on
// an internal address only: it names scopes and peers.
func debugMux(ln *quicrecord.Listener, store *quicrecord.ResumeStore, c *collector) *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		promrecord.NewCollector(ln, nil),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_records_written_total",
			Help: "Records written to the sink.",
		}, func() float64 { return float64(c.sinkStats().Written) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_duplicates_skipped_total",
			Help: "Records acknowledged without writing because the sink already held them.",
		}, func() float64 { return float64(c.sinkStats().Duplicates) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_commits_total",
			Help: "Groups of records written and synced together.",
		}, func() float64 { return float64(c.sinkStats().Commits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "collector_stream_keys",
			Help: "Streams (client identity, key) in the journal's state.",
		}, func() float64 { return float64(c.sinkStats().Keys) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_jetstream_fenced_total",
			Help: "JetStream batches refused because another collector had taken the key over (never acknowledged).",
		}, func() float64 { return float64(c.sinkStats().Fenced) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_jetstream_failed_total",
			Help: "JetStream batches not confirmed (error or timeout; never acknowledged).",
		}, func() float64 { return float64(c.sinkStats().Failed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "collector_resume_store_keys",
			Help: "Resumable streams the in-memory ResumeStore holds.",
		}, func() float64 { return float64(store.Len()) }),
	)
	mux := http.NewServeMux()
	mux.Handle("/debug/recordmux", debughttp.NewHandler(ln, nil))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
