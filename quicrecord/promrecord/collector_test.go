package promrecord_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/diag"
	"github.com/recordmux/recordmux/quicrecord/promrecord"
)

// scrape gathers c through a pedantic registry (which also checks that
// Describe and Collect agree) and returns every sample by
// `name{label="value",...}`, labels sorted by name.
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			slices.Sort(ls)
			name := mf.GetName()
			if len(ls) > 0 {
				name += "{" + strings.Join(ls, ",") + "}"
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			out[name] = v
		}
	}
	return out
}

// traffic opens two streams and runs known traffic: the client sends 100
// records of 10 bytes on "a" and 50 of 20 bytes on "b", the server 20 of
// 5 bytes on "a"; every record is applied and every sender waits on a
// Barrier.
func traffic(t *testing.T, p *simPair) (a, b *quicrecord.RecordStream) {
	ca, sa := p.open(t, quicrecord.StreamOptions{Scope: "a", DataID: 1})
	cb, sb := p.open(t, quicrecord.StreamOptions{Scope: "b", DataID: 2})
	for _, s := range []*quicrecord.RecordStream{ca, sa, sb} {
		applyAll(t, s)
	}
	sendN(t, ca, 100, 10)
	sendN(t, cb, 50, 20)
	sendN(t, sa, 20, 5)
	time.Sleep(100 * time.Millisecond)
	synctest.Wait()
	return ca, cb
}

