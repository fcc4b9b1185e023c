package framer_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/recordmux/recordmux/bench/internal/framer"
	"github.com/recordmux/recordmux/internal/tlsutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testALPN is the ALPN protocol both ends of a loopback pair speak.
const testALPN = "framer-test"

// testTimeout bounds every blocking step of a test.
const testTimeout = 30 * time.Second

// loopbackPair returns a connected pair of QUIC connections over UDP on
// 127.0.0.1, the client pinned to a fresh self-signed server certificate.
// conf (nil for quic-go defaults) is used by both ends. Both connections and
// the listener are closed in tb's cleanup.
func loopbackPair(tb testing.TB, conf *quic.Config) (client, server *quic.Conn) {
	tb.Helper()
	cert, err := tlsutil.SelfSigned("localhost", "127.0.0.1")
	require.NoError(tb, err)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	tr := &quic.Transport{Conn: udp}
	tb.Cleanup(func() {
		tr.Close()
		udp.Close()
	})
	serverTLS := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{testALPN},
	}
	ln, err := tr.Listen(serverTLS, conf)
	require.NoError(tb, err)
	tb.Cleanup(func() { ln.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	type accepted struct {
		conn *quic.Conn
		err  error
	}
	acceptCh := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept(ctx)
		acceptCh <- accepted{c, err}
	}()
	client, err = quic.DialAddr(ctx, ln.Addr().String(), tlsutil.PinnedClientConfig(cert, testALPN), conf)
	if err != nil {
		cancel() // don't wait out the timeout in Accept
	}
	a := <-acceptCh
	if a.conn != nil {
		tb.Cleanup(func() { a.conn.CloseWithError(0, "") })
	}
	require.NoError(tb, err)
	tb.Cleanup(func() { client.CloseWithError(0, "") })
	require.NoError(tb, a.err)
	return client, a.conn
}

// streamPair opens a bidirectional stream on client and accepts it on
// server. quic-go announces a stream only with its first data, so the
// client sends one preamble byte that the server consumes; the streams are
// clean when returned.
func streamPair(tb testing.TB, client, server *quic.Conn) (cs, ss *quic.Stream) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cs, err := client.OpenStreamSync(ctx)
	require.NoError(tb, err)
	_, err = cs.Write([]byte{0})
	require.NoError(tb, err)
	ss, err = server.AcceptStream(ctx)
	require.NoError(tb, err)
	var b [1]byte
	_, err = io.ReadFull(ss, b[:])
	require.NoError(tb, err)
	return cs, ss
}

// newStreams is loopbackPair followed by streamPair.
func newStreams(tb testing.TB, conf *quic.Config) (cs, ss *quic.Stream) {
	tb.Helper()
	client, server := loopbackPair(tb, conf)
	return streamPair(tb, client, server)
}

// recordGen yields a reproducible sequence of records of mixed sizes, cut
// from a shared random source buffer.
type recordGen struct {
	rng *rand.Rand
	src []byte
}

// maxTestRecord is the largest record recordGen makes; bigger than the 64 KiB
// read buffer so that the Receiver's copy path is exercised.
const maxTestRecord = 200 << 10

func newRecordGen(seed uint64) *recordGen {
	src := make([]byte, maxTestRecord+4096)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(src)
	return &recordGen{rng: rand.New(rand.NewPCG(seed, seed)), src: src}
}

func (g *recordGen) next() []byte {
	var n int
	switch p := g.rng.IntN(1000); {
	case p < 2:
		n = 64<<10 + g.rng.IntN(maxTestRecord-64<<10)
	case p < 200:
		n = 256 + g.rng.IntN(4096-256)
	default:
		n = g.rng.IntN(256)
	}
	off := g.rng.IntN(len(g.src) - n + 1)
	return g.src[off : off+n]
}

// receiveAll runs a receiver that checks every record against gen, acks
// lazily and flushes acks whenever its read buffer is empty, and closes after
// io.EOF. It returns the number of records received.
func receiveAll(str *quic.Stream, gen *recordGen) (int, error) {
	r := framer.NewReceiver(str, 0)
	var count int
	for {
		seq, rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return count, r.Close()
		}
		if err != nil {
			return count, err
		}
		count++
		if seq != uint64(count) {
			return count, errors.New("sequence gap")
		}
		if want := gen.next(); !bytes.Equal(rec, want) {
			return count, errors.New("record content mismatch")
		}
		if err := r.AckLazy(seq); err != nil {
			return count, err
		}
		if r.Buffered() == 0 {
			if err := r.FlushAcks(); err != nil {
				return count, err
			}
		}
	}
}

func TestBulkTransfer(t *testing.T) {
	const records = 100_000
	cs, ss := newStreams(t, nil)

	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := receiveAll(ss, newRecordGen(42))
		done <- result{n, err}
	}()

	s := framer.NewSender(cs, 0)
	gen := newRecordGen(42)
	var last uint64
	for i := range records {
		seq, err := s.Send(gen.next())
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), seq)
		last = seq
	}
	require.NoError(t, s.Flush())
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	require.NoError(t, s.WaitAcked(ctx, last))
	require.Equal(t, last, s.Acked())
	require.NoError(t, s.Close())

	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, records, res.n)
	// Acks that arrived before the end still satisfy waiters afterwards.
	require.NoError(t, s.WaitAcked(ctx, last))
}

