package quicrecord_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
)

// loopback starts a listener on 127.0.0.1 with an in-memory development
// identity and returns it with a client TLS config that pins its key.
func loopback(cfg *quicrecord.Config) (*quicrecord.Listener, *tls.Config) {
	cert, err := identity.Generate()
	if err != nil {
		panic(err)
	}
	ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(cert), cfg)
	if err != nil {
		panic(err)
	}
	return ln, identity.ClientConfig(identity.FingerprintOf(cert.Leaf))
}

// A client sends records and waits until the server applied them all.
func ExampleRecordStream_Barrier() {
	ctx := context.Background()
	ln, clientTLS := loopback(nil)
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, _ := ln.Accept(ctx)
		s, _ := conn.AcceptRecordStream(ctx)
		defer s.Close(context.Background())
		_ = s.Apply(ctx, func(r quicrecord.Record) error {
			fmt.Printf("server applied %d: %s\n", r.Seq, r.Data)
			return nil
		})
	}()

	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "example"})
	if err != nil {
		panic(err)
	}
	for _, rec := range []string{"one", "two", "three"} {
		if _, err := s.Send(ctx, []byte(rec)); err != nil {
			panic(err)
		}
	}
	if err := s.Barrier(ctx); err != nil {
		panic(err)
	}
	fmt.Println("all applied, acked seq", s.AckedSeq())
	_ = s.Close(context.Background())
	<-done
	// Output:
	// server applied 1: one
	// server applied 2: two
	// server applied 3: three
	// all applied, acked seq 3
}

// The accept handler decides on each stream by scope: it refuses unknown
// scopes (the opener gets a typed error with the code the handler chose)
// and gives a bulk stream settings of its own.
func ExampleConfig_acceptHandler() {
	ctx := context.Background()
	ln, clientTLS := loopback(&quicrecord.Config{
		AcceptHandler: func(_ context.Context, info *quicrecord.AcceptInfo) (*quicrecord.StreamConfig, error) {
			switch info.Scope {
			case "events":
				return nil, nil // the connection's settings
			case "bulk":
				return &quicrecord.StreamConfig{MaxApplyBacklogBytes: 64 << 20, MaxRecordSize: 16 << 20}, nil
			}
			return nil, &quicrecord.ApplicationError{Code: quicrecord.CodeApplicationMin + 3, Reason: "scope not allowed"}
		},
	})
	defer ln.Close()
	go func() { _, _ = ln.Accept(ctx) }()

	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	// Both sides allow 16 MiB records on the bulk stream; other streams
	// keep the default of 1 MiB.
	bulk, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{
		Scope: "bulk", Config: &quicrecord.StreamConfig{MaxRecordSize: 16 << 20},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("bulk: records up to", bulk.MaxRecordSize()>>20, "MiB")
	_, err = conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "forbidden"})
	var se *quicrecord.StreamError
	if errors.As(err, &se) {
		fmt.Println("refused:", se.Code, se.Reason, "remote:", se.Remote)
	}
	// Output:
	// bulk: records up to 16 MiB
	// refused: APPLICATION(0x103) scope not allowed remote: true
}

// Records the application fails to apply come back to the sender.
func ExampleRecordStream_Reject() {
	ctx := context.Background()
	ln, clientTLS := loopback(nil)
	defer ln.Close()
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		s, err := conn.AcceptRecordStream(ctx)
		if err != nil {
			return
		}
		defer s.Close(context.Background())
		for {
			r, err := s.Recv(ctx)
			if err != nil {
				return
			}
			if string(r.Data) == "bad" {
				_ = s.Reject(r.Seq, quicrecord.CodeRejected, "cannot parse")
				continue
			}
			_ = s.Ack(r.Seq)
		}
	}()

	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{})
	if err != nil {
		panic(err)
	}
	for _, rec := range []string{"good", "bad", "good"} {
		if _, err := s.Send(ctx, []byte(rec)); err != nil {
			panic(err)
		}
	}
	var re *quicrecord.RecordError
	if err := s.Barrier(ctx); errors.As(err, &re) {
		fmt.Printf("record %d rejected: %s (%v)\n", re.Seq, re.Reason, errors.Is(err, quicrecord.ErrRecordRejected))
	}
	_ = s.Close(context.Background())
	// Output:
	// record 2 rejected: cannot parse (true)
}

// A resumable stream carries on across lost connections; the acceptor
// needs a ResumeStore. The client here has no certificate, so the store
// must allow anonymous resumption, and the key is a bearer token.
func ExampleDialResumable() {
	ctx := context.Background()
	ln, clientTLS := loopback(&quicrecord.Config{ResumeStore: quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{AllowAnonymous: true})})
	defer ln.Close()
	applied := make(chan uint64, 10)
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		s, err := conn.AcceptRecordStream(ctx)
		if err != nil {
			return
		}
		defer s.Close(context.Background())
		_ = s.Apply(ctx, func(r quicrecord.Record) error {
			applied <- r.Seq
			return nil
		})
	}()

	rs, err := quicrecord.DialResumable(ctx, ln.Addr().String(), clientTLS, nil, quicrecord.ResumeOptions{
		Stream: quicrecord.StreamOptions{Scope: "telemetry"},
		Key:    []byte("agent-7"),
	})
	if err != nil {
		panic(err)
	}
	for i := range 3 {
		if _, err := rs.Send(ctx, []byte{byte(i)}); err != nil {
			panic(err)
		}
	}
	if err := rs.Barrier(ctx); err != nil {
		panic(err)
	}
	fmt.Println("applied:", <-applied, <-applied, <-applied, "resume available:", rs.Snapshot().ResumeAvailable)
	_ = rs.Close(context.Background())
	// Output:
	// applied: 1 2 3 resume available: true
}