// TestCollectorMatchesTraffic scrapes a client Conn and the server's
// Listener after known traffic: the record counts are the traffic's, the
// frame, batch and ack counts are the Conn's summary, and what one side
// sent the other received.
func TestCollectorMatchesTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, 5*time.Millisecond)
		traffic(t, p)
		cc := promrecord.NewCollector(p.client, nil)

		const want = `
# HELP recordmux_records_total Records sent (direction=out) or received (direction=in) on record streams.
# TYPE recordmux_records_total counter
recordmux_records_total{direction="in"} 20
recordmux_records_total{direction="out"} 150
# HELP recordmux_record_bytes_total Record payload bytes sent or received (excluding framing).
# TYPE recordmux_record_bytes_total counter
recordmux_record_bytes_total{direction="in"} 100
recordmux_record_bytes_total{direction="out"} 2000
# HELP recordmux_streams Record streams in the source, by state.
# TYPE recordmux_streams gauge
recordmux_streams{state="closed"} 0
recordmux_streams{state="failed"} 0
recordmux_streams{state="open"} 2
# HELP recordmux_streams_by_version Record streams in the source, by negotiated protocol version.
# TYPE recordmux_streams_by_version gauge
recordmux_streams_by_version{version="2"} 2
# HELP recordmux_inflight_records Records sent and not yet acknowledged as applied by the peer.
# TYPE recordmux_inflight_records gauge
recordmux_inflight_records 0
# HELP recordmux_apply_backlog_records Records received and not yet applied (acked or rejected) by the application.
# TYPE recordmux_apply_backlog_records gauge
recordmux_apply_backlog_records 0
# HELP recordmux_barriers_total Barrier calls that completed.
# TYPE recordmux_barriers_total counter
recordmux_barriers_total 2
`
		require.NoError(t, testutil.CollectAndCompare(cc, strings.NewReader(want),
			"recordmux_records_total", "recordmux_record_bytes_total", "recordmux_streams",
			"recordmux_streams_by_version", "recordmux_inflight_records", "recordmux_apply_backlog_records",
			"recordmux_barriers_total"))

		d := p.client.Diagnostics()
		m := scrape(t, cc)
		for dir, f := range map[string]diag.FrameCounts{"out": d.FramesOut, "in": d.FramesIn} {
			for typ, v := range map[string]uint64{"hello": f.Hello, "batch": f.Batch, "ack": f.Ack, "error": f.Error, "window": f.Window, "done": f.Done, "unknown": f.Unknown} {
				require.Equal(t, float64(v), m[fmt.Sprintf(`recordmux_frames_total{direction=%q,type=%q}`, dir, typ)], "%s %s", dir, typ)
			}
		}
		require.Equal(t, float64(2), m[`recordmux_frames_total{direction="out",type="hello"}`])
		require.Equal(t, float64(d.Out.Batches), m[`recordmux_batches_total{direction="out"}`])
		require.Equal(t, float64(d.In.Batches), m[`recordmux_batches_total{direction="in"}`])
		require.Equal(t, float64(d.Acks.PiggybackedOut), m[`recordmux_acks_total{direction="out",kind="piggybacked"}`])
		require.Equal(t, float64(d.Acks.StandaloneOut), m[`recordmux_acks_total{direction="out",kind="standalone"}`])
		require.Equal(t, float64(d.Acks.PiggybackedIn), m[`recordmux_acks_total{direction="in",kind="piggybacked"}`])
		require.Equal(t, float64(d.Acks.StandaloneIn), m[`recordmux_acks_total{direction="in",kind="standalone"}`])
		require.Positive(t, m[`recordmux_acks_total{direction="in",kind="standalone"}`]+m[`recordmux_acks_total{direction="in",kind="piggybacked"}`])
		require.Equal(t, d.Barrier.AckWaitTotal.Seconds(), m[`recordmux_barrier_wait_seconds_total{phase="ack"}`])
		require.Positive(t, m[`recordmux_barrier_wait_seconds_total{phase="ack"}`], "barriers waited a round trip")
		require.Equal(t, d.Barrier.FlushWaitTotal.Seconds(), m[`recordmux_barrier_wait_seconds_total{phase="flush"}`])
		require.Zero(t, m[`recordmux_protocol_violations_total`])
		// The windows: sums of the streams' send windows and rates, the
		// smallest minimum ack delay, the largest queueing delay.
		require.Positive(t, d.Window.Records)
		require.Equal(t, float64(d.Window.Records), m[`recordmux_send_window_records`])
		require.Equal(t, float64(d.Window.Bytes), m[`recordmux_send_window_bytes`])
		require.Equal(t, float64(d.Window.RecordsPerSec), m[`recordmux_delivery_rate_records_per_second`])
		require.Positive(t, m[`recordmux_min_ack_delay_seconds`], "acks came back after a round trip")
		require.Equal(t, d.Window.MinAckDelay.Seconds(), m[`recordmux_min_ack_delay_seconds`])
		require.Equal(t, d.Window.QueueDelayMax.Seconds(), m[`recordmux_queue_delay_seconds`])
		require.Zero(t, m[`recordmux_rejections_total{direction="in"}`])
		// Compression: the summary's totals, each way.
		for dir, z := range map[string]diag.CompressionTotals{"out": d.Compression.Out, "in": d.Compression.In} {
			require.Equal(t, float64(z.BytesBefore), m[fmt.Sprintf(`recordmux_compression_bytes_total{direction=%q,stage="before"}`, dir)])
			require.Equal(t, float64(z.BytesAfter), m[fmt.Sprintf(`recordmux_compression_bytes_total{direction=%q,stage="after"}`, dir)])
			require.Equal(t, float64(z.Compressed), m[fmt.Sprintf(`recordmux_compressed_batches_total{direction=%q}`, dir)])
			require.Equal(t, z.CodecTime.Seconds(), m[fmt.Sprintf(`recordmux_compression_seconds_total{direction=%q}`, dir)])
		}
		require.Positive(t, m[`recordmux_compression_bytes_total{direction="out",stage="before"}`])

		// The listener's view is the mirror image.
		lm := scrape(t, promrecord.NewCollector(p.ln, &promrecord.Options{ConstLabels: prometheus.Labels{"listener": "test"}}))
		require.Equal(t, float64(150), lm[`recordmux_records_total{direction="in",listener="test"}`])
		require.Equal(t, float64(20), lm[`recordmux_records_total{direction="out",listener="test"}`])
		require.Equal(t, m[`recordmux_batches_total{direction="out"}`], lm[`recordmux_batches_total{direction="in",listener="test"}`])
		require.Equal(t, m[`recordmux_acks_total{direction="in",kind="standalone"}`], lm[`recordmux_acks_total{direction="out",kind="standalone",listener="test"}`])
		require.Equal(t, m[`recordmux_acks_total{direction="out",kind="piggybacked"}`], lm[`recordmux_acks_total{direction="in",kind="piggybacked",listener="test"}`])
		require.Equal(t, m[`recordmux_compression_bytes_total{direction="out",stage="after"}`], lm[`recordmux_compression_bytes_total{direction="in",listener="test",stage="after"}`])

		problems, err := testutil.CollectAndLint(cc)
		require.NoError(t, err)
		require.Empty(t, problems)
	})
}

