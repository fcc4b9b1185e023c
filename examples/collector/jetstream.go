package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/recordmux/recordmux/quicrecord/jsrecord"
)

// embeddedJetStream is the -jetstream value that runs a single-node
// JetStream server inside the collector.
const embeddedJetStream = "embedded"

// jsBackend is the collector's JetStream side: the sink its streams are
// served by, the NATS connection under it, and the embedded server when
// there is one.
type jsBackend struct {
	sink  *jsrecord.Sink
	nc    *nats.Conn
	srv   *server.Server // nil unless -jetstream embedded
	where string         // what the log says the records go to
}

// openJetStream connects to JetStream (a server URL, or "embedded"),
// creates the records stream if it does not exist, and returns the sink.
func openJetStream(ctx context.Context, o options, name string, log *slog.Logger) (*jsBackend, error) {
	b := &jsBackend{where: o.jetstream}
	url := o.jetstream
	opts := []nats.Option{nats.Name("recordmux collector " + name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if o.jetstream == embeddedJetStream {
		srv, dir, err := startEmbedded(o)
		if err != nil {
			return nil, err
		}
		b.srv, b.where, url = srv, "embedded JetStream in "+dir, ""
		opts = append(opts, nats.InProcessServer(srv))
		if o.jetstreamListen != "" {
			log.Info("embedded JetStream listening", "url", srv.ClientURL())
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("-jetstream: %w", err)
	}
	b.nc = nc
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = jsrecord.EnsureStream(ctx, js, nil, o.jetstreamReplicas)
	}
	if err == nil {
		// Without client certificates, agents resume anonymously: a
		// resume key is then a bearer token (see -client-ca).
		b.sink, err = jsrecord.New(ctx, js, &jsrecord.Config{Collector: name, Logger: log, AllowAnonymous: o.clientCA == ""})
	}
	if err != nil {
		b.close()
		return nil, fmt.Errorf("-jetstream: %w", err)
	}
	return b, nil
}

// startEmbedded starts the in-process JetStream server, its store beside
// the state file (or the sink file, or in the working directory).
func startEmbedded(o options) (*server.Server, string, error) {
	dir := "jetstream"
	switch {
	case o.state != "":
		dir = filepath.Join(filepath.Dir(o.state), "jetstream")
	case o.sink != "-":
		dir = filepath.Join(filepath.Dir(o.sink), "jetstream")
	}
	sopts := &server.Options{ServerName: "collector", JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true, DontListen: true}
	if o.jetstreamListen != "" {
		host, port, err := net.SplitHostPort(o.jetstreamListen)
		if err != nil {
			return nil, "", fmt.Errorf("-jetstream-listen: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, "", fmt.Errorf("-jetstream-listen: port %q: %w", port, err)
		}
		sopts.DontListen, sopts.Host, sopts.Port = false, host, p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, "", fmt.Errorf("embedded JetStream: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, "", errors.New("embedded JetStream did not start within 10s")
	}
	return srv, dir, nil
}

// close closes the connection and stops the embedded server.
func (b *jsBackend) close() {
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}
