package quicrecord

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConfigValidate: every field with a rule, one invalid value each,
// names the field and its value; zero and the documented negatives are
// valid.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
		text  string
	}{
		{"MaxBatchRecords", Config{Stream: StreamConfig{MaxBatchRecords: -1}}, "Config.Stream.MaxBatchRecords",
			"quicrecord: invalid Config.Stream.MaxBatchRecords: -1: must be 0 (default) or positive"},
		{"MaxBatchBytes negative", Config{Stream: StreamConfig{MaxBatchBytes: -1}}, "Config.Stream.MaxBatchBytes",
			"quicrecord: invalid Config.Stream.MaxBatchBytes: -1: must be 0 (default) or positive"},
		{"MaxBatchBytes too large", Config{Stream: StreamConfig{MaxBatchBytes: MaxRecordSizeLimit + 1}}, "Config.Stream.MaxBatchBytes",
			"quicrecord: invalid Config.Stream.MaxBatchBytes: 1073741761: must be at most MaxRecordSizeLimit (1073741760)"},
		{"AckDelay", Config{Stream: StreamConfig{AckDelay: 2 * time.Millisecond}}, "Config.Stream.AckDelay",
			"quicrecord: invalid Config.Stream.AckDelay: 2ms: must be at most MaxAckDelay (1ms); negative sends acks at once"},
		{"MaxInFlightRecords", Config{Stream: StreamConfig{MaxInFlightRecords: -1}}, "Config.Stream.MaxInFlightRecords", ""},
		{"MaxInFlightBytes", Config{Stream: StreamConfig{MaxInFlightBytes: -5}}, "Config.Stream.MaxInFlightBytes", ""},
		{"MaxApplyBacklogRecords", Config{Stream: StreamConfig{MaxApplyBacklogRecords: -1}}, "Config.Stream.MaxApplyBacklogRecords", ""},
		{"MaxApplyBacklogBytes", Config{Stream: StreamConfig{MaxApplyBacklogBytes: -1}}, "Config.Stream.MaxApplyBacklogBytes", ""},
		{"MaxRecordSize negative", Config{Stream: StreamConfig{MaxRecordSize: -1}}, "Config.Stream.MaxRecordSize", ""},
		{"MaxRecordSize too large", Config{Stream: StreamConfig{MaxRecordSize: 1 << 30}}, "Config.Stream.MaxRecordSize", ""},
		{"CloseTimeout", Config{Stream: StreamConfig{CloseTimeout: -time.Second}}, "Config.Stream.CloseTimeout",
			"quicrecord: invalid Config.Stream.CloseTimeout: -1s: must be 0 (default) or positive"},
		{"HelloTimeout", Config{HelloTimeout: -1}, "Config.HelloTimeout", ""},
		{"AcceptBacklog", Config{AcceptBacklog: -1}, "Config.AcceptBacklog", ""},
		{"MaxConnReceiveBytes", Config{MaxConnReceiveBytes: -1}, "Config.MaxConnReceiveBytes", ""},
		{"MaxListenerReceiveBytes", Config{MaxListenerReceiveBytes: -1}, "Config.MaxListenerReceiveBytes", ""},
		{"PreAcceptReceiveBytes", Config{PreAcceptReceiveBytes: -1}, "Config.PreAcceptReceiveBytes", ""},
		{"listener budget below the connection's", Config{MaxConnReceiveBytes: 1 << 30}, "Config.MaxListenerReceiveBytes",
			"quicrecord: invalid Config.MaxListenerReceiveBytes: 536870912: below the connection budget (1073741824)"},
		{"pre-accept credit above the connection budget", Config{MaxConnReceiveBytes: 64 << 10}, "Config.PreAcceptReceiveBytes",
			"quicrecord: invalid Config.PreAcceptReceiveBytes: 131072: above the connection budget (65536)"},
		{"MinProtocolVersion below", Config{MinProtocolVersion: HighestProtocolVersion + 1}, "Config.MinProtocolVersion",
			"quicrecord: invalid Config.MinProtocolVersion: 3: must be 0 (the library's bound) or within 1..2"},
		{"MaxProtocolVersion above", Config{MaxProtocolVersion: 9}, "Config.MaxProtocolVersion", ""},
		{"min above max", Config{MinProtocolVersion: 2, MaxProtocolVersion: 1}, "Config.MinProtocolVersion",
			"quicrecord: invalid Config.MinProtocolVersion: 2: above Config.MaxProtocolVersion (1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.field, ce.Field)
			if tc.text != "" {
				require.EqualError(t, err, tc.text)
			}
			_, err = tc.cfg.settings()
			require.Equal(t, ce, errAs[*ConfigError](t, err), "settings refuses what Validate refuses")
		})
	}
	for _, cfg := range []*Config{
		nil, {},
		{Stream: StreamConfig{AckDelay: -1, FlushDelay: -1}}, // documented negatives
		{Stream: StreamConfig{AckDelay: MaxAckDelay, MaxRecordSize: MaxRecordSizeLimit, MaxBatchBytes: MaxRecordSizeLimit}},
		{MinProtocolVersion: 2, MaxProtocolVersion: 2},
		{MinProtocolVersion: 2},
		{MaxProtocolVersion: 1},
		{DisableFeatures: 1 << 40},
		{MaxConnReceiveBytes: 1 << 30, MaxListenerReceiveBytes: 1 << 30},
		{MaxConnReceiveBytes: 64 << 10, PreAcceptReceiveBytes: 64 << 10},
	} {
		require.NoError(t, cfg.Validate(), "%+v", cfg)
	}
	var sc *StreamConfig
	require.NoError(t, sc.Validate())
	err := (&StreamConfig{MaxBatchRecords: -2}).Validate()
	require.EqualError(t, err, "quicrecord: invalid StreamConfig.MaxBatchRecords: -2: must be 0 (default) or positive")
}

