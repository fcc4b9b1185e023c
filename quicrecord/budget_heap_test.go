package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
	"github.com/recordmux/recordmux/internal/simtest"
)

// Heap bounds of the receive-budget tests. A stream costs a fixed amount
// of heap besides what the budget counts, on both ends of the test (the
// raw attacker runs in the same process): quic-go's stream state on each
// side, the RecordStream with its frame reader's 4 KiB buffer, its
// registry entries, and the attacker's HELLO exchange. heapPerStream
// bounds that (BenchmarkStreamMemory measures it: about 15 KiB per idle
// stream, both ends together). quic-go also holds data the reader has not
// taken, up to the QUIC connection receive window (the test sets it to
// budgetTestQUICWindow), and the attacker's quic-go and the simulated
// network hold the data in flight, which that window bounds too.
const (
	heapAttackStreams    = 1024
	heapPerStream        = 24 << 10
	budgetTestConn       = 8 << 20
	budgetTestListener   = 32 << 20
	budgetTestQUICWindow = 4 << 20
)

// budgetTestConfig is the server's configuration in the heap tests: small
// budgets and QUIC windows, and room for every attacking stream.
func budgetTestConfig() *Config {
	q := DefaultQUICConfig()
	q.InitialStreamReceiveWindow, q.MaxStreamReceiveWindow = 512<<10, 1<<20
	q.InitialConnectionReceiveWindow, q.MaxConnectionReceiveWindow = budgetTestQUICWindow, budgetTestQUICWindow
	q.MaxIncomingStreams = heapAttackStreams + 16
	return &Config{QUIC: q, MaxConnReceiveBytes: budgetTestConn, MaxListenerReceiveBytes: budgetTestListener, AcceptBacklog: heapAttackStreams}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapAttack is what a raw peer does on each of its streams after the
// HELLO exchange; accept says whether the server's application accepts
// the streams.
type heapAttack struct {
	name   string
	accept bool
	// stream writes the attack on one stream. It may block (a goroutine
	// per stream runs it); frameCap is the server's maximum frame size.
	// It reports whether the server reacted as expected, where the
	// attacker can see it.
	stream func(w *quic.Stream, frameCap int) bool
	// check asserts the attack's effect on the server's connection once
	// it is in place: it holds the connection budget or none of it.
	check func(t *testing.T, c *Conn)
}

// windowBatches are the BATCH frames an attacker sends on every stream to
// fill its window: 16 records of 60 KiB with seqs 1..16, shared by all
// streams so that the attacker's own memory stays small.
var windowBatches = sync.OnceValue(func() [][]byte {
	rec := make([]byte, 60<<10)
	out := make([][]byte, 16)
	for i := range out {
		out[i] = frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: uint64(i + 1)}, [][]byte{rec})
	}
	return out
})

func heapAttacks() []heapAttack {
	return []heapAttack{
		{name: "maximal BATCH header, then stall", accept: true, stream: func(w *quic.Stream, frameCap int) bool {
			// The header and the batch header's first bytes: flags,
			// seq 1, count 1, a record length.
			b := frames.AppendHeader(nil, frames.TypeBatch, frameCap)
			_, err := w.Write(append(b, 0, 1, 1, 0x80, 0x10, 0, 0))
			return err == nil
		}, check: func(t *testing.T, c *Conn) {
			// Every frame is charged in full: the budget is taken by
			// the first streams' grants (clamped to the budget), and
			// the others wait without a buffer.
			require.Greater(t, c.budget.Used(), int64(budgetTestConn/2))
			require.Equal(t, heapAttackStreams, c.streams.Len())
		}},
		{name: "maximal ACK header, then stall", accept: true, stream: func(w *quic.Stream, frameCap int) bool {
			_, _ = w.Write(frames.AppendHeader(nil, frames.TypeAck, frameCap))
			// Rejected from the header alone: the stream is reset.
			_, err := io.ReadAll(w)
			var se *quic.StreamError
			return errors.As(err, &se) && se.ErrorCode == quic.StreamErrorCode(CodeFrameTooLarge)
		}, check: func(t *testing.T, c *Conn) {
			require.Zero(t, c.budget.Used())
		}},
		{name: "full windows of never-accepted streams", accept: false, stream: func(w *quic.Stream, _ int) bool {
			for _, b := range windowBatches() {
				if _, err := w.Write(b); err != nil {
					return false
				}
			}
			return true
		}, check: func(t *testing.T, c *Conn) {
			require.Greater(t, c.budget.Used(), int64(budgetTestConn/2))
		}},
	}
}

