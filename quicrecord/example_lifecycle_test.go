package quicrecord_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/recordmux/recordmux/quicrecord"
)

// A client sends its requests, then half-closes: the server sees the end
// of the requests (Apply returns) and answers each, and the client keeps
// receiving and acking the answers. Each side's Barrier succeeds after its
// CloseWrite, and the stream ends by itself once both sides closed.
func ExampleRecordStream_CloseWrite() {
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
		defer s.Close(ctx)
		var requests []string
		_ = s.Apply(ctx, func(r quicrecord.Record) error { // returns at the client's CloseWrite
			requests = append(requests, string(r.Data))
			return nil
		})
		for _, req := range requests {
			_, _ = s.Send(ctx, []byte(strings.ToUpper(req)))
		}
		_ = s.Barrier(ctx)    // the client acked every answer
		_ = s.CloseWrite(ctx) // both sides are done: the stream ends
	}()

	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), clientTLS, nil)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	s, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "upper"})
	if err != nil {
		panic(err)
	}
	for _, req := range []string{"a", "b", "c"} {
		if _, err := s.Send(ctx, []byte(req)); err != nil {
			panic(err)
		}
	}
	if err := s.CloseWrite(ctx); err != nil { // no more requests
		panic(err)
	}
	if err := s.Barrier(ctx); err != nil { // the server's acks still arrive
		panic(err)
	}
	for {
		r, err := s.Recv(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("answer %d: %s\n", r.Seq, r.Data)
		_ = s.Ack(r.Seq) // acks still leave after CloseWrite
	}
	<-s.Context().Done()
	fmt.Println("stream:", s.Snapshot().Status.State)
	// Output:
	// answer 1: A
	// answer 2: B
	// answer 3: C
	// stream: closed
}

// A stream lives until it is closed; to bound it by a context, close it
// when the context ends. The peer sees the code.
func ExampleRecordStream_Context() {
	ctx := context.Background()
	ln, clientTLS := loopback(nil)
	defer ln.Close()
	peerErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		s, err := conn.AcceptRecordStream(ctx)
		if err != nil {
			return
		}
		defer s.Close(ctx)
		_, err = s.Recv(ctx)
		peerErr <- err
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
	jobCtx, cancelJob := context.WithCancel(ctx)
	stop := context.AfterFunc(jobCtx, func() { _ = s.CloseWithError(quicrecord.CodeCancelled, "job cancelled") })
	defer stop()

	cancelJob()
	<-s.Context().Done()
	err = <-peerErr
	fmt.Println("peer:", quicrecord.CodeOf(err), errors.Is(err, quicrecord.ErrCancelled))
	// Output:
	// peer: CANCELLED true
}

// CodeOf turns any error into a code for a switch; the sentinels test for
// one condition.
func ExampleCodeOf() {
	for _, err := range []error{
		nil,
		fmt.Errorf("open: %w", quicrecord.ErrVersionMismatch),
		&quicrecord.RecordError{Seq: 7, Code: quicrecord.CodeApplicationMin + 1, Reason: "duplicate order"},
		errors.New("disk full"),
	} {
		switch code := quicrecord.CodeOf(err); {
		case code == quicrecord.CodeNoError:
			fmt.Println("ok")
		case code >= quicrecord.CodeApplicationMin:
			fmt.Println("application code", uint64(code-quicrecord.CodeApplicationMin))
		default:
			fmt.Println(code)
		}
	}
	// Output:
	// ok
	// VERSION_MISMATCH
	// application code 1
	// INTERNAL
}

// A connection's defaults suit bulk transfers; one stream overrides them
// for latency. Fields the override leaves zero keep the connection's.
func ExampleStreamConfig() {
	ctx := context.Background()
	cfg := &quicrecord.Config{Stream: quicrecord.StreamConfig{
		FlushDelay:    2 * time.Millisecond, // fuller batches
		MaxBatchBytes: 256 << 10,
	}}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	ln, clientTLS := loopback(nil)
	defer ln.Close()
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		for {
			s, err := conn.AcceptRecordStream(ctx)
			if err != nil {
				return
			}
			go func() {
				defer s.Close(ctx)
				_ = s.Apply(ctx, func(quicrecord.Record) error { return nil })
			}()
		}
	}()
	conn, err := quicrecord.Dial(ctx, ln.Addr().String(), clientTLS, cfg)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	latency, err := conn.OpenRecordStream(ctx, quicrecord.StreamOptions{
		Scope:  "alerts",
		Config: &quicrecord.StreamConfig{FlushDelay: -1, AckDelay: -1}, // no linger, acks at once
	})
	if err != nil {
		panic(err)
	}
	_, err = conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Config: &quicrecord.StreamConfig{AckDelay: 5 * time.Millisecond}})
	fmt.Println("invalid:", err)
	if _, err := latency.Send(ctx, []byte("disk almost full")); err != nil {
		panic(err)
	}
	fmt.Println("applied:", latency.Barrier(ctx) == nil)
	// Output:
	// invalid: quicrecord: invalid StreamOptions.Config.AckDelay: 5ms: must be at most MaxAckDelay (1ms); negative sends acks at once
	// applied: true
}

// Shutdown stops accepting, then closes each connection once its streams
// are gone (or when its context ends); the peer sees a clean close.
func ExampleListener_Shutdown() {
	ctx := context.Background()
	ln, clientTLS := loopback(nil)
	accepted := make(chan *quicrecord.RecordStream, 1)
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		s, err := conn.AcceptRecordStream(ctx)
		if err != nil {
			return
		}
		accepted <- s
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
	server := <-accepted

	done := make(chan error, 1)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() { done <- ln.Shutdown(sctx) }()
	_ = s.Close(ctx)      // the client finishes its stream,
	_ = server.Close(ctx) // the server its end of it
	fmt.Println("shutdown:", <-done)
	_, err = conn.AcceptRecordStream(ctx)
	fmt.Println("client:", err)
	// Output:
	// shutdown: <nil>
	// client: quicrecord: connection closed by the peer
}
