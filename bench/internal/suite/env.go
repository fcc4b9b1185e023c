package suite

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

// rawALPN is the application protocol of the raw, framer and mux
// connections.
const rawALPN = "recordbench"

// Env holds what every run shares: one server certificate and the
// recordmux configuration under test. Create it with [NewEnv].
type Env struct {
	cert tls.Certificate
	// rm is the recordmux configuration; cases clone it.
	rm quicrecord.Config
}

// NewEnv makes a self-signed certificate for 127.0.0.1 and keeps rm, the
// recordmux configuration (batching knobs) every recordmux run starts
// from. rm.QUIC nil means [quicrecord.DefaultQUICConfig]; the raw
// transports use the same QUIC configuration so that flow-control
// windows are equal.
func NewEnv(rm quicrecord.Config) (*Env, error) {
	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	return &Env{cert: cert, rm: rm}, nil
}

// quicConfig returns a fresh copy of the QUIC configuration.
func (e *Env) quicConfig() *quic.Config {
	if e.rm.QUIC != nil {
		return e.rm.QUIC.Clone()
	}
	return quicrecord.DefaultQUICConfig()
}

// rmConfig returns a copy of the recordmux configuration with QUIC set.
func (e *Env) rmConfig() *quicrecord.Config {
	c := e.rm
	c.QUIC = e.quicConfig()
	return &c
}

func (e *Env) serverTLS(alpn string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{e.cert}, NextProtos: []string{alpn}}
}

func (e *Env) clientTLS(alpn string) *tls.Config {
	return tlsutil.PinnedClientConfig(e.cert, alpn)
}

// quicPair is a raw quic-go client and server connection over UDP on
// 127.0.0.1, or over a simulated link.
type quicPair struct {
	client, server *quic.Conn
	closers        []func()
}

// closeConns closes both connections.
func (p *quicPair) closeConns() {
	if p.client != nil {
		_ = p.client.CloseWithError(0, "")
	}
	if p.server != nil {
		_ = p.server.CloseWithError(0, "")
	}
}

// close closes both connections, then the transports and sockets.
func (p *quicPair) close() {
	p.closeConns()
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// dialLoopback connects a raw quic-go pair over UDP sockets bound to
// 127.0.0.1.
func (e *Env) dialLoopback(ctx context.Context, qconf *quic.Config) (*quicPair, error) {
	p := &quicPair{}
	var trs [2]*quic.Transport
	for i := range trs {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			p.close()
			return nil, err
		}
		trs[i] = &quic.Transport{Conn: udp}
		p.closers = append(p.closers, func() { _ = trs[i].Close(); _ = udp.Close() })
	}
	return e.dialOver(ctx, p, trs[0], trs[1], qconf)
}

// dialOver runs the handshake between a server transport and a client
// transport and fills p.
func (e *Env) dialOver(ctx context.Context, p *quicPair, srv, cli *quic.Transport, qconf *quic.Config) (*quicPair, error) {
	ln, err := srv.Listen(e.serverTLS(rawALPN), qconf)
	if err != nil {
		p.close()
		return nil, err
	}
	p.closers = append(p.closers, func() { _ = ln.Close() })
	type accepted struct {
		c   *quic.Conn
		err error
	}
	ch := make(chan accepted, 1)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		c, err := ln.Accept(actx)
		ch <- accepted{c, err}
	}()
	p.client, err = cli.Dial(ctx, ln.Addr(), e.clientTLS(rawALPN), qconf)
	if err != nil {
		cancel()
	}
	a := <-ch
	p.server = a.c
	if err == nil {
		err = a.err
	}
	if err != nil {
		p.close()
		return nil, fmt.Errorf("quic handshake: %w", err)
	}
	return p, nil
}

// rmPair is a recordmux client and server connection.
type rmPair struct {
	client, server *quicrecord.Conn
	ln             *quicrecord.Listener
	under          *quicPair // set when built with NewConn over a simulated link
}

func (p *rmPair) close() {
	if p.client != nil {
		_ = p.client.Close()
	}
	if p.server != nil {
		_ = p.server.Close()
	}
	if p.ln != nil {
		_ = p.ln.Close()
	}
	if p.under != nil {
		p.under.close()
	}
}

