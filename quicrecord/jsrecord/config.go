package jsrecord

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a [Sink]. The zero value means the documented
// defaults; a nil *Config means all defaults. A Config is never modified.
type Config struct {
	// Stream is the name of the JetStream stream the records go to. ""
	// means "RECORDMUX".
	Stream string
	// SubjectPrefix is the first token(s) of every subject the sink uses:
	// PREFIX.rec.ID.KEY for the records of a client identity's resume key
	// and PREFIX.own.ID.KEY for its claims, ID being [IdentityName] and
	// KEY [KeyName] (see [RecordSubject], [ClaimSubject]). The stream must
	// capture PREFIX.>. "" means "recordmux".
	SubjectPrefix string
	// Collector names this collector in the claims it writes (for people
	// reading the stream; the sink itself does not use it). "" means a
	// random name.
	Collector string
	// MaxBatch caps the records of one batch. An atomic batch (on a
	// replicated stream) is the unit the sink publishes and acknowledges,
	// and the server limits its size (jetstream.limits.max_batch_size,
	// 1,000 by default; larger values need it raised). A fast batch is
	// committed when it is full while another stream of the sink waits
	// for a batch token, so that the streams take turns at its
	// MaxInflightBatches; otherwise it runs on. 0 means 1,000.
	MaxBatch int
	// MaxInflightBatches caps the batches this sink publishes at once, over
	// all its streams (a stream has up to two atomic batches, one
	// committing and the next being sent, or one fast batch); further
	// batches wait. The server refuses more than 50 uncommitted atomic
	// batches per stream (max_batch_inflight_per_stream), so keep the sum
	// over the collectors sharing a replicated stream below that. 0 means
	// 16.
	MaxInflightBatches int
	// AtomicBatches makes the sink publish atomic batches on every stream.
	// By default it does so only on a replicated stream (or one without
	// allow_batched), and publishes fast batches, record by record with a
	// fence on each, on a stream without replication: see the package doc.
	AtomicBatches bool
	// Timeout bounds each JetStream request: a batch commit, a claim, a
	// read; and, on a fast batch, how long JetStream may confirm nothing
	// while records wait for it before the batch is committed. A batch
	// not confirmed in time is never acknowledged (see [CodeUnavailable]).
	// 0 means 5 s.
	Timeout time.Duration
	// Logger receives stream failures, takeovers and claims at info or
	// warn level. nil means no logging.
	Logger *slog.Logger
	// AllowAnonymous is the ResumeStoreConfig.AllowAnonymous of
	// [Sink.NewResumeStore]: whether clients without an identity (no
	// verified client certificate) may resume streams, all sharing the
	// empty identity, so that a resume key is a bearer token. false: only
	// clients with an identity resume.
	AllowAnonymous bool
}

// Defaults.
const (
	DefaultStream             = "RECORDMUX"
	DefaultSubjectPrefix      = "recordmux"
	DefaultMaxBatch           = 1000
	DefaultMaxInflightBatches = 16
	DefaultTimeout            = 5 * time.Second
)

func (c *Config) stream() string {
	if c == nil || c.Stream == "" {
		return DefaultStream
	}
	return c.Stream
}

func (c *Config) prefix() string {
	if c == nil || c.SubjectPrefix == "" {
		return DefaultSubjectPrefix
	}
	return c.SubjectPrefix
}

func (c *Config) maxBatch() int {
	if c == nil || c.MaxBatch <= 0 {
		return DefaultMaxBatch
	}
	return c.MaxBatch
}

func (c *Config) maxInflight() int {
	if c == nil || c.MaxInflightBatches <= 0 {
		return DefaultMaxInflightBatches
	}
	return c.MaxInflightBatches
}

func (c *Config) timeout() time.Duration {
	if c == nil || c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *Config) atomicOnly() bool { return c != nil && c.AtomicBatches }

func (c *Config) logger() *slog.Logger {
	if c == nil {
		return nil
	}
	return c.Logger
}

func (c *Config) collector() string {
	if c == nil {
		return ""
	}
	return c.Collector
}

// StreamConfig returns the configuration of a stream the sink can use, with
// the given number of replicas (1 or 3 for a cluster; 0 means 1): file
// storage, subjects PREFIX.>, atomic and fast batch publishing allowed,
// direct gets off (reads go to the stream leader), and the default
// two-minute deduplication window. Durability settings are JetStream's
// defaults (see the package doc). Create it with [EnsureStream] or your
// own tooling (nats stream add), and tune limits and retention to taste.
func StreamConfig(cfg *Config, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               cfg.stream(),
		Description:        "recordmux records, one subject per client identity and resume key (jsrecord)",
		Subjects:           []string{cfg.prefix() + ".>"},
		Storage:            jetstream.FileStorage,
		Replicas:           max(replicas, 1),
		AllowAtomicPublish: true,
		AllowBatchPublish:  true,
		AllowDirect:        false,
		Duplicates:         2 * time.Minute,
	}
}
