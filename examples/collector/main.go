package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/jsrecord"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	addr        string
	certFile    string
	keyFile     string
	clientCA    string
	debugAddr   string
	sink        string
	state       string
	noSync      bool
	idleTimeout time.Duration
	resumeTTL   time.Duration
	maxBatch    int
	stats       time.Duration
	gencert     string
	hosts       string

	jetstream         string
	jetstreamListen   string
	jetstreamReplicas int
}

// codeSinkFailed resets a stream whose records could not be written: its
// producer keeps them and sends them again on a later stream.
const codeSinkFailed = quicrecord.CodeApplicationMin + 1

// keyMetadata is the stream metadata entry that gives a plain stream a
// key for deduplication (resumable streams use their resume key).
const keyMetadata = "dedupe-key"

// run is the whole program; it returns the exit code. It stops when ctx
// is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "collector: a recordmux server that writes records to a sink and acks each only after the write\n\nusage: collector -cert FILE -key FILE [flags]\n       collector -gencert DIR [-hosts LIST]\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:7450", "UDP address to listen on (\":7450\" for every interface)")
	fs.StringVar(&o.certFile, "cert", "", "server certificate, PEM")
	fs.StringVar(&o.keyFile, "key", "", "server private key, PEM")
	fs.StringVar(&o.clientCA, "client-ca", "", "certificates (PEM) that client certificates must chain to: CAs, or the clients' own self-signed certificates (such as -gencert's agent.pem); enables mutual TLS: clients without a valid certificate are refused")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "TCP address for HTTP diagnostics: JSON at /debug/recordmux, Prometheus at /metrics (empty: off)")
	fs.StringVar(&o.sink, "sink", "-", `where records go, as JSON lines: a file (appended to) or "-" for stdout`)
	fs.StringVar(&o.state, "state", "", "state file: the last record written per client identity and stream key, so a restarted collector resumes its producers (empty: memory only); the QUIC stateless reset key is kept beside it, in STATE.reset-key")
	fs.BoolVar(&o.noSync, "no-fsync", false, "do not fsync the sink and the state file (faster; a machine crash may then lose acknowledged records)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 0, "QUIC idle timeout (0: the library default, 30s)")
	fs.DurationVar(&o.resumeTTL, "resume-ttl", 0, "how long a disconnected resumable stream's state stays in memory (0: 5m); the state file outlives it")
	fs.IntVar(&o.maxBatch, "max-batch", 1024, "records written to the sink and synced as one group, at most")
	fs.DurationVar(&o.stats, "stats", 10*time.Second, "interval of the statistics line on stderr (0: none)")
	fs.StringVar(&o.gencert, "gencert", "", "write a certificate set into this directory for trying the collector out, and exit")
	fs.StringVar(&o.hosts, "hosts", "localhost,127.0.0.1,::1", "with -gencert: names and addresses the collector certificate is valid for")
	fs.StringVar(&o.jetstream, "jetstream", "", `publish records to NATS JetStream instead of -sink: a server URL (nats://host:4222, a comma-separated list for a cluster) shared by a fleet of collectors, or "embedded" for a single-node JetStream inside this process, stored beside -state (only resumable streams are accepted)`)
	fs.StringVar(&o.jetstreamListen, "jetstream-listen", "", "with -jetstream embedded: also serve NATS clients (such as the nats CLI) on this TCP address")
	fs.IntVar(&o.jetstreamReplicas, "jetstream-replicas", 1, "replicas of the records stream when the collector creates it (3 on a cluster)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "collector: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if o.gencert != "" {
		if err := gencert(o.gencert, strings.Split(o.hosts, ","), stdout); err != nil {
			fmt.Fprintf(stderr, "collector: %v\n", err)
			return 1
		}
		return 0
	}
	if o.certFile == "" || o.keyFile == "" {
		fmt.Fprintln(stderr, "collector: -cert and -key are required (make a pair with -gencert DIR)")
		return 2
	}
	if o.maxBatch < 1 {
		fmt.Fprintln(stderr, "collector: -max-batch must be at least 1")
		return 2
	}
	if err := collect(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "collector: %v\n", err)
		return 1
	}
	return 0
}

// collector serves record streams into a journal or into JetStream.
type collector struct {
	j     *journal   // the journal sink; nil with -jetstream
	js    *jsBackend // the JetStream sink; nil without -jetstream
	log   *slog.Logger
	batch int
}

// sinkStats are the figures of either sink.
type sinkStats struct {
	Written, Duplicates, Commits uint64
	Keys                         int // streams (identity, key) in the journal's state (the JetStream sink counts claims instead)
	Claims, Fenced, Failed       uint64
}