// TestCollectorMonotonic: when streams end and leave the source, and when
// the whole connection closes, the counters keep what they had counted;
// the gauges drop.
func TestCollectorMonotonic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, 5*time.Millisecond)
		a, b := traffic(t, p)
		cc := promrecord.NewCollector(p.client, nil)
		m := scrape(t, cc)
		require.Equal(t, float64(150), m[`recordmux_records_total{direction="out"}`])
		require.Equal(t, float64(2), m[`recordmux_streams{state="open"}`])
		frames := m[`recordmux_frames_total{direction="out",type="batch"}`]

		require.NoError(t, a.Close(context.Background()))
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		require.Len(t, p.client.Snapshots(), 1, "stream a detached")
		m = scrape(t, cc)
		require.Equal(t, float64(150), m[`recordmux_records_total{direction="out"}`], "a's records are carried over")
		require.Equal(t, float64(20), m[`recordmux_records_total{direction="in"}`])
		require.Equal(t, float64(1), m[`recordmux_streams{state="open"}`])
		require.GreaterOrEqual(t, m[`recordmux_frames_total{direction="out",type="batch"}`], frames)

		sendN(t, b, 30, 1)
		m = scrape(t, cc)
		require.Equal(t, float64(180), m[`recordmux_records_total{direction="out"}`])
		require.Equal(t, float64(2030), m[`recordmux_record_bytes_total{direction="out"}`])

		require.NoError(t, p.client.Close())
		synctest.Wait()
		require.Empty(t, p.client.Snapshots())
		m = scrape(t, cc)
		require.Equal(t, float64(180), m[`recordmux_records_total{direction="out"}`])
		require.Equal(t, float64(3), m[`recordmux_barriers_total`])
		require.Zero(t, m[`recordmux_streams{state="open"}`])
		_, hasVersion := m[`recordmux_streams_by_version{version="2"}`]
		require.False(t, hasVersion, "no streams, no version series")
	})
}

// TestCollectorPerStream: per-stream series exist only with the option,
// nine series per stream, labelled with the stream's identity.
func TestCollectorPerStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, 5*time.Millisecond)
		traffic(t, p)
		perStream := []string{
			"recordmux_stream_records_total", "recordmux_stream_record_bytes_total",
			"recordmux_stream_inflight_records", "recordmux_stream_apply_backlog_records",
			"recordmux_stream_send_window_records", "recordmux_stream_min_ack_delay_seconds", "recordmux_stream_queue_delay_seconds",
		}
		require.Zero(t, testutil.CollectAndCount(promrecord.NewCollector(p.client, nil), perStream...))

		cc := promrecord.NewCollector(p.client, &promrecord.Options{PerStream: true})
		require.Equal(t, 2*9, testutil.CollectAndCount(cc, perStream...))
		m := scrape(t, cc)
		id := p.client.Snapshots()[0].Identity
		require.Equal(t, "a", id.Scope)
		labels := fmt.Sprintf(`conn="0",data_id="1",direction="out",role="opener",scope="a",stream_id="%d"`, id.StreamID)
		require.Equal(t, float64(100), m[`recordmux_stream_records_total{`+labels+`}`])
		require.Equal(t, float64(1000), m[`recordmux_stream_record_bytes_total{`+labels+`}`])
		problems, err := testutil.CollectAndLint(cc)
		require.NoError(t, err)
		require.Empty(t, problems)
	})
}

