package jsrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts an embedded single-node JetStream server. port 0
// means in-process only (DontListen); otherwise it listens on that
// loopback port.
func startServer(t testing.TB, storeDir string, port int) *server.Server {
	t.Helper()
	o := &server.Options{JetStream: true, StoreDir: storeDir, NoLog: true, NoSigs: true, ServerName: "solo"}
	if port == 0 {
		o.DontListen = true
	} else {
		o.Host, o.Port = "127.0.0.1", port
	}
	srv, err := server.NewServer(o)
	require.NoError(t, err)
	srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "server ready")
	t.Cleanup(srv.Shutdown)
	return srv
}

// startCluster starts three embedded servers routed into a JetStream
// cluster on loopback ports, and waits for a meta leader.
func startCluster(t testing.TB) []*server.Server {
	t.Helper()
	ports := []int{freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)}
	routes := make([]string, len(ports))
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	srvs := make([]*server.Server, len(ports))
	for i := range srvs {
		o := &server.Options{
			ServerName: "n" + strconv.Itoa(i), JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Host: "127.0.0.1", Port: -1,
			Cluster: server.ClusterOpts{Name: "jsrecord", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		srv, err := server.NewServer(o)
		require.NoError(t, err)
		srv.Start()
		t.Cleanup(srv.Shutdown)
		srvs[i] = srv
	}
	for _, srv := range srvs {
		require.True(t, srv.ReadyForConnections(10*time.Second))
	}
	// The leader places a stream only on peers it has heard from (an R3
	// stream created before that fails with "no suitable peers").
	waitFor(t, 20*time.Second, "a JetStream meta leader that knows every peer", func() bool {
		for _, srv := range srvs {
			if srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) == len(srvs) {
				return true
			}
		}
		return false
	})
	waitPlacement(t, srvs[0])
	return srvs
}

// waitPlacement waits until the cluster srv is in can place a
// three-replica stream. A meta leader alone is not enough: until it has
// heard from both other servers, placement fails with "no suitable peers
// for placement" (seen on a loaded machine).
func waitPlacement(t testing.TB, srv *server.Server) {
	t.Helper()
	js := newJS(t, connect(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	probe := jetstream.StreamConfig{Name: "PLACEMENT_PROBE", Subjects: []string{"placement.probe"}, Replicas: 3, Storage: jetstream.MemoryStorage}
	for {
		_, err := js.CreateStream(ctx, probe)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the cluster never placed a three-replica stream: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, js.DeleteStream(ctx, probe.Name))
}

// connect opens a NATS connection that keeps reconnecting quickly; an
// in-process server is reached without a socket.
func connect(t testing.TB, srv *server.Server, urls ...string) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond), nats.DontRandomize()}
	if srv != nil {
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func newJS(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// collector is a recordmux collector on a loopback port whose streams go
// through a Sink.
type collector struct {
	ln     *quicrecord.Listener
	sink   *Sink
	nc     *nats.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	served atomic.Int64 // streams Serve ended
}

// startCollector starts a collector publishing over nc. qcfg, if set,
// supplies the quicrecord config (its ResumeStore and AcceptHandler are
// filled in unless set).
func startCollector(t testing.TB, nc *nats.Conn, stls *tls.Config, cfg *Config, qcfg *quicrecord.Config) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Most tests' clients have no certificate: they resume anonymously.
	anon := Config{AllowAnonymous: true}
	if cfg != nil {
		anon = *cfg
		anon.AllowAnonymous = true
	}
	sink, err := New(ctx, newJS(t, nc), &anon)
	require.NoError(t, err)
	if qcfg == nil {
		qcfg = &quicrecord.Config{}
	}
	if qcfg.ResumeStore == nil {
		qcfg.ResumeStore = sink.NewResumeStore()
	}
	if qcfg.AcceptHandler == nil {
		qcfg.AcceptHandler = sink.AcceptHandler
	}
	ln, err := quicrecord.Listen("127.0.0.1:0", stls, qcfg)
	require.NoError(t, err)
	c := &collector{ln: ln, sink: sink, nc: nc, cancel: cancel}
	c.wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			c.wg.Go(func() {
				for {
					s, err := conn.AcceptRecordStream(ctx)
					if err != nil {
						return
					}
					c.wg.Go(func() {
						_ = sink.Serve(ctx, s)
						c.served.Add(1)
					})
				}
			})
		}
	})
	t.Cleanup(c.kill)
	return c
}

func (c *collector) addr() string { return c.ln.Addr().String() }

