package quicrecord

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/frames"
)

// hostileCapConfig is the configuration of the allocation test: a small
// frame cap, so that an allocation sized by anything the peer declared stands
// out against it.
func hostileCapConfig() *Config {
	return &Config{Stream: StreamConfig{MaxRecordSize: 4096, MaxBatchBytes: 4096}}
}

// hostileFrame builds a frame of type t around payload.
func hostileFrame(t frames.Type, payload []byte) []byte {
	return append(frames.AppendHeader(nil, t, len(payload)), payload...)
}

// hostileVarints encodes vs as consecutive QUIC varints.
func hostileVarints(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = quicvarint.Append(b, v)
	}
	return b
}

type allocCase struct {
	name string
	code ErrorCode
	// handshake: the bytes replace the HELLO (the violation is in it)
	handshake bool
	bytes     func(frameCap int) []byte
}

// allocCases declare sizes and counts far beyond the cap: 64 MiB, which a
// buggy make() would really allocate (and TotalAlloc would show), and
// 2^40, which it could not.
func allocCases() []allocCase {
	const huge = 64 << 20
	return []allocCase{
		{name: "benign baseline: ack beyond highest sent", code: CodeAckOutOfRange, bytes: func(int) []byte { return ackFrame(99) }},
		{name: "BATCH declaring 64 MiB", code: CodeFrameTooLarge, bytes: func(int) []byte { return frames.AppendHeader(nil, frames.TypeBatch, huge) }},
		{name: "BATCH declaring 2^40 bytes", code: CodeFrameTooLarge, bytes: func(int) []byte { return frames.AppendHeader(nil, frames.TypeBatch, 1<<40) }},
		{name: "unknown frame declaring 64 MiB", code: CodeFrameTooLarge, bytes: func(int) []byte { return frames.AppendHeader(nil, 0x21, huge) }},
		{name: "BATCH declaring 2^40 records", code: CodeFrameEncoding, bytes: func(int) []byte {
			return hostileFrame(frames.TypeBatch, append(hostileVarints(0, 1, 1<<40), 1, 'x'))
		}},
		{name: "BATCH declaring 64 Mi records", code: CodeFrameEncoding, bytes: func(int) []byte {
			return hostileFrame(frames.TypeBatch, append(hostileVarints(0, 1, huge), 1, 'x'))
		}},
		{name: "record declaring 64 MiB", code: CodeRecordTooLarge, bytes: func(int) []byte {
			return hostileFrame(frames.TypeBatch, append(hostileVarints(0, 1, 1, huge), 'x'))
		}},
		{name: "ERROR reason declaring 64 MiB", code: CodeFrameEncoding, bytes: func(int) []byte {
			return hostileFrame(frames.TypeError, append(hostileVarints(1, uint64(CodeRejected), huge), 'x'))
		}},
		{name: "BATCH at the frame cap", code: CodeAckOutOfRange, bytes: func(frameCap int) []byte {
			// A valid batch whose payload is exactly the cap, then a
			// violation to end the stream: the one allocation the cap
			// allows (the reader's buffer and the copy of the records).
			h := frames.BatchHeader{FirstSeq: 1}
			recs := [][]byte{make([]byte, 4096), make([]byte, frameCap-4096-6)}
			b := frames.AppendBatch(nil, h, recs)
			if got := len(b) - frames.HeaderLen(frames.TypeBatch, frameCap); got != frameCap {
				panic(fmt.Sprintf("batch payload %d, want the cap %d", got, frameCap))
			}
			return append(b, ackFrame(99)...)
		}},
		{name: "HELLO declaring 64 MiB", handshake: true, code: CodeFrameTooLarge, bytes: func(int) []byte {
			return frames.AppendHeader(nil, frames.TypeHello, huge)
		}},
		{name: "HELLO declaring 2^40 metadata entries", handshake: true, code: CodeFrameEncoding, bytes: func(int) []byte {
			// versions 1-2, no features, limits, empty scope, data ID 0,
			// then the count and nothing else.
			return hostileFrame(frames.TypeHello, hostileVarints(1, 2, 0, 1<<20, 1<<20, 1000, 1<<20, 0, 0, 1<<40))
		}},
		{name: "HELLO scope declaring 64 MiB", handshake: true, code: CodeFrameEncoding, bytes: func(int) []byte {
			return hostileFrame(frames.TypeHello, hostileVarints(1, 2, 0, 1<<20, 1<<20, 1000, 1<<20, huge))
		}},
	}
}

// runAllocCase runs one hostile exchange from a raw peer and returns the
// bytes allocated (TotalAlloc) between the first hostile byte and the
// moment the recordmux side reported the violation.
func runAllocCase(t *testing.T, tc allocCase) uint64 {
	var total uint64
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cfg := hostileCapConfig()
		rawConn, qs := newSimQUIC(t, nil, cfg, nil, simRTT/2)
		refused := make(chan *StreamError, 1)
		cfg.OnStreamRefused = func(_ *AcceptInfo, err *StreamError) { refused <- err }
		conn, err := NewConn(qs, cfg)
		require.NoError(t, err)
		defer conn.Close()
		frameCap := int(testSettings(t, cfg).maxFrameSize())
		str, err := rawConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		raw := newRawPeer(t, str)
		hostile := tc.bytes(frameCap)
		var s *RecordStream
		if !tc.handshake {
			s = raw.handshake(ctx, conn, rawHello())
			send(t, s, 3)
			require.NoError(t, s.Flush(ctx))
		}
		synctest.Wait()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		raw.write(hostile)
		if tc.handshake {
			se := <-refused
			require.Equal(t, tc.code, se.Code, "%v", se)
		} else {
			var err error
			for err == nil {
				_, err = s.Recv(ctx)
			}
			var se *StreamError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.code, se.Code, "%v", err)
		}
		runtime.ReadMemStats(&after)
		total = after.TotalAlloc - before.TotalAlloc
		if s != nil {
			require.NoError(t, s.Close(context.Background()))
		}
		checkOtherStreamWorks(t, conn, rawConn)
	})
	return total
}

