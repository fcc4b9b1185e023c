package debughttp_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/debughttp"
	"github.com/recordmux/recordmux/quicrecord/diag"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSource serves fixed snapshots.
type fakeSource []quicrecord.RecordSnapshot

func (f fakeSource) Snapshots() []quicrecord.RecordSnapshot {
	return append([]quicrecord.RecordSnapshot(nil), f...)
}

func fakeSnapshots() fakeSource {
	mk := func(scope string, conn uint64, id quicrecord.StreamID, backlog, inflight uint64) quicrecord.RecordSnapshot {
		var s quicrecord.RecordSnapshot
		s.Identity = quicrecord.StreamIdentity{
			Scope: scope, Conn: conn, StreamID: id, DataID: uint64(id) + 100, Role: quicrecord.RoleAcceptor,
			Version: 2, RemoteAddr: "192.0.2.1:4433", OpenedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		}
		s.Status = quicrecord.StreamStatus{State: quicrecord.StateOpen, LastActivity: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)}
		s.In = diag.InStats{TrafficTotals: diag.TrafficTotals{Records: 10 * backlog, Batches: 3}, BacklogRecords: backlog}
		s.Out = diag.OutStats{TrafficTotals: diag.TrafficTotals{Records: 7, Batches: 1}, InFlightRecords: inflight}
		s.Barrier = diag.BarrierStats{Calls: 2, AckWaitTotal: 3 * time.Millisecond, AckWaitMax: 2 * time.Millisecond}
		s.Compression.Out = diag.CompressionTotals{Compressed: 1, BytesBefore: 4000 * inflight, BytesAfter: 1000 * inflight, CodecTime: time.Millisecond}
		return s
	}
	// In key order, as a Conn or Listener returns them.
	return fakeSource{
		mk("audit", 1, 0, 5, 0),
		mk("audit", 2, 4, 0, 3),
		mk("orders", 1, 4, 9, 1),
		mk("orders", 2, 8, 1, 0),
	}
}

func get(t *testing.T, h http.Handler, target string) (*http.Response, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

func getJSON(t *testing.T, h http.Handler, target string) debughttp.Response {
	t.Helper()
	res, body := get(t, h, target)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Equal(t, "application/json; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
	var r debughttp.Response
	require.NoError(t, json.Unmarshal(body, &r))
	return r
}

// TestHandlerJSON: the default response holds the summary of every
// stream and every stream's snapshot, and decodes back to the same
// values.
func TestHandlerJSON(t *testing.T) {
	src := fakeSnapshots()
	h := debughttp.NewHandler(src, nil)
	r := getJSON(t, h, "/debug/recordmux")
	require.Equal(t, quicrecord.Summarize(src, nil), r.Summary)
	require.Equal(t, []quicrecord.RecordSnapshot(src), r.Streams)
	require.Equal(t, 4, r.Matched)
	require.Zero(t, r.Omitted)
	require.WithinDuration(t, time.Now(), r.TakenAt, time.Minute)

	_, body := get(t, h, "/debug/recordmux")
	require.Contains(t, string(body), `"state": "open"`)
	require.Contains(t, string(body), `"role": "acceptor"`)
	require.Contains(t, string(body), `"ack_wait_total": "3ms"`)
	require.Contains(t, string(body), `"ack_wait_mean": "1.5ms"`)
	require.Contains(t, string(body), `"compression": {`)
	require.Contains(t, string(body), `"codec_time": "1ms"`)
	require.Contains(t, string(body), `"ratio": 4`)
	require.Equal(t, uint64(16000), r.Summary.Compression.Out.BytesBefore)
}

// TestHandlerFilters checks each query parameter and their combination.
func TestHandlerFilters(t *testing.T) {
	src := fakeSnapshots()
	h := debughttp.NewHandler(src, nil)
	key := func(s quicrecord.RecordSnapshot) string {
		return s.Identity.Scope + "/" + string(rune('0'+s.Identity.Conn)) + "/" + string(rune('0'+s.Identity.StreamID))
	}
	for _, c := range []struct {
		query   string
		want    []string
		matched int
	}{
		{"", []string{"audit/1/0", "audit/2/4", "orders/1/4", "orders/2/8"}, 4},
		{"?stream=4", []string{"audit/2/4", "orders/1/4"}, 2},
		{"?conn=2", []string{"audit/2/4", "orders/2/8"}, 2},
		{"?scope=orders", []string{"orders/1/4", "orders/2/8"}, 2},
		{"?scope=orders&conn=1&stream=4", []string{"orders/1/4"}, 1},
		{"?scope=nope", nil, 0},
		{"?scope=", nil, 0},
		{"?limit=1", []string{"audit/1/0"}, 4},
		{"?scope=orders&limit=0", nil, 2},
	} {
		t.Run(c.query, func(t *testing.T) {
			r := getJSON(t, h, "/"+c.query)
			var got []string
			for _, s := range r.Streams {
				got = append(got, key(s))
			}
			require.Equal(t, c.want, got)
			require.Equal(t, c.matched, r.Matched)
			require.Equal(t, c.matched-len(c.want), r.Omitted)
			require.Equal(t, quicrecord.Summarize(src, nil), r.Summary, "the summary ignores filters")
		})
	}

	r := getJSON(t, h, "/?top=1")
	require.Len(t, r.Summary.TopBacklog, 1)
	require.Equal(t, "orders", r.Summary.TopBacklog[0].Scope)
	require.Equal(t, uint64(9), r.Summary.TopBacklog[0].Records)
	r = getJSON(t, h, "/?top=0")
	require.Empty(t, r.Summary.TopBacklog)
	require.Empty(t, r.Summary.TopInFlight)

	capped := debughttp.NewHandler(src, &debughttp.Options{MaxStreams: 2})
	r = getJSON(t, capped, "/?limit=100")
	require.Len(t, r.Streams, 2, "limit cannot raise MaxStreams")
	require.Equal(t, 2, r.Omitted)
	r = getJSON(t, debughttp.NewHandler(src, &debughttp.Options{MaxStreams: -1}), "/")
	require.Empty(t, r.Streams)
	require.Equal(t, 4, r.Summary.Streams.Total)
}

// TestHandlerText: format=text prints the summary table and a line per
// stream.
func TestHandlerText(t *testing.T) {
	src := fakeSnapshots()
	h := debughttp.NewHandler(src, nil)
	res, body := get(t, h, "/?format=text&scope=orders")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))
	text := string(body)
	require.Contains(t, text, quicrecord.Summarize(src, nil).String())
	require.Contains(t, text, "streams: 2 matched, 2 listed\n")
	lines := strings.Split(text, "\n")
	var header, rows []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "recs out") && strings.Contains(l, "backlog"):
			header = append(header, l)
		case strings.HasPrefix(strings.TrimSpace(l), `"orders"`):
			rows = append(rows, l)
		}
	}
	require.Len(t, header, 1)
	require.Len(t, rows, 2)
	require.Equal(t, len(header[0]), len(rows[0]), "columns are aligned")
	require.Contains(t, rows[0], " 90 ")    // records in of orders/1/4
	require.Contains(t, rows[0], " 4.00x ") // its compression ratio out
	require.Contains(t, rows[1], " - ")     // orders/2/8 sent nothing

	_, body = get(t, h, "/?format=text&limit=1")
	require.Contains(t, string(body), "(3 more not listed; raise limit or filter)")
}

