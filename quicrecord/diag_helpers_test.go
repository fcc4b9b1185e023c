package quicrecord

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/simtest"
	"github.com/recordmux/recordmux/quicrecord/diag"
	"github.com/recordmux/recordmux/registry"
)

// simListener is a Listener on a simulated network with a client
// transport that can dial it any number of times. It must run inside a
// synctest bubble.
type simListener struct {
	t         testing.TB
	ln        *Listener
	clientTr  *quic.Transport
	clientTLS *tls.Config // pinned to the listener's certificate
	clientCfg *Config
}

func newSimListener(t testing.TB, clientCfg, serverCfg *Config, latency time.Duration) *simListener {
	t.Helper()
	n := simtest.NewNet(t, nil, simtest.Latency(latency))
	cconn, sconn := n.Endpoint(simClientAddr), n.Endpoint(simServerAddr)
	n.Start()
	stls, ctls := tlsPair(t)
	ql := simtest.Listen(t, sconn, withALPN(stls), simQUICConfig(serverCfg))
	sl := &simListener{t: t, ln: newTestListener(t, ql, serverCfg), clientTr: simtest.Transport(t, cconn), clientTLS: withALPN(ctls), clientCfg: clientCfg}
	t.Cleanup(func() { _ = sl.ln.Close() })
	return sl
}

// dial connects a new client Conn to the listener and returns it with the
// server's Conn. beforeUse, if set, runs on each Conn before any stream
// exists on it.
func (sl *simListener) dial(beforeUse func(*Conn)) *pair {
	t := sl.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := sl.clientTr.Dial(ctx, simServerAddr, sl.clientTLS, simQUICConfig(sl.clientCfg))
	require.NoError(t, err)
	client, err := NewConn(qc, sl.clientCfg)
	require.NoError(t, err)
	server, err := sl.ln.Accept(ctx)
	require.NoError(t, err)
	if beforeUse != nil {
		beforeUse(client)
		beforeUse(server)
	}
	p := &pair{client: client, server: server}
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return p
}

// detachCounter counts OnDetach calls per stream key of a registry.
type detachCounter struct {
	mu sync.Mutex
	n  map[streamKey]int
}

// install replaces *reg with an empty registry that counts its detaches.
// It must run before any stream is registered in *reg, and before any
// goroutine that registers streams can see the new registry through
// something other than a channel or lock (the simnet's channels order it
// before the peer's streams arrive).
func (d *detachCounter) install(reg **streamRegistry) {
	d.mu.Lock()
	if d.n == nil {
		d.n = make(map[streamKey]int)
	}
	d.mu.Unlock()
	*reg = registry.New(compareKeys, &registry.Options[streamKey, *RecordStream]{
		Shards: 1,
		OnDetach: func(k streamKey, _ *RecordStream, _ error) {
			d.mu.Lock()
			d.n[k]++
			d.mu.Unlock()
		},
	})
}

func (d *detachCounter) count(k streamKey) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[k]
}

func (d *detachCounter) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.n {
		n += v
	}
	return n
}

var goroutineHeader = regexp.MustCompile(`^goroutine \d+ \[[^\]]*synctest bubble (\d+)[^\]]*\]:`)

// bubbleGoroutines returns the number of goroutines in the calling
// goroutine's synctest bubble, and how many of them are a record stream's
// writer or reader loop. Call it after synctest.Wait so the count is
// stable.
func bubbleGoroutines(t testing.TB) (total, loops int) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&buf, 2))
	stacks := strings.Split(buf.String(), "\n\n")
	// The first stack is the caller's, which is running.
	m := goroutineHeader.FindStringSubmatch(stacks[0])
	require.NotNil(t, m, "bubbleGoroutines must be called inside a synctest bubble")
	bubble := m[1]
	for _, st := range stacks {
		m := goroutineHeader.FindStringSubmatch(st)
		if m == nil || m[1] != bubble {
			continue
		}
		total++
		if strings.Contains(st, "quicrecord.(*RecordStream).writeLoop(") ||
			strings.Contains(st, "quicrecord.(*RecordStream).readLoop(") {
			loops++
		}
	}
	return total, loops
}

// snapKey returns the registry key of the stream a snapshot describes.
func snapKey(s *RecordSnapshot) streamKey {
	id := &s.Identity
	return streamKey{scope: id.Scope, conn: id.Conn, id: id.StreamID, dataID: id.DataID}
}

// keysOf returns the registry keys of snapshots.
func keysOf(snaps []RecordSnapshot) []streamKey {
	keys := make([]streamKey, len(snaps))
	for i := range snaps {
		keys[i] = snapKey(&snaps[i])
	}
	return keys
}

// sumSnapshots adds up every counter and gauge of snaps field by field, by
// hand, as the reference Summarize is checked against.
func sumSnapshots(snaps []RecordSnapshot) (out, in diag.TrafficTotals, fo, fi diag.FrameCounts, acks diag.AckStats, bar diag.BarrierStats, errs diag.ErrorStats, inflight, backlog diag.Volume) {
	for _, s := range snaps {
		out.Records += s.Out.Records
		out.Bytes += s.Out.Bytes
		out.Batches += s.Out.Batches
		in.Records += s.In.Records
		in.Bytes += s.In.Bytes
		in.Batches += s.In.Batches
		fo.Hello += s.FramesOut.Hello
		fo.Batch += s.FramesOut.Batch
		fo.Ack += s.FramesOut.Ack
		fo.Error += s.FramesOut.Error
		fo.Unknown += s.FramesOut.Unknown
		fi.Hello += s.FramesIn.Hello
		fi.Batch += s.FramesIn.Batch
		fi.Ack += s.FramesIn.Ack
		fi.Error += s.FramesIn.Error
		fi.Unknown += s.FramesIn.Unknown
		acks.PiggybackedOut += s.Acks.PiggybackedOut
		acks.StandaloneOut += s.Acks.StandaloneOut
		acks.PiggybackedIn += s.Acks.PiggybackedIn
		acks.StandaloneIn += s.Acks.StandaloneIn
		bar.Calls += s.Barrier.Calls
		bar.FlushWaitTotal += s.Barrier.FlushWaitTotal
		bar.AckWaitTotal += s.Barrier.AckWaitTotal
		bar.FlushWaitMax = max(bar.FlushWaitMax, s.Barrier.FlushWaitMax)
		bar.AckWaitMax = max(bar.AckWaitMax, s.Barrier.AckWaitMax)
		errs.RejectedByPeer += s.Errors.RejectedByPeer
		errs.RejectedLocally += s.Errors.RejectedLocally
		errs.ProtocolViolations += s.Errors.ProtocolViolations
		inflight.Records += s.Out.InFlightRecords
		inflight.Bytes += s.Out.InFlightBytes
		backlog.Records += s.In.BacklogRecords
		backlog.Bytes += s.In.BacklogBytes
	}
	return
}

// payload returns record i of a test stream: its length varies so byte
// counts are not a multiple of the record count.
func payload(i int) []byte { return []byte(fmt.Sprintf("rec-%d-%s", i, strings.Repeat("x", i%17))) }