// errAs returns the T in err's chain.
func errAs[T error](t testing.TB, err error) T {
	t.Helper()
	var target T
	require.True(t, errors.As(err, &target), "%v is no %T", err, target)
	return target
}

// TestConfigDefaults: zero means the documented defaults, and the
// documented negatives their meaning.
func TestConfigDefaults(t *testing.T) {
	set := testSettings(t, nil)
	require.Equal(t, streamSettings{
		maxBatchRecords: DefaultMaxBatchRecords, maxBatchBytes: DefaultMaxBatchBytes,
		flushDelay: 0, ackDelay: DefaultAckDelay, queueTarget: DefaultQueueDelayTarget,
		maxInFlightRecs: DefaultMaxInFlightRecords, maxInFlightBytes: DefaultMaxInFlightBytes,
		maxBacklogRecs: DefaultMaxApplyBacklogRecords, maxBacklogBytes: DefaultMaxApplyBacklogBytes,
		maxRecordSize: DefaultMaxRecordSize, closeTimeout: DefaultCloseTimeout,
		compression: DefaultCompression,
	}, set.streamSettings)
	require.Equal(t, DefaultHelloTimeout, set.helloTimeout)
	require.Equal(t, DefaultAcceptBacklog, set.acceptBacklog)
	require.Equal(t, int64(DefaultMaxConnReceiveBytes), set.connBudget)
	require.Equal(t, int64(DefaultMaxListenerReceiveBytes), set.listenerBudget)
	require.Equal(t, int64(DefaultPreAcceptReceiveBytes), set.preAcceptCredit)
	require.Equal(t, LowestProtocolVersion, set.minVersion)
	require.Equal(t, HighestProtocolVersion, set.maxVersion)
	neg := testSettings(t, &Config{Stream: StreamConfig{AckDelay: -1, FlushDelay: -1}})
	require.Zero(t, neg.ackDelay, "a negative AckDelay sends acks at once")
	require.Zero(t, neg.flushDelay, "a negative FlushDelay does not linger")
	v1 := testSettings(t, &Config{MaxProtocolVersion: 1})
	require.Equal(t, [2]uint64{1, 1}, [2]uint64{v1.minVersion, v1.maxVersion})
}

// TestStreamSettingsResolution: each field of a stream's settings comes
// from its own StreamConfig if set, else from Config.Stream if set, else
// from the library's default; a negative FlushDelay overrides a lingering
// connection default.
func TestStreamSettingsResolution(t *testing.T) {
	conn := testSettings(t, &Config{Stream: StreamConfig{
		MaxBatchRecords: 100, FlushDelay: 5 * time.Millisecond, MaxInFlightRecords: 1000, CloseTimeout: time.Minute,
		Compression: CompressionS2,
	}})
	set, err := conn.withStream(&StreamConfig{MaxBatchRecords: 7, FlushDelay: -1, MaxRecordSize: 4096, Compression: CompressionZstd}, "StreamOptions.Config.")
	require.NoError(t, err)
	require.Equal(t, streamSettings{
		maxBatchRecords:  7, // the stream's
		maxBatchBytes:    DefaultMaxBatchBytes,
		flushDelay:       0,               // the stream's negative: no linger
		ackDelay:         DefaultAckDelay, // set by neither: the default
		queueTarget:      DefaultQueueDelayTarget,
		maxInFlightRecs:  1000, // the connection's
		maxInFlightBytes: DefaultMaxInFlightBytes, maxBacklogRecs: DefaultMaxApplyBacklogRecords,
		maxBacklogBytes: DefaultMaxApplyBacklogBytes,
		maxRecordSize:   4096,            // the stream's
		closeTimeout:    time.Minute,     // the connection's
		compression:     CompressionZstd, // the stream's
	}, set.streamSettings)
	require.Equal(t, 5*time.Millisecond, conn.flushDelay, "the connection's settings are not touched")
	same, err := conn.withStream(nil, "StreamOptions.Config.")
	require.NoError(t, err)
	require.Same(t, conn, same)
	_, err = conn.withStream(&StreamConfig{AckDelay: time.Second}, "StreamOptions.Config.")
	require.Equal(t, "StreamOptions.Config.AckDelay", errAs[*ConfigError](t, err).Field)
}

