package jsrecord

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestCheckBatchAck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reply  string
		fenced bool
		ok     bool
	}{
		{"confirmed", `{"stream":"RECORDMUX","seq":1000,"batch":"b1","count":3}`, false, true},
		{"other batch", `{"stream":"RECORDMUX","seq":1000,"batch":"b2","count":3}`, false, false},
		{"short count", `{"stream":"RECORDMUX","seq":1000,"batch":"b1","count":2}`, false, false},
		{"fence", `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 7"}}`, true, false},
		{"fence, replicated", `{"error":{"code":400,"err_code":10164,"description":"wrong last sequence"}}`, true, false},
		{"duplicate IDs", `{"error":{"code":400,"err_code":10201,"description":"atomic publish batch contains duplicate message id"}}`, true, false},
		{"incomplete", `{"error":{"code":400,"err_code":10176,"description":"atomic publish batch is incomplete"}}`, false, false},
		{"stream only", `{"stream":"RECORDMUX"}`, false, false},
		{"garbage", `not json`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBatchAck([]byte(tc.reply), "b1", 3)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, tc.fenced, errors.Is(err, ErrFenced))
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, c := range []*Config{nil, {}} {
		require.Equal(t, DefaultStream, c.stream())
		require.Equal(t, DefaultSubjectPrefix, c.prefix())
		require.Equal(t, DefaultMaxBatch, c.maxBatch())
		require.Equal(t, DefaultMaxInflightBatches, c.maxInflight())
		require.Equal(t, DefaultTimeout, c.timeout())
	}
	c := &Config{Stream: "S", SubjectPrefix: "p", MaxBatch: 7, MaxInflightBatches: 3, Timeout: time.Second}
	require.Equal(t, "S", c.stream())
	require.Equal(t, "p", c.prefix())
	require.Equal(t, 7, c.maxBatch())
	require.Equal(t, 3, c.maxInflight())
	require.Equal(t, time.Second, c.timeout())

	sc := StreamConfig(c, 0)
	require.Equal(t, "S", sc.Name)
	require.Equal(t, []string{"p.>"}, sc.Subjects)
	require.Equal(t, 1, sc.Replicas)
	require.True(t, sc.AllowAtomicPublish)
	require.False(t, sc.AllowDirect)
	require.Equal(t, jetstream.FileStorage, sc.Storage)
	require.NoError(t, checkStream(&jetstream.StreamInfo{Config: sc}, "p"))
}

// TestNames: subjects and message IDs name the state of (identity, key)
// with a fixed-length, subject-safe name of the identity, whatever the
// identity holds, so two identities never share one.
func TestNames(t *testing.T) {
	key := []byte{0x0a, 0xff}
	require.Equal(t, "0aff", KeyName(key))
	// The first 16 bytes of SHA-256(""), the anonymous identity.
	const anon = "e3b0c44298fc1c149afbf4c8996fb924"
	require.Equal(t, anon, IdentityName(""))
	require.Equal(t, "recordmux.rec."+anon+".0aff", RecordSubject(nil, "", key))
	require.Equal(t, "x.rec."+anon+".0aff", RecordSubject(&Config{SubjectPrefix: "x"}, "", key))
	require.Equal(t, "recordmux.own."+anon+".0aff", ClaimSubject(nil, "", key))
	require.Equal(t, "recordmux.own."+anon+".0aff", claimSubject(DefaultSubjectPrefix, nameOf("", key)))
	require.Equal(t, anon+".0aff:42", MsgID("", key, 42))

	ids := []string{
		"sha256:" + strings.Repeat("ab", 32),
		"spiffe://example.org/ns/prod/sa/agent",
		"a.b.*.> with spaces\tand\x00",
		strings.Repeat("x", 10_000),
	}
	seen := map[string]bool{IdentityName(""): true}
	for _, id := range ids {
		name := IdentityName(id)
		require.Len(t, name, 32, "%q", id)
		require.Regexp(t, "^[0-9a-f]{32}$", name, "%q", id)
		require.False(t, seen[name], "%q", id)
		seen[name] = true
		require.Equal(t, "recordmux.rec."+name+".0aff", RecordSubject(nil, id, key))
		require.NotEqual(t, MsgID("", key, 1), MsgID(id, key, 1))
	}
}
