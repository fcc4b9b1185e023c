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
	rate      float64
	duration  time.Duration
	warmup    time.Duration
	streams   int
	reqSize   int
	replySize int
	spin      bool
	linger    time.Duration
	ackDelay  time.Duration
	progress  time.Duration
}

// headerLen is the part of every request and reply the example reads: the
// request number and its scheduled send time.
const headerLen = 16

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("latency-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "latency-service: measures request→reply latency over a record stream under paced load, on loopback\n\nusage: latency-service [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o options
	fs.Float64Var(&o.rate, "rate", 5000, "requests per second, paced on an absolute schedule")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "how long to measure, after the warm-up")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "load before measuring; its requests are not counted")
	fs.IntVar(&o.streams, "streams", 1, "record streams; requests go round-robin over them")
	fs.IntVar(&o.reqSize, "size", 64, "request size in bytes (at least 16)")
	fs.IntVar(&o.replySize, "reply-size", 64, "reply size in bytes (at least 16)")
	fs.BoolVar(&o.spin, "spin", false, "pace by spinning for the last millisecond before each request (most precise, but it keeps a core busy and slows the network polling of this process; default: nanosleep)")
	fs.DurationVar(&o.linger, "linger", 0, "Config.Stream.FlushDelay on both sides: lingering for fuller batches adds up to this much per direction")
	fs.DurationVar(&o.ackDelay, "ack-delay", 0, fmt.Sprintf("Config.Stream.AckDelay (0: the library default, %v; negative: acks never wait for a batch)", quicrecord.DefaultAckDelay))
	fs.DurationVar(&o.progress, "progress", time.Second, "interval of the progress lines on stderr (0: none)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "latency-service: unexpected arguments %q\n", fs.Args())
		return 2
	case !(o.rate > 0) || o.rate > 1e7:
		fmt.Fprintln(stderr, "latency-service: -rate must be in (0, 1e7]")
		return 2
	case o.duration <= 0 || o.warmup < 0:
		fmt.Fprintln(stderr, "latency-service: -duration must be positive and -warmup not negative")
		return 2
	case o.streams < 1:
		fmt.Fprintln(stderr, "latency-service: -streams must be at least 1")
		return 2
	case o.reqSize < headerLen || o.replySize < headerLen:
		fmt.Fprintf(stderr, "latency-service: -size and -reply-size must be at least %d\n", headerLen)
		return 2
	}
	if err := service(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "latency-service: %v\n", err)
		return 1
	}
	return 0
}