// TestInvalidConfigRefused: every constructor and OpenRecordStream return
// the *ConfigError of an invalid configuration, before any I/O.
func TestInvalidConfigRefused(t *testing.T) {
	bad := &Config{AcceptBacklog: -1}
	stls, ctls := tlsPair(t)
	ctx := context.Background()
	_, err := Listen("127.0.0.1:0", stls, bad)
	require.Equal(t, "Config.AcceptBacklog", errAs[*ConfigError](t, err).Field)
	_, err = Dial(ctx, "127.0.0.1:9", ctls, bad)
	require.Equal(t, "Config.AcceptBacklog", errAs[*ConfigError](t, err).Field)
	_, err = DialResumable(ctx, "127.0.0.1:9", ctls, bad, ResumeOptions{})
	require.Equal(t, "Config.AcceptBacklog", errAs[*ConfigError](t, err).Field)
	dialed := false
	dial := func(context.Context) (*Conn, error) { dialed = true; return nil, errors.New("unreachable") }
	for _, tc := range []struct {
		opts  ResumeOptions
		field string
	}{
		{ResumeOptions{Stream: StreamOptions{Config: &StreamConfig{MaxRecordSize: -1}}}, "ResumeOptions.Stream.Config.MaxRecordSize"},
		{ResumeOptions{Key: []byte{}}, "ResumeOptions.Key"},
		{ResumeOptions{Key: make([]byte, MaxResumeKeyLen+1)}, "ResumeOptions.Key"},
		{ResumeOptions{MinBackoff: -1}, "ResumeOptions.MinBackoff"},
		{ResumeOptions{MaxBackoff: -1}, "ResumeOptions.MaxBackoff"},
		{ResumeOptions{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "ResumeOptions.MaxBackoff"},
	} {
		_, err = NewResumableStream(ctx, dial, nil, tc.opts)
		require.Equal(t, tc.field, errAs[*ConfigError](t, err).Field)
	}
	require.False(t, dialed, "nothing is dialed for an invalid configuration")

	synctest.Test(t, func(t *testing.T) {
		qc, _ := newSimQUIC(t, nil, nil, nil, simRTT/2)
		_, err := NewConn(qc, bad)
		require.ErrorIs(t, err, ErrInvalidConfig)
		p := newSimPair(t, nil, nil, nil, simRTT/2)
		_, err = p.client.OpenRecordStream(ctx, StreamOptions{Config: &StreamConfig{MaxBatchRecords: -3}})
		require.EqualError(t, err, "quicrecord: invalid StreamOptions.Config.MaxBatchRecords: -3: must be 0 (default) or positive")
		require.Empty(t, p.client.Snapshots())
	})
}

// TestAcceptorChoosesSettings: the accept handler's StreamConfig sets the
// stream's limits before the acceptor's HELLO, so the opener's Send is
// bound by them; a stream the handler gives nothing gets the connection's
// settings; an invalid StreamConfig refuses the stream with CodeInternal.
func TestAcceptorChoosesSettings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		refused := make(chan *StreamError, 1)
		scfg := &Config{
			Stream: StreamConfig{MaxRecordSize: 2048},
			AcceptHandler: func(_ context.Context, info *AcceptInfo) (*StreamConfig, error) {
				switch info.Scope {
				case "small":
					return &StreamConfig{MaxRecordSize: 100, MaxApplyBacklogRecords: 3}, nil
				case "broken":
					return &StreamConfig{AckDelay: time.Hour}, nil
				}
				return nil, nil
			},
			OnStreamRefused: func(_ *AcceptInfo, err *StreamError) { refused <- err },
		}
		p := newSimPair(t, nil, scfg, nil, simRTT/2)
		small, sa := p.openPair(t, false, StreamOptions{Scope: "small"})
		require.Equal(t, 100, small.MaxRecordSize(), "the acceptor's limit, announced in its HELLO")
		require.Equal(t, uint64(3), small.Negotiated().PeerLimits.MaxInFlightRecords)
		require.Equal(t, 100, sa.MaxRecordSize())
		_, err := small.Send(ctx, make([]byte, 101))
		require.ErrorIs(t, err, ErrRecordTooLarge)
		for range 3 {
			_, err := small.Send(ctx, []byte("x"))
			require.NoError(t, err)
		}
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = small.Send(short, []byte("x"))
		require.ErrorIs(t, err, context.DeadlineExceeded, "the opener's window is the acceptor's backlog of 3")

		plain, _ := p.openPair(t, false, StreamOptions{Scope: "plain"})
		require.Equal(t, 2048, plain.MaxRecordSize(), "Config.Stream's limit")

		_, err = p.client.OpenRecordStream(ctx, StreamOptions{Scope: "broken"})
		require.ErrorIs(t, err, ErrInternal)
		r := <-refused
		require.Equal(t, CodeInternal, r.Code)
		require.Equal(t, "AcceptHandler StreamConfig.AckDelay", errAs[*ConfigError](t, r).Field)
	})
}
