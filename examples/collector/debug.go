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
func debugMux(ln *quicrecord.Listener, store *quicrecord.ResumeStore, j *journal) *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		promrecord.NewCollector(ln, nil),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_records_written_total",
			Help: "Records written to the sink.",
		}, func() float64 { st, _ := j.snapshot(); return float64(st.Written) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_duplicates_skipped_total",
			Help: "Records acknowledged without writing because the sink already held them.",
		}, func() float64 { st, _ := j.snapshot(); return float64(st.Duplicates) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "collector_commits_total",
			Help: "Groups of records written and synced together.",
		}, func() float64 { st, _ := j.snapshot(); return float64(st.Commits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "collector_stream_keys",
			Help: "Stream keys in the state.",
		}, func() float64 { _, keys := j.snapshot(); return float64(keys) }),
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
