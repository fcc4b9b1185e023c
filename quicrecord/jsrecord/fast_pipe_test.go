package jsrecord

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord"
)

// TestFastFlowGap: the reply subject asks for the report interval the
// pipe counts with.
func TestFastFlowGap(t *testing.T) {
	require.Equal(t, "."+strconv.Itoa(fastFlow)+".fail.", fastFlowGap)
}

// TestFastBatchUnconfirmedNotAcked: JetStream stores the records, but no
// reply reaches the sink (the pipeline runs without its reply
// subscription). Nothing is acknowledged: after Config.Timeout without
// progress the sink commits the batch, gets no verdict within Timeout
// either, and resets the stream with CodeUnavailable.
func TestFastBatchUnconfirmedNotAcked(t *testing.T) {
	const n = 40
	key := []byte("fast-unconfirmed")
	s, nc, claim := fastSink(t, key, nil, &Config{Timeout: 200 * time.Millisecond})
	f := newFakeStream(0, record)
	f.push(1, n, true)
	p := s.newFastPipe(f, nameOf("", key), claim)
	err := p.run(t.Context())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	acks, code, _ := f.result()
	require.Empty(t, acks)
	require.Equal(t, CodeUnavailable, code)
	requireExactlyOnce(t, readBack(t, newJS(t, nc), key), n) // stored, yet never acknowledged
	st := s.Snapshot()
	require.Equal(t, uint64(1), st.Failed)
	require.Zero(t, st.Records)
	require.Zero(t, st.Inflight)
}

// TestFastBatchIdleCommitted: when no record comes for a while and
// JetStream confirmed them all, the open batch is committed (its token
// given back, so it does not stay open on JetStream) while the stream
// stays open; the next records go in a new batch.
func TestFastBatchIdleCommitted(t *testing.T) {
	key := []byte("fast-idle")
	s, nc, claim := fastSink(t, key, nil, nil)
	f := newFakeStream(0, record)
	f.push(1, 100, true)
	done := make(chan error, 1)
	go func() { done <- s.serveFast(t.Context(), f, nameOf("", key), claim) }()
	idle := func() bool { st := s.Snapshot(); return st.Batches == 1 && st.Inflight == 0 }
	require.Eventually(t, idle, 30*time.Second, time.Millisecond, "the idle batch is committed")
	acks, code, closed := f.result()
	require.Zero(t, code)
	require.False(t, closed)
	requireAcksInOrder(t, acks, 100)
	f.push(101, 200, false)
	require.NoError(t, <-done)
	acks, _, closed = f.result()
	require.True(t, closed)
	requireAcksInOrder(t, acks, 200)
	requireExactlyOnce(t, readBack(t, newJS(t, nc), key), 200)
	require.Equal(t, uint64(2), s.Snapshot().Batches)
}

// TestFastBatchesOneFails: two streams publish at once on one sink, each
// in a fast batch of its own (JetStream then reports on each at a rate
// that starts at every message and ramps up). One of them has a record
// JetStream refuses while the other's batch is open: the failing stream
// acknowledges nothing from that record on and JetStream stores nothing
// after it; the other stream is not disturbed, and all of its records
// are acknowledged in order and stored once.
func TestFastBatchesOneFails(t *testing.T) {
	const n, bad = 1000, 500
	keyA, keyB := []byte("fast-two-a"), []byte("fast-two-b")
	s, nc, claimA := fastSink(t, keyA, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 1024 }, nil)
	_, _, err := s.claimKey(t.Context(), quicrecord.ResumeKeyInfo{Key: keyB})
	require.NoError(t, err)
	claimB := s.attach(nameOf("", keyB), nil)
	fa, fb := newFakeStream(n, record), newFakeStream(n, record)
	fa.recs[bad-1].Data = make([]byte, 2000)
	aDone, bPaused := make(chan error, 1), make(chan struct{})
	fb.before = func(seq uint64) {
		if seq == n/2 { // B's batch stays open until A failed
			close(bPaused)
			<-aDone
		}
	}
	bDone := make(chan error, 1)
	go func() { bDone <- s.serveFast(t.Context(), fb, nameOf("", keyB), claimB) }()
	<-bPaused
	errA := s.serveFast(t.Context(), fa, nameOf("", keyA), claimA)
	close(aDone)
	require.NoError(t, <-bDone)

	require.Error(t, errA)
	require.False(t, errors.Is(errA, ErrFenced))
	acksA, codeA, _ := fa.result()
	require.Equal(t, CodeUnavailable, codeA)
	require.NotEmpty(t, acksA, "A's records were acknowledged from progress reports before the refusal")
	requireAcksInOrder(t, acksA, acksA[len(acksA)-1])
	require.Less(t, acksA[len(acksA)-1], uint64(bad))
	requireExactlyOnce(t, readBack(t, newJS(t, nc), keyA), bad-1)

	acksB, codeB, closedB := fb.result()
	require.Zero(t, codeB)
	require.True(t, closedB)
	requireAcksInOrder(t, acksB, n)
	requireExactlyOnce(t, readBack(t, newJS(t, nc), keyB), n)
	st := s.Snapshot()
	require.Equal(t, uint64(1), st.Failed)
	require.Equal(t, n+acksA[len(acksA)-1], st.Records)
	require.Zero(t, st.Inflight)
}

// TestParseFastReply: a progress report in JetStream's form is read
// without encoding/json and without allocating; anything else is read as
// encoding/json reads it.
func TestParseFastReply(t *testing.T) {
	for _, data := range []string{
		`{"type":"ack","seq":256,"msgs":16}`,
		`{"type":"ack","seq":0,"msgs":1}`,
		`{"type":"ack","seq":18446744073709551615,"msgs":16}`, // too long for the fast path
		`{"type":"ack","seq":5,"msgs":16,"more":1}`,
		`{"type":"ack", "seq":5,"msgs":16}`,
		`{"seq":5,"type":"ack","msgs":16}`,
		`{"type":"ack","seq":5,"msgs":16} `,
		`{"type":"ack","seq":,"msgs":16}`,
		`{"type":"ack","seq":5,"msgs":}`,
		`{"type":"ack","seq":5}`,
		`{"type":"gap","last_seq":5,"seq":7}`,
		`{"stream":"S","seq":9,"batch":"B","count":300}`,
		`{"type":"err","seq":7,"error":{"code":400,"err_code":10054,"description":"too large"}}`,
		`{`,
	} {
		t.Run(data, func(t *testing.T) {
			got, gotErr := parseFastReply([]byte(data))
			var want fastReply
			wantErr := json.Unmarshal([]byte(data), &want)
			require.Equal(t, wantErr != nil, gotErr != nil, "%v / %v", gotErr, wantErr)
			if wantErr == nil {
				require.Equal(t, want, got)
			}
		})
	}
	progress := []byte(`{"type":"ack","seq":4096,"msgs":16}`)
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = parseFastReply(progress) }))
}
