package jsrecord

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord"
)

// transfer sends records 1..n on rs from a goroutine; the returned
// channel yields the send error (nil when all were sent).
func transfer(ctx context.Context, rs *quicrecord.ResumableStream, n uint64) <-chan error {
	done := make(chan error, 1)
	go func() { done <- sendRange(ctx, rs, 1, n) }()
	return done
}

// finish waits for the transfer and for everything to be applied, and
// closes the stream.
func finish(t *testing.T, ctx context.Context, rs *quicrecord.ResumableStream, sent <-chan error) {
	t.Helper()
	require.NoError(t, <-sent)
	require.NoError(t, rs.Barrier(ctx))
	require.NoError(t, rs.Close(context.Background()))
}

// TestR3CollectorKilledMidTransfer: an R3 cluster, two collectors and an
// agent failing over between them. Collector A is killed while 100,000
// records are in transfer; the agent resumes on B, and the stream holds
// every record once, in order.
func TestR3CollectorKilledMidTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("soak (100,000 records through an R3 cluster): skipped under -short; TestR3StreamLeaderShutdownMidTransfer and TestFencingPausedCollector cover failover")
	}
	// Not parallel: it moves 100,000 records through a three-node
	// cluster. Its deadlines only guard against a hang: under the race
	// detector, next to other packages' tests, the first third alone
	// has taken more than a minute.
	const n = 100_000
	srvs := startCluster(t)
	urls := []string{srvs[0].ClientURL(), srvs[1].ClientURL(), srvs[2].ClientURL()}
	ncA := connect(t, nil, urls...)
	ncB := connect(t, nil, urls[1], urls[2], urls[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, ncA), nil, 3)
	require.NoError(t, err)
	stls, ctls := serverTLS(t)
	a := startCollector(t, ncA, stls, nil, nil)
	b := startCollector(t, ncB, stls, nil, nil)
	require.False(t, a.sink.useFast.Load(), "a replicated stream gets atomic batches")

	key := []byte("r3-kill")
	dial := quicrecord.FailoverDial([]string{a.addr(), b.addr()}, ctls, nil, time.Second)
	rs, err := quicrecord.NewResumableStream(ctx, dial, nil, agentOpts(key))
	require.NoError(t, err)
	sent := transfer(ctx, rs, n)

	waitFor(t, 3*time.Minute, "a third of the records confirmed through A", func() bool { return rs.Snapshot().AckedSeq >= n/3 })
	a.kill()
	finish(t, ctx, rs, sent)

	requireExactlyOnce(t, readBack(t, newJS(t, ncB), key), n)
	sa, sb := a.sink.Snapshot(), b.sink.Snapshot()
	t.Logf("A: %+v", sa)
	t.Logf("B: %+v", sb)
	require.NotZero(t, sa.Records, "A applied records before it was killed")
	require.NotZero(t, sb.Records, "B applied the rest")
	require.Equal(t, uint64(1), sb.Claims, "B claimed the key once")
	// A batch A had in flight when it was killed may have landed
	// unconfirmed: B resumed after it, so the two together confirmed at
	// most n.
	require.LessOrEqual(t, sa.Records+sb.Records, uint64(n), "no record was confirmed twice")
	require.GreaterOrEqual(t, rs.Snapshot().Stats.Resumes, uint64(1))
}

