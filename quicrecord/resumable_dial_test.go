package quicrecord

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fleetSink records what the acceptors of a simulated fleet applied, in
// order, so a test can check each record arrived exactly once.
type fleetSink struct {
	mu   sync.Mutex
	seqs []uint64
}

func (f *fleetSink) add(seq uint64) {
	f.mu.Lock()
	f.seqs = append(f.seqs, seq)
	f.mu.Unlock()
}

func (f *fleetSink) requireExactlyOnce(t *testing.T, n uint64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.seqs, int(n))
	for i, s := range f.seqs {
		require.Equal(t, uint64(i+1), s, "record %d", i)
	}
}

// fleetMember is one acceptor of a simulated fleet: a listener on a
// loopback port whose streams apply into a shared fleetSink. Members share
// one ResumeStore, as collectors sharing their resume state would.
type fleetMember struct {
	ln   *Listener
	wg   sync.WaitGroup
	stop context.CancelFunc
}

func startMember(t *testing.T, addr string, stls *tls.Config, cfg *Config, sink *fleetSink) *fleetMember {
	t.Helper()
	ln, err := Listen(addr, stls, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	m := &fleetMember{ln: ln, stop: cancel}
	m.wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			m.wg.Go(func() {
				for {
					s, err := conn.AcceptRecordStream(ctx)
					if err != nil {
						return
					}
					m.wg.Go(func() {
						defer s.Close(context.Background())
						_ = s.Apply(ctx, func(r Record) error { sink.add(r.Seq); return nil })
					})
				}
			})
		}
	})
	t.Cleanup(m.close)
	return m
}

func (m *fleetMember) close() {
	m.stop()
	now, stop := context.WithCancel(context.Background())
	stop()
	_ = m.ln.Shutdown(now) // the member goes away with its connections
	m.wg.Wait()
}

// unusedUDPAddr returns a loopback UDP address nothing listens on.
func unusedUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := pc.LocalAddr().String()
	require.NoError(t, pc.Close())
	return addr
}

// sendAndBarrier sends records from..to and waits until all are applied.
func sendAndBarrier(t *testing.T, rs *ResumableStream, from, to uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for seq := from; seq <= to; seq++ {
		got, err := rs.Send(ctx, []byte("record"))
		require.NoError(t, err)
		require.Equal(t, seq, got)
	}
	require.NoError(t, rs.Barrier(ctx))
}

// waitConnects waits until the stream has connected want
// times in all.
func waitConnects(t *testing.T, rs *ResumableStream, want uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return rs.Snapshot().Stats.Connects >= want }, 20*time.Second, time.Millisecond)
}

func TestFailoverDialSkipsUnreachableAndReturns(t *testing.T) {
	// Not parallel: real loopback with a 300 ms dial per address, which a
	// TLS handshake under -race beside the parallel simulations can miss.
	stls, ctls := tlsPair(t)
	store := NewResumeStore(ResumeStoreConfig{AllowAnonymous: true})
	cfg := &Config{ResumeStore: store}
	sink := &fleetSink{}
	down := unusedUDPAddr(t)
	b := startMember(t, "127.0.0.1:0", stls, cfg, sink)

	dial := FailoverDial([]string{down, b.ln.Addr().String()}, ctls, nil, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs, err := NewResumableStream(ctx, dial, nil, ResumeOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	require.NoError(t, err, "the first address is down: the second must be used")
	sendAndBarrier(t, rs, 1, 500)

	// The first collector comes back; the second goes away. The stream
	// tries the second first (it worked last), then moves on.
	startMember(t, down, stls, cfg, sink)
	b.close()
	waitConnects(t, rs, 2)
	sendAndBarrier(t, rs, 501, 1000)
	require.NoError(t, rs.Close(context.Background()))
	sink.requireExactlyOnce(t, 1000)
	st := rs.Snapshot().Stats
	require.Equal(t, uint64(1), st.Resumes)
}

func TestFailoverDialMovesPastRefusingAcceptor(t *testing.T) {
	stls, ctls := tlsPair(t)
	store := NewResumeStore(ResumeStoreConfig{AllowAnonymous: true})
	cfg := &Config{ResumeStore: store}
	var refusals atomic.Int64
	refusing := &Config{ResumeStore: store, AcceptHandler: func(context.Context, *AcceptInfo) (*StreamConfig, error) {
		refusals.Add(1)
		// An application code: retryable for the opener, unlike CodeRefused.
		return nil, &ApplicationError{Code: CodeApplicationMin + 7, Reason: "shared store unavailable"}
	}}
	sink := &fleetSink{}
	a := startMember(t, "127.0.0.1:0", stls, cfg, sink)
	r := startMember(t, "127.0.0.1:0", stls, refusing, sink)
	b := startMember(t, "127.0.0.1:0", stls, cfg, sink)

	addrs := []string{a.ln.Addr().String(), r.ln.Addr().String(), b.ln.Addr().String()}
	dial := FailoverDial(addrs, ctls, nil, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs, err := NewResumableStream(ctx, dial, nil, ResumeOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	require.NoError(t, err)
	sendAndBarrier(t, rs, 1, 300)

	a.close()
	waitConnects(t, rs, 2)
	sendAndBarrier(t, rs, 301, 600)
	require.NoError(t, rs.Close(context.Background()))
	sink.requireExactlyOnce(t, 600)
	require.Equal(t, int64(1), refusals.Load(), "the refusing acceptor is tried once, then skipped")
	require.Zero(t, r.ln.Diagnostics().Streams.Total+r.ln.EndedDiagnostics().Streams.Total)
	// The acceptor's end of the stream detaches once its Close returns,
	// which can be a moment after the opener's Close.
	require.Eventually(t, func() bool { return b.ln.EndedDiagnostics().Streams.Total > 0 }, 5*time.Second, time.Millisecond,
		"the stream ended on the third acceptor")
}

func TestFailoverDialAllUnreachable(t *testing.T) {
	_, ctls := tlsPair(t)
	dial := FailoverDial([]string{unusedUDPAddr(t), unusedUDPAddr(t)}, ctls, nil, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dial(ctx)
	require.Error(t, err)
	require.Nil(t, conn)
	require.NoError(t, ctx.Err(), "each attempt is bounded by the attempt timeout, not the caller's context")

	_, err = FailoverDial(nil, ctls, nil, 0)(ctx)
	require.ErrorIs(t, err, ErrInvalidConfig)
}
