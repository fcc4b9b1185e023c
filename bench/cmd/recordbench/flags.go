package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/recordmux/recordmux/bench/internal/suite"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// outputs are the flags of "run" that say where results go and where the
// server is.
type outputs struct {
	json, plotDir, cpuProfile, memProfile string
	connect, pin                          string
}

// parseRunFlags turns the command line of "run" into suite options.
func parseRunFlags(args []string, stderr io.Writer) (suite.Options, outputs, error) {
	o := suite.DefaultOptions()
	var out outputs
	fs := flag.NewFlagSet("recordbench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: recordbench [run] [flags]\n\nRuns the recordmux benchmark suite in this process, or with -connect against a\n\"recordbench serve\" on another host. Flags:\n")
		fs.PrintDefaults()
	}
	names := make([]string, 0, 9)
	for _, t := range transport.All(transport.Options{}) {
		names = append(names, t.Name())
	}
	cases := fs.String("cases", "all", "comma-separated cases: "+strings.Join(suite.AllCases(), ",")+", latency (= pingpong,paced,loaded-latency) or all")
	transports := fs.String("transports", "", "comma-separated transports, replacing each case's defaults: "+strings.Join(names, ","))
	fs.StringVar(&out.connect, "connect", "", "run against the recordbench serve at this HOST:PORT (two hosts) instead of in this process")
	fs.StringVar(&out.pin, "pin", "", "with -connect: the SHA-256 fingerprint the server printed")
	sizes := fs.String("sizes", "64B,1KiB,16KiB", "throughput record sizes")
	streams := fs.String("streams", "1,10,100", "throughput stream counts")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "throughput: sending time per repetition")
	volume := fs.String("volume", "", "throughput: payload bytes per repetition instead of -duration (e.g. 256MiB)")
	fs.IntVar(&o.Reps, "reps", o.Reps, "repetitions of throughput and latency cells (median, min and max are reported)")
	fs.IntVar(&o.HeavyReps, "heavy-reps", o.HeavyReps, "repetitions of backlog, many-streams and hol cells")

	rm := &o.Transport.Recordmux
	fs.DurationVar(&rm.FlushDelay, "flush-delay", 0, "recordmux Config.Stream.FlushDelay")
	fs.IntVar(&rm.MaxBatchRecords, "max-batch-records", 0, "recordmux Config.Stream.MaxBatchRecords (0: default)")
	maxBatchBytes := fs.String("max-batch-bytes", "", "recordmux Config.Stream.MaxBatchBytes, e.g. 32KiB (empty: default)")
	fs.DurationVar(&rm.AckDelay, "ack-delay", 0, "recordmux Config.Stream.AckDelay (0: default, negative: off)")

	fs.IntVar(&o.PingPongs, "pingpongs", o.PingPongs, "pingpong: round trips per repetition")
	latSize := fs.String("latency-size", "256B", "latency cases and hol: record size")
	fs.Float64Var(&o.PacedRate, "rate", o.PacedRate, "paced: offered rate, records/s")
	fs.DurationVar(&o.PacedDuration, "paced-duration", o.PacedDuration, "paced: length of a repetition")
	fs.DurationVar(&o.LoadedDuration, "loaded-duration", o.LoadedDuration, "loaded-latency: flat-out sending time of a repetition")

	backlogSize := fs.String("backlog-size", "1KiB", "backlog: record size")
	fs.Float64Var(&o.BacklogRate, "backlog-rate", o.BacklogRate, "backlog: producer's offered rate, records/s")
	fs.Float64Var(&o.BacklogSlowRate, "backlog-slow-rate", o.BacklogSlowRate, "backlog: consumer's rate in the slow phase, records/s")
	fs.DurationVar(&o.BacklogSlow, "backlog-slow", o.BacklogSlow, "backlog: length of the slow phase")
	fs.DurationVar(&o.BacklogFast, "backlog-fast", o.BacklogFast, "backlog: length of the fast phase")
	fs.IntVar(&o.BacklogWindowRecords, "backlog-window-records", o.BacklogWindowRecords, "backlog: recordmux and mux window, records")
	backlogWindow := fs.String("backlog-window-bytes", "4MiB", "backlog: recordmux and mux window, bytes")

	fs.IntVar(&o.ManyStreams, "many", o.ManyStreams, "many-streams: number of concurrent streams")

	losses := fs.String("hol-loss", "1%,5%", "hol: packet loss rates (each a cell), as 1% or 0.01")
	fs.DurationVar(&o.HOLRTT, "hol-rtt", o.HOLRTT, "hol: round-trip time of the simulated link")
	fs.DurationVar(&o.HOLDuration, "hol-duration", o.HOLDuration, "hol: length of a run")
	fs.Float64Var(&o.HOLRate, "hol-rate", o.HOLRate, "hol: latency stream rate, records/s")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the packet-loss RNG")

	fs.StringVar(&out.json, "json", "", "write one JSON object per result to this file (JSON lines)")
	fs.StringVar(&out.plotDir, "plot", "", "write SVG charts into this directory")
	fs.StringVar(&out.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&out.memProfile, "memprofile", "", "write a heap profile at the end to this file")
	quiet := fs.Bool("q", false, "no progress bar on stderr (it is shown only when stderr is a terminal)")
	verbose := fs.Bool("v", false, "one line per repetition on stderr")
	if err := fs.Parse(args); err != nil {
		return o, out, err
	}
	if fs.NArg() > 0 {
		return o, out, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *cases != "all" {
		o.Cases = splitList(*cases)
	}
	o.Transports = splitList(*transports)
	if out.connect != "" && out.pin == "" {
		return o, out, errors.New("-connect needs -pin, the fingerprint the server printed")
	}
	err := errors.Join(
		parseInto(&o.Sizes, *sizes, "-sizes", parseSizes),
		parseInto(&o.Streams, *streams, "-streams", parseInts),
		parseInto(&rm.MaxBatchBytes, *maxBatchBytes, "-max-batch-bytes", parseSize),
		parseInto(&o.LatencySize, *latSize, "-latency-size", parseSize),
		parseInto(&o.BacklogSize, *backlogSize, "-backlog-size", parseSize),
		parseInto(&o.BacklogWindowBytes, *backlogWindow, "-backlog-window-bytes", parseSize),
		parseInto(&o.HOLLoss, *losses, "-hol-loss", parseLosses),
		parseInto(&o.Volume, *volume, "-volume", func(s string) (int64, error) { n, err := parseSize(s); return int64(n), err }),
	)
	if err != nil {
		return o, out, err
	}
	if !*quiet {
		o.Progress = suite.NewProgress(stderr)
	}
	if *verbose {
		o.Log = stderr
	}
	return o, out, o.Validate()
}

// parseInto parses s with parse into *dst; an empty s leaves *dst.
func parseInto[T any](dst *T, s, flag string, parse func(string) (T, error)) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	v, err := parse(s)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	*dst = v
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseSize parses a byte count: 64, 64B, 1KiB, 1KB (= 1000), 16MiB.
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1}}
	mult := 1
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func parseSizes(s string) ([]int, error) { return parseList(s, parseSize) }

func parseInts(s string) ([]int, error) {
	return parseList(s, func(f string) (int, error) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("bad count %q", f)
		}
		return n, nil
	})
}

// parseList parses a non-empty comma-separated list.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range splitList(s) {
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// parseFraction parses a fraction given as 0.01 or 1%, in [0, 1).
func parseFraction(f string) (float64, error) {
	f = strings.TrimSpace(f)
	pct := strings.HasSuffix(f, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(f, "%"), 64)
	if pct {
		v /= 100
	}
	if err != nil || v < 0 || v >= 1 {
		return 0, fmt.Errorf("bad rate %q", f)
	}
	return v, nil
}

// parseLosses parses loss rates given as fractions (0.01) or percentages
// (1%).
func parseLosses(s string) ([]float64, error) { return parseList(s, parseFraction) }