// TestR3StreamLeaderShutdownMidTransfer: the server leading the stream is
// shut down during the transfer; a new leader takes over and the stream
// still holds every record once, in order.
func TestR3StreamLeaderShutdownMidTransfer(t *testing.T) {
	t.Parallel()
	const n = 20_000
	srvs := startCluster(t)
	urls := []string{srvs[0].ClientURL(), srvs[1].ClientURL(), srvs[2].ClientURL()}
	ncSetup := connect(t, nil, urls...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, ncSetup), nil, 3)
	require.NoError(t, err)
	leader := -1
	waitFor(t, 20*time.Second, "a stream leader", func() bool {
		for i, srv := range srvs {
			if srv.JetStreamIsStreamLeader("$G", DefaultStream) {
				leader = i
				return true
			}
		}
		return false
	})
	// The collector talks to the leader first, so it also has to
	// reconnect its NATS connection.
	order := []string{urls[leader], urls[(leader+1)%3], urls[(leader+2)%3]}
	nc := connect(t, nil, order...)
	stls, ctls := serverTLS(t)
	c := startCollector(t, nc, stls, &Config{Timeout: 2 * time.Second}, nil)

	key := []byte("r3-leader")
	rs, err := quicrecord.NewResumableStream(ctx, quicrecord.FailoverDial([]string{c.addr()}, ctls, nil, time.Second), nil, agentOpts(key))
	require.NoError(t, err)
	sent := transfer(ctx, rs, n)
	waitFor(t, 60*time.Second, "a third of the records confirmed", func() bool { return rs.Snapshot().AckedSeq >= n/3 })
	srvs[leader].Shutdown()
	finish(t, ctx, rs, sent)

	survivor := connect(t, nil, urls[(leader+1)%3], urls[(leader+2)%3])
	requireExactlyOnce(t, readBack(t, newJS(t, survivor), key), n)
	t.Logf("sink: %+v, agent: %+v", c.sink.Snapshot(), rs.Snapshot().Stats)
}

// TestFencingPausedCollector: collector A stalls (its JetStream traffic
// is held, as in a long pause) with a batch on the way; the agent moves to
// B, which claims the key. When A wakes up, JetStream refuses its batch,
// A resets its stream with CodeSuperseded instead of acknowledging, and
// nothing is duplicated. If A wakes before B has published anything, the
// fence (the expected last sequence of the key's claim subject) refuses
// it; if B has already published the same records, their message IDs do
// (JetStream checks those first): an atomic batch holding one is refused
// whole, while a fast batch's duplicates are dropped one by one and
// reported stored, which they are (by B), so A's batch is "confirmed"
// without A appending anything. Both publishing paths run (the stream
// has one replica, so the sink picks fast batches unless told otherwise).
func TestFencingPausedCollector(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		atomic     bool // Config.AtomicBatches
		holdB      bool // B waits after its claim until A's batch is refused
		fenced     uint64
		duplicates uint64
		dropped    bool // A's records after the stall are duplicates, dropped and reported stored
	}{
		{"atomic/fence", true, true, 1, 0, false},
		{"atomic/message IDs", true, false, 0, 1, false},
		{"fast/fence", false, true, 1, 0, false},
		{"fast/message IDs", false, false, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := fencingScenario(t, tc.atomic, tc.holdB, func(st Stats) bool {
				return st.Fenced == tc.fenced && st.DuplicateRefused == tc.duplicates && (st.Records > 1000) == tc.dropped
			})
			require.Equal(t, tc.fenced, st.Fenced)
			require.Equal(t, tc.duplicates, st.DuplicateRefused)
			if tc.dropped {
				require.Greater(t, st.Records, uint64(1000))
				require.LessOrEqual(t, st.Records, uint64(1500))
			} else {
				require.Equal(t, uint64(1000), st.Records, "A confirmed (and acknowledged) only what it had before the stall")
			}
		})
	}
}

