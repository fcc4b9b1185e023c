package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/examples/internal/count"
	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/diag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the agent at once, without draining
	}()
	// SIGHUP: the network changed; move the connection (see -migrate-addr).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	migrate := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case migrate <- struct{}{}:
			default:
			}
		}
	}()
	code := runWith(ctx, os.Args[1:], os.Stdout, os.Stderr, migrate)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	addr         string
	ca           string
	pin          string
	serverName   string
	certFile     string
	keyFile      string
	tail         string
	generate     int64
	rate         float64
	state        string
	scope        string
	name         string
	idleTimeout  time.Duration
	minBackoff   time.Duration
	maxBackoff   time.Duration
	progress     time.Duration
	checkpoint   time.Duration
	drainTimeout time.Duration
	compression  quicrecord.Compression
	migrateAddr  string
	migrateAfter time.Duration
}

// run is the whole program; it returns the exit code. When ctx ends, the
// agent stops reading its source, waits for what it sent to be applied
// (at most -drain-timeout) and exits.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdout, stderr, nil)
}

// runWith is run with a channel that asks for a connection migration
// (main sends on it for every SIGHUP).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, migrate <-chan struct{}) int {
	fs := flag.NewFlagSet("edge-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "edge-agent: streams a followed file or generated telemetry to a collector over a resumable stream\n\nusage: edge-agent (-pin FINGERPRINT|FILE | -ca FILE) (-tail PATH | -generate N) [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o options
	host, _ := os.Hostname()
	fs.StringVar(&o.addr, "addr", "127.0.0.1:7450", "collector address (UDP); a comma-separated list for a fleet sharing its state (such as collectors on one JetStream): the stream moves to the next when one is unreachable or refuses")
	fs.StringVar(&o.ca, "ca", "", "CA certificates (PEM) to verify the collector with")
	fs.StringVar(&o.pin, "pin", "", "trust exactly the collector key with this fingerprint (sha256:…), or the key of this certificate file (PEM), as -gencert writes")
	fs.StringVar(&o.serverName, "server-name", "", "with -ca: the name to verify in the collector's certificate (default: the host of -addr); with -pin it is only sent (SNI)")
	fs.StringVar(&o.certFile, "cert", "", "client certificate (PEM) for collectors that require one")
	fs.StringVar(&o.keyFile, "key", "", "client private key (PEM)")
	fs.StringVar(&o.tail, "tail", "", "follow this file: every new line becomes a record")
	fs.Int64Var(&o.generate, "generate", 0, "generate this many telemetry records, then exit")
	fs.Float64Var(&o.rate, "rate", 1000, "with -generate: records per second (0: as fast as the stream takes them)")
	fs.StringVar(&o.state, "state", "", "state file: the stream's resume key and how far the collector got, so a restarted agent continues its stream (empty: a new stream every run)")
	fs.StringVar(&o.scope, "scope", "telemetry", "stream scope")
	fs.StringVar(&o.name, "name", host, "agent name, in the stream metadata and generated records")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 0, "QUIC idle timeout: how soon a silent collector counts as gone (0: the library default, 30s)")
	fs.DurationVar(&o.minBackoff, "min-backoff", quicrecord.DefaultMinBackoff, "first wait before reconnecting")
	fs.DurationVar(&o.maxBackoff, "max-backoff", quicrecord.DefaultMaxBackoff, "longest wait between reconnection attempts")
	fs.DurationVar(&o.progress, "progress", time.Second, "interval of the progress lines on stderr (0: none)")
	fs.DurationVar(&o.checkpoint, "checkpoint", 250*time.Millisecond, "how often the state file is brought up to date")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "at exit, how long to wait for the collector to apply what was sent")
	compression := fs.String("compression", "auto", "batch compression: auto (S2, skipping data that does not shrink), s2, zstd (smaller, more CPU: slow or metered links) or off")
	fs.StringVar(&o.migrateAddr, "migrate-addr", "", "local address (IP:port, port 0 for any) of the socket the connection moves to on SIGHUP, after the network changed: probe and switch, no reconnect (empty: a new socket of the same family on any address)")
	fs.DurationVar(&o.migrateAfter, "migrate-after", 0, "move the connection to -migrate-addr once, this long after the start (0: only on SIGHUP)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "edge-agent: unexpected arguments %q\n", fs.Args())
		return 2
	case (o.tail == "") == (o.generate <= 0):
		fmt.Fprintln(stderr, "edge-agent: give one of -tail PATH and -generate N")
		return 2
	case (o.ca == "") == (o.pin == ""):
		fmt.Fprintln(stderr, "edge-agent: give one of -ca and -pin to say how to trust the collector")
		return 2
	case (o.certFile == "") != (o.keyFile == ""):
		fmt.Fprintln(stderr, "edge-agent: -cert and -key go together")
		return 2
	case o.minBackoff <= 0 || o.maxBackoff < o.minBackoff || o.checkpoint <= 0:
		fmt.Fprintln(stderr, "edge-agent: need 0 < -min-backoff <= -max-backoff and -checkpoint > 0")
		return 2
	}
	var err error
	if o.compression, err = quicrecord.ParseCompression(*compression); err != nil {
		fmt.Fprintln(stderr, "edge-agent: -compression must be auto, s2, zstd or off")
		return 2
	}
	if err := agent(ctx, o, stdout, &lockedWriter{w: stderr}, migrate); err != nil {
		fmt.Fprintf(stderr, "edge-agent: %v\n", err)
		return 1
	}
	return 0
}

