package jsrecord

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/identity"
	"github.com/recordmux/recordmux/internal/tlsutil"
	"github.com/recordmux/recordmux/quicrecord"
)

// mtlsFleet is a JetStream server and two collectors that require client
// certificates from one CA, with clients of that CA.
type mtlsFleet struct {
	cols   []*collector
	client func(name string) *tls.Config // a new client's TLS config
}

// newMTLSFleet starts the fleet (mutual TLS: every client has an
// identity, and no anonymous resumption is needed).
func newMTLSFleet(t *testing.T, ctx context.Context) *mtlsFleet {
	t.Helper()
	srv := startServer(t, t.TempDir(), 0)
	nc := connect(t, srv)
	_, err := EnsureStream(ctx, newJS(t, nc), nil, 1)
	require.NoError(t, err)
	ca, err := tlsutil.NewCA("fleet")
	require.NoError(t, err)
	serverCert, err := ca.IssueServer("localhost", "127.0.0.1")
	require.NoError(t, err)
	stls := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	f := &mtlsFleet{}
	f.client = func(name string) *tls.Config {
		cert, err := ca.IssueClient(name)
		require.NoError(t, err)
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), ServerName: "localhost"}
	}
	for range 2 {
		f.cols = append(f.cols, startCollector(t, nc, stls, nil, nil))
	}
	return f
}

// identityOf is the identity quicrecord gives a client: the SPKI
// fingerprint of its certificate.
func identityOf(t *testing.T, c *tls.Config) string {
	t.Helper()
	cert, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	require.NoError(t, err)
	return identity.FingerprintOf(cert).String()
}

// TestIdentitiesHaveTheirOwnStreams: two clients (mutual TLS) use one
// resume key. Each gets a stream of its own in JetStream, with its own
// records, message IDs and resume position: they run at once on one
// collector without disturbing each other, and each resumes its own
// position on the other collector.
func TestIdentitiesHaveTheirOwnStreams(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newMTLSFleet(t, ctx)
	a, b := f.cols[0], f.cols[1]
	key := []byte("shared-key")
	alice, bob := f.client("alice"), f.client("bob")

	ra, err := quicrecord.DialResumable(ctx, a.addr(), alice, nil, agentOpts(key))
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, ra, 1, 100))
	require.NoError(t, ra.Barrier(ctx))
	rb, err := quicrecord.DialResumable(ctx, a.addr(), bob, nil, agentOpts(key))
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, rb, 1, 30))
	require.NoError(t, rb.Barrier(ctx))
	// Alice's stream is untouched by Bob's opening the same key.
	require.NoError(t, sendRange(ctx, ra, 101, 150))
	require.NoError(t, ra.Barrier(ctx))
	for _, rs := range []*quicrecord.ResumableStream{ra, rb} {
		require.NoError(t, rs.Err())
		require.Zero(t, rs.Snapshot().Stats.DuplicatesDropped)
		require.NoError(t, rs.Close(context.Background()))
	}
	require.Equal(t, uint64(2), a.sink.Snapshot().Claims, "one claim per identity")

	// Each resumes its own position on B.
	for _, tc := range []struct {
		tls        *tls.Config
		from, upTo uint64
	}{{alice, 151, 200}, {bob, 31, 60}} {
		opts := agentOpts(key)
		opts.FirstSeq = tc.from
		rs, err := quicrecord.DialResumable(ctx, b.addr(), tc.tls, nil, opts)
		require.NoError(t, err, "resuming at %d", tc.from)
		require.NoError(t, sendRange(ctx, rs, tc.from, tc.upTo))
		require.NoError(t, rs.Barrier(ctx))
		require.Zero(t, rs.Snapshot().Stats.DuplicatesDropped, "the position was this identity's own")
		require.NoError(t, rs.Close(context.Background()))
	}

	js := newJS(t, a.nc)
	requireExactlyOnce(t, readBackAs(t, js, identityOf(t, alice), key), 200)
	requireExactlyOnce(t, readBackAs(t, js, identityOf(t, bob), key), 60)
	require.Empty(t, readBack(t, js, key), "nothing under the anonymous identity")
	for _, tc := range []struct {
		tls  *tls.Config
		last uint64
	}{{alice, 200}, {bob, 60}} {
		// As a newer opener: the agents' epochs are their start times.
		info := quicrecord.ResumeKeyInfo{Key: key, Peer: identityOf(t, tc.tls), Epoch: uint64(time.Now().UnixNano())}
		last, found, err := b.sink.LoadApplied(ctx, info)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, tc.last, last)
	}
}

// probeView is everything a prober sees of a refused resume.
type probeView struct {
	Code                      quicrecord.ErrorCode
	Reason                    string
	Remote                    bool
	FirstUnknown, LastUnknown uint64
}