// fencingScenario runs the paused-collector scenario, waits for A's
// batch to end as expected (ended(A's statistics) true), and returns A's
// statistics.
func fencingScenario(t *testing.T, atomicBatches, holdB bool, ended func(Stats) bool) Stats {
	srv := startServer(t, t.TempDir(), freeTCPPort(t))
	proxy := startProxy(t, srv.Addr().String())
	ncA := connect(t, nil, proxy.url())
	ncB := connect(t, nil, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, ncB), nil, 1)
	require.NoError(t, err)
	stls, ctls := serverTLS(t)
	// A waits long for its commit: the reply must be JetStream's verdict,
	// not a timeout.
	a := startCollector(t, ncA, stls, &Config{Timeout: 50 * time.Second, Collector: "A", AtomicBatches: atomicBatches}, nil)
	require.Equal(t, !atomicBatches, a.sink.useFast.Load())
	claimed, release := make(chan struct{}), make(chan struct{})
	// B holds its first claim of the key until A's batch ended. The agent
	// may give that open up after its hello timeout (10 s; A's batch can
	// take that long under the race detector) and open again: a later
	// claim waits for the same release instead of announcing it twice.
	var hold sync.Once
	var sinkB atomic.Pointer[Sink]
	qcfgB := &quicrecord.Config{ResumeStore: quicrecord.NewResumeStore(quicrecord.ResumeStoreConfig{TTL: time.Nanosecond, AllowAnonymous: true,
		LoadApplied: func(ctx context.Context, info quicrecord.ResumeKeyInfo) (uint64, bool, error) {
			last, found, err := sinkB.Load().LoadApplied(ctx, info)
			if holdB {
				hold.Do(func() {
					close(claimed)
					<-release
				})
			}
			return last, found, err
		}})}
	b := startCollector(t, ncB, stls, &Config{Collector: "B", AtomicBatches: atomicBatches}, qcfgB)
	sinkB.Store(b.sink)

	var target atomic.Pointer[string]
	var current atomic.Pointer[quicrecord.Conn]
	target.Store(new(a.addr()))
	dial := func(ctx context.Context) (*quicrecord.Conn, error) {
		conn, err := quicrecord.Dial(ctx, *target.Load(), ctls, nil)
		if err == nil {
			current.Store(conn)
		}
		return conn, err
	}
	key := []byte("fenced")
	rs, err := quicrecord.NewResumableStream(ctx, dial, nil, agentOpts(key))
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, rs, 1, 1000))
	require.NoError(t, rs.Barrier(ctx))

	// A stalls with records on the way.
	proxy.pause()
	require.NoError(t, sendRange(ctx, rs, 1001, 1500))
	waitFor(t, 20*time.Second, "A publishing a batch into the stall", func() bool {
		return a.sink.Snapshot().Inflight == 1 && proxy.held.Load() > 0
	})
	require.Equal(t, uint64(1000), rs.Snapshot().AckedSeq, "nothing A has not confirmed is acknowledged")

	// The agent gives up on A and reaches B, which takes the key over.
	target.Store(new(b.addr()))
	_ = current.Load().Close()
	if holdB {
		<-claimed
	} else {
		require.NoError(t, rs.Barrier(ctx))
	}
	require.Equal(t, uint64(1), b.sink.Snapshot().Claims)

	// A wakes up: its batch reaches JetStream and is refused (or, for a
	// fast batch of duplicates only, dropped).
	proxy.resume()
	var lastA Stats
	defer func() {
		if t.Failed() {
			t.Logf("A's statistics: %+v; B's: %+v; agent: %+v", lastA, b.sink.Snapshot(), rs.Snapshot())
		}
	}()
	waitFor(t, 20*time.Second, "A's batch ended", func() bool {
		lastA = a.sink.Snapshot()
		return lastA.Inflight == 0 && ended(lastA)
	})
	if holdB {
		close(release)
	}
	require.NoError(t, rs.Barrier(ctx))
	require.NoError(t, sendRange(ctx, rs, 1501, 2000))
	require.NoError(t, rs.Barrier(ctx))
	require.NoError(t, rs.Close(context.Background()))
	requireExactlyOnce(t, readBack(t, newJS(t, ncB), key), 2000)
	st := a.sink.Snapshot()
	require.Zero(t, st.Failed)
	return st
}

