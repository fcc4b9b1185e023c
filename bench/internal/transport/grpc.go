package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/mem"
)

// GRPC is grpc-go bidirectional streaming over TLS 1.3 (HTTP/2 over one
// TCP connection): one gRPC stream per record stream, carrying the
// framer's record contract. The framer's byte stream rides in gRPC
// messages, one per write: records coalesced by its 64 KiB buffer go in
// one message, as a throughput-minded gRPC user would batch them; acks
// come back in messages of a few bytes. The service is written by hand
// (a grpc.ServiceDesc with a raw-bytes codec), so no protoc is needed.
// grpc-go's flow-control windows are left to its BDP estimator.
type GRPC struct{ tuning Tuning }

// Name returns "grpc".
func (GRPC) Name() string { return "grpc" }

// Describe says what the transport is.
func (GRPC) Describe() string {
	return "grpc-go bidi streaming over TLS over TCP, framer records in gRPC messages"
}

// QUIC returns false.
func (GRPC) QUIC() bool { return false }

// With applies t.
func (g GRPC) With(t Tuning) Transport { g.tuning = g.tuning.merge(t); return g }

func (g GRPC) framing() framing { return framing{ackEvery: g.tuning.AckEvery} }

// grpcMethod is the full name of the one method of the service.
const grpcMethod = "/recordbench.Records/Stream"

// rawCodec marshals *[]byte as its bytes. gRPC may write a message after
// SendMsg returned, so Marshal copies (into a pooled buffer gRPC frees).
type rawCodec struct{}

func (rawCodec) Name() string { return "recordbench-raw" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	p, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("transport: grpc codec cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.Copy(*p, mem.DefaultBufferPool())}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("transport: grpc codec cannot unmarshal into %T", v)
	}
	n := data.Len()
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	*p = (*p)[:n]
	data.CopyTo(*p)
	return nil
}

// grpcStream is the part of grpc.ClientStream and grpc.ServerStream a
// grpcPipe uses.
type grpcStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// grpcPipe is a gRPC stream as a framer.Stream: each Write is one
// message; Read returns messages' bytes in order; Close finishes the
// write direction with closeWrite.
type grpcPipe struct {
	s          grpcStream
	msg        []byte // the message being read; reused
	off        int
	closeWrite func() error
}

func (p *grpcPipe) Read(b []byte) (int, error) {
	for p.off == len(p.msg) {
		p.msg, p.off = p.msg[:0], 0
		if err := p.s.RecvMsg(&p.msg); err != nil {
			return 0, err // io.EOF at the clean end
		}
	}
	n := copy(b, p.msg[p.off:])
	p.off += n
	return n, nil
}

func (p *grpcPipe) Write(b []byte) (int, error) {
	if err := p.s.SendMsg(&b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *grpcPipe) Close() error { return p.closeWrite() }

// grpcListener is a gRPC server whose one streaming method hands each
// stream to Accept and returns once the stream's receiver closed it.
type grpcListener struct {
	srv    *grpc.Server
	addr   net.Addr
	queue  chan Receiver
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{}
}

// Listen serves the gRPC service.
func (g GRPC) Listen(_ context.Context, n Network, addr string, id *Identity) (Listener, error) {
	ln, err := n.Listen(addr)
	if err != nil {
		return nil, err
	}
	l := &grpcListener{addr: ln.Addr(), queue: make(chan Receiver), served: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	f := g.framing()
	desc := &grpc.ServiceDesc{
		ServiceName: "recordbench.Records",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName: "Stream", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error { return l.handle(ss, f) },
		}},
	}
	l.srv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(id.ServerTLS())),
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.WaitForHandlers(true),
	)
	l.srv.RegisterService(desc, struct{}{})
	go func() {
		defer close(l.served)
		_ = l.srv.Serve(ln)
	}()
	return l, nil
}

// handle runs one stream: it queues the stream's receiver for Accept and
// returns (ending the stream) when the receiver closes its write
// direction, or when the stream or the server ends.
func (l *grpcListener) handle(ss grpc.ServerStream, f framing) error {
	done := make(chan struct{})
	pipe := &grpcPipe{s: ss, closeWrite: sync.OnceValue(func() error { close(done); return nil })}
	select {
	case l.queue <- f.receiver(pipe, nil):
	case <-ss.Context().Done():
		return nil
	case <-l.ctx.Done():
		return nil
	}
	select {
	case <-done:
	case <-ss.Context().Done():
	case <-l.ctx.Done():
	}
	return nil
}

func (l *grpcListener) Addr() net.Addr { return l.addr }

func (l *grpcListener) Accept(ctx context.Context) (Receiver, error) {
	select {
	case r := <-l.queue:
		return r, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops the server; handlers have returned when it does.
func (l *grpcListener) Close() error {
	l.cancel()
	l.srv.Stop()
	<-l.served
	return nil
}

// Dial connects to the gRPC server and waits until the connection is
// ready.
func (g GRPC) Dial(ctx context.Context, n Network, addr string, pin Pin) (Conn, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(pin.ClientTLS())),
		grpc.WithContextDialer(n.Dial),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
	)
	if err != nil {
		return nil, err
	}
	cc.Connect()
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if s == connectivity.TransientFailure || s == connectivity.Shutdown {
			_ = cc.Close()
			return nil, fmt.Errorf("transport: grpc connection to %s: %s", addr, s)
		}
		if !cc.WaitForStateChange(ctx, s) {
			_ = cc.Close()
			return nil, context.Cause(ctx)
		}
	}
	c := &grpcConn{cc: cc, f: g.framing()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

type grpcConn struct {
	cc     *grpc.ClientConn
	f      framing
	ctx    context.Context // the streams' lifetime: the connection's
	cancel context.CancelFunc
}

var grpcStreamDesc = &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

// Open starts a call of the streaming method. Its lifetime is the
// connection's, not ctx's, which only bounds the opening.
func (c *grpcConn) Open(ctx context.Context) (Sender, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	cs, err := c.cc.NewStream(c.ctx, grpcStreamDesc, grpcMethod)
	if err != nil {
		return nil, err
	}
	return c.f.sender(&grpcPipe{s: cs, closeWrite: cs.CloseSend}, nil), nil
}

func (c *grpcConn) Close() error {
	c.cancel()
	err := c.cc.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