// lockedWriter serialises writes from the agent's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// position pairs a sent record with the tail offset after it.
type position struct {
	seq uint64
	off int64
}

func agent(ctx context.Context, o options, stdout, stderr io.Writer, migrate <-chan struct{}) error {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "edge-agent: %6.1fs "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	tlsConf, err := clientTLS(o)
	if err != nil {
		return err
	}

	// The stream's identity and position survive restarts in the state
	// file; it is written before the first record is sent, so that even
	// an agent killed right away continues the same stream.
	st, resumed, err := loadState(o.state)
	if err != nil {
		return err
	}
	srcName := "generate"
	if o.tail != "" {
		abs, err := filepath.Abs(o.tail)
		if err != nil {
			return err
		}
		srcName = "tail " + abs
	}
	if resumed && st.Source != srcName {
		return fmt.Errorf("state file %s belongs to %q, not %q: use another -state", o.state, st.Source, srcName)
	}
	st.Source = srcName
	if err := st.save(o.state); err != nil {
		return err
	}
	key, _ := hex.DecodeString(st.Key)
	first := st.Acked + 1

	var src source
	if o.tail != "" {
		t, err := newTailer(o.tail, first, st.Offset, func(msg string) { logf("%s", msg) })
		if err != nil {
			return err
		}
		defer t.close()
		src = t
	} else {
		src = newGenerator(o.name, first, o.generate, o.rate)
	}

	// Telemetry compresses 3-5×: on a cellular link that is most of the
	// bill. A collector that does not accept compression gets plain
	// batches.
	cfg := &quicrecord.Config{Stream: quicrecord.StreamConfig{Compression: o.compression}}
	if o.idleTimeout > 0 {
		q := quicrecord.DefaultQUICConfig()
		q.MaxIdleTimeout = o.idleTimeout
		q.KeepAlivePeriod = o.idleTimeout / 3
		q.HandshakeIdleTimeout = max(2*o.idleTimeout, time.Second)
		cfg.QUIC = q
	}
	opts := quicrecord.ResumeOptions{
		Stream: quicrecord.StreamOptions{
			Scope:    o.scope,
			Metadata: map[string]string{"agent": o.name, "source": srcName},
		},
		Key:        key,
		FirstSeq:   first,
		MinBackoff: o.minBackoff,
		MaxBackoff: o.maxBackoff,
		OnEvent: func(e quicrecord.ResumeEvent) {
			if e.Err != nil {
				logf("%v (collector applied up to seq %d): %v", e.Kind, e.Acked, e.Err)
			} else {
				logf("%v (collector applied up to seq %d)", e.Kind, e.Acked)
			}
		},
	}
	if resumed {
		logf("continuing stream %s after seq %d; %s", st.Key, st.Acked, src.describe())
	} else {
		logf("new stream %s; %s", st.Key, src.describe())
	}
	rs, err := dial(ctx, o, tlsConf, cfg, opts, logf)
	if err != nil {
		if ctx.Err() == nil {
			return err
		}
		// Stopped (SIGINT, SIGTERM) before the collector was ever
		// reached: nothing was sent, so there is nothing to drain, and
		// stopping is what was asked for.
		logf("stopped before the collector was reached")
		printSummary(stdout, summary{key: st.Key, source: srcName, first: first, elapsed: time.Since(start)})
		return nil
	}

	stopMigrations := migrations(ctx, o, rs, migrate, logf)
	defer stopMigrations()

	// Checkpoints and progress run beside the send loop.
	var (
		mu        sync.Mutex
		positions []position // tail mode: sent and not yet known to be applied
		sent      int64
		lastSeq   = first - 1
	)
	checkpoint := func() error {
		snap := rs.Snapshot()
		mu.Lock()
		next := st
		if o.tail == "" {
			next.Acked = max(st.Acked, snap.AckedSeq)
		} else {
			i := 0
			for i < len(positions) && positions[i].seq <= snap.AckedSeq {
				i++
			}
			if i > 0 {
				next.Acked, next.Offset = positions[i-1].seq, positions[i-1].off
				positions = positions[i:]
			}
		}
		mu.Unlock()
		if next == st {
			return nil
		}
		if err := next.save(o.state); err != nil {
			return err
		}
		st = next
		return nil
	}
	bg, stopBG := context.WithCancel(context.Background())
	var bgDone sync.WaitGroup
	bgDone.Go(func() {
		cp := time.NewTicker(o.checkpoint)
		defer cp.Stop()
		var pc <-chan time.Time
		if o.progress > 0 {
			pt := time.NewTicker(o.progress)
			defer pt.Stop()
			pc = pt.C
		}
		for {
			select {
			case <-bg.Done():
				return
			case <-cp.C:
				if err := checkpoint(); err != nil {
					logf("saving state: %v", err)
				}
			case <-pc:
				snap := rs.Snapshot()
				mu.Lock()
				n := sent
				mu.Unlock()
				conn := "connected"
				if !snap.Connected {
					conn = "DISCONNECTED"
				}
				logf("sent %d  acked seq %d  retained %d  %s  resumes %d  replayed %d  duplicates dropped %d  down %v",
					n, snap.AckedSeq, snap.Retained, conn, snap.Stats.Resumes, snap.Stats.ReplayedRecords,
					snap.Stats.DuplicatesDropped, snap.Stats.Disconnected.Round(time.Millisecond))
			}
		}
	})

	// The send loop. There is no resend buffer here: the resumable
	// stream keeps every record until the collector applied it and sends
	// it again after a reconnection.
	var loopErr error
	for {
		it, err := src.next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				loopErr = err
			}
			break
		}
		seq, err := rs.Send(ctx, it.data)
		if err != nil {
			if ctx.Err() == nil {
				loopErr = err
			}
			break
		}
		if seq != it.seq {
			loopErr = fmt.Errorf("internal error: record expected as seq %d was sent as %d", it.seq, seq)
			break
		}
		mu.Lock()
		sent++
		lastSeq = seq
		if o.tail != "" {
			positions = append(positions, position{seq, it.off})
		}
		mu.Unlock()
	}
	if ctx.Err() != nil {
		logf("interrupted: draining (a second signal exits at once)")
	}

	// Shutdown is a durability point: Barrier waits until the collector
	// applied everything sent, across reconnections; Close then ends the
	// stream gracefully.
	var drainErr error
	if rs.Err() == nil {
		logf("waiting for the collector to apply everything up to seq %d", lastSeq)
		dctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
		drainErr = rs.Barrier(dctx)
		cancel()
	}
	// The compression figures of the stream on the current connection,
	// before Close ends it.
	var z diag.CompressionTotals
	if cur := rs.Snapshot().Stream; cur != nil {
		z = cur.Compression.Out
	}
	closeErr := rs.Close(context.Background())
	stopBG()
	bgDone.Wait()
	if err := checkpoint(); err != nil {
		logf("saving state: %v", err)
	}

	printSummary(stdout, summary{
		key: st.Key, source: srcName, first: first, last: lastSeq, sent: sent,
		snap: rs.Snapshot(), elapsed: time.Since(start), compression: o.compression, z: z,
	})
	if err := errors.Join(loopErr, rs.Err(), drainErr); err != nil {
		return err
	}
	if closeErr != nil && !errors.Is(closeErr, quicrecord.ErrClosed) {
		return closeErr
	}
	return nil
}

