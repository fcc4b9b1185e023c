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
	"syscall"

	"github.com/recordmux/recordmux/bench/internal/suite"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "run", args
	if len(args) > 0 {
		switch args[0] {
		case "run", "serve", "compare":
			cmd, rest = args[0], args[1:]
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, rest, stdout, stderr)
	case "compare":
		err = compare(rest, stdout, stderr)
	default:
		err = runSuite(ctx, rest, stdout, stderr)
	}
	var ex exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ex):
		if ex.err != nil {
			fmt.Fprintln(stderr, "recordbench:", ex.err)
		}
		return ex.code
	}
	fmt.Fprintln(stderr, "recordbench:", err)
	return 1
}

const usage = `recordbench runs the recordmux benchmark suite.

  recordbench [run] [flags]                        every case in this process (default)
  recordbench run -connect HOST:PORT -pin SHA256    the cases against a recordbench serve
  recordbench serve -listen HOST:PORT               the server end of two-host runs
  recordbench compare [flags] OLD.jsonl NEW.jsonl   median changes between two runs

Run "recordbench run -h", "recordbench serve -h" or "recordbench compare -h" for flags.
`

// exitError ends the command with code after printing err (if any).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %v", e.code, e.err) }

// usageError is a bad command line: exit code 2.
func usageError(err error) error { return exitError{code: 2, err: err} }

// runSuite is "recordbench run".
func runSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, out, err := parseRunFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err)
	}
	if out.cpuProfile != "" {
		f, err := os.Create(out.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	env, err := newEnv(ctx, opts, out, stderr)
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Fprint(stderr, suite.DescribeMachine().String())
	rep, err := suite.RunIn(ctx, env, opts)
	if err != nil {
		if rep == nil || len(rep.Results) == 0 {
			return err
		}
		fmt.Fprintln(stderr, "recordbench:", err)
		fmt.Fprintln(stderr, "recordbench: reporting the cells that completed")
		err = exitError{code: 1}
	}
	if werr := writeOutputs(rep, out, stdout, stderr); werr != nil {
		return werr
	}
	return err
}

// newEnv is the in-process environment, or a two-host one with -connect.
func newEnv(ctx context.Context, opts suite.Options, out outputs, stderr io.Writer) (*suite.Env, error) {
	if out.connect == "" {
		return suite.NewEnv(opts.Transport)
	}
	pin, err := transport.ParsePin(out.pin)
	if err != nil {
		return nil, usageError(fmt.Errorf("-pin: %w", err))
	}
	env, err := suite.Connect(ctx, out.connect, pin, opts.Transport)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "recordbench: connected to %s\n", out.connect)
	return env, nil
}

// writeOutputs writes the table, the JSON lines and the charts.
func writeOutputs(rep *suite.Report, out outputs, stdout, stderr io.Writer) error {
	if err := suite.WriteTable(stdout, rep); err != nil {
		return err
	}
	if out.json != "" {
		if err := writeFile(out.json, func(w io.Writer) error { return suite.WriteJSONLines(w, rep.Results) }); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "recordbench: wrote %d results to %s\n", len(rep.Results), out.json)
	}
	if out.plotDir != "" {
		files, err := suite.WriteCharts(out.plotDir, rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "recordbench: wrote %d charts to %s\n", len(files), out.plotDir)
	}
	if out.memProfile != "" {
		return writeFile(out.memProfile, func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) })
	}
	return nil
}

// writeFile creates name and writes it with fn.
func writeFile(name string, fn func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
