package jsrecord

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord"
)

// fakeStream is a recordStream fed from a slice: Recv returns the records
// in order, then io.EOF (the opener finished) unless its context is done,
// or, while hold is set, waits for more (see push) until its context is
// done. before, if set, runs before record seq is returned. It records
// every Ack and how the stream was closed.
type fakeStream struct {
	mu     sync.Mutex
	recs   []quicrecord.Record
	hold   bool
	more   chan struct{} // closed and replaced by push
	before func(seq uint64)
	onAck  func(seq uint64)
	acks   []uint64
	code   quicrecord.ErrorCode
	reset  bool
	closed bool
}

func newFakeStream(n uint64, payload func(seq uint64) []byte) *fakeStream {
	f := &fakeStream{more: make(chan struct{})}
	for seq := uint64(1); seq <= n; seq++ {
		f.recs = append(f.recs, quicrecord.Record{Seq: seq, Data: payload(seq)})
	}
	return f
}

func (f *fakeStream) Recv(ctx context.Context) (quicrecord.Record, error) {
	f.mu.Lock()
	if f.reset {
		f.mu.Unlock()
		return quicrecord.Record{}, errors.New("stream reset")
	}
	if len(f.recs) == 0 {
		hold, more := f.hold, f.more
		f.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return quicrecord.Record{}, err
		}
		if !hold {
			return quicrecord.Record{}, io.EOF
		}
		select {
		case <-more:
			return f.Recv(ctx)
		case <-ctx.Done():
			return quicrecord.Record{}, ctx.Err()
		}
	}
	r := f.recs[0]
	f.recs = f.recs[1:]
	before := f.before
	f.mu.Unlock()
	if before != nil {
		before(r.Seq)
	}
	return r, nil
}

func (f *fakeStream) Ack(seq uint64) error {
	f.mu.Lock()
	f.acks = append(f.acks, seq)
	onAck := f.onAck
	f.mu.Unlock()
	if onAck != nil {
		onAck(seq)
	}
	return nil
}

// push adds records first..last for Recv, and sets hold: whether Recv
// then waits for more or returns io.EOF.
func (f *fakeStream) push(first, last uint64, hold bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for seq := first; seq <= last; seq++ {
		f.recs = append(f.recs, quicrecord.Record{Seq: seq, Data: record(seq)})
	}
	f.hold = hold
	close(f.more)
	f.more = make(chan struct{})
}

// left returns how many records Recv has not returned yet.
func (f *fakeStream) left() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

func (f *fakeStream) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeStream) CloseWithError(code quicrecord.ErrorCode, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.code, f.reset = code, true
	return nil
}

// result returns the acks and the reset code (0: not reset).
func (f *fakeStream) result() ([]uint64, quicrecord.ErrorCode, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.acks...), f.code, f.closed
}