func (c *collector) sinkStats() sinkStats {
	if c.js != nil {
		st := c.js.sink.Snapshot()
		return sinkStats{Written: st.Records, Commits: st.Batches, Claims: st.Claims,
			Fenced: st.Fenced + st.DuplicateRefused, Failed: st.Failed}
	}
	st, keys := c.j.snapshot()
	return sinkStats{Written: st.Written, Duplicates: st.Duplicates, Commits: st.Commits, Keys: keys}
}

func collect(ctx context.Context, o options, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	tlsConf, fingerprint, err := serverTLS(o)
	if err != nil {
		return err
	}
	c := &collector{log: log, batch: o.maxBatch}
	cfg := &quicrecord.Config{}
	if o.jetstream != "" {
		c.js, err = openJetStream(ctx, o, o.addr, log)
		if err != nil {
			return err
		}
		defer c.js.close()
		cfg.ResumeStore, cfg.AcceptHandler = c.js.sink.NewResumeStore(), c.js.sink.AcceptHandler
	} else {
		j, rec, err := openJournal(o.sink, o.state, stdout, !o.noSync)
		if err != nil {
			return err
		}
		defer j.close()
		if o.state != "" {
			log.Info("state recovered", "file", o.state, "keys", rec.Keys, "sink_committed_bytes", rec.SinkOff,
				"sink_bytes_discarded", rec.Discarded, "torn_state_line", rec.TornState)
		}
		c.j = j
		cfg.ResumeStore = quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{TTL: o.resumeTTL, LoadApplied: j.loadApplied, AllowAnonymous: o.clientCA == ""})
	}
	store := cfg.ResumeStore
	if o.state != "" {
		// A stable stateless reset key: after a crash and restart, the
		// agents' next packets are answered with resets, and they
		// reconnect at once instead of after the idle timeout.
		path := resetKeyPath(o.state)
		key, created, err := loadOrCreateResetKey(path)
		if err != nil {
			return err
		}
		cfg.StatelessResetKey = key
		log.Info("stateless reset key", "file", path, "created", created)
	}
	q := quicrecord.DefaultQUICConfig()
	if o.idleTimeout > 0 {
		q.MaxIdleTimeout = o.idleTimeout
		q.KeepAlivePeriod = min(q.KeepAlivePeriod, o.idleTimeout/2)
	}
	// 0-RTT reconnects of resumable streams (edge-agent): replay-safe, see
	// the README; plain streams wait for the handshake on both sides.
	q.Allow0RTT = true
	cfg.QUIC = q
	ln, err := quicrecord.Listen(o.addr, tlsConf, cfg)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel() // the stream loops return and close their streams
		// Then every connection is closed once its streams are gone, or
		// after a few seconds.
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = ln.Shutdown(sctx)
		scancel()
		wg.Wait()
	}()
	if o.debugAddr != "" {
		dl, err := net.Listen("tcp", o.debugAddr)
		if err != nil {
			return fmt.Errorf("debug listener: %w", err)
		}
		srv := &http.Server{Handler: debugMux(ln, store, c), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { _ = srv.Serve(dl) })
		wg.Go(func() {
			<-ctx.Done()
			_ = srv.Close()
		})
		log.Info("debug http", "json", "http://"+dl.Addr().String()+"/debug/recordmux", "metrics", "http://"+dl.Addr().String()+"/metrics")
	}
	where := o.sink
	if c.js != nil {
		where = c.js.where
	}
	log.Info("listening", "addr", ln.Addr().String(), "fingerprint", fingerprint.String(), "mtls", o.clientCA != "", "sink", where, "state", o.state)
	if o.stats > 0 {
		wg.Go(func() { c.statsLoop(ctx, o.stats, ln, store) })
	}
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				st := c.sinkStats()
				log.Info("stopping", "written", st.Written, "duplicates_skipped", st.Duplicates, "keys", st.Keys)
				return nil
			}
			return err
		}
		wg.Go(func() { c.serveConn(ctx, conn, &wg) })
	}
}