// TestReceiveBudgetHeap: a raw peer opens 1,024 streams on one connection
// to a Listener and, on each, sends a BATCH header declaring the maximum
// frame size and stalls; or an ACK header declaring it; or fills the
// window of streams the application never accepts. The server's heap
// grows by no more than the connection's receive budget, the QUIC
// connection window and a fixed per-stream overhead, and a well-behaved
// client on another connection to the same Listener gets all its records
// applied meanwhile.
func TestReceiveBudgetHeap(t *testing.T) {
	for _, atk := range heapAttacks() {
		t.Run(atk.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runHeapAttack(t, atk) })
		})
	}
}

func runHeapAttack(t *testing.T, atk heapAttack) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := budgetTestConfig()
	frameCap := int(testSettings(t, cfg).maxFrameSize())
	n := simtest.NewNet(t, nil, simtest.Latency(simRTT/2))
	sconn, aconn, gconn := n.Endpoint(simServerAddr), n.Endpoint(simClientAddr), n.Endpoint(simClient2Addr)
	n.Start()
	stls, ctls := tlsPair(t)
	srv := listenSim(t, sconn, stls, cfg)

	attacker, err := simtest.Transport(t, aconn).Dial(ctx, srv.addr, withALPN(ctls), simQUICConfig(nil))
	require.NoError(t, err)
	defer func() { _ = attacker.CloseWithError(0, "") }()
	atkConn, err := srv.ln.Accept(ctx)
	require.NoError(t, err)
	if atk.accept {
		go func() {
			for {
				if _, err := atkConn.AcceptRecordStream(ctx); err != nil {
					return
				}
			}
		}()
	}
	good, goodServer := dialGood(ctx, t, gconn, srv, ctls)
	synctest.Wait()
	base := heapInUse()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() { _ = attacker.CloseWithError(0, "") }()
	// Every HELLO exchange first: once the attack stalls, the QUIC
	// connection window it filled would hold back later HELLOs too.
	strs := make([]*quic.Stream, heapAttackStreams)
	for i := range strs {
		strs[i] = rawOpen(ctx, t, attacker)
	}
	var reacted atomic.Int64
	for _, str := range strs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if atk.stream(str, frameCap) {
				reacted.Add(1)
			}
		}()
	}
	// Let the attack arrive and settle: a second of virtual time is
	// hundreds of round trips.
	time.Sleep(time.Second)
	synctest.Wait()
	attacked := heapInUse()
	atk.check(t, atkConn)

	// The well-behaved client on its own connection makes progress.
	applied := goodTransfer(ctx, t, good, goodServer, 500)
	require.Equal(t, uint64(500), applied)
	after := heapInUse()

	bound := uint64(budgetTestConn + 2*budgetTestQUICWindow + heapAttackStreams*heapPerStream)
	growth := max(attacked, after) - min(base, attacked, after)
	t.Logf("heap: base %d KiB, attacked %+d KiB, after the good transfer %+d KiB; bound %d KiB; connection budget in use %d KiB",
		base>>10, (int64(attacked)-int64(base))>>10, (int64(after)-int64(base))>>10, bound>>10, atkConn.budget.Used()>>10)
	require.LessOrEqual(t, growth, bound)
	require.LessOrEqual(t, atkConn.budget.Used(), int64(budgetTestConn))
	if atk.name == "maximal ACK header, then stall" {
		require.Equal(t, int64(heapAttackStreams), reacted.Load(), "streams reset with FRAME_TOO_LARGE")
	}
}

// rawOpen opens a stream on a raw quic-go connection and runs the
// opener's HELLO exchange on it.
func rawOpen(ctx context.Context, t *testing.T, qc *quic.Conn) *quic.Stream {
	t.Helper()
	str, err := qc.OpenStreamSync(ctx)
	require.NoError(t, err)
	newRawPeer(t, str).write(rawHello().Append(nil))
	// Read the reply with a reader of its own that is dropped after it.
	fr := frames.NewReader(str, frames.MaxHelloSize)
	typ, _, err := fr.ReadFrame()
	require.NoError(t, err)
	require.Equal(t, frames.TypeHello, typ)
	return str
}