// summary is what the agent prints at exit.
type summary struct {
	key, source string
	first, last uint64 // the first seq of this run, the last one sent
	sent        int64
	snap        quicrecord.ResumableSnapshot // zero if the stream never opened
	elapsed     time.Duration
	compression quicrecord.Compression
	z           diag.CompressionTotals // the last connection's stream, sending
}

// printSummary writes the exit summary.
func printSummary(w io.Writer, s summary) {
	acked := int64(0)
	if s.sent > 0 && s.snap.AckedSeq >= s.first {
		acked = int64(min(s.snap.AckedSeq, s.last) - s.first + 1)
	}
	fmt.Fprintf(w, "edge-agent summary: stream %s (%s)\n", s.key, s.source)
	if s.sent > 0 {
		fmt.Fprintf(w, "  records sent        %d (seq %d..%d)\n", s.sent, s.first, s.last)
	} else {
		fmt.Fprintf(w, "  records sent        0\n")
	}
	fmt.Fprintf(w, "  records acked       %d\n", acked)
	fmt.Fprintf(w, "  connections         %d (%s)\n", s.snap.Stats.Connects, count.Of(s.snap.Stats.Resumes, "resume", "resumes"))
	fmt.Fprintf(w, "  replayed            %d\n", s.snap.Stats.ReplayedRecords)
	fmt.Fprintf(w, "  duplicates dropped  %d\n", s.snap.Stats.DuplicatesDropped)
	fmt.Fprintf(w, "  time disconnected   %v\n", s.snap.Stats.Disconnected.Round(time.Millisecond))
	fmt.Fprintf(w, "  elapsed             %v\n", s.elapsed.Round(time.Millisecond))
	ratio := "-"
	if s.z.BytesAfter > 0 {
		ratio = fmt.Sprintf("%.2fx", s.z.Ratio())
	}
	fmt.Fprintf(w, "  compression         %s: ratio %s, %d → %d bytes in %d compressed batches (last connection)\n",
		s.compression, ratio, s.z.BytesBefore, s.z.BytesAfter, s.z.Compressed)
}