func TestPingPong(t *testing.T) {
	const rounds = 1000
	cs, ss := newStreams(t, nil)

	done := make(chan error, 1)
	go func() {
		r := framer.NewReceiver(ss, 0)
		for {
			seq, rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				done <- r.Close()
				return
			}
			if err != nil {
				done <- err
				return
			}
			if len(rec) != 256 || binary.BigEndian.Uint64(rec) != seq {
				done <- errors.New("unexpected record")
				return
			}
			if err := r.Ack(seq); err != nil {
				done <- err
				return
			}
		}
	}()

	s := framer.NewSender(cs, 0)
	rec := make([]byte, 256)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	for i := range rounds {
		binary.BigEndian.PutUint64(rec, uint64(i+1))
		seq, err := s.Send(rec)
		require.NoError(t, err)
		require.NoError(t, s.Flush())
		require.NoError(t, s.WaitAcked(ctx, seq))
		require.Equal(t, seq, s.Acked(), "ack may not run ahead of the records sent")
	}
	require.NoError(t, s.Close())
	require.NoError(t, <-done)
}

func TestSendTooLarge(t *testing.T) {
	cs, ss := newStreams(t, nil)
	s := framer.NewSender(cs, 0)
	_, err := s.Send(make([]byte, framer.MaxRecordSize+1))
	require.ErrorIs(t, err, framer.ErrRecordTooLarge)
	// Nothing was sent for it: the next record is still number 1.
	seq, err := s.Send([]byte("x"))
	require.NoError(t, err)
	require.Equal(t, uint64(1), seq)
	require.NoError(t, ss.Close())
	require.NoError(t, s.Close())
}

// rawReceive writes raw bytes to cs, closes it, and returns what a Receiver
// on ss makes of them: the records read before the first error, and the
// error.
func rawReceive(t *testing.T, raw []byte) ([]string, error) {
	t.Helper()
	cs, ss := newStreams(t, nil)
	_, err := cs.Write(raw)
	require.NoError(t, err)
	require.NoError(t, cs.Close())
	r := framer.NewReceiver(ss, 16)
	var got []string
	for {
		_, rec, err := r.Next()
		if err != nil {
			return got, err
		}
		got = append(got, string(rec))
	}
}

func TestReceiverErrors(t *testing.T) {
	frame := func(s string) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(s))), s...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	long := string(bytes.Repeat([]byte("L"), 100)) // larger than the 16-byte buffer

	for _, c := range []struct {
		name string
		raw  []byte
		want []string
		err  error
	}{
		{"empty stream", nil, nil, io.EOF},
		{"records then EOF", cat(frame("a"), frame(""), frame(long), frame("bc")), []string{"a", "", long, "bc"}, io.EOF},
		{"truncated prefix", cat(frame("a"), []byte{0x80}), []string{"a"}, io.ErrUnexpectedEOF},
		{"truncated record", cat(frame("a"), frame("hello")[:3]), []string{"a"}, io.ErrUnexpectedEOF},
		{"truncated large record", frame(long)[:50], nil, io.ErrUnexpectedEOF},
		{"too large", binary.AppendUvarint(nil, framer.MaxRecordSize+1), nil, framer.ErrRecordTooLarge},
		{"huge", binary.AppendUvarint(nil, 1<<62), nil, framer.ErrRecordTooLarge},
		{"overlong varint", bytes.Repeat([]byte{0xff}, 11), nil, framer.ErrBadLength},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := rawReceive(t, c.raw)
			require.ErrorIs(t, err, c.err)
			require.Equal(t, c.want, got)
		})
	}
}

func TestReceiverAckRules(t *testing.T) {
	cs, ss := newStreams(t, nil)
	s := framer.NewSender(cs, 0)
	for range 3 {
		_, err := s.Send([]byte("r"))
		require.NoError(t, err)
	}
	require.NoError(t, s.Flush())

	r := framer.NewReceiver(ss, 0)
	require.ErrorIs(t, r.Ack(1), framer.ErrNotSent)
	seq, _, err := r.Next()
	require.NoError(t, err)
	require.NoError(t, r.Ack(seq))
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	require.NoError(t, s.WaitAcked(ctx, 1))

	_, _, err = r.Next()
	require.NoError(t, err)
	_, _, err = r.Next()
	require.NoError(t, err)
	require.NoError(t, r.AckLazy(3))
	require.NoError(t, r.AckLazy(2)) // older: no-op
	require.NoError(t, r.FlushAcks())
	require.NoError(t, r.FlushAcks()) // nothing new: writes nothing
	require.NoError(t, s.WaitAcked(ctx, 3))
	require.Equal(t, uint64(3), s.Acked())

	require.NoError(t, r.Close())
	require.NoError(t, s.Close())
}

