package examples_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/quicrecord"
)

// Example is the API tour of the README: a listener that applies records
// in order and rejects one, and a client that sends four and learns with
// one Barrier that all were applied, and which was rejected.
func Example() {
	ctx := context.Background()
	cert, _ := identity.Generate() // a development identity: self-signed, in memory
	ln, err := quicrecord.Listen("127.0.0.1:0", identity.ServerConfig(cert), nil)
	if err != nil {
		panic(err)
	}
	defer ln.Close()

	served := make(chan error, 1)
	go func() { // the server: apply each record, in order, exactly once
		conn, err := ln.Accept(ctx)
		if err != nil {
			served <- err
			return
		}
		s, err := conn.AcceptRecordStream(ctx)
		if err != nil {
			served <- err
			return
		}
		defer s.Close(ctx)
		served <- s.Apply(ctx, func(r quicrecord.Record) error {
			if string(r.Data) == "refund" {
				return &quicrecord.ApplicationError{Code: quicrecord.CodeRejected, Reason: "refunds are not allowed"} // rejects it
			}
			fmt.Printf("applied %d: %s\n", r.Seq, r.Data)
			return nil // acknowledged as applied
		}) // returns nil once the client closed the stream and all was applied
	}()

	pin := identity.FingerprintOf(cert.Leaf) // the client trusts exactly this key
	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), identity.ClientConfig(pin), nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "orders", DataID: 42})
	if err != nil {
		panic(err)
	}
	for _, rec := range []string{"created", "paid", "refund", "shipped"} {
		if _, err := s.Send(ctx, []byte(rec)); err != nil { // queues; blocks only when the window is full
			panic(err)
		}
	}
	var rej *quicrecord.RejectedError
	switch err := s.Barrier(ctx); { // waits until the server applied all four
	case errors.As(err, &rej): // all applied, some by rejecting them
		for _, r := range rej.Records {
			fmt.Printf("rejected %d: %s\n", r.Seq, r.Reason)
		}
	case err != nil:
		panic(err)
	}
	if err := s.Close(ctx); err != nil { // FIN after the last record
		panic(err)
	}
	fmt.Println("server done:", <-served)
	// Output:
	// applied 1: created
	// applied 2: paid
	// applied 4: shipped
	// rejected 3: refunds are not allowed
	// server done: <nil>
}
