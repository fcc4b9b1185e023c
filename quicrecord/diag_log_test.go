package quicrecord

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// logCapture collects the records a slog JSON handler writes.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the logged records whose message is msg.
func (c *logCapture) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(c.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// levels returns the level of every record.
func (c *logCapture) levels(t *testing.T) map[string]int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(c.buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			n[m["level"].(string)]++
		}
	}
	return n
}

// TestDiagLogLifecycle: with Config.Logger set, a stream's open and end
// are logged at debug on both sides, with its identity, and an ordinary
// life logs nothing at warn or above.
func TestDiagLogLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var clog, slogs logCapture
		p := newSimPair(t, &Config{Logger: clog.logger()}, &Config{Logger: slogs.logger()}, nil, simRTT/2)
		o, a := p.openPair(t, false, StreamOptions{Scope: "logged", DataID: 3})
		send(t, o, 3)
		require.NoError(t, o.Flush(context.Background()))
		require.NoError(t, o.Close(context.Background()))
		time.Sleep(simRTT)
		require.NoError(t, a.Close(context.Background()))
		synctest.Wait()

		for _, c := range []struct {
			name string
			log  *logCapture
			s    *RecordStream
			role string
		}{{"opener", &clog, o, "opener"}, {"acceptor", &slogs, a, "acceptor"}} {
			open := c.log.records(t, "record stream open")
			require.Len(t, open, 1, c.name)
			require.Equal(t, "DEBUG", open[0]["level"], c.name)
			require.Equal(t, float64(c.s.StreamID()), open[0]["stream"], c.name)
			require.Equal(t, c.role, open[0]["role"], c.name)
			require.Equal(t, "logged", open[0]["scope"], c.name)
			require.Equal(t, float64(HighestProtocolVersion), open[0]["version"], c.name)

			ended := c.log.records(t, "record stream ended")
			require.Len(t, ended, 1, c.name)
			for _, e := range ended {
				require.Equal(t, "DEBUG", e["level"], c.name)
				require.Equal(t, float64(c.s.StreamID()), e["stream"], c.name)
				require.NotEmpty(t, e["cause"], c.name)
			}
			lv := c.log.levels(t)
			require.Zero(t, lv["WARN"]+lv["ERROR"], "%s: an ordinary stream logs nothing above debug", c.name)
		}
	})
}

// TestDiagLogViolation: a protocol violation by the peer on an open
// stream is logged at warn with its code and the stream's identity, and
// the stream's end follows at debug. A BATCH before HELLO is refused
// during the handshake and logged too.
func TestDiagLogViolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var lc logCapture
		cfg := &Config{Logger: lc.logger()}
		rawConn, qs := newSimQUIC(t, nil, cfg, nil, simRTT/2)
		conn, err := NewConn(qs, cfg)
		require.NoError(t, err)
		defer conn.Close()

		// A sequence gap on a negotiated stream.
		str, err := rawConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		raw := newRawPeer(t, str)
		h := rawHello()
		h.Scope = "hostile"
		s := raw.handshake(ctx, conn, h)
		raw.write(batch(2, "gap"))
		raw.expectRefusal(CodeSequenceGap)
		synctest.Wait()

		warns := lc.records(t, "protocol violation")
		require.Len(t, warns, 1)
		w := warns[0]
		require.Equal(t, "WARN", w["level"])
		require.Equal(t, CodeSequenceGap.String(), w["code"])
		require.Contains(t, w["reason"], "expected 1")
		require.Equal(t, float64(s.StreamID()), w["stream"])
		require.Equal(t, "acceptor", w["role"])
		require.Equal(t, "hostile", w["scope"])
		require.Equal(t, uint64(1), s.Snapshot().Errors.ProtocolViolations)
		require.Zero(t, conn.Diagnostics().Streams.Total, "the failed stream detached")
		ended := lc.records(t, "record stream ended")
		require.Len(t, ended, 1)
		require.Equal(t, "DEBUG", ended[0]["level"])
		require.Contains(t, ended[0]["cause"], CodeSequenceGap.String())

		// A BATCH before HELLO never becomes a stream: it is refused in
		// the handshake and logged there.
		str2, err := rawConn.OpenStreamSync(ctx)
		require.NoError(t, err)
		raw2 := newRawPeer(t, str2)
		raw2.write(batch(1, "early"))
		raw2.expectRefusal(CodeUnexpectedFrame)
		synctest.Wait()
		refused := lc.records(t, "record stream refused")
		require.Len(t, refused, 1)
		require.Equal(t, "WARN", refused[0]["level"], "a handshake violation is a protocol violation")
		require.Equal(t, CodeUnexpectedFrame.String(), refused[0]["code"])
		require.Equal(t, uint64(1), conn.RefusedStreams())
		require.Equal(t, float64(str2.StreamID()), refused[0]["stream"])
		require.Contains(t, refused[0]["err"], CodeUnexpectedFrame.String())
		require.Len(t, lc.records(t, "protocol violation"), 1, "the refusal is not a stream's violation")
	})
}