// kill stops the collector as a crash would: its NATS connection and its
// QUIC listener go at once, batches in flight with them.
func (c *collector) kill() {
	c.once.Do(func() {
		c.nc.Close()
		c.cancel()
		now, stop := context.WithCancel(context.Background())
		stop()
		_ = c.ln.Shutdown(now) // closes every connection at once
		c.wg.Wait()
	})
}

// serverTLS returns a collector's TLS config and an agent's, pinned to it.
func serverTLS(t testing.TB) (*tls.Config, *tls.Config) {
	t.Helper()
	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, tlsutil.PinnedClientConfig(cert)
}

// agentOpts are the resume options of test agents: quick reconnects.
func agentOpts(key []byte) quicrecord.ResumeOptions {
	return quicrecord.ResumeOptions{Key: key, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

// record returns the payload of record seq: 256 bytes that name it.
func record(seq uint64) []byte {
	b := make([]byte, 256)
	copy(b, "record "+strconv.FormatUint(seq, 10)+" ")
	return b
}

// sendRange sends records from..to and returns the first error.
func sendRange(ctx context.Context, rs *quicrecord.ResumableStream, from, to uint64) error {
	for seq := from; seq <= to; seq++ {
		got, err := rs.Send(ctx, record(seq))
		if err != nil {
			return err
		}
		if got != seq {
			return fmt.Errorf("record sent as %d, want %d", got, seq)
		}
	}
	return nil
}

// readBack is readBackAs for a client without an identity.
func readBack(t testing.TB, js jetstream.JetStream, key []byte) []uint64 {
	t.Helper()
	return readBackAs(t, js, "", key)
}

// readBackAs reads every record of client identity peer's key from the
// stream, in stream order, and checks each payload matches its sequence
// number and each message ID is the record's. It reads through an
// ephemeral pull consumer until the consumer has nothing pending.
func readBackAs(t testing.TB, js jetstream.JetStream, peer string, key []byte) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, DefaultStream)
	require.NoError(t, err)
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: RecordSubject(nil, peer, key), AckPolicy: jetstream.AckNonePolicy,
		MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute,
	})
	require.NoError(t, err)
	defer func() { _ = st.DeleteConsumer(context.Background(), cons.CachedInfo().Name) }()
	var seqs []uint64
	for {
		require.NoError(t, ctx.Err(), "reading the stream back")
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			continue // the consumer's leader is not ready yet
		}
		require.NoError(t, err)
		got, pending := 0, uint64(1)
		for m := range batch.Messages() {
			seq, err := RecordSeq(m)
			require.NoError(t, err)
			require.Equal(t, record(seq), m.Data(), "payload of record %d", seq)
			require.Equal(t, MsgID(peer, key, seq), m.Headers().Get(jetstream.MsgIDHeader))
			seqs = append(seqs, seq)
			md, err := m.Metadata()
			require.NoError(t, err)
			got, pending = got+1, md.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
			require.NoError(t, err)
		}
		if got > 0 && pending == 0 {
			return seqs
		}
		if got == 0 {
			info, err := cons.Info(ctx)
			if err == nil && info.NumPending == 0 {
				return seqs // an empty subject, or a last fetch that came back empty
			}
		}
	}
}

// requireExactlyOnce checks seqs is 1..n.
func requireExactlyOnce(t testing.TB, seqs []uint64, n uint64) {
	t.Helper()
	require.Len(t, seqs, int(n), "records in the stream")
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("stream position %d holds record %d, want %d (duplicate, gap or reordering)", i, s, i+1)
		}
	}
}

// pausableProxy forwards TCP connections to a NATS server; while paused it
// holds what clients send, as a stalled process would.
type pausableProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	paused   bool
	resumed  chan struct{}
	held     atomic.Int64 // bytes read from a client and not yet forwarded
	wg       sync.WaitGroup
	conns    []net.Conn
}

func startProxy(t testing.TB, upstream string) *pausableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &pausableProxy{ln: ln, upstream: upstream}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.close)
	return p
}

func (p *pausableProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *pausableProxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c, true) })
		p.wg.Go(func() { p.pipe(c, u, false) })
	}
}

// pipe copies src to dst; the client-to-server direction waits while the
// proxy is paused.
func (p *pausableProxy) pipe(dst, src net.Conn, gated bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && gated {
			p.held.Add(int64(n))
			p.waitResumed()
			p.held.Add(-int64(n))
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = src.Close()
			}
			return
		}
	}
}

func (p *pausableProxy) waitResumed() {
	p.mu.Lock()
	if !p.paused {
		p.mu.Unlock()
		return
	}
	ch := p.resumed
	p.mu.Unlock()
	<-ch
}

func (p *pausableProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused, p.resumed = true, make(chan struct{})
	}
}

func (p *pausableProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

func (p *pausableProxy) close() {
	p.resume()
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