// TestJetStreamUnavailable: JetStream goes away in the middle of a
// stream. Nothing is acknowledged while it is away (Barrier waits, and
// fails with its context), and once it is back the stream continues and
// holds every record once, in order.
func TestJetStreamUnavailable(t *testing.T) {
	dir, port := t.TempDir(), freeTCPPort(t)
	srv := startServer(t, dir, port)
	nc := connect(t, nil, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, nc), nil, 1)
	require.NoError(t, err)
	stls, ctls := serverTLS(t)
	c := startCollector(t, nc, stls, &Config{Timeout: 300 * time.Millisecond}, nil)
	key := []byte("outage")
	rs, err := quicrecord.NewResumableStream(ctx, quicrecord.FailoverDial([]string{c.addr()}, ctls, nil, time.Second), nil, agentOpts(key))
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, rs, 1, 500))
	require.NoError(t, rs.Barrier(ctx))

	srv.Shutdown()
	waitFor(t, 10*time.Second, "the collector to lose NATS", func() bool { return nc.Status() != nats.CONNECTED })
	require.NoError(t, sendRange(ctx, rs, 501, 1000))
	bctx, bcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = rs.Barrier(bctx)
	bcancel()
	var be *quicrecord.BarrierError
	require.ErrorAs(t, err, &be)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, uint64(500), be.Acked)
	waitFor(t, 10*time.Second, "a batch failing or a stream refused", func() bool {
		st := c.sink.Snapshot()
		return st.Failed+st.Refused > 0
	})
	require.Equal(t, uint64(500), rs.Snapshot().AckedSeq, "nothing acknowledged while JetStream is away")
	require.Equal(t, uint64(500), c.sink.Snapshot().Records)

	startServer(t, dir, port)
	require.NoError(t, rs.Barrier(ctx))
	require.NoError(t, rs.Close(context.Background()))
	requireExactlyOnce(t, readBack(t, newJS(t, nc), key), 1000)
	t.Logf("sink: %+v, agent: %+v", c.sink.Snapshot(), rs.Snapshot().Stats)
}

// TestPlainStreamRefused: a stream without a resume key cannot be
// applied (no subject, no fence); the collector refuses it.
func TestPlainStreamRefused(t *testing.T) {
	srv := startServer(t, t.TempDir(), 0)
	nc := connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, nc), nil, 1)
	require.NoError(t, err)
	stls, ctls := serverTLS(t)
	c := startCollector(t, nc, stls, nil, nil)
	conn, err := quicrecord.Dial(ctx, c.addr(), ctls, nil)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.OpenRecordStream(ctx, quicrecord.StreamOptions{Scope: "plain"})
	require.ErrorIs(t, err, quicrecord.ErrRefused)
}

// createStream creates the stream sc, trying again after a transient
// failure: under -race beside other packages' tests, the embedded server
// has once answered "error creating store for stream" (10049) to a
// creation that succeeds when tried again.
func createStream(t *testing.T, ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) {
	t.Helper()
	var err error
	for range 3 {
		if _, err = js.CreateStream(ctx, sc); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err)
}

// TestStreamChecked: New refuses a stream the sink cannot fence or read
// back correctly.
func TestStreamChecked(t *testing.T) {
	srv := startServer(t, t.TempDir(), 0)
	js := newJS(t, connect(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, tc := range []struct {
		name string
		edit func(*jetstream.StreamConfig)
	}{
		{"no atomic publish", func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false }},
		{"direct gets", func(c *jetstream.StreamConfig) { c.AllowDirect = true }},
		{"other subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"elsewhere.>"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{Stream: "S" + strconv.Itoa(i)}
			sc := StreamConfig(cfg, 1)
			tc.edit(&sc)
			createStream(t, ctx, js, sc)
			_, err := New(ctx, js, cfg)
			require.Error(t, err)
			require.NoError(t, js.DeleteStream(ctx, sc.Name))
		})
	}
	_, err := New(ctx, js, &Config{Stream: "MISSING"})
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
	st, err := EnsureStream(ctx, js, nil, 0)
	require.NoError(t, err)
	require.NoError(t, checkStream(st.CachedInfo(), DefaultSubjectPrefix))
}
