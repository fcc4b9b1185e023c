package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/examples/internal/count"
	"github.com/recordmux/recordmux/examples/internal/latency"
	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	records      int
	size         int
	streams      int
	linger       time.Duration
	batchRecords int
	batchBytes   int
	ackDelay     time.Duration
	window       int
	target       time.Duration
	sampleEvery  int
	progress     time.Duration
}

// run is the whole program: it parses args, runs the exchange and writes
// the report to stdout and progress to stderr. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "quickstart: a recordmux listener and client on loopback; prints throughput, latency and diagnostics\n\nusage: quickstart [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o options
	fs.IntVar(&o.records, "records", 400_000, "records to send in total, split evenly over the streams and both directions")
	fs.IntVar(&o.size, "size", 256, "record size in bytes (at least 8: each record carries its send time)")
	fs.IntVar(&o.streams, "streams", 4, "record streams to open on the one connection")
	fs.DurationVar(&o.linger, "linger", 0, "Config.Stream.FlushDelay: how long the writer lingers for more records before sending a batch that is not full")
	fs.IntVar(&o.batchRecords, "batch-records", 0, fmt.Sprintf("Config.Stream.MaxBatchRecords: records per BATCH frame (0: the library default, %d)", quicrecord.DefaultMaxBatchRecords))
	fs.IntVar(&o.batchBytes, "batch-bytes", 0, fmt.Sprintf("Config.Stream.MaxBatchBytes: encoded bytes per BATCH frame (0: the library default, %d)", quicrecord.DefaultMaxBatchBytes))
	fs.DurationVar(&o.ackDelay, "ack-delay", 0, fmt.Sprintf("Config.Stream.AckDelay: how long an ack waits for an outgoing batch to ride in (0: the library default, %v; negative: never wait)", quicrecord.DefaultAckDelay))
	fs.IntVar(&o.window, "window", 0, "a fixed window (Config.Stream.Window = WindowFixed, with MaxInFlightRecords and MaxApplyBacklogRecords): records sent and not yet acknowledged, per stream and direction (0: the default, adaptive windows)")
	fs.DurationVar(&o.target, "target", 0, fmt.Sprintf("Config.Stream.QueueDelayTarget of the adaptive windows (0: the library default, %v)", quicrecord.DefaultQueueDelayTarget))
	fs.IntVar(&o.sampleEvery, "sample-every", 64, "measure the ack latency of every Nth record")
	fs.DurationVar(&o.progress, "progress", 500*time.Millisecond, "interval of the progress lines on stderr (0: none)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "quickstart: unexpected arguments %q\n", fs.Args())
		return 2
	case o.streams < 1:
		fmt.Fprintln(stderr, "quickstart: -streams must be at least 1")
		return 2
	case o.records < 2*o.streams:
		fmt.Fprintf(stderr, "quickstart: -records must be at least 2 × -streams (%d): every stream carries records both ways\n", 2*o.streams)
		return 2
	case o.size < 8:
		fmt.Fprintln(stderr, "quickstart: -size must be at least 8")
		return 2
	case o.sampleEvery < 1:
		fmt.Fprintln(stderr, "quickstart: -sample-every must be at least 1")
		return 2
	}
	if err := quickstart(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "quickstart: %v\n", err)
		return 1
	}
	return 0
}

// meter counts progress across all streams, both sides.
type meter struct {
	applied atomic.Int64 // records applied by either side
	bytes   atomic.Int64 // their bytes
}

// result is what one side of one stream measured.
type result struct {
	delivery latency.Samples // Send → the peer's Apply callback, every record
	acks     latency.Samples // every sampleEvery-th record: Send → applied-ack
}

