package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/recordmux/recordmux/bench/internal/suite"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// serve is "recordbench serve": the server end of two-host runs.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recordbench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: recordbench serve [flags]\n\nServes \"recordbench run -connect\" from another host. It makes an in-memory TLS\nidentity and prints its fingerprint for the client's -pin. Flags:\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", ":7600", "control address HOST:PORT (TCP); data listeners bind the same host")
	dataPort := fs.Int("data-port", 0, "port of every run's data listener, TCP or UDP by transport (0: an ephemeral port each run)")
	quiet := fs.Bool("q", false, "no log of clients and runs on stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	id, err := transport.NewIdentity()
	if err != nil {
		return err
	}
	var log io.Writer = stderr
	if *quiet {
		log = nil
	}
	srv, err := suite.Listen(*listen, *dataPort, id, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recordbench serve: listening on %s\n", srv.Addr())
	fmt.Fprintf(stdout, "recordbench serve: fingerprint %s\n", id.Pin())
	fmt.Fprintf(stdout, "on the client: recordbench run -connect %s -pin %s\n", srv.Addr(), id.Pin())
	return srv.Serve(ctx)
}
