package debughttp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/diag"
)

// Source is what the handler serves: the snapshots of a set of live
// record streams. [*quicrecord.Conn] and [*quicrecord.Listener] implement
// it. The handler computes the summary from the same snapshots (with
// [quicrecord.Summarize]), so the summary and the stream list of one
// response describe the same streams.
type Source interface {
	Snapshots() []quicrecord.RecordSnapshot
}

// Options configure the handler. A nil *Options means the defaults.
type Options struct {
	// MaxStreams caps the streams listed in one response; the request's
	// limit parameter may lower it but not raise it. The summary always
	// covers every stream. 0 means 1000; a negative value lists none.
	MaxStreams int
}

const defaultMaxStreams = 1000

func (o *Options) maxStreams() int {
	if o == nil || o.MaxStreams == 0 {
		return defaultMaxStreams
	}
	return max(o.MaxStreams, 0)
}

// Response is the JSON body the handler serves.
type Response struct {
	// TakenAt is when the snapshots were taken.
	TakenAt time.Time `json:"taken_at"`
	// Summary covers every stream of the source, whatever the filters.
	Summary quicrecord.DiagnosticsSummary `json:"summary"`
	// Streams are the streams that match the filters, in key order
	// (scope, connection, stream ID, data ID), at most the limit.
	Streams []quicrecord.RecordSnapshot `json:"streams"`
	// Matched is how many streams matched the filters; Omitted how many
	// of them the limit left out.
	Matched int `json:"matched"`
	Omitted int `json:"omitted"`
}

// NewHandler returns an http.Handler that serves src's diagnostics, for
// mounting on an internal or admin listener, for example:
//
//	mux.Handle("/debug/recordmux", debughttp.NewHandler(ln, nil))
//
// It answers GET and HEAD (anything else is 405) with a [Response] as
// indented JSON. Query parameters:
//
//	format=json|text  text: the summary table, then one line per stream
//	scope=S           only streams with scope S
//	conn=N            only streams of connection N (0: a dialed Conn)
//	stream=ID         only streams with QUIC stream ID ID
//	top=N             length of the summary's top lists (default 5)
//	limit=N           list at most N streams (at most Options.MaxStreams)
//
// A malformed parameter is a 400. The response exposes scopes, data IDs
// and peer addresses: do not serve it to the public.
func NewHandler(src Source, opts *Options) http.Handler {
	return &handler{src: src, max: opts.maxStreams()}
}

type handler struct {
	src Source
	max int
}

// query is a parsed request.
type query struct {
	text     bool
	scope    *string
	conn     *uint64
	stream   *quicrecord.StreamID
	top      int
	limit    int
	hasLimit bool
}

func parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	var q query
	switch f := v.Get("format"); f {
	case "", "json":
	case "text":
		q.text = true
	default:
		return q, fmt.Errorf("format %q: want json or text", f)
	}
	if v.Has("scope") {
		s := v.Get("scope")
		q.scope = &s
	}
	if v.Has("conn") {
		n, err := strconv.ParseUint(v.Get("conn"), 10, 64)
		if err != nil {
			return q, fmt.Errorf("conn: %w", err)
		}
		q.conn = &n
	}
	if v.Has("stream") {
		n, err := strconv.ParseUint(v.Get("stream"), 10, 62)
		if err != nil {
			return q, fmt.Errorf("stream %q: want a stream ID", v.Get("stream"))
		}
		id := quicrecord.StreamID(n)
		q.stream = &id
	}
	if v.Has("top") {
		n, err := strconv.Atoi(v.Get("top"))
		if err != nil || n < 0 {
			return q, fmt.Errorf("top %q: want a count", v.Get("top"))
		}
		q.top = n
		if n == 0 {
			q.top = -1 // no top lists
		}
	}
	if v.Has("limit") {
		n, err := strconv.Atoi(v.Get("limit"))
		if err != nil || n < 0 {
			return q, fmt.Errorf("limit %q: want a count", v.Get("limit"))
		}
		q.limit, q.hasLimit = n, true
	}
	return q, nil
}

func (q *query) match(s *quicrecord.RecordSnapshot) bool {
	id := &s.Identity
	return (q.scope == nil || id.Scope == *q.scope) &&
		(q.conn == nil || id.Conn == *q.conn) &&
		(q.stream == nil || id.StreamID == *q.stream)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		http.Error(w, "debughttp: "+err.Error(), http.StatusBadRequest)
		return
	}
	limit := h.max
	if q.hasLimit {
		limit = min(limit, q.limit)
	}

	snaps := h.src.Snapshots()
	resp := Response{
		TakenAt: time.Now(),
		Summary: quicrecord.Summarize(snaps, &diag.Options{TopN: q.top}),
		Streams: []quicrecord.RecordSnapshot{},
	}
	for i := range snaps {
		if !q.match(&snaps[i]) {
			continue
		}
		resp.Matched++
		if len(resp.Streams) < limit {
			resp.Streams = append(resp.Streams, snaps[i])
		}
	}
	resp.Omitted = resp.Matched - len(resp.Streams)

	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if q.text {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		writeText(w, &resp)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(&resp) // a write error means the client went away
}

// ratio prints a direction's compression ratio ("3.21x"), or a dash
// when no batch went.
func ratio(c diag.CompressionTotals) string {
	if c.BytesAfter == 0 {
		return "-"
	}
	return strconv.FormatFloat(c.Ratio(), 'f', 2, 64) + "x"
}

// writeText writes the summary table, then one line per listed stream
// (with its compression ratio each way).
func writeText(w http.ResponseWriter, resp *Response) {
	var b strings.Builder
	fmt.Fprintf(&b, "taken at %s\n\n", resp.TakenAt.Format(time.RFC3339))
	b.WriteString(resp.Summary.String())
	fmt.Fprintf(&b, "\nstreams: %d matched, %d listed\n", resp.Matched, len(resp.Streams))
	if len(resp.Streams) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scope\tconn\tstream\tdata\trole\tstate\tv\trecs out\trecs in\tin-flight\tbacklog\tratio out\tratio in\tidle\t")
		for i := range resp.Streams {
			s := &resp.Streams[i]
			id := &s.Identity
			idle := "-"
			if !s.Status.LastActivity.IsZero() {
				idle = resp.TakenAt.Sub(s.Status.LastActivity).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%q\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n",
				id.Scope, id.Conn, id.StreamID, id.DataID, id.Role, s.Status.State, id.Version,
				s.Out.Records, s.In.Records, s.Out.InFlightRecords, s.In.BacklogRecords,
				ratio(s.Compression.Out), ratio(s.Compression.In), idle)
		}
		_ = tw.Flush()
	}
	if resp.Omitted > 0 {
		fmt.Fprintf(&b, "(%d more not listed; raise limit or filter)\n", resp.Omitted)
	}
	_, _ = w.Write([]byte(b.String()))
}