func TestWaitAcked(t *testing.T) {
	t.Run("not sent", func(t *testing.T) {
		cs, ss := newStreams(t, nil)
		s := framer.NewSender(cs, 0)
		require.ErrorIs(t, s.WaitAcked(t.Context(), 1), framer.ErrNotSent)
		require.NoError(t, s.WaitAcked(t.Context(), 0), "seq 0 is trivially acked")
		require.NoError(t, ss.Close())
		require.NoError(t, s.Close())
	})

	t.Run("context cause", func(t *testing.T) {
		cs, ss := newStreams(t, nil)
		s := framer.NewSender(cs, 0)
		seq, err := s.Send([]byte("unacked"))
		require.NoError(t, err)
		require.NoError(t, s.Flush())
		cause := errors.New("gave up")
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(20*time.Millisecond, func() { cancel(cause) })
		require.ErrorIs(t, s.WaitAcked(ctx, seq), cause)
		require.NoError(t, ss.Close())
		require.NoError(t, s.Close())
	})

	t.Run("acked wins over done context", func(t *testing.T) {
		cs, ss := newStreams(t, nil)
		s := framer.NewSender(cs, 0)
		r := framer.NewReceiver(ss, 0)
		seq, err := s.Send([]byte("a"))
		require.NoError(t, err)
		require.NoError(t, s.Flush())
		_, _, err = r.Next()
		require.NoError(t, err)
		require.NoError(t, r.Ack(seq))
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		require.NoError(t, s.WaitAcked(ctx, seq))
		cancel()
		require.NoError(t, s.WaitAcked(ctx, seq))
		require.NoError(t, r.Close())
		require.NoError(t, s.Close())
	})

	t.Run("acks ended", func(t *testing.T) {
		cs, ss := newStreams(t, nil)
		s := framer.NewSender(cs, 0)
		r := framer.NewReceiver(ss, 0)
		for range 2 {
			_, err := s.Send([]byte("a"))
			require.NoError(t, err)
		}
		require.NoError(t, s.Flush())
		seq, _, err := r.Next()
		require.NoError(t, err)
		require.NoError(t, r.AckLazy(seq))
		require.NoError(t, r.Close()) // flushes the ack for 1, then FIN
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		require.ErrorIs(t, s.WaitAcked(ctx, 2), framer.ErrAcksEnded)
		require.NoError(t, s.WaitAcked(ctx, 1))
		require.NoError(t, s.Close())
	})

	t.Run("connection closed", func(t *testing.T) {
		client, server := loopbackPair(t, nil)
		cs, _ := streamPair(t, client, server)
		s := framer.NewSender(cs, 0)
		seq, err := s.Send([]byte("a"))
		require.NoError(t, err)
		require.NoError(t, s.Flush())
		require.NoError(t, server.CloseWithError(7, "bye"))
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		err = s.WaitAcked(ctx, seq)
		require.ErrorIs(t, err, framer.ErrAcksEnded)
		var appErr *quic.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, quic.ApplicationErrorCode(7), appErr.ErrorCode)
		_ = s.Close() // must return (the ack reader is gone); the error is moot

	})

	t.Run("concurrent waiters", func(t *testing.T) {
		cs, ss := newStreams(t, nil)
		s := framer.NewSender(cs, 0)
		const n = 50
		for range n {
			_, err := s.Send([]byte("w"))
			require.NoError(t, err)
		}
		require.NoError(t, s.Flush())
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		errs := make(chan error, n)
		for i := range n {
			go func() { errs <- s.WaitAcked(ctx, uint64(i+1)) }()
		}
		r := framer.NewReceiver(ss, 0)
		for range n {
			seq, _, err := r.Next()
			require.NoError(t, err)
			require.NoError(t, r.Ack(seq))
		}
		for range n {
			require.NoError(t, <-errs)
		}
		require.NoError(t, r.Close())
		require.NoError(t, s.Close())
	})
}

func TestBadAcks(t *testing.T) {
	for _, c := range []struct {
		name string
		acks []byte
	}{
		{"beyond sent", binary.AppendUvarint(nil, 4)},
		{"decreasing", binary.AppendUvarint(binary.AppendUvarint(nil, 2), 1)},
		{"truncated", []byte{0x80}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs, ss := newStreams(t, nil)
			s := framer.NewSender(cs, 0)
			for range 3 {
				_, err := s.Send([]byte("a"))
				require.NoError(t, err)
			}
			require.NoError(t, s.Flush())
			// Make sure all records were sent before the acks arrive.
			buf := make([]byte, 6)
			_, err := io.ReadFull(ss, buf)
			require.NoError(t, err)
			_, err = ss.Write(c.acks)
			require.NoError(t, err)
			require.NoError(t, ss.Close())
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			require.ErrorIs(t, s.WaitAcked(ctx, 3), framer.ErrBadAck)
			require.NoError(t, s.Close())
		})
	}
}
