package quicrecord

import (
	"fmt"

	"github.com/recordmux/recordmux/frames"
)

// VersionRange is an inclusive range of protocol versions.
type VersionRange struct{ Min, Max uint64 }

func (r VersionRange) String() string { return fmt.Sprintf("[%d,%d]", r.Min, r.Max) }

// Limits are the receive limits one side announced in its HELLO, named
// after the StreamConfig fields they cap on the sending side: the peer's
// MaxInFlightRecords lowers this side's StreamConfig.MaxInFlightRecords,
// and so on. A side announces its MaxApplyBacklogRecords and
// MaxApplyBacklogBytes as MaxInFlightRecords and MaxInFlightBytes.
type Limits struct {
	MaxFrameSize       uint64 // largest frame payload it accepts
	MaxRecordSize      uint64 // largest record it accepts
	MaxInFlightRecords uint64 // most unacknowledged records it accepts in flight
	MaxInFlightBytes   uint64 // most unacknowledged record bytes it accepts in flight
}

// Negotiated is the outcome of a stream's capability negotiation.
type Negotiated struct {
	// Version is the effective protocol version: the highest both sides
	// speak.
	Version uint64
	// Features is the effective feature set: the intersection of both
	// announcements, restricted to the features defined at Version.
	Features Features
	// Local and Peer are the version ranges each side announced.
	Local, Peer VersionRange
	// PeerFeatures is the peer's raw announcement, including bits this
	// library does not know.
	PeerFeatures Features
	// PeerLimits are the receive limits the peer announced.
	PeerLimits Limits
	// PeerCodecs are the codecs the peer accepts compressed batches in
	// (CompressionS2, CompressionZstd), when FeatureCompression is
	// effective; empty otherwise. This side's StreamConfig.Compression
	// picks from them.
	PeerCodecs []Compression
}

// PiggybackAcks reports whether acks ride in BATCH headers on this stream.
func (n Negotiated) PiggybackAcks() bool { return n.Features.Has(FeaturePiggybackAck) }

// featuresAt returns the features defined at protocol version v.
func featuresAt(v uint64) Features {
	if v >= frames.Version2 {
		return allFeatures
	}
	return 0
}

// localHello returns the HELLO this side announces. It announces only
// the features defined at its highest version, as a build of that version
// would.
func (s *settings) localHello() frames.Hello {
	h := frames.Hello{
		MinVersion:    s.minVersion,
		MaxVersion:    s.maxVersion,
		Features:      s.features & featuresAt(s.maxVersion),
		MaxFrameSize:  s.maxFrameSize(),
		MaxRecordSize: uint64(s.maxRecordSize),
		WindowRecords: uint64(s.maxBacklogRecs),
		WindowBytes:   uint64(s.maxBacklogBytes),
	}
	if h.Features.Has(FeatureCompression) {
		h.Extensions = append(h.Extensions, codecsExtension())
	}
	return h
}

// negotiate computes the outcome of a HELLO exchange from this side's
// settings and the peer's HELLO. Both sides compute the same Version and
// Features. A mismatch returns a *StreamError with CodeVersionMismatch
// naming both ranges.
func negotiate(s *settings, peer *frames.Hello, role Role) (Negotiated, error) {
	n := Negotiated{
		Local:        VersionRange{s.minVersion, s.maxVersion},
		Peer:         VersionRange{peer.MinVersion, peer.MaxVersion},
		PeerFeatures: peer.Features,
		PeerLimits: Limits{
			MaxFrameSize:       peer.MaxFrameSize,
			MaxRecordSize:      peer.MaxRecordSize,
			MaxInFlightRecords: peer.WindowRecords,
			MaxInFlightBytes:   peer.WindowBytes,
		},
	}
	v := min(n.Local.Max, n.Peer.Max)
	if v < max(n.Local.Min, n.Peer.Min) {
		opener, acceptor := n.Local, n.Peer
		if role == RoleAcceptor {
			opener, acceptor = acceptor, opener
		}
		return n, &StreamError{
			Code:   CodeVersionMismatch,
			Reason: fmt.Sprintf("no common protocol version: opener speaks %s, acceptor speaks %s", opener, acceptor),
		}
	}
	n.Version = v
	n.Features = s.features & peer.Features & featuresAt(v)
	if !n.Features.Has(FeatureResume) {
		n.Features &^= FeatureResumeEpoch // meaningless without resumption
	}
	if !n.Features.Has(FeatureResume | FeatureEarlyRecords) {
		n.Features &^= FeatureResumeEarly // an optimistic resume needs both
	}
	if n.Features.Has(FeatureCompression) {
		n.PeerCodecs = codecsOf(peerCodecs(peer))
	}
	return n, nil
}