// serverTLS builds the server's TLS configuration from the flags, and
// returns the fingerprint of its key (what agents pin).
func serverTLS(o options) (*tls.Config, identity.Fingerprint, error) {
	cert, err := identity.Load(o.certFile, o.keyFile)
	if err != nil {
		return nil, identity.Fingerprint{}, err
	}
	conf := identity.ServerConfig(cert)
	if o.clientCA != "" {
		// Chain verification, not pinning: quicrecord binds resume keys
		// to verified certificate chains.
		pem, err := os.ReadFile(o.clientCA)
		if err != nil {
			return nil, identity.Fingerprint{}, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, identity.Fingerprint{}, fmt.Errorf("%s: no PEM certificate", o.clientCA)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, identity.FingerprintOf(cert.Leaf), nil
}

func (c *collector) serveConn(ctx context.Context, conn *quicrecord.Conn, wg *sync.WaitGroup) {
	// With 0-RTT allowed, a connection is accepted before its handshake
	// completes; the client certificate is known once it has.
	select {
	case <-conn.QUIC().HandshakeComplete():
	case <-ctx.Done():
		return
	case <-conn.Context().Done():
		return
	}
	peer := quicrecord.DefaultPeerIdentity(conn.QUIC().ConnectionState().TLS)
	c.log.Info("connection", "remote", conn.RemoteAddr().String(), "client_cert", peer != "")
	for {
		s, err := conn.AcceptRecordStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() { c.serveStream(ctx, s, peer) })
	}
}

// serveStream writes a stream's records to the journal and acknowledges
// them once they are committed. It receives what has arrived, up to the
// batch limit, and commits it as one group, so that one sync covers many
// records.
func (c *collector) serveStream(ctx context.Context, s *quicrecord.RecordStream, peer string) {
	if c.js != nil {
		c.serveJetStream(ctx, s)
		return
	}
	defer s.Close(context.Background())
	// The state is per (client identity, key), resumable or plain: a key
	// another client uses is a separate stream, which nothing here refuses
	// or tells apart from an unused key.
	id := streamOf(peer, "")
	if rk := s.ResumeKey(); rk != nil {
		id.Key = jsrecord.KeyName(rk)
	} else if k := s.Metadata()[keyMetadata]; k != "" {
		id.Key = "plain/" + k
	}
	log := c.log.With("scope", s.Scope(), "identity", id.Identity, "key", id.Key, "stream", int64(s.StreamID()))
	from, _ := c.j.applied(id)
	log.Info("stream open", "resumable", s.ResumeKey() != nil, "after_seq", from)

	now, stop := context.WithCancel(ctx)
	stop() // a done context: Recv with it returns only what has arrived
	var (
		batch            []quicrecord.Record
		written, skipped int
		err              error
	)
	for {
		var r quicrecord.Record
		if r, err = s.Recv(ctx); err != nil {
			break
		}
		batch = append(batch[:0], r)
		for len(batch) < c.batch {
			r, rerr := s.Recv(now)
			if rerr != nil {
				break // nothing more has arrived (or the stream ended: the next Recv says so)
			}
			batch = append(batch, r)
		}
		w, sk, cerr := c.j.commit(id, s.Scope(), batch)
		if cerr != nil {
			log.Error("commit failed; resetting the stream, its producer keeps the records", "err", cerr)
			_ = s.CloseWithError(codeSinkFailed, "collector sink failed")
			return
		}
		written += w
		skipped += sk
		// Only now, with the records in the sink and the position in
		// the state file, acknowledge them.
		if err = s.Ack(batch[len(batch)-1].Seq); err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		log.Info("stream finished", "written", written, "duplicates_skipped", skipped)
		return
	}
	log.Info("stream ended", "written", written, "duplicates_skipped", skipped, "err", err)
}

// serveJetStream publishes a resumable stream's records to JetStream and
// acknowledges them once JetStream confirmed them (jsrecord.Sink.Serve).
func (c *collector) serveJetStream(ctx context.Context, s *quicrecord.RecordStream) {
	log := c.log.With("scope", s.Scope(), "key", jsrecord.KeyName(s.ResumeKey()), "stream", int64(s.StreamID()))
	log.Info("stream open", "resumable", s.ResumeKey() != nil, "sink", "jetstream")
	if err := c.js.sink.Serve(ctx, s); err != nil {
		log.Info("stream ended", "err", err)
		return
	}
	log.Info("stream finished")
}

// statsLoop prints a statistics line every interval.
func (c *collector) statsLoop(ctx context.Context, every time.Duration, ln *quicrecord.Listener, store *quicrecord.ResumeStore) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := c.sinkStats()
		d := ln.Diagnostics()
		c.log.Info("stats", "streams_open", d.Streams.Open, "records_in", d.In.Records, "written", st.Written,
			"duplicates_skipped", st.Duplicates, "commits", st.Commits, "keys", st.Keys, "claims", st.Claims,
			"fenced", st.Fenced, "failed", st.Failed, "resume_store_keys", store.Len(), "apply_backlog", d.Backlog.Records)
	}
}