// TestHandlerRejects: wrong methods and malformed parameters.
func TestHandlerRejects(t *testing.T) {
	h := debughttp.NewHandler(fakeSnapshots(), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))

	for _, q := range []string{"?format=xml", "?conn=x", "?conn=-1", "?stream=-4", "?stream=a", "?top=-1", "?limit=many"} {
		res, body := get(t, h, "/"+q)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, q)
		require.Contains(t, string(body), "debughttp: ", q)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/?format=text", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Zero(t, rec.Body.Len())
}

// TestHandlerLiveListener serves a real Listener over a real HTTP server:
// the stream its connection accepted appears with the traffic it carried.
func TestHandlerLiveListener(t *testing.T) {
	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
	require.NoError(t, err)
	ln, err := quicrecord.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, nil)
	require.NoError(t, err)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan *quicrecord.Conn, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err := quicrecord.Dial(ctx, ln.Addr().String(), tlsutil.PinnedClientConfig(cert), nil)
	require.NoError(t, err)
	defer client.Close()
	server := <-accepted
	require.NotNil(t, server)
	defer server.Close()

	s, err := client.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "live", DataID: 42})
	require.NoError(t, err)
	defer s.Close(context.Background())
	peer, err := server.AcceptRecordStream(ctx)
	require.NoError(t, err)
	defer peer.Close(context.Background())
	go func() { _ = peer.Apply(ctx, func(quicrecord.Record) error { return nil }) }()
	for range 25 {
		_, err := s.Send(ctx, []byte("0123456789"))
		require.NoError(t, err)
	}
	require.NoError(t, s.Barrier(ctx))

	srv := httptest.NewServer(http.StripPrefix("/debug/recordmux", debughttp.NewHandler(ln, nil)))
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/debug/recordmux?scope=live")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var r debughttp.Response
	require.NoError(t, json.NewDecoder(res.Body).Decode(&r))
	require.Len(t, r.Streams, 1)
	st := r.Streams[0]
	require.Equal(t, "live", st.Identity.Scope)
	require.Equal(t, uint64(42), st.Identity.DataID)
	require.Equal(t, uint64(1), st.Identity.Conn)
	require.Equal(t, quicrecord.RoleAcceptor, st.Identity.Role)
	require.Equal(t, quicrecord.StateOpen, st.Status.State)
	require.Equal(t, client.LocalAddr().String(), st.Identity.RemoteAddr)
	require.Equal(t, uint64(25), st.In.Records)
	require.Equal(t, uint64(250), st.In.Bytes)
	require.Equal(t, uint64(25), st.In.AppliedSeq)
	require.Equal(t, 1, r.Summary.Streams.Open)
	require.Equal(t, uint64(25), r.Summary.In.Records)
}