// dialRecordmux connects a recordmux pair on 127.0.0.1 with the public
// Listen and Dial, as a user would.
func (e *Env) dialRecordmux(ctx context.Context, cfg *quicrecord.Config) (*rmPair, error) {
	ln, err := quicrecord.Listen("127.0.0.1:0", e.serverTLS(quicrecord.ALPN), cfg)
	if err != nil {
		return nil, err
	}
	p := &rmPair{ln: ln}
	type accepted struct {
		c   *quicrecord.Conn
		err error
	}
	ch := make(chan accepted, 1)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		c, err := ln.Accept(actx)
		ch <- accepted{c, err}
	}()
	p.client, err = quicrecord.Dial(ctx, ln.Addr().String(), e.clientTLS(quicrecord.ALPN), cfg)
	if err != nil {
		cancel()
	}
	a := <-ch
	p.server = a.c
	if err == nil {
		err = a.err
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// openStreams opens n record streams from the client and accepts them on
// the server; rx[i] is the peer of tx[i] (matched by data ID).
func (p *rmPair) openStreams(ctx context.Context, n, parallel int) (tx, rx []*quicrecord.RecordStream, err error) {
	tx = make([]*quicrecord.RecordStream, n)
	rx = make([]*quicrecord.RecordStream, 0, n)
	accErr := make(chan error, 1)
	go func() {
		for len(rx) < n {
			s, err := p.server.AcceptRecordStream(ctx)
			if err != nil {
				accErr <- err
				return
			}
			rx = append(rx, s)
		}
		accErr <- nil
	}()
	err = forEach(ctx, n, parallel, func(i int) error {
		s, err := p.client.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "bench", DataID: uint64(i)})
		tx[i] = s
		return err
	})
	if aerr := <-accErr; err == nil {
		err = aerr
	}
	if err == nil {
		slices.SortFunc(rx, func(a, b *quicrecord.RecordStream) int { return cmp.Compare(a.DataID(), b.DataID()) })
	}
	return tx, rx, err
}

// openStreams opens n bidirectional streams from the client and accepts
// them on the server; rx[i] is the peer of tx[i]. quic-go announces a
// stream only with its first byte, so each opener writes one preamble
// byte that the acceptor consumes.
func (p *quicPair) openStreams(ctx context.Context, n, parallel int) (tx, rx []*quic.Stream, err error) {
	tx = make([]*quic.Stream, n)
	rx = make([]*quic.Stream, n)
	var mu sync.Mutex
	accepted := 0
	accErr := make(chan error, 1)
	go func() {
		accErr <- forEach(ctx, n, parallel, func(int) error {
			s, err := p.server.AcceptStream(ctx)
			if err != nil {
				return err
			}
			var b [1]byte
			if _, err := io.ReadFull(s, b[:]); err != nil {
				return err
			}
			mu.Lock()
			rx[accepted] = s
			accepted++
			mu.Unlock()
			return nil
		})
	}()
	err = forEach(ctx, n, parallel, func(i int) error {
		s, err := p.client.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		tx[i] = s
		_, err = s.Write([]byte{0})
		return err
	})
	if aerr := <-accErr; err == nil {
		err = aerr
	}
	if err == nil {
		// Both ends number a stream alike.
		byID := func(a, b *quic.Stream) int { return cmp.Compare(a.StreamID(), b.StreamID()) }
		slices.SortFunc(tx, byID)
		slices.SortFunc(rx, byID)
	}
	return tx, rx, err
}

// forEach runs fn(0..n-1) on up to parallel goroutines and returns the
// first error; after an error the remaining indices are skipped.
func forEach(ctx context.Context, n, parallel int, fn func(i int) error) error {
	var (
		mu   sync.Mutex
		next int
		ferr error
		wg   sync.WaitGroup
	)
	for range min(max(parallel, 1), n) {
		wg.Go(func() {
			for {
				mu.Lock()
				if ferr != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if ferr == nil && ctx.Err() != nil {
		ferr = context.Cause(ctx)
	}
	return ferr
}

// firstErr returns the first non-nil error of errs that is not a
// consequence of shutting down.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// openRecordmux dials a recordmux pair and opens n streams from the
// client (parallel at a time); on error nothing is left open.
func (e *Env) openRecordmux(ctx context.Context, cfg *quicrecord.Config, n, parallel int) (*rmPair, []*quicrecord.RecordStream, []*quicrecord.RecordStream, error) {
	p, err := e.dialRecordmux(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	tx, rx, err := p.openStreams(ctx, n, parallel)
	if err != nil {
		p.close()
		return nil, nil, nil, err
	}
	return p, tx, rx, nil
}

// openLoopback dials a raw quic-go pair on loopback and opens n streams
// from the client (parallel at a time); on error nothing is left open.
func (e *Env) openLoopback(ctx context.Context, qconf *quic.Config, n, parallel int) (*quicPair, []*quic.Stream, []*quic.Stream, error) {
	p, err := e.dialLoopback(ctx, qconf)
	if err != nil {
		return nil, nil, nil, err
	}
	tx, rx, err := p.openStreams(ctx, n, parallel)
	if err != nil {
		p.close()
		return nil, nil, nil, err
	}
	return p, tx, rx, nil
}