// fastSink starts a server, creates the stream (edit may change its
// configuration) and returns a sink (configured by cfg) on it with a
// claim on key.
func fastSink(t *testing.T, key []byte, edit func(*jetstream.StreamConfig), cfg *Config) (*Sink, *nats.Conn, uint64) {
	t.Helper()
	srv := startServer(t, t.TempDir(), freeTCPPort(t))
	nc := connect(t, nil, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := StreamConfig(nil, 1)
	if edit != nil {
		edit(&sc)
	}
	_, err := newJS(t, nc).CreateStream(ctx, sc)
	require.NoError(t, err)
	s, err := New(ctx, newJS(t, nc), cfg)
	require.NoError(t, err)
	require.True(t, s.useFast.Load(), "a stream without replication gets fast batches")
	_, _, err = s.claimKey(ctx, quicrecord.ResumeKeyInfo{Key: key})
	require.NoError(t, err)
	claim := s.attach(nameOf("", key), nil)
	require.NotZero(t, claim)
	return s, nc, claim
}

// requireAcksInOrder checks acks grow and end at last (0: none at all).
func requireAcksInOrder(t *testing.T, acks []uint64, last uint64) {
	t.Helper()
	prev := uint64(0)
	for _, a := range acks {
		require.Greater(t, a, prev, "acks in order: %v", acks)
		prev = a
	}
	require.Equal(t, last, prev, "last ack")
}

// TestFastBatchAcksInOrder: records go out as fast batches and are
// acknowledged in order, each only once JetStream confirmed it; the stream
// holds every record once, in order. With records always waiting and no
// other stream waiting for a token, they all go out in one batch, longer
// than MaxBatch, acknowledged from JetStream's progress reports while it
// runs.
func TestFastBatchAcksInOrder(t *testing.T) {
	const n = 5000
	key := []byte("fast-order")
	s, nc, claim := fastSink(t, key, nil, nil)
	f := newFakeStream(n, record)
	require.NoError(t, s.serveFast(t.Context(), f, nameOf("", key), claim))
	acks, code, closed := f.result()
	require.Zero(t, code)
	require.True(t, closed)
	requireAcksInOrder(t, acks, n)
	requireExactlyOnce(t, readBack(t, newJS(t, nc), key), n)
	st := s.Snapshot()
	require.Equal(t, uint64(n), st.Records)
	require.Equal(t, uint64(1), st.Batches, "a full batch is committed only when another stream waits")
	last, err := s.st.GetLastMsgForSubject(t.Context(), recordSubject(s.prefix, nameOf("", key)))
	require.NoError(t, err)
	require.Equal(t, msgID(nameOf("", key), n), last.Header.Get(jetstream.MsgIDHeader))
	require.Equal(t, strconv.Itoa(n), last.Header.Get(HeaderSeq))
	require.Greater(t, len(acks), n/fastFlow/2, "acknowledged from progress reports, not only at the commit")
	require.Zero(t, st.Inflight)
	require.Zero(t, st.Failed+st.Fenced)
}

// TestFastBatchFullCommits: a fast batch is committed when it holds
// MaxBatch records while another stream waits for a token, even while
// more records are waiting, so that one stream does not keep the sink's
// token for as long as its records keep coming: with one token, a second
// stream gets its turn while the first is still sending, and both streams
// are stored whole.
func TestFastBatchFullCommits(t *testing.T) {
	const n, maxBatch = 2000, 100
	keys := [][]byte{[]byte("fast-full-a"), []byte("fast-full-b")}
	s, nc, claim := fastSink(t, keys[0], nil, &Config{MaxBatch: maxBatch, MaxInflightBatches: 1})
	_, _, err := s.claimKey(t.Context(), quicrecord.ResumeKeyInfo{Key: keys[1]})
	require.NoError(t, err)
	claimB := s.attach(nameOf("", keys[1]), nil)
	fa, fb := newFakeStream(n, record), newFakeStream(n, record)
	var bDone sync.WaitGroup
	var errB error
	fa.before = func(seq uint64) {
		if seq == 2*maxBatch+1 { // A's batch is full: B's turn comes once B waits
			bDone.Go(func() { errB = s.serveFast(t.Context(), fb, nameOf("", keys[1]), claimB) })
			require.Eventually(t, func() bool { return s.waiting.Load() == 1 }, 30*time.Second, time.Millisecond)
		}
	}
	aLeft := -1 // A's records not yet sent when B's first were confirmed
	fb.onAck = func(uint64) {
		if aLeft < 0 {
			aLeft = fa.left()
		}
	}
	require.NoError(t, s.serveFast(t.Context(), fa, nameOf("", keys[0]), claim))
	bDone.Wait()
	require.NoError(t, errB)
	require.Positive(t, aLeft, "B's records were confirmed while A still had records to send")
	for i, f := range []*fakeStream{fa, fb} {
		acks, code, _ := f.result()
		require.Zero(t, code)
		requireAcksInOrder(t, acks, n)
		requireExactlyOnce(t, readBack(t, newJS(t, nc), keys[i]), n)
	}
	st := s.Snapshot()
	require.GreaterOrEqual(t, st.Batches, uint64(3), "A committed for B, and B for A or at its end")
	require.Equal(t, uint64(2*n), st.Records)
	require.Zero(t, s.waiting.Load())
}

// TestFastBatchRefusedMidBatch: JetStream refuses a record in the middle
// of a fast batch. Nothing after it is stored, nothing from it on is
// acknowledged, and the stream is reset with the documented code:
// CodeUnavailable for a refusal (here the record is larger than the
// stream allows), and when the fence refused it (another collector
// claimed the key between two records) the code quicrecord's ResumeStore
// ends a stream it takes a key from with: CodeCancelled here, as the
// claim's opener is not newer (takeoverCode; TestEpochTakeoverAcrossCollectors
// covers CodeSuperseded).
func TestFastBatchRefusedMidBatch(t *testing.T) {
	const n, bad = 100, 50
	for _, tc := range []struct {
		name string
		code quicrecord.ErrorCode
		is   error // what Serve's error matches, nil: neither ErrFenced nor errReplicated
	}{
		{"too large", CodeUnavailable, nil},
		{"fenced", quicrecord.CodeCancelled, ErrFenced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := []byte("fast-refused")
			s, nc, claim := fastSink(t, key, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 1024 }, nil)
			f := newFakeStream(n, record)
			if tc.is == nil {
				f.recs[bad-1].Data = make([]byte, 2000)
			} else {
				other, err := New(t.Context(), newJS(t, nc), &Config{Collector: "other"})
				require.NoError(t, err)
				f.before = func(seq uint64) {
					if seq == bad {
						// The claim goes over the same connection as the
						// records before it, so JetStream sees it between
						// record bad-1 and record bad.
						_, _, err := other.claimKey(t.Context(), quicrecord.ResumeKeyInfo{Key: key})
						require.NoError(t, err)
					}
				}
			}
			err := s.serveFast(t.Context(), f, nameOf("", key), claim)
			require.Error(t, err)
			require.Equal(t, tc.is != nil, errors.Is(err, ErrFenced), "%v", err)
			require.False(t, errors.Is(err, errReplicated))
			acks, code, _ := f.result()
			require.Equal(t, tc.code, code)
			// Acknowledged while the batch ran, from each progress
			// report before the refused record, and nothing after.
			var want []uint64
			for a := uint64(fastFlow); a < bad; a += fastFlow {
				want = append(want, a)
			}
			require.Equal(t, want, acks)
			requireExactlyOnce(t, readBack(t, newJS(t, nc), key), bad-1)
			st := s.Snapshot()
			require.Equal(t, uint64(1), st.Failed+st.Fenced)
			require.Zero(t, st.Batches)
			require.Equal(t, want[len(want)-1], st.Records)
			require.Zero(t, st.Inflight)
			require.True(t, s.useFast.Load())
		})
	}
}