func service(ctx context.Context, o options, stdout, stderr io.Writer) error {
	cert, err := identity.Generate() // in memory; the client pins its key
	if err != nil {
		return err
	}
	cfg := &quicrecord.Config{Stream: quicrecord.StreamConfig{FlushDelay: o.linger, AckDelay: o.ackDelay}}
	ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(cert), cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(ctx)
	var servers sync.WaitGroup
	defer servers.Wait()
	defer cancel()
	servers.Go(func() { serve(ctx, ln, o.replySize, &servers) })

	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(identity.FingerprintOf(cert.Leaf)), cfg)
	if err != nil {
		return err
	}
	defer conn.Close()

	start := time.Now()
	measureFrom := start.Add(o.warmup)
	var (
		replies  atomic.Int64
		mu       sync.Mutex
		lat      latency.Samples // request→reply, measured requests only
		appliers sync.WaitGroup
		streams  []*quicrecord.RecordStream
	)
	for i := range o.streams {
		s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "latency", DataID: uint64(i)})
		if err != nil {
			return fmt.Errorf("open stream %d: %w", i, err)
		}
		defer s.Close(context.Background())
		streams = append(streams, s)
		// The client applies replies; their acks ride back in the
		// headers of later requests.
		appliers.Go(func() {
			var local latency.Samples
			_ = s.Apply(ctx, func(r quicrecord.Record) error {
				now := time.Now()
				due := start.Add(time.Duration(binary.LittleEndian.Uint64(r.Data[8:])))
				if !due.Before(measureFrom) {
					local.Add(now.Sub(due))
				}
				replies.Add(1)
				return nil
			})
			mu.Lock()
			lat.Merge(&local)
			mu.Unlock()
		})
	}

	fmt.Fprintf(stdout, "recordmux latency-service: %.0f requests/s for %v (after a %v warm-up) over %s; request %d B, reply %d B\n",
		o.rate, o.duration, o.warmup, count.Of(o.streams, "stream", "streams"), o.reqSize, o.replySize)
	fmt.Fprintf(stdout, "  loopback %v, linger %v, ack delay %s\n", ln.Addr(), o.linger, ackDelayText(o.ackDelay))

	// The load: request i goes out at start + i/rate, on stream i mod n.
	var sent atomic.Int64
	stopProgress := progress(o.progress, start, &sent, &replies, stderr)
	pacer := latency.NewPacer(start, o.rate, o.spin)
	end := measureFrom.Add(o.duration)
	var late latency.Samples // how far behind schedule each Send started
	req := make([]byte, o.reqSize)
	var measured int64
	var sendErr error
	for i := uint64(0); ; i++ {
		due, err := pacer.Wait(ctx)
		if err != nil {
			sendErr = err
			break
		}
		if !due.Before(end) {
			break
		}
		late.Add(time.Since(due))
		binary.LittleEndian.PutUint64(req[0:], i)
		binary.LittleEndian.PutUint64(req[8:], uint64(due.Sub(start)))
		if _, err := streams[i%uint64(len(streams))].Send(ctx, req); err != nil {
			sendErr = err
			break
		}
		sent.Add(1)
		if !due.Before(measureFrom) {
			measured++
		}
	}
	loadTime := time.Since(measureFrom)

	// Shutdown is a durability point: Barrier says the server applied
	// (answered) every request. During the run nothing waited on a
	// Barrier: each reply is the confirmation of its request.
	var drainErr error
	if sendErr == nil {
		bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
		for _, s := range streams {
			if err := s.Barrier(bctx); err != nil {
				drainErr = errors.Join(drainErr, err)
			}
		}
		for drainErr == nil && replies.Load() < sent.Load() && bctx.Err() == nil {
			time.Sleep(time.Millisecond) // the last replies are on their way
		}
		bcancel()
	}
	stopProgress()
	diag := conn.Diagnostics()
	for _, s := range streams {
		_ = s.Close(context.Background())
	}
	appliers.Wait()
	if err := errors.Join(sendErr, drainErr); err != nil {
		return err
	}

	got := replies.Load()
	fmt.Fprintf(stdout, "\nsent %s, received %s; %d measured in %v (%.0f requests/s achieved)\n",
		count.Of(sent.Load(), "request", "requests"), count.Of(got, "reply", "replies"), measured, loadTime.Round(time.Millisecond), float64(measured)/loadTime.Seconds())
	if got < sent.Load() {
		fmt.Fprintf(stdout, "  %s missing\n", count.Of(sent.Load()-got, "reply", "replies"))
	}
	mu.Lock()
	sum := lat.Summary()
	mu.Unlock()
	fmt.Fprintf(stdout, "request→reply latency, from each request's scheduled send time to its reply's Apply callback:\n  %v\n", sum)
	fmt.Fprintf(stdout, "  Measuring from the schedule, not from the Send call, charges a late or blocked sender to\n")
	fmt.Fprintf(stdout, "  the latency instead of silently sending fewer requests (no coordinated omission).\n")
	fmt.Fprintf(stdout, "pacer lateness, scheduled time → Send call:\n  %v\n\n", late.Summary())
	fmt.Fprintf(stdout, "client connection diagnostics (acks ride in requests one way and in replies the other):\n%s", diag)
	return nil
}

// serve answers every request with a reply on the same stream: the
// server's Apply callback Sends the reply and returns, and the request is
// acknowledged as applied in the header of a later reply.
func serve(ctx context.Context, ln *quicrecord.Listener, replySize int, wg *sync.WaitGroup) {
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
					reply := make([]byte, replySize)
					_ = s.Apply(ctx, func(r quicrecord.Record) error {
						copy(reply, r.Data[:headerLen]) // request number and schedule
						_, err := s.Send(ctx, reply)
						return err
					})
				})
			}
		})
	}
}

// progress prints a line every interval until the returned func is called.
func progress(every time.Duration, start time.Time, sent, replies *atomic.Int64, w io.Writer) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(w, "%6.1fs  requests %d  replies %d\n", now.Sub(start).Seconds(), sent.Load(), replies.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
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
