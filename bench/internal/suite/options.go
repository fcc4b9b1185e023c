package suite

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/recordmux/recordmux/quicrecord"
)

// Transports.
const (
	// Recordmux is quicrecord, the system under test.
	Recordmux = "recordmux"
	// Raw is plain quic-go: a byte-stream ceiling for throughput, an echo
	// of 256-byte messages for latency.
	Raw = "raw"
	// Framer is the hand-written baseline: length-prefixed records and
	// cumulative acks on one quic-go stream per logical stream.
	Framer = "framer"
	// Mux is several logical streams multiplexed over ONE quic-go stream
	// (hol case only).
	Mux = "mux"
)

// Cases.
const (
	CaseThroughput  = "throughput"
	CasePingPong    = "pingpong"
	CasePaced       = "paced"
	CaseBacklog     = "backlog"
	CaseManyStreams = "many-streams"
	CaseHOL         = "hol"
)

// AllCases lists the cases in the order they run. "latency" selects both
// pingpong and paced.
func AllCases() []string {
	return []string{CaseThroughput, CasePingPong, CasePaced, CaseBacklog, CaseManyStreams, CaseHOL}
}

// caseTransports are the transports each case runs, in interleaving order.
func caseTransports(c string) []string {
	if c == CaseHOL {
		return []string{Recordmux, Mux, Framer}
	}
	return []string{Recordmux, Raw, Framer}
}

// Options select and size the cases. Start from [DefaultOptions].
type Options struct {
	// Cases to run (see AllCases; "latency" means pingpong and paced).
	Cases []string
	// Transports restricts every case to these transports; empty means
	// all of each case's.
	Transports []string
	// Reps is the number of repetitions of the throughput and latency
	// cells; HeavyReps of backlog, many-streams and hol. Reps of one cell
	// interleave the transports (recordmux, raw, framer, recordmux, …).
	Reps, HeavyReps int
	// Recordmux is the recordmux configuration (batching: FlushDelay,
	// MaxBatchRecords, MaxBatchBytes, AckDelay). Its QUIC field, if set,
	// is used by every transport.
	Recordmux quicrecord.Config

	// Throughput: record sizes and stream counts (every combination), and
	// per repetition either a duration or, when Volume > 0, a number of
	// payload bytes spread over the streams.
	Sizes    []int
	Streams  []int
	Duration time.Duration
	Volume   int64

	// Latency: round trips per ping-pong repetition, and the paced load.
	PingPongs     int
	LatencySize   int
	PacedRate     float64
	PacedDuration time.Duration
	PacedWarmup   time.Duration

	// Backlog: the producer offers BacklogRate records/s of BacklogSize
	// bytes; the consumer applies BacklogSlowRate records/s for
	// BacklogSlow, then as fast as it can for BacklogFast. recordmux runs
	// with the windows below; Sample is the sampling interval.
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
	// size, over a simulated link.
	HOLLoss     []float64
	HOLRTT      time.Duration
	HOLDuration time.Duration
	HOLWarmup   time.Duration
	HOLRate     float64
	HOLBulkSize int

	// Seed seeds the packet-loss RNG of the hol case.
	Seed uint64

	// Progress, if set, receives one line per run.
	Progress io.Writer
}

// DefaultOptions are sized so that the whole suite takes about a minute
// on two cores.
func DefaultOptions() Options {
	return Options{
		Cases:     AllCases(),
		Reps:      3,
		HeavyReps: 1,

		Sizes:    []int{64, 1 << 10, 16 << 10},
		Streams:  []int{1, 10, 100},
		Duration: 200 * time.Millisecond,

		PingPongs:     1000,
		LatencySize:   256,
		PacedRate:     10_000,
		PacedDuration: time.Second,
		PacedWarmup:   100 * time.Millisecond,

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

		Seed: 1,
	}
}

// Validate checks the case and transport names and the repetitions.
func (o *Options) Validate() error {
	_, err := o.normalize()
	return err
}

// normalize expands "latency", checks names and returns the cases to run.
func (o *Options) normalize() ([]string, error) {
	var cases []string
	for _, c := range o.Cases {
		switch {
		case c == "latency":
			cases = append(cases, CasePingPong, CasePaced)
		case slices.Contains(AllCases(), c):
			cases = append(cases, c)
		default:
			return nil, fmt.Errorf("unknown case %q (want one of %v or latency)", c, AllCases())
		}
	}
	for _, t := range o.Transports {
		if !slices.Contains([]string{Recordmux, Raw, Framer, Mux}, t) {
			return nil, fmt.Errorf("unknown transport %q", t)
		}
	}
	if o.Reps < 1 || o.HeavyReps < 1 {
		return nil, fmt.Errorf("reps must be at least 1")
	}
	// Run in the canonical order, once each.
	var out []string
	for _, c := range AllCases() {
		if slices.Contains(cases, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// transportsFor returns the transports of case c after the filter.
func (o *Options) transportsFor(c string) []string {
	var out []string
	for _, t := range caseTransports(c) {
		if len(o.Transports) == 0 || slices.Contains(o.Transports, t) {
			out = append(out, t)
		}
	}
	return out
}