// TestReliabilityHostileAllocBound: a hostile peer that declares huge
// frame lengths, record counts, record lengths, reason lengths or HELLO
// sizes makes the recordmux side allocate no more than the frame cap plus
// a constant (the allocation of a benign violation, plus 64 KiB for the
// QUIC packets of a cap-sized frame and noise): every declared size is
// checked against the cap before anything is allocated from it. Each
// case still ends with its error code and leaves the connection working.
func TestReliabilityHostileAllocBound(t *testing.T) {
	cases := allocCases()
	frameCap := int(testSettings(t, hostileCapConfig()).maxFrameSize())
	// The baseline, several times: the least is the constant.
	var base uint64 = 1 << 62
	for i := range 3 {
		t.Run(fmt.Sprintf("baseline%d", i), func(t *testing.T) { base = min(base, runAllocCase(t, cases[0])) })
	}
	t.Logf("frame cap %d bytes; a benign violation allocates %d bytes", frameCap, base)
	for _, tc := range cases[1:] {
		t.Run(tc.name, func(t *testing.T) {
			got := runAllocCase(t, tc)
			t.Logf("allocated %d bytes", got)
			require.LessOrEqual(t, got, base+uint64(frameCap)+frames.MaxHeaderLen+64<<10,
				"allocation beyond the frame cap (%d) plus the baseline (%d)", frameCap, base)
		})
	}
}

// hostileFuzzConfig keeps frames small so that the fuzzer reaches limits.
func hostileFuzzConfig() *Config {
	return &Config{HelloTimeout: time.Second, Stream: StreamConfig{MaxRecordSize: 512, MaxBatchBytes: 1024, MaxApplyBacklogRecords: 64}}
}

// FuzzHostileStream writes arbitrary bytes after a valid HELLO from a raw
// quic-go peer, then finishes its stream. The recordmux side, which has
// sent three records, applies what it receives. It must never panic,
// must deliver records in order from seq 1, must end with io.EOF (Apply
// returns nil) or a typed *StreamError or *ConnError, and the connection
// must keep working: a fresh stream on it moves records afterwards.
//
// Each input runs a fresh simulated QUIC connection inside a synctest
// bubble (about a millisecond of CPU: the handshake dominates), so the
// fuzzer sees the library's real reader and writer loops over real QUIC
// streams, not a fake.
func FuzzHostileStream(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		batch(1, "a", "b", "c"),
		append(batch(1, "a"), ackFrame(3)...),
		append(ackFrame(2), ackFrame(1)...),
		ackFrame(9),
		(&frames.ErrorFrame{Seq: 2, Code: CodeRejected, Reason: "no"}).Append(nil),
		(&frames.ErrorFrame{Code: CodeApplicationMin, Reason: "bye"}).Append(nil),
		rawHello().Append(nil),
		batch(2, "gap"),
		frames.AppendHeader(nil, frames.TypeBatch, 1<<30),
		append(frames.AppendHeader(nil, 0x21, 3), 1, 2, 3),
		batch(1, "truncated")[:5],
		frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1, HasAck: true, Ack: 2}, [][]byte{[]byte("x")}),
		frames.AppendBatch(nil, frames.BatchHeader{FirstSeq: 1}, [][]byte{make([]byte, 513)}),
		append(hostileVarints(uint64(frames.TypeBatch), 5, 0, 1, 1<<40), 0),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) { runHostileStream(t, data) })
	})
}

func runHostileStream(t *testing.T, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := hostileFuzzConfig()
	rawConn, qs := newSimQUIC(t, nil, cfg, nil, time.Millisecond)
	conn, err := NewConn(qs, cfg)
	require.NoError(t, err)
	defer conn.Close()
	str, err := rawConn.OpenStreamSync(ctx)
	require.NoError(t, err)
	raw := newRawPeer(t, str)
	s := raw.handshake(ctx, conn, rawHello())
	send(t, s, 3)
	require.NoError(t, s.Flush(ctx))
	_, _ = str.Write(data) // the recordmux side may have reset already
	_ = str.Close()

	var next uint64 = 1
	err = s.Apply(ctx, func(r Record) error {
		if r.Seq != next {
			t.Errorf("record %d delivered after %d", r.Seq, next-1)
		}
		next++
		return nil
	})
	if err != nil {
		var se *StreamError
		var ce *ConnError
		if !errors.As(err, &se) && !errors.As(err, &ce) {
			t.Fatalf("Apply ended with an untyped error %T: %v", err, err)
		}
		if ce != nil {
			t.Fatalf("a hostile stream ended the connection: %v", err)
		}
	}
	require.NoError(t, ctx.Err(), "Apply returned at the deadline: the stream hung")
	_ = s.Close(context.Background())
	str.CancelRead(quic.StreamErrorCode(CodeCancelled))
	checkOtherStreamWorks(t, conn, rawConn)
}