func quickstart(ctx context.Context, o options, stdout, stderr io.Writer) error {
	// An in-memory self-signed identity; the client pins its key.
	cert, err := identity.Generate()
	if err != nil {
		return err
	}
	cfg := &quicrecord.Config{Stream: quicrecord.StreamConfig{
		FlushDelay:      o.linger,
		MaxBatchRecords: o.batchRecords,
		MaxBatchBytes:   o.batchBytes,
		AckDelay:        o.ackDelay,
		// A fixed window: the apply backlog is announced as the peer's
		// window, so set both.
		Window:                 windowMode(o),
		MaxInFlightRecords:     o.window,
		MaxApplyBacklogRecords: o.window,
		QueueDelayTarget:       o.target,
	}}
	ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(cert), cfg)
	if err != nil {
		return err
	}
	defer ln.Close()

	ctx, cancel := context.WithCancel(ctx)
	start := time.Now() // the clock every record's send time is read against
	var m meter
	var (
		mu      sync.Mutex
		results []*result
	)
	collect := func(r *result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}

	var servers sync.WaitGroup
	defer servers.Wait()
	defer cancel() // runs first: stops the server goroutines
	servers.Go(func() { serve(ctx, ln, o, start, &m, collect, &servers) })

	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(identity.FingerprintOf(cert.Leaf)), cfg)
	if err != nil {
		return err
	}
	defer conn.Close()

	total := 2 * o.streams
	fmt.Fprintf(stdout, "recordmux quickstart: %d records of %d B on %s of one QUIC connection, both directions\n", o.records, o.size, count.Of(o.streams, "stream", "streams"))
	fmt.Fprintf(stdout, "  listener %v, client %v; TLS 1.3 with an in-memory self-signed certificate the client pins\n", ln.Addr(), conn.LocalAddr())
	fmt.Fprintf(stdout, "  config: linger %v, batch ≤ %s records / %s bytes, ack delay %s, %s\n\n",
		o.linger, orDefault(o.batchRecords, quicrecord.DefaultMaxBatchRecords), orDefault(o.batchBytes, quicrecord.DefaultMaxBatchBytes), ackDelayText(o.ackDelay), windowText(o))

	// Open the streams. The client tells the server in the stream's
	// metadata how many records to send back.
	type clientStream struct {
		s           *quicrecord.RecordStream
		send, reply int
	}
	var cs []clientStream
	for i := range o.streams {
		send, reply := share(o.records, total, 2*i), share(o.records, total, 2*i+1)
		s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{
			Scope:    "quickstart",
			DataID:   uint64(i),
			Metadata: map[string]string{"reply-records": strconv.Itoa(reply)},
		})
		if err != nil {
			return fmt.Errorf("open stream %d: %w", i, err)
		}
		defer s.Close(context.Background())
		cs = append(cs, clientStream{s, send, reply})
	}

	stopProgress := progress(o.progress, start, o.records, &m, stderr)
	begin := time.Now()
	release := make(chan struct{}) // closed once the diagnostics are taken
	var (
		clients sync.WaitGroup
		ready   sync.WaitGroup
		errs    = make([]error, len(cs))
	)
	for i, c := range cs {
		ready.Add(1)
		clients.Go(func() {
			r := &result{}
			errs[i] = exchange(ctx, c.s, c.send, c.reply, o, start, &m, r, &ready, release)
			collect(r)
		})
	}
	ready.Wait() // every client stream: all sent and acked, all replies applied
	elapsed := time.Since(begin)
	stopProgress()
	diag := conn.Diagnostics() // before Close: the summary covers live streams
	close(release)
	clients.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The server sides finish when they see the client's FIN.
	for _, c := range cs {
		_ = c.s.Close(context.Background())
	}
	cancel()
	servers.Wait()

	var all result
	mu.Lock()
	for _, r := range results {
		all.delivery.Merge(&r.delivery)
		all.acks.Merge(&r.acks)
	}
	mu.Unlock()
	bytes := float64(o.records) * float64(o.size)
	fmt.Fprintf(stdout, "throughput: %d records (%s) in %v = %.0f records/s, %.1f MiB/s\n",
		o.records, mib(bytes), elapsed.Round(time.Millisecond),
		float64(o.records)/elapsed.Seconds(), bytes/(1<<20)/elapsed.Seconds())
	fmt.Fprintf(stdout, "  both directions together, from the first Send until the last record was applied and its ack was back\n")
	fmt.Fprintf(stdout, "delivery latency, Send → the peer's Apply callback (every record):\n  %v\n", all.delivery.Summary())
	fmt.Fprintf(stdout, "ack latency, Send → the peer's applied-ack back at the sender (every %s record, RecordStream.WaitAcked):\n  %v\n",
		ordinal(o.sampleEvery), all.acks.Summary())
	fmt.Fprintf(stdout, "  The senders run flat out, so both latencies are mostly queueing: Send returns as soon as\n")
	fmt.Fprintf(stdout, "  the record fits in the in-flight window, and a full window drains at the throughput\n")
	fmt.Fprintf(stdout, "  (Little's law: latency ≈ records in flight ÷ records/s). The adaptive windows keep in flight\n")
	fmt.Fprintf(stdout, "  what the measured rate needs for the shortest Send→ack time plus -target, no more; a fixed\n")
	fmt.Fprintf(stdout, "  -window keeps that many. examples/latency-service measures latency under a paced load.\n\n")
	fmt.Fprintf(stdout, "client connection diagnostics (Conn.Diagnostics, taken before the streams closed):\n%s", diag)
	return nil
}

// windowMode is the Config.Stream.Window the -window flag asks for.
func windowMode(o options) quicrecord.WindowMode {
	if o.window > 0 {
		return quicrecord.WindowFixed
	}
	return quicrecord.WindowAdaptive
}

// windowText describes the windows in the config line.
func windowText(o options) string {
	if o.window > 0 {
		return fmt.Sprintf("fixed window %d records", o.window)
	}
	t := o.target
	if t == 0 {
		t = quicrecord.DefaultQueueDelayTarget
	}
	return fmt.Sprintf("adaptive windows, queueing-delay target %v", t)
}