// TestFastBatchEndedWithoutReport: JetStream ends a batch (its PubAck
// arrives) before the sink committed it, without the error report that
// says why reaching the sink (reports may be lost). The sink sends no
// more, acknowledges only the records the PubAck counts, and resets the
// stream with CodeUnavailable. The pipeline is driven by hand, without
// its reply subscription, so that only the replies the test hands it
// count.
func TestFastBatchEndedWithoutReport(t *testing.T) {
	key := []byte("fast-ended")
	s, _, claim := fastSink(t, key, nil, nil)
	f := newFakeStream(0, record)
	p := s.newFastPipe(f, nameOf("", key), claim)
	ctx := t.Context()
	require.NoError(t, p.send(ctx, 1, record(1)))
	require.NoError(t, p.send(ctx, 2, record(2)))
	b := p.cur.Load()
	require.NotNil(t, b)
	p.onReply(&nats.Msg{Subject: p.replySubject(b, 2, fastOpAppend),
		Data: []byte(`{"stream":"RECORDMUX","seq":7,"batch":"` + b.id + `","count":1}`)})
	err := p.send(ctx, 3, record(3))
	require.ErrorIs(t, err, errEndedEarly)
	acks, code, _ := f.result()
	require.Equal(t, []uint64{1}, acks)
	require.Equal(t, CodeUnavailable, code)
	require.Nil(t, p.cur.Load())
	st := s.Snapshot()
	require.Equal(t, uint64(1), st.Failed)
	require.Equal(t, uint64(1), st.Records)
	require.Zero(t, st.Inflight)
}

