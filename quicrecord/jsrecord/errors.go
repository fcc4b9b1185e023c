package jsrecord

import (
	"errors"
	"fmt"

	"github.com/recordmux/recordmux/quicrecord"
)

// Stream error codes the sink uses, in the application range of
// quicrecord's code space (see quicrecord.ErrorCode).
const (
	// CodeUnavailable resets a stream whose records JetStream did not
	// confirm (a batch failed or timed out), and refuses new streams while
	// JetStream cannot be reached. No record of the failed batch was
	// acknowledged: a quicrecord.ResumableStream keeps them, reconnects
	// with backoff (to this collector or another) and sends them again,
	// and the stream continues right after the last record JetStream
	// holds. It is not CodeRefused, which a ResumableStream takes as final.
	CodeUnavailable quicrecord.ErrorCode = quicrecord.CodeApplicationMin + 0x1900

	// CodeSuperseded resets a stream whose key a newer opener took over
	// (a larger resume epoch, see the package doc), on this collector or
	// through another collector whose claim fenced this one's publishes
	// off, when the stream negotiated quicrecord.FeatureResumeEpoch; a
	// quicrecord.ResumableStream that still served it does not reconnect.
	// A stream taken over otherwise (by the same opener reconnected, or
	// one without epochs) is reset with quicrecord.CodeCancelled, as
	// quicrecord's ResumeStore does. An opener older than the key's last
	// claim is refused with it too ([ErrSupersededClaim]). It is
	// quicrecord's protocol code (quicrecord.CodeSuperseded, SUPERSEDED);
	// it was the application code 0x1a01 before.
	CodeSuperseded = quicrecord.CodeSuperseded
)

// Errors [Sink.Serve] returns, matched with errors.Is.
var (
	// ErrFenced: JetStream refused a batch because another collector
	// claimed the key after this one did (the fence), or because it
	// already holds records of the batch under their message IDs, which
	// only the key's new holder can have published (JetStream checks
	// message IDs first). The stream was reset with CodeSuperseded (or
	// quicrecord.CodeCancelled, see CodeSuperseded) and nothing of the
	// batch was acknowledged.
	ErrFenced = errors.New("jsrecord: another collector took the key over")
	// ErrNotResumable: the stream has no resume key; the sink needs one
	// (the subject and the deduplication are per key).
	ErrNotResumable = errors.New("jsrecord: not a resumable stream")
	// ErrSupersededClaim: [Sink.LoadApplied] refused an opener whose
	// resume epoch is older than that of the key's last claim (a newer
	// opener of the key went through another collector). It matches
	// quicrecord.ErrSuperseded, so the ResumeStore refuses the stream as
	// it refuses an opener older than its own state: with CodeSuperseded,
	// or CodeRefused when the stream did not negotiate epochs.
	ErrSupersededClaim = fmt.Errorf("jsrecord: a newer opener claimed the key: %w", quicrecord.ErrSuperseded)
	// ErrNoClaim: the stream reached Serve without this collector holding
	// a claim on its key. It is reset with CodeUnavailable and resumes
	// through a new claim.
	ErrNoClaim = errors.New("jsrecord: no claim on the key")
)
