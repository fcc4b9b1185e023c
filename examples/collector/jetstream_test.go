package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/jsrecord"
)

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readJetStream returns the sequence numbers of key's records in the
// stream of the NATS server at url, in stream order. The tests' agents
// have no client certificate: their identity is "".
func readJetStream(t *testing.T, url string, key []byte) []uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, jsrecord.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{jsrecord.RecordSubject(nil, "", key)}})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for {
		b, err := cons.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range b.Messages() {
			seq, err := jsrecord.RecordSeq(m)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
			n++
		}
		if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			t.Fatal(err)
		}
		if n == 0 {
			return seqs
		}
	}
}

func requireSeqs(t *testing.T, seqs []uint64, n int) {
	t.Helper()
	if len(seqs) != n {
		t.Fatalf("%d records in the stream, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("stream position %d holds record %d, want %d", i, s, i+1)
		}
	}
}

// sendResumable sends records from..to and waits until they are applied.
func sendResumable(t *testing.T, rs *quicrecord.ResumableStream, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := rs.Send(t.Context(), fmt.Appendf(nil, "record %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.Barrier(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorJetStreamEmbedded runs the one-binary demo: a collector
// with an embedded JetStream stored beside its state file. Restarted, it
// continues the agent's stream from what the store holds.
func TestCollectorJetStreamEmbedded(t *testing.T) {
	t.Parallel()
	certs := certSet(t)
	dir := t.TempDir()
	natsAddr := freeTCPAddr(t)
	args := []string{"-cert", filepath.Join(certs, "collector.pem"), "-key", filepath.Join(certs, "collector-key.pem"),
		"-jetstream", "embedded", "-jetstream-listen", natsAddr, "-state", filepath.Join(dir, "collector.state")}
	key := []byte("embedded-demo")
	opts := quicrecord.ResumeOptions{Key: key, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

	c := startCollector(t, args...)
	rs, err := quicrecord.DialResumable(t.Context(), c.addr, pinned(t, certs, "collector"), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	sendResumable(t, rs, 1, 2000)
	if err := rs.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.stop(t)

	c = startCollector(t, args...)
	opts.FirstSeq = 2001
	rs, err = quicrecord.DialResumable(t.Context(), c.addr, pinned(t, certs, "collector"), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	sendResumable(t, rs, 2001, 3000)
	if err := rs.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	requireSeqs(t, readJetStream(t, "nats://"+natsAddr, key), 3000)
	c.stop(t)
}

// TestCollectorFleet is the README's fleet: one NATS server, two
// collectors on it, an agent that fails over; the first collector stops
// in the middle of the transfer and the agent continues on the second.
func TestCollectorFleet(t *testing.T) {
	t.Parallel()
	port, _ := strconv.Atoi(freeTCPAddr(t)[len("127.0.0.1:"):])
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	certs := certSet(t)
	args := []string{"-cert", filepath.Join(certs, "collector.pem"), "-key", filepath.Join(certs, "collector-key.pem"), "-jetstream", srv.ClientURL()}
	a := startCollector(t, args...)
	b := startCollector(t, args...)

	key := []byte("fleet-demo")
	const n = 20_000
	dial := quicrecord.FailoverDial([]string{a.addr, b.addr}, pinned(t, certs, "collector"), nil, time.Second)
	rs, err := quicrecord.NewResumableStream(t.Context(), dial, nil, quicrecord.ResumeOptions{Key: key, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			if _, err := rs.Send(t.Context(), fmt.Appendf(nil, "record %d", i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	deadline := time.Now().Add(30 * time.Second)
	for rs.Snapshot().AckedSeq < n/4 {
		if time.Now().After(deadline) {
			t.Fatal("records not acknowledged through the first collector")
		}
		time.Sleep(time.Millisecond)
	}
	a.stop(t)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := rs.Barrier(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := rs.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	requireSeqs(t, readJetStream(t, srv.ClientURL(), key), n)
	if rs.Snapshot().Stats.Resumes == 0 {
		t.Fatal("the agent never moved to the second collector")
	}
}
