package suite

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// Cases, in the order they run.
const (
	CaseThroughput  = "throughput"
	CasePingPong    = "pingpong"
	CasePaced       = "paced"
	CaseLoaded      = "loaded-latency"
	CaseBacklog     = "backlog"
	CaseManyStreams = "many-streams"
	CaseCompression = "compression"
	CaseHOL         = "hol"
)

// caseDef describes a case: its default transports and where it runs.
type caseDef struct {
	name       string
	transports []string
	// quicOnly cases run over simnet, which carries UDP only.
	quicOnly bool
	// localOnly cases need both ends in this process (simnet).
	localOnly bool
	cells     func(r *runner, transports []string) []cell
}

// general are the transports of every case that compares them all.
var general = []string{"recordmux", "raw", "framer", "mux", "grpc", "yamux", "smux"}

// caseDefs lists the cases in the order they run.
var caseDefs = []caseDef{
	{name: CaseThroughput, transports: general, cells: throughputCells},
	{name: CasePingPong, transports: general, cells: pingPongCells},
	{name: CasePaced, transports: general, cells: pacedCells},
	{name: CaseLoaded, transports: slices.Insert(slices.Clone(general), 1, "recordmux-w1024", "recordmux-w32768"), cells: loadedCells},
	{name: CaseBacklog, transports: general, cells: backlogCells},
	{name: CaseManyStreams, transports: general, cells: manyCells},
	{name: CaseCompression, transports: []string{"recordmux", "recordmux-s2", "recordmux-zstd", "recordmux-auto"}, cells: compressionCells},
	{name: CaseHOL, transports: []string{"recordmux", "mux", "framer"}, quicOnly: true, localOnly: true, cells: holCells},
}

// AllCases lists the cases in the order they run. "latency" selects
// pingpong, paced and loaded-latency.
func AllCases() []string {
	out := make([]string, len(caseDefs))
	for i, c := range caseDefs {
		out[i] = c.name
	}
	return out
}

// latencyCases are what "latency" selects.
var latencyCases = []string{CasePingPong, CasePaced, CaseLoaded}

// Options select and size the cases. Start from [DefaultOptions].
type Options struct {
	// Cases to run (see AllCases; "latency" means pingpong, paced and
	// loaded-latency). Cases that need both ends in one process (hol) are
	// skipped in a two-host run.
	Cases []string
	// Transports, if set, replaces every case's default transports
	// (those a case cannot run, such as TCP ones in hol, are left out).
	Transports []string
	// Transport configures the transports (recordmux's batching).
	Transport transport.Options
	// Reps is the number of repetitions of the throughput and latency
	// cells; HeavyReps of backlog, many-streams and hol. Repetitions of
	// one cell interleave the transports.
	Reps, HeavyReps int
	// RepTimeout bounds one repetition.
	RepTimeout time.Duration

	// Throughput: record sizes and stream counts (every combination), and
	// per repetition either a duration or, when Volume > 0, a number of
	// payload bytes spread over the streams.
	Sizes    []int
	Streams  []int
	Duration time.Duration
	Volume   int64

	// Latency: round trips per ping-pong repetition, the record size of
	// every latency case, the paced load, and the flat-out sending time
	// of loaded-latency (records sent in its first LoadedWarmup are not
	// counted).
	PingPongs      int
	LatencySize    int
	PacedRate      float64
	PacedDuration  time.Duration
	PacedWarmup    time.Duration
	LoadedDuration time.Duration
	LoadedWarmup   time.Duration

	// Backlog: the producer offers BacklogRate records/s of BacklogSize
	// bytes; the server applies BacklogSlowRate records/s for
	// BacklogSlow, then as fast as it can, and the producer stops after
	// BacklogSlow+BacklogFast. Transports with windows (recordmux, mux)
	// run with the windows below; Sample is the sampling interval.
	BacklogSize          int
	BacklogRate          float64
	BacklogSlowRate      float64
	BacklogSlow          time.Duration
	BacklogFast          time.Duration
	BacklogWindowRecords int
	BacklogWindowBytes   int
	Sample               time.Duration

	// ManyStreams is the number of concurrent streams of that case.
	ManyStreams int

	// HOL: loss rates, round-trip time, duration, the latency stream's
	// rate (records of LatencySize bytes) and the bulk stream's record
	// size, over a simulated link; Seed seeds its packet loss.
	HOLLoss     []float64
	HOLRTT      time.Duration
	HOLDuration time.Duration
	HOLWarmup   time.Duration
	HOLRate     float64
	HOLBulkSize int
	Seed        uint64

	// Progress, if set, shows the progress of the run (see NewProgress).
	Progress Progress
	// Log, if set, receives one line per repetition.
	Log io.Writer
}

// DefaultOptions are sized so that the whole suite takes a few minutes on
// two cores.
func DefaultOptions() Options {
	return Options{
		Cases:      AllCases(),
		Reps:       3,
		HeavyReps:  1,
		RepTimeout: 5 * time.Minute,

		Sizes:    []int{64, 1 << 10, 16 << 10},
		Streams:  []int{1, 10, 100},
		Duration: 200 * time.Millisecond,

		PingPongs:      1000,
		LatencySize:    256,
		PacedRate:      10_000,
		PacedDuration:  time.Second,
		PacedWarmup:    100 * time.Millisecond,
		LoadedDuration: time.Second,
		LoadedWarmup:   200 * time.Millisecond,

		BacklogSize:          1 << 10,
		BacklogRate:          20_000,
		BacklogSlowRate:      5_000,
		BacklogSlow:          time.Second,
		BacklogFast:          500 * time.Millisecond,
		BacklogWindowRecords: 4096,
		BacklogWindowBytes:   4 << 20,
		Sample:               5 * time.Millisecond,

		ManyStreams: 10_000,

		HOLLoss:     []float64{0.01, 0.05},
		HOLRTT:      20 * time.Millisecond,
		HOLDuration: 2500 * time.Millisecond,
		HOLWarmup:   500 * time.Millisecond,
		HOLRate:     250,
		HOLBulkSize: 1 << 10,
		Seed:        1,
	}
}

// Validate checks the case and transport names and the repetitions.
func (o *Options) Validate() error {
	_, err := o.selected()
	return err
}

// selected expands "latency", checks names and returns the cases to run
// in their canonical order.
func (o *Options) selected() ([]caseDef, error) {
	var names []string
	for _, c := range o.Cases {
		switch {
		case c == "latency":
			names = append(names, latencyCases...)
		case slices.Contains(AllCases(), c):
			names = append(names, c)
		default:
			return nil, fmt.Errorf("unknown case %q (want one of %v or latency)", c, AllCases())
		}
	}
	all := transport.All(o.Transport)
	for _, t := range o.Transports {
		if _, err := transport.Lookup(all, t); err != nil {
			return nil, err
		}
	}
	if o.Reps < 1 || o.HeavyReps < 1 {
		return nil, fmt.Errorf("reps must be at least 1")
	}
	var out []caseDef
	for _, c := range caseDefs {
		if slices.Contains(names, c.name) {
			out = append(out, c)
		}
	}
	return out, nil
}

// transportsFor returns the transports case c runs: the filter if set,
// else the case's defaults, without those it cannot run.
func (o *Options) transportsFor(c caseDef) []string {
	names := c.transports
	if len(o.Transports) > 0 {
		names = o.Transports
	}
	all := transport.All(o.Transport)
	var out []string
	for _, t := range all { // in the canonical order
		if !slices.Contains(names, t.Name()) || (c.quicOnly && !t.QUIC()) {
			continue
		}
		out = append(out, t.Name())
	}
	return out
}
