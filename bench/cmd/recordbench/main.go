package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/recordmux/recordmux/bench/internal/suite"
	"github.com/recordmux/recordmux/quicrecord"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	opts, out, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "recordbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if out.cpuProfile != "" {
		f, err := os.Create(out.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "recordbench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "recordbench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprint(stderr, suite.DescribeMachine().String())
	rep, err := suite.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "recordbench:", err)
		if rep == nil || len(rep.Results) == 0 {
			return 1
		}
		fmt.Fprintln(stderr, "recordbench: reporting the cells that completed")
	}
	code := 0
	if err != nil {
		code = 1
	}
	if werr := suite.WriteTable(stdout, rep); werr != nil {
		fmt.Fprintln(stderr, "recordbench:", werr)
		return 1
	}
	if out.json != "" {
		if err := writeJSON(out.json, rep); err != nil {
			fmt.Fprintln(stderr, "recordbench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "recordbench: wrote %d results to %s\n", len(rep.Results), out.json)
	}
	if out.plotDir != "" {
		files, err := suite.WritePlots(out.plotDir, rep)
		if err != nil {
			fmt.Fprintln(stderr, "recordbench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "recordbench: wrote %d charts to %s\n", len(files), out.plotDir)
	}
	if out.memProfile != "" {
		if err := writeHeapProfile(out.memProfile); err != nil {
			fmt.Fprintln(stderr, "recordbench:", err)
			return 1
		}
	}
	return code
}

func writeJSON(name string, rep *suite.Report) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	err = suite.WriteJSONLines(f, rep.Results)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// outputs are the flags that say where results go.
type outputs struct {
	json, plotDir, cpuProfile, memProfile string
}

// parseFlags turns the command line into suite options.
func parseFlags(args []string, stderr io.Writer) (suite.Options, outputs, error) {
	o := suite.DefaultOptions()
	var out outputs
	fs := flag.NewFlagSet("recordbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: recordbench [flags]\n\nRuns the recordmux benchmark suite on 127.0.0.1. Flags:\n")
		fs.PrintDefaults()
	}
	cases := fs.String("cases", "all", "comma-separated cases: "+strings.Join(suite.AllCases(), ",")+", latency (= pingpong,paced) or all")
	transports := fs.String("transports", "", "comma-separated transports to run (recordmux, raw, framer, mux); empty means all of each case's")
	sizes := fs.String("sizes", "64B,1KiB,16KiB", "throughput record sizes")
	streams := fs.String("streams", "1,10,100", "throughput stream counts")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "throughput: sending time per repetition")
	volume := fs.String("volume", "", "throughput: payload bytes per repetition instead of -duration (e.g. 256MiB)")
	fs.IntVar(&o.Reps, "reps", o.Reps, "repetitions of throughput and latency cells (median, min and max are reported)")
	fs.IntVar(&o.HeavyReps, "heavy-reps", o.HeavyReps, "repetitions of backlog, many-streams and hol cells")

	fs.DurationVar(&o.Recordmux.FlushDelay, "flush-delay", 0, "recordmux Config.FlushDelay")
	fs.IntVar(&o.Recordmux.MaxBatchRecords, "max-batch-records", 0, "recordmux Config.MaxBatchRecords (0: default)")
	maxBatchBytes := fs.String("max-batch-bytes", "", "recordmux Config.MaxBatchBytes, e.g. 32KiB (empty: default)")
	fs.DurationVar(&o.Recordmux.AckDelay, "ack-delay", 0, fmt.Sprintf("recordmux Config.AckDelay (0: default %v, negative: off)", quicrecord.DefaultAckDelay))

	fs.IntVar(&o.PingPongs, "pingpongs", o.PingPongs, "latency: round trips per ping-pong repetition")
	latSize := fs.String("latency-size", "256B", "latency and hol: record size of the latency stream")
	fs.Float64Var(&o.PacedRate, "rate", o.PacedRate, "latency: offered rate of the paced load, records/s")
	fs.DurationVar(&o.PacedDuration, "paced-duration", o.PacedDuration, "latency: length of a paced repetition")

	backlogSize := fs.String("backlog-size", "1KiB", "backlog: record size")
	fs.Float64Var(&o.BacklogRate, "backlog-rate", o.BacklogRate, "backlog: producer's offered rate, records/s")
	fs.Float64Var(&o.BacklogSlowRate, "backlog-slow-rate", o.BacklogSlowRate, "backlog: consumer's rate in the slow phase, records/s")
	fs.DurationVar(&o.BacklogSlow, "backlog-slow", o.BacklogSlow, "backlog: length of the slow phase")
	fs.DurationVar(&o.BacklogFast, "backlog-fast", o.BacklogFast, "backlog: length of the fast phase")
	fs.IntVar(&o.BacklogWindowRecords, "backlog-window-records", o.BacklogWindowRecords, "backlog: recordmux MaxInFlightRecords and MaxApplyBacklogRecords")
	backlogWindow := fs.String("backlog-window-bytes", "4MiB", "backlog: recordmux MaxInFlightBytes and MaxApplyBacklogBytes")

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
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return o, out, err
	}
	if fs.NArg() > 0 {
		return o, out, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if *cases != "all" {
		o.Cases = splitList(*cases)
	}
	o.Transports = splitList(*transports)
	if o.Sizes, err = parseSizes(*sizes); err != nil {
		return o, out, fmt.Errorf("-sizes: %w", err)
	}
	if o.Streams, err = parseInts(*streams); err != nil {
		return o, out, fmt.Errorf("-streams: %w", err)
	}
	if *volume != "" {
		v, err := parseSize(*volume)
		if err != nil {
			return o, out, fmt.Errorf("-volume: %w", err)
		}
		o.Volume = int64(v)
	}
	if *maxBatchBytes != "" {
		if o.Recordmux.MaxBatchBytes, err = parseSize(*maxBatchBytes); err != nil {
			return o, out, fmt.Errorf("-max-batch-bytes: %w", err)
		}
	}
	if o.LatencySize, err = parseSize(*latSize); err != nil {
		return o, out, fmt.Errorf("-latency-size: %w", err)
	}
	if o.BacklogSize, err = parseSize(*backlogSize); err != nil {
		return o, out, fmt.Errorf("-backlog-size: %w", err)
	}
	if o.BacklogWindowBytes, err = parseSize(*backlogWindow); err != nil {
		return o, out, fmt.Errorf("-backlog-window-bytes: %w", err)
	}
	if o.HOLLoss, err = parseLosses(*losses); err != nil {
		return o, out, fmt.Errorf("-hol-loss: %w", err)
	}
	if !*quiet {
		o.Progress = stderr
	}
	return o, out, o.Validate()
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

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := parseSize(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// parseLosses parses loss rates given as fractions (0.01) or percentages
// (1%).
func parseLosses(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		pct := strings.HasSuffix(f, "%")
		v, err := strconv.ParseFloat(strings.TrimSuffix(f, "%"), 64)
		if pct {
			v /= 100
		}
		if err != nil || v < 0 || v >= 1 {
			return nil, fmt.Errorf("bad loss rate %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}
