// Package debughttp serves the diagnostics of recordmux record streams
// over HTTP, as JSON for tools and as the summary table for people, in
// the manner of net/http/pprof and expvar. It lives apart from package
// quicrecord so that the core does not import net/http.
//
// # Usage
//
// Mount a handler per source on an internal or admin mux:
//
//	mux := http.NewServeMux()
//	mux.Handle("/debug/recordmux", debughttp.NewHandler(ln, nil))
//
// then
//
//	curl 'localhost:6060/debug/recordmux?format=text'
//	curl 'localhost:6060/debug/recordmux?scope=orders&limit=10' | jq .summary
//
// See [NewHandler] for the query parameters and [Response] for the JSON.
//
// # Concurrency
//
// Each request takes the source's snapshots once; taking them reads
// atomics only and never blocks the streams' loops. The handler is safe
// for concurrent use.
//
// # Limitations
//
// The response names scopes, data IDs, remote addresses and failure
// causes; it has no access control of its own. The summary covers live
// streams only (see quicrecord.DiagnosticsSummary).
package debughttp
