package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/recordmux/recordmux/bench/internal/suite"
)

// compare is "recordbench compare OLD NEW".
func compare(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recordbench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: recordbench compare [flags] OLD.jsonl NEW.jsonl\n\n"+
			"Prints, for each row of NEW that OLD has too, the change of each metric's median and\n"+
			"whether the two runs' min–max ranges overlap (if they do, the change may be noise).\n"+
			"With -fail-on it exits 1 when one of those metrics got worse by more than -threshold\n"+
			"with ranges apart. Flags:\n")
		fs.PrintDefaults()
	}
	metrics := fs.String("metrics", "", "comma-separated metrics to print (default: all)")
	failOn := fs.String("fail-on", "", "comma-separated metrics that fail the comparison when they regress, e.g. mb_per_sec,p99_us")
	threshold := fs.String("threshold", "5%", "with -fail-on: the smallest regression of the median that fails, as 5% or 0.05")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err)
	}
	if fs.NArg() != 2 {
		return usageError(errors.New("compare needs two files: OLD NEW"))
	}
	th, err := parseFraction(*threshold)
	if err != nil {
		return usageError(fmt.Errorf("-threshold: %w", err))
	}
	old, err := readResults(fs.Arg(0))
	if err != nil {
		return err
	}
	cur, err := readResults(fs.Arg(1))
	if err != nil {
		return err
	}
	changes := suite.Compare(old, cur)
	if len(changes) == 0 {
		return errors.New("no row of the new run matches one of the old")
	}
	if err := suite.WriteComparison(stdout, changes, splitList(*metrics)); err != nil {
		return err
	}
	bad, err := suite.Regressions(changes, splitList(*failOn), th)
	if err != nil {
		return usageError(err)
	}
	if len(bad) > 0 {
		fmt.Fprintf(stdout, "\n%d regression(s) beyond %.1f%% with ranges apart:\n", len(bad), th*100)
		if err := suite.WriteComparison(stdout, bad, nil); err != nil {
			return err
		}
		return exitError{code: 1}
	}
	return nil
}

func readResults(name string) ([]suite.Result, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := suite.ReadJSONLines(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rs, nil
}