// TestPublishPathChosen: the sink publishes fast batches on a stream
// without replication that allows them, atomic batches otherwise or when
// told to.
func TestPublishPathChosen(t *testing.T) {
	srv := startServer(t, t.TempDir(), freeTCPPort(t))
	nc := connect(t, nil, srv.ClientURL())
	js := newJS(t, nc)
	for _, tc := range []struct {
		name    string
		cfg     *Config
		edit    func(*jetstream.StreamConfig)
		useFast bool
	}{
		{"default", nil, nil, true},
		{"atomic batches asked for", &Config{AtomicBatches: true}, nil, false},
		{"batched publish not allowed", nil, func(c *jetstream.StreamConfig) { c.AllowBatchPublish = false }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := StreamConfig(nil, 1)
			if tc.edit != nil {
				tc.edit(&sc)
			}
			_, err := js.CreateOrUpdateStream(t.Context(), sc)
			require.NoError(t, err)
			s, err := New(t.Context(), js, tc.cfg)
			require.NoError(t, err)
			require.Equal(t, tc.useFast, s.useFast.Load())
		})
	}
}

// TestClassifyFast: a refusal on the fence is ErrFenced; the refusal of a
// pipelined fence on a replicated stream is errReplicated; others neither.
func TestClassifyFast(t *testing.T) {
	for _, tc := range []struct {
		code       jetstream.ErrorCode
		fenced     bool
		replicated bool
	}{
		{jetstream.JSErrCodeStreamWrongLastSequence, true, false},
		{jetstream.JSErrCodeStreamWrongLastSequenceConstant, false, true},
		{10054, false, false}, // message size exceeds maximum
	} {
		err := classifyFast(&jetstream.APIError{ErrorCode: tc.code})
		require.Equal(t, tc.fenced, errors.Is(err, ErrFenced), "%d", tc.code)
		require.Equal(t, tc.replicated, errors.Is(err, errReplicated), "%d", tc.code)
	}
}

// TestFastReplies: how the reply handler reads each kind of reply to a
// batch message.
func TestFastReplies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		batch     string // the batch ID in the reply subject
		data      string
		ended     bool
		confirmed uint64
		count     uint64
		err       error // matched with errors.Is; errAny: any error
	}{
		{"progress", "B", `{"type":"ack","seq":256,"msgs":256}`, false, 256, 0, nil},
		{"committed", "B", `{"stream":"S","seq":9,"batch":"B","count":300}`, true, 300, 300, nil},
		{"fenced", "B", `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}`, true, 0, 0, ErrFenced},
		{"refused", "B", `{"type":"err","seq":7,"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`, true, 0, 0, errAny},
		{"gap", "B", `{"type":"gap","last_seq":5,"seq":7}`, true, 0, 0, errAny},
		{"other batch's commit", "B", `{"stream":"S","seq":9,"batch":"X","count":3}`, true, 0, 0, errAny},
		{"malformed", "B", `{`, true, 0, 0, errAny},
		{"unknown report", "B", `{"type":"future"}`, false, 0, 0, nil},
		{"late reply to an earlier batch", "A", `{"type":"gap","last_seq":5,"seq":7}`, false, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fastPipe{s: &Sink{}, rs: newFakeStream(0, record), inbox: "_INBOX.x"}
			b := &fastBatch{id: "B", prefix: p.inbox + ".B.", first: 1, end: make(chan struct{}), sent: 300}
			p.cur.Store(b)
			p.onReply(&nats.Msg{Subject: p.replySubject(&fastBatch{prefix: p.inbox + "." + tc.batch + "."}, 3, fastOpAppend), Data: []byte(tc.data)})
			confirmed, ended, count, err := b.state()
			acks, _, _ := p.rs.(*fakeStream).result()
			if tc.confirmed > 0 {
				require.Equal(t, []uint64{tc.confirmed}, acks, "the handler acknowledges what a reply confirms")
			} else {
				require.Empty(t, acks)
			}
			require.Equal(t, tc.ended, ended)
			require.Equal(t, tc.confirmed, confirmed)
			require.Equal(t, tc.count, count)
			switch tc.err {
			case nil:
				require.NoError(t, err)
			case errAny:
				require.Error(t, err)
				require.False(t, errors.Is(err, ErrFenced))
			default:
				require.ErrorIs(t, err, tc.err)
			}
			if ended {
				<-b.end
			}
		})
	}
}

// errAny in TestFastReplies: some error, not ErrFenced.
var errAny = errors.New("any error")