// dial opens the resumable stream, retrying with backoff while the
// collector cannot be reached. Later reconnections are the stream's own
// business.
func dial(ctx context.Context, o options, tlsConf *tls.Config, cfg *quicrecord.Config, opts quicrecord.ResumeOptions, logf func(string, ...any)) (*quicrecord.ResumableStream, error) {
	backoff := o.minBackoff
	// 0-RTT reconnects: the resume HELLO, and the held records behind it,
	// ride in the first flight of every connection after the first (the
	// collector allows 0-RTT and offers optimistic resumes).
	connect := quicrecord.FailoverDialEarly(strings.Split(o.addr, ","), tlsConf, cfg, 0)
	for {
		rs, err := quicrecord.NewResumableStream(ctx, connect, cfg, opts)
		if err == nil {
			return rs, nil
		}
		var re *quicrecord.ResumeError
		switch {
		case errors.As(err, &re):
			return nil, fmt.Errorf("the collector cannot continue this stream (did it lose its -state file?): %w", err)
		case permanent(err):
			return nil, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		logf("collector %s not reachable (%v); retrying in %v", o.addr, err, backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, o.maxBackoff)
	}
}

// permanent reports errors that retrying does not fix: TLS failures such
// as an untrusted certificate or a refused client certificate.
func permanent(err error) bool {
	var te *quic.TransportError
	return errors.Is(err, quicrecord.ErrALPNMismatch) || (errors.As(err, &te) && te.ErrorCode.IsCryptoError())
}

// clientTLS builds the TLS configuration from the flags. It always
// verifies the collector: through a CA (-ca), or by pinning its key
// (-pin; see package identity for what a pin checks).
func clientTLS(o options) (*tls.Config, error) {
	var conf *tls.Config
	if o.pin != "" {
		var pin identity.Fingerprint
		var err error
		if strings.HasPrefix(strings.ToLower(o.pin), "sha256:") {
			pin, err = identity.ParseFingerprint(o.pin)
		} else {
			pin, err = identity.LoadFingerprint(o.pin)
		}
		if err != nil {
			return nil, fmt.Errorf("-pin: %w", err)
		}
		conf = identity.ClientConfig(pin)
	} else {
		data, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s: no PEM certificate", o.ca)
		}
		first, _, _ := strings.Cut(o.addr, ",")
		host, _, err := net.SplitHostPort(first)
		if err != nil {
			return nil, fmt.Errorf("-addr: %w", err)
		}
		conf = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS13}
	}
	if o.serverName != "" {
		conf.ServerName = o.serverName
	}
	if o.certFile != "" {
		cert, err := identity.Load(o.certFile, o.keyFile)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