// TestCollectorSharedRegistry: two collectors with different const
// labels register side by side; without them the second is refused.
func TestCollectorSharedRegistry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, 5*time.Millisecond)
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(promrecord.NewCollector(p.client, &promrecord.Options{ConstLabels: prometheus.Labels{"side": "client"}})))
		require.NoError(t, reg.Register(promrecord.NewCollector(p.ln, &promrecord.Options{ConstLabels: prometheus.Labels{"side": "server"}})))
		require.Error(t, reg.Register(promrecord.NewCollector(p.ln, nil)))
		_, err := reg.Gather()
		require.NoError(t, err)
	})
}

// TestCollectorCountsShortLivedStreams: streams that open, carry traffic
// and end between two scrapes are counted exactly, on the Conn and on the
// Listener (both report the totals of their ended streams).
func TestCollectorCountsShortLivedStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimPair(t, 5*time.Millisecond)
		cc := promrecord.NewCollector(p.client, nil)
		lc := promrecord.NewCollector(p.ln, nil)
		m := scrape(t, cc)
		require.Zero(t, m[`recordmux_records_total{direction="out"}`])
		for i := range 5 {
			c, s := p.open(t, quicrecord.StreamOptions{Scope: "short", DataID: uint64(i)})
			applyAll(t, s)
			sendN(t, c, 10*(i+1), 7)
			require.NoError(t, c.Close(context.Background()))
			require.NoError(t, s.Close(context.Background()))
		}
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		require.Empty(t, p.client.Snapshots())
		m = scrape(t, cc)
		require.Equal(t, float64(150), m[`recordmux_records_total{direction="out"}`], "10+20+30+40+50 records")
		require.Equal(t, float64(1050), m[`recordmux_record_bytes_total{direction="out"}`])
		require.Zero(t, m[`recordmux_streams{state="open"}`])
		lm := scrape(t, lc)
		require.Equal(t, float64(150), lm[`recordmux_records_total{direction="in"}`])

		ended := p.client.EndedDiagnostics()
		require.Equal(t, 5, ended.Streams.Total)
		require.Equal(t, 5, ended.Streams.Closed)
		require.Equal(t, uint64(150), ended.Out.Records)
		require.Equal(t, uint64(5), ended.FramesOut.Hello)
		require.Zero(t, p.client.Diagnostics().Out.Records, "no live streams")
	})
}

// TestCollectorRejectionDirections: direction="out" counts this side's
// records the peers rejected and "in" the peers' records this side
// rejected, the same split as the out and in rows of the summary table.
func TestCollectorRejectionDirections(t *testing.T) {
	var s quicrecord.RecordSnapshot
	s.Identity = quicrecord.StreamIdentity{Scope: "r", Role: quicrecord.RoleOpener, Version: 2}
	s.Status.State = quicrecord.StateOpen
	s.Out.Records, s.In.Records = 10, 20
	s.Errors = diag.ErrorStats{RejectedByPeer: 3, RejectedLocally: 5}
	m := scrape(t, promrecord.NewCollector(fakeSource{s}, nil))
	require.Equal(t, float64(3), m[`recordmux_rejections_total{direction="out"}`])
	require.Equal(t, float64(5), m[`recordmux_rejections_total{direction="in"}`])
	table := quicrecord.Summarize([]quicrecord.RecordSnapshot{s}, nil).String()
	require.Regexp(t, `(?m)^out\s+10\s.*\s3$`, table)
	require.Regexp(t, `(?m)^in\s+20\s.*\s5$`, table)
}
