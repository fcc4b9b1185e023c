package diag

// StreamCounts count streams by state and by negotiated protocol version.
type StreamCounts struct {
	Total  int `json:"total"`
	Open   int `json:"open"`
	Closed int `json:"closed"`
	Failed int `json:"failed"`
	// ByVersion has one entry per negotiated version present, in
	// ascending version order.
	ByVersion []VersionCount `json:"by_version"`
}

// VersionCount is the number of streams that negotiated one protocol
// version.
type VersionCount struct {
	Version uint64 `json:"version"`
	Streams int    `json:"streams"`
}

// Volume is an amount of records and their bytes.
type Volume struct {
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
}

// Options tune quicrecord.Summarize. A nil *Options means the defaults.
type Options struct {
	// TopN is how many streams each top list keeps. 0 means 5; a negative
	// value means no top lists.
	TopN int
}