// probe opens key on the collector at addr as the client c, claiming to
// continue it from record 5, and returns what it sees of the refusal.
func probe(t *testing.T, ctx context.Context, addr string, c *tls.Config, key []byte) probeView {
	t.Helper()
	opts := agentOpts(key)
	opts.FirstSeq = 5
	_, err := quicrecord.DialResumable(ctx, addr, c, nil, opts)
	var re *quicrecord.ResumeError
	require.ErrorAs(t, err, &re)
	var se *quicrecord.StreamError
	require.ErrorAs(t, err, &se)
	return probeView{Code: se.Code, Reason: se.Reason, Remote: se.Remote, FirstUnknown: re.FirstUnknown, LastUnknown: re.LastUnknown}
}

// TestProberLearnsNothing: a client that presents a key another identity
// holds (with a live stream on the collector it probes, or on the other
// one) sees exactly what it sees for a key nobody holds: the same
// refusal when it claims to continue the key, and a stream of its own
// when it starts one, which leaves the holder's stream alone. (Each key
// is probed once: a refused resume leaves the prober's own claim, which
// its next probe of that key would meet.)
func TestProberLearnsNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newMTLSFleet(t, ctx)
	a, b := f.cols[0], f.cols[1]
	alice, mallory := f.client("alice"), f.client("mallory")
	// Alice's streams live on A: A's memory holds them too.
	held := [][]byte{[]byte("alice-0"), []byte("alice-1")}
	var ras []*quicrecord.ResumableStream
	for _, k := range held {
		ra, err := quicrecord.DialResumable(ctx, a.addr(), alice, nil, agentOpts(k))
		require.NoError(t, err)
		require.NoError(t, sendRange(ctx, ra, 1, 100))
		require.NoError(t, ra.Barrier(ctx))
		ras = append(ras, ra)
	}

	for i, c := range []*collector{a, b} {
		free := probe(t, ctx, c.addr(), mallory, []byte{'f', 'r', 'e', 'e', byte('0' + i)})
		taken := probe(t, ctx, c.addr(), mallory, held[i])
		require.Equal(t, free, taken, "collector %d", i)
		require.Equal(t, quicrecord.CodeResumeUnknown, taken.Code)
	}
	ra := ras[0]
	require.NoError(t, ras[1].Close(context.Background()))
	held0 := held[0]

	// Starting the key afresh gives Mallory a stream of her own: on A a
	// new one, on B her own again, at her position (10), not Alice's.
	for i, c := range []*collector{a, b} {
		rm, err := quicrecord.DialResumable(ctx, c.addr(), mallory, nil, agentOpts(held0))
		require.NoError(t, err)
		require.NoError(t, sendRange(ctx, rm, 1, 10))
		require.NoError(t, rm.Barrier(ctx))
		require.Equal(t, uint64(10*i), rm.Snapshot().Stats.DuplicatesDropped, "Mallory's own position")
		require.NoError(t, rm.Close(context.Background()))
		require.NoError(t, ra.Err(), "Alice's stream was not disturbed")
	}
	require.NoError(t, sendRange(ctx, ra, 101, 120))
	require.NoError(t, ra.Barrier(ctx))
	require.NoError(t, ra.Close(context.Background()))
	js := newJS(t, a.nc)
	requireExactlyOnce(t, readBackAs(t, js, identityOf(t, alice), held0), 120)
	requireExactlyOnce(t, readBackAs(t, js, identityOf(t, mallory), held0), 10)
	require.Zero(t, a.sink.Snapshot().Fenced+b.sink.Snapshot().Fenced)
}

// TestEpochTakeoverAcrossCollectors: two openers hold one key (a cloned
// agent), on two collectors. The newer one takes the key over on B; the
// older one's stream on A ends with SUPERSEDED at its next record (the
// claim fence refuses it, and the claim it lost to is newer) and it does
// not reconnect; restarted with its old epoch, it is refused with
// SUPERSEDED on either collector, leaving the newer one's stream alone.
// They converge in one round, and the stream holds every record once.
// Both publishing paths run.
func TestEpochTakeoverAcrossCollectors(t *testing.T) {
	t.Parallel()
	for _, atomicBatches := range []bool{false, true} {
		t.Run(map[bool]string{false: "fast", true: "atomic"}[atomicBatches], func(t *testing.T) {
			t.Parallel()
			epochTakeover(t, &Config{AtomicBatches: atomicBatches})
		})
	}
}

