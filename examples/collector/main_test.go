package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/examples/internal/outbuf"
	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/debughttp"
	"github.com/recordmux/recordmux/quicrecord/jsrecord"
)

// certSet writes a -gencert set into a temporary directory.
func certSet(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if err := gencert(dir, []string{"localhost", "127.0.0.1"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadPair(t testing.TB, dir, name string) tls.Certificate {
	t.Helper()
	c, err := identity.Load(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pinned is a client TLS config that pins the key of the certificate
// dir/name.pem.
func pinned(t testing.TB, dir, name string) *tls.Config {
	t.Helper()
	fp, err := identity.LoadFingerprint(filepath.Join(dir, name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	return identity.ClientConfig(fp)
}

// collectorProc is a collector running in-process.
type collectorProc struct {
	addr, debug    string
	stdout, stderr *outbuf.Buffer
	cancel         context.CancelFunc
	done           chan int
}

// startCollector runs the collector with args plus a loopback address,
// and waits until it listens.
func startCollector(t testing.TB, args ...string) *collectorProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &collectorProc{stdout: &outbuf.Buffer{}, stderr: &outbuf.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	args = append([]string{"-addr", "127.0.0.1:0", "-stats", "0"}, args...)
	go func() { p.done <- run(ctx, args, p.stdout, p.stderr) }()
	t.Cleanup(func() { p.stop(t) })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	m := p.stderr.Wait(wctx, regexp.MustCompile(`msg=listening addr=(\S+)`))
	if m == nil {
		t.Fatalf("collector did not start; stderr:\n%s", p.stderr)
	}
	p.addr = m[1]
	if m := regexp.MustCompile(`json=http://(\S+)/debug/recordmux`).FindStringSubmatch(p.stderr.String()); m != nil {
		p.debug = m[1]
	}
	return p
}

// stop stops the collector and checks that it exited cleanly.
func (p *collectorProc) stop(t testing.TB) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case code := <-p.done:
		if code != 0 {
			t.Errorf("collector exit code %d; stderr:\n%s", code, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("collector did not stop; stderr:\n%s", p.stderr)
	}
}

func sendAll(t *testing.T, s *quicrecord.RecordStream, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := s.Send(t.Context(), fmt.Appendf(nil, "record %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Barrier(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}

// TestCollectorDebugAndDedupe runs the collector with a file sink, a
// state file and the debug endpoint; checks the JSON diagnostics and the
// Prometheus metrics while a stream is open; and checks that a plain
// stream resending records under the same dedupe key is acknowledged
// without writing them twice.
func TestCollectorDebugAndDedupe(t *testing.T) {
	certs := certSet(t)
	dir := t.TempDir()
	sink := filepath.Join(dir, "sink.jsonl")
	p := startCollector(t, "-cert", filepath.Join(certs, "collector.pem"), "-key", filepath.Join(certs, "collector-key.pem"),
		"-sink", sink, "-state", filepath.Join(dir, "state"), "-debug-addr", "127.0.0.1:0")
	if p.debug == "" {
		t.Fatalf("no debug address in the log:\n%s", p.stderr)
	}
	ctx := t.Context()
	conn, err := quicrecord.Dial(ctx, p.addr, pinned(t, certs, "collector"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	opts := quicrecord.StreamOptions{Scope: "orders", Metadata: map[string]string{keyMetadata: "batch-7"}}
	s, err := conn.OpenRecordStream(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	sendAll(t, s, 1, 100)

	var resp debughttp.Response
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+p.debug+"/debug/recordmux")), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Summary.Streams.Open != 1 || resp.Summary.In.Records != 100 || len(resp.Streams) != 1 || resp.Streams[0].Identity.Scope != "orders" {
		t.Errorf("debug JSON: summary %+v, %d streams; want 1 open stream of scope orders with 100 records in", resp.Summary, len(resp.Streams))
	}
	if text := httpGet(t, "http://"+p.debug+"/debug/recordmux?format=text"); !strings.Contains(text, "recordmux: 1 stream (1 open") {
		t.Errorf("debug text lacks the summary table:\n%s", text)
	}
	metrics := httpGet(t, "http://"+p.debug+"/metrics")
	for _, want := range []string{
		`recordmux_records_total{direction="in"} 100`,
		`recordmux_streams{state="open"} 1`,
		`collector_records_written_total 100`,
		`collector_stream_keys 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A producer without resumption retries: a new plain stream with the
	// same dedupe key sends 1..150. Records 1..100 are acknowledged
	// without being written again.
	s2, err := conn.OpenRecordStream(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	sendAll(t, s2, 1, 150)
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	p.stop(t)
	if got := sinkSeqs(t, sink); len(got) != 150 || got[0] != 1 || got[149] != 150 {
		t.Fatalf("sink holds %d records (%v...); want 1..150 once", len(got), got[:min(len(got), 5)])
	}
	if !strings.Contains(p.stderr.String(), "written=50 duplicates_skipped=100") {
		t.Errorf("the second stream's log does not report 50 written and 100 skipped:\n%s", p.stderr)
	}
}

// TestCollectorMutualTLS: with -client-ca naming the agent's self-signed
// certificate (as -gencert suggests), a client without a certificate, or
// with another one, is refused during the handshake; the agent gets
// through.
func TestCollectorMutualTLS(t *testing.T) {
	certs := certSet(t)
	sink := filepath.Join(t.TempDir(), "sink.jsonl")
	p := startCollector(t, "-cert", filepath.Join(certs, "collector.pem"), "-key", filepath.Join(certs, "collector-key.pem"),
		"-client-ca", filepath.Join(certs, "agent.pem"), "-sink", sink)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stranger, err := identity.Generate("edge-agent")
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		certs []tls.Certificate
	}{{"no client certificate", nil}, {"another client certificate", []tls.Certificate{stranger}}} {
		// TLS 1.3: the client's handshake completes before the server
		// has checked the client's certificate, so the refusal may
		// arrive only as the connection's end, when the client first
		// uses it.
		conf := pinned(t, certs, "collector")
		conf.Certificates = c.certs
		conn, err := quicrecord.Dial(ctx, p.addr, conf, nil)
		if err == nil {
			_, err = conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "mtls"})
			_ = conn.Close()
		}
		var te *quic.TransportError
		if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() || !te.Remote {
			t.Fatalf("Dial with %s = %v; want a TLS alert from the collector", c.name, err)
		}
		t.Logf("%s: refused as expected: %v", c.name, err)
	}

	conf := pinned(t, certs, "collector")
	conf.Certificates = []tls.Certificate{loadPair(t, certs, "agent")}
	conn, err := quicrecord.Dial(ctx, p.addr, conf, nil)
	if err != nil {
		t.Fatalf("Dial with the agent certificate: %v", err)
	}
	defer conn.Close()
	s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "mtls"})
	if err != nil {
		t.Fatal(err)
	}
	sendAll(t, s, 1, 10)
	_ = s.Close(context.Background())
	_ = conn.Close()
	p.stop(t)
	if got := sinkSeqs(t, sink); len(got) != 10 {
		t.Fatalf("sink holds %d records, want 10", len(got))
	}
	if !strings.Contains(p.stderr.String(), "client_cert=true") {
		t.Errorf("the collector did not log the client certificate:\n%s", p.stderr)
	}
}

// TestGencert: the files are written once, and not overwritten.
func TestGencert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	var out strings.Builder
	if code := run(t.Context(), []string{"-gencert", dir}, &out, io.Discard); code != 0 {
		t.Fatalf("-gencert exit code %d", code)
	}
	for _, f := range []string{"collector.pem", "collector-key.pem", "agent.pem", "agent-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	for _, f := range []string{"collector-key.pem", "agent-key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	collector := loadPair(t, dir, "collector")
	if err := collector.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the collector certificate is not for the default -hosts: %v", err)
	}
	fp := identity.FingerprintOf(collector.Leaf).String()
	for _, hint := range []string{"-client-ca " + dir + "/agent.pem", "edge-agent -pin " + fp + " "} {
		if !strings.Contains(out.String(), hint) {
			t.Errorf("no usage hint %q:\n%s", hint, out.String())
		}
	}
	var errOut strings.Builder
	if code := run(t.Context(), []string{"-gencert", dir}, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "exists") {
		t.Errorf("second -gencert: exit code %d, stderr %q; want a refusal to overwrite", code, errOut.String())
	}
}

// TestCollectorFlags: usage errors exit with 2.
func TestCollectorFlags(t *testing.T) {
	for _, args := range [][]string{
		{},                 // no certificate
		{"-cert", "x.pem"}, // no key
		{"-cert", "x", "-key", "y", "-max-batch", "0"},
		{"extra"},
	} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}

// TestHelp: -h says on its first line what the program does, then lists
// the flags, and exits 0.
func TestHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-h: exit code %d", code)
	}
	help := stderr.String()
	first, _, _ := strings.Cut(help, "\n")
	if !strings.HasPrefix(first, "collector: ") || len(first) < len("collector: ")+30 {
		t.Errorf("-h starts with %q; want a line saying what collector does", first)
	}
	if !strings.Contains(help, "\n  -addr ") {
		t.Errorf("-h does not list -addr:\n%s", help)
	}
}

// TestCollectorKeyPerIdentity: two clients with certificates of their own
// use one resume key and one dedupe key. Each gets a stream of its own,
// as the core's ResumeStore keeps state per (identity, key): nothing is
// refused, neither client's records are taken for duplicates of the
// other's, and after a restart, with only the state file left, each
// resumable stream continues from its own position.
func TestCollectorKeyPerIdentity(t *testing.T) {
	certs := certSet(t)
	bob, err := identity.Generate("edge-agent-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.Save(bob, filepath.Join(certs, "bob.pem"), filepath.Join(certs, "bob-key.pem")); err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, f := range []string{"agent.pem", "bob.pem"} {
		pem, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, pem...)
	}
	ca := filepath.Join(certs, "clients.pem")
	if err := os.WriteFile(ca, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sink := filepath.Join(dir, "sink.jsonl")
	args := []string{"-cert", filepath.Join(certs, "collector.pem"), "-key", filepath.Join(certs, "collector-key.pem"),
		"-client-ca", ca, "-sink", sink, "-state", filepath.Join(dir, "state")}
	clients := []struct {
		cert tls.Certificate
		n    int // records of the resumable stream before the restart; half as many on the plain one
	}{{loadPair(t, certs, "agent"), 100}, {bob, 60}}
	conf := func(cert tls.Certificate) *tls.Config {
		c := pinned(t, certs, "collector")
		c.Certificates = []tls.Certificate{cert}
		return c
	}
	key := []byte("shared-key")
	resumable := func(addr string, cert tls.Certificate, from, to int) {
		t.Helper()
		opts := quicrecord.ResumeOptions{Key: key, FirstSeq: uint64(from), MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
		rs, err := quicrecord.DialResumable(t.Context(), addr, conf(cert), nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		sendResumable(t, rs, from, to)
		if err := rs.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	p := startCollector(t, args...)
	for _, c := range clients {
		resumable(p.addr, c.cert, 1, c.n)
		conn, err := quicrecord.Dial(t.Context(), p.addr, conf(c.cert), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := conn.OpenRecordStream(t.Context(), quicrecord.StreamOptions{Scope: "orders", Metadata: map[string]string{keyMetadata: "batch-7"}})
		if err != nil {
			t.Fatal(err)
		}
		sendAll(t, s, 1, c.n/2)
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
	}
	p.stop(t)
	logs := p.stderr.String()
	p = startCollector(t, args...)
	for _, c := range clients {
		resumable(p.addr, c.cert, c.n+1, c.n+10)
	}
	p.stop(t)
	logs += p.stderr.String()

	got := sinkStreams(t, sink)
	want := map[streamID][]uint64{}
	for _, c := range clients {
		peer := identity.FingerprintOf(c.cert.Leaf).String()
		want[streamOf(peer, jsrecord.KeyName(key))] = seqRange(1, c.n+10)
		want[streamOf(peer, "plain/batch-7")] = seqRange(1, c.n/2)
	}
	if len(got) != len(want) {
		t.Errorf("the sink holds %d streams, want %d", len(got), len(want))
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("stream %+v: the sink holds seqs %v, want 1..%d once each", id, got[id], len(w))
		}
	}
	for _, bad := range []string{"level=WARN", "level=ERROR", "duplicates_skipped=1"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the collector log holds %q:\n%s", bad, logs)
		}
	}
}

func seqRange(from, to int) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, uint64(i))
	}
	return s
}