// dialGood connects a well-behaved recordmux client to srv and returns it
// with the server's side of its connection.
func dialGood(ctx context.Context, t *testing.T, conn net.PacketConn, srv *simServer, ctls *tls.Config) (client, server *Conn) {
	t.Helper()
	qc, err := simtest.Transport(t, conn).Dial(ctx, srv.addr, withALPN(ctls), simQUICConfig(nil))
	require.NoError(t, err)
	client, err = NewConn(qc, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	server, err = srv.ln.Accept(ctx)
	require.NoError(t, err)
	return client, server
}

// goodTransfer sends n records of 1 KiB from client to server and returns
// how many the server applied once the client's Barrier returned.
func goodTransfer(ctx context.Context, t *testing.T, client, server *Conn, n int) uint64 {
	t.Helper()
	tx, err := client.OpenRecordStream(ctx, StreamOptions{})
	require.NoError(t, err)
	rx, err := server.AcceptRecordStream(ctx)
	require.NoError(t, err)
	var applied uint64
	done := make(chan error, 1)
	go func() {
		done <- rx.Apply(ctx, func(Record) error { applied++; return nil })
	}()
	rec := make([]byte, 1<<10)
	for range n {
		_, err := tx.Send(ctx, rec)
		require.NoError(t, err)
	}
	err = tx.Barrier(ctx)
	require.NoError(t, err)
	require.NoError(t, tx.Close(ctx))
	require.NoError(t, <-done)
	return applied
}

// BenchmarkStreamMemory reports the heap a stream costs over loopback,
// both ends together (a raw quic-go client opens the streams, a Listener
// accepts them): "idle" streams finished their HELLO exchange and were
// accepted; "stalled" ones then sent a BATCH header declaring the maximum
// frame size and nothing more. The stalled figure includes the first
// receive buffer of the streams the connection budget admitted (at most
// 80 KiB each, 63 streams of the default 64 MiB budget for 1 MiB
// frames), spread over all streams.
func BenchmarkStreamMemory(b *testing.B) {
	const n = 256
	for _, stalled := range []bool{false, true} {
		name := "idle"
		if stalled {
			name = "stalled"
		}
		b.Run(name, func(b *testing.B) {
			var perStream float64
			for b.Loop() {
				perStream = streamMemory(b, n, stalled)
			}
			b.ReportMetric(perStream, "B/stream")
		})
	}
}

// streamMemory opens n streams from a raw client to a fresh Listener and
// returns the heap growth per stream once they are in place.
func streamMemory(b *testing.B, n int, stalled bool) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stls, ctls := tlsPair(b)
	cfg := &Config{AcceptBacklog: n}
	ln, err := Listen("127.0.0.1:0", stls, cfg)
	require.NoError(b, err)
	defer ln.Close()
	qc, err := quic.DialAddr(ctx, ln.Addr().String(), withALPN(ctls), DefaultQUICConfig())
	require.NoError(b, err)
	defer qc.CloseWithError(0, "")
	c, err := ln.Accept(ctx)
	require.NoError(b, err)
	go func() {
		for {
			if _, err := c.AcceptRecordStream(ctx); err != nil {
				return
			}
		}
	}()
	frameCap := int(testSettings(b, cfg).maxFrameSize())
	base := heapInUse()
	for range n {
		str, err := qc.OpenStreamSync(ctx)
		require.NoError(b, err)
		_, err = str.Write(rawHello().Append(nil))
		require.NoError(b, err)
		fr := frames.NewReader(str, frames.MaxHelloSize)
		_, _, err = fr.ReadFrame()
		require.NoError(b, err)
		if stalled {
			_, err = str.Write(append(frames.AppendHeader(nil, frames.TypeBatch, frameCap), 0, 1, 1))
			require.NoError(b, err)
		}
	}
	for c.streams.Len() < n || (stalled && c.budget.Used() == 0) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the last headers arrive
	return float64(heapInUse()-base) / float64(n)
}