func epochTakeover(t *testing.T, cfg *Config) {
	srv := startServer(t, t.TempDir(), 0)
	nc := connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := EnsureStream(ctx, newJS(t, nc), nil, 1)
	require.NoError(t, err)
	stls, ctls := serverTLS(t)
	a := startCollector(t, nc, stls, cfg, nil)
	b := startCollector(t, nc, stls, cfg, nil)
	require.Equal(t, !cfg.AtomicBatches, a.sink.useFast.Load())
	key := []byte("clone")
	open := func(addr string, epoch, first uint64, dials *int) (*quicrecord.ResumableStream, error) {
		opts := agentOpts(key)
		opts.Epoch, opts.FirstSeq = epoch, first
		return quicrecord.NewResumableStream(ctx, func(ctx context.Context) (*quicrecord.Conn, error) {
			*dials++ // only the stream's own goroutine dials, one at a time
			return quicrecord.Dial(ctx, addr, ctls, nil)
		}, nil, opts)
	}

	var oldDials, newDials int
	older, err := open(a.addr(), 1, 0, &oldDials)
	require.NoError(t, err)
	require.NoError(t, sendRange(ctx, older, 1, 50))
	require.NoError(t, older.Barrier(ctx))

	newer, err := open(b.addr(), 2, 0, &newDials)
	require.NoError(t, err)
	_, err = older.Send(ctx, record(51))
	require.NoError(t, err)
	select {
	case <-older.Context().Done():
	case <-ctx.Done():
		t.Fatal("the older opener's stream did not end")
	}
	require.ErrorIs(t, older.Err(), quicrecord.ErrSuperseded)
	require.Equal(t, 1, oldDials, "the superseded opener ended without reconnecting")

	sendRangeFrom := func(rs *quicrecord.ResumableStream, from, to uint64) {
		require.NoError(t, sendRange(ctx, rs, from, to))
		require.NoError(t, rs.Barrier(ctx))
	}
	sendRangeFrom(newer, 1, 100)
	require.Equal(t, uint64(50), newer.Snapshot().Stats.DuplicatesDropped, "the newer opener resumed after the older one's records")

	for _, c := range []*collector{a, b} {
		restarts := 0
		_, err := open(c.addr(), 1, 51, &restarts)
		var re *quicrecord.ResumeError
		require.ErrorAs(t, err, &re)
		require.ErrorIs(t, err, quicrecord.ErrSuperseded, "older restart on %s", c.addr())
		require.Equal(t, 1, restarts)
	}
	sendRangeFrom(newer, 101, 120)
	require.Equal(t, 1, newDials, "the newer opener kept its connection")
	require.Zero(t, newer.Snapshot().Stats.Resumes)
	require.NoError(t, newer.Close(context.Background()))

	requireExactlyOnce(t, readBack(t, newJS(t, nc), key), 120)
	sa, sb := a.sink.Snapshot(), b.sink.Snapshot()
	require.Equal(t, uint64(50), sa.Records, "A confirmed the older opener's records only")
	require.Equal(t, uint64(70), sb.Records, "B confirmed the newer opener's records after them")
	require.Equal(t, uint64(1), sa.Fenced)
	require.Equal(t, uint64(1), sa.Claims)
	require.Equal(t, uint64(1), sb.Claims, "the refused restarts claimed nothing")
}

// TestTakeoverCode: the code a stream ends with when its key is taken
// over is the one quicrecord's ResumeStore uses.
func TestTakeoverCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ls     liveStream
		newest uint64
		want   quicrecord.ErrorCode
	}{
		{"newer opener", epochStream{3, true}, 4, CodeSuperseded},
		{"same opener", epochStream{3, true}, 3, quicrecord.CodeCancelled},
		{"stream without epochs", epochStream{0, false}, 4, quicrecord.CodeCancelled},
		{"opener tells nothing", closeOnly{}, 4, quicrecord.CodeCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, takeoverCode(tc.ls, tc.newest))
		})
	}
	require.True(t, errors.Is(ErrSupersededClaim, quicrecord.ErrSuperseded))
}

// epochStream is a served stream whose opener had epoch, with or without
// FeatureResumeEpoch.
type epochStream struct {
	epoch  uint64
	epochs bool
}

func (epochStream) CloseWithError(quicrecord.ErrorCode, string) error { return nil }
func (e epochStream) ResumeKeyInfo() quicrecord.ResumeKeyInfo {
	return quicrecord.ResumeKeyInfo{Epoch: e.epoch}
}
func (e epochStream) Negotiated() quicrecord.Negotiated {
	var n quicrecord.Negotiated
	if e.epochs {
		n.Features = quicrecord.FeatureResume | quicrecord.FeatureResumeEpoch
	}
	return n
}

// closeOnly is a served stream that tells nothing of its opener.
type closeOnly struct{}

func (closeOnly) CloseWithError(quicrecord.ErrorCode, string) error { return nil }