// serve accepts the client's connection and runs the server side of each
// stream: it applies the client's records until the client's FIN and
// sends back as many records as the metadata asks for.
func serve(ctx context.Context, ln *quicrecord.Listener, o options, start time.Time, m *meter, collect func(*result), wg *sync.WaitGroup) {
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				s, err := conn.AcceptRecordStream(ctx)
				if err != nil {
					return
				}
				wg.Go(func() {
					defer s.Close(context.Background())
					reply, _ := strconv.Atoi(s.Metadata()["reply-records"])
					r := &result{}
					_ = exchange(ctx, s, reply, -1, o, start, m, r, nil, nil)
					collect(r)
				})
			}
		})
	}
}

// exchange runs one side of one stream: it sends send records while
// applying the peer's records, samples ack latency with Barrier while
// sending, and waits for its records to be applied. With expect >= 0 it
// also waits for expect records from the peer, then reports on ready and
// waits for release before it closes; with expect < 0 it applies until
// the peer finishes the stream.
func exchange(ctx context.Context, s *quicrecord.RecordStream, send, expect int, o options, start time.Time,
	m *meter, r *result, ready *sync.WaitGroup, release <-chan struct{}) error {
	gotAll := make(chan struct{})
	if expect == 0 {
		close(gotAll)
	}
	applyDone := make(chan error, 1)
	go func() {
		n := 0
		applyDone <- s.Apply(ctx, func(rec quicrecord.Record) error {
			sent := time.Duration(binary.LittleEndian.Uint64(rec.Data))
			r.delivery.Add(time.Since(start) - sent)
			m.applied.Add(1)
			m.bytes.Add(int64(len(rec.Data)))
			if n++; n == expect {
				close(gotAll)
			}
			return nil
		})
	}()

	// Ack latency of every sampleEvery-th record: from its Send until
	// WaitAcked sees the peer's applied-ack cover it. Each sample waits in
	// a goroutine of its own, so a slow one does not delay the others.
	var (
		samplers sync.WaitGroup
		smu      sync.Mutex
	)
	buf := make([]byte, o.size)
	var err error
	for i := range send {
		t0 := time.Now()
		binary.LittleEndian.PutUint64(buf, uint64(t0.Sub(start)))
		var seq uint64
		if seq, err = s.Send(ctx, buf); err != nil {
			break
		}
		if i%o.sampleEvery == 0 {
			samplers.Go(func() {
				if s.WaitAcked(ctx, seq) == nil {
					d := time.Since(t0)
					smu.Lock()
					r.acks.Add(d)
					smu.Unlock()
				}
			})
		}
	}
	if err == nil {
		// Durability point: every record of ours is applied by the peer.
		err = s.Barrier(ctx)
	}
	samplers.Wait()
	if err != nil {
		if ready != nil {
			ready.Done()
		}
		return fmt.Errorf("stream %d: %w", s.DataID(), err)
	}
	if expect < 0 {
		return <-applyDone // nil at the peer's FIN
	}
	select {
	case <-gotAll:
	case err = <-applyDone:
		if err == nil {
			err = fmt.Errorf("peer finished the stream early")
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	ready.Done()
	if err != nil {
		return fmt.Errorf("stream %d: %w", s.DataID(), err)
	}
	<-release
	return nil
}

// progress prints a line every interval until the returned func is called.
func progress(every time.Duration, start time.Time, total int, m *meter, w io.Writer) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastBytes int64
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n, b := m.applied.Load(), m.bytes.Load()
				rate := float64(b-lastBytes) / (1 << 20) / now.Sub(last).Seconds()
				lastBytes, last = b, now
				fmt.Fprintf(w, "%6.1fs  applied %d/%d records (%3.0f%%)  %7.1f MiB/s\n",
					now.Sub(start).Seconds(), n, total, 100*float64(n)/float64(total), rate)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		fmt.Fprintf(w, "%6.1fs  applied %d/%d records: done\n", time.Since(start).Seconds(), m.applied.Load(), total)
	}
}

// share returns part k of n parts of total, the remainder going to the
// first parts.
func share(total, n, k int) int {
	s := total / n
	if k < total%n {
		s++
	}
	return s
}

func orDefault(v, def int) string {
	if v == 0 {
		return strconv.Itoa(def)
	}
	return strconv.Itoa(v)
}

func ackDelayText(d time.Duration) string {
	switch {
	case d == 0:
		return quicrecord.DefaultAckDelay.String() + " (default)"
	case d < 0:
		return "off (acks leave at once)"
	}
	return d.String()
}

// ordinal writes n for "every Nth record": 1 as "single", 2 as "2nd", 64 as "64th".
func ordinal(n int) string {
	switch {
	case n == 1:
		return "single"
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
