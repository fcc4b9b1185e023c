package diag

// OutStats describe the send direction. The traffic counters (Records,
// Bytes, Batches), LastSeq and the in-flight gauges are published when the
// writer loop takes records (or an ack arrives), not on every Send, so
// they may trail Send by the records still waiting for the writer.
//
// Records counts the records Send accepted on this stream, replays by a
// resumable stream included; Bytes their record bytes; Batches the BATCH
// frames written. A stream that resumed an earlier one numbers its
// records after those the acceptor had already applied, so its LastSeq
// may exceed Records.
type OutStats struct {
	TrafficTotals
	LastSeq uint64 `json:"last_seq"` // sequence number of the last record sent
	// FlushedSeq is the last record handed to QUIC.
	FlushedSeq      uint64 `json:"flushed_seq"`
	AckedSeq        uint64 `json:"acked_seq"`         // last record the peer acknowledged as applied
	InFlightRecords uint64 `json:"in_flight_records"` // sent and not yet acknowledged (gauge)
	InFlightBytes   uint64 `json:"in_flight_bytes"`   // record bytes sent and not yet acknowledged (gauge)
}

// InStats describe the receive direction: the records, record bytes and
// BATCH frames received (TrafficTotals), how far the application got,
// and its apply backlog.
type InStats struct {
	TrafficTotals
	AppliedSeq uint64 `json:"applied_seq"` // last record acked or rejected by the application
	// BacklogRecords and BacklogBytes are received and not yet applied
	// (gauges); the Peak fields are their maxima since open.
	BacklogRecords     uint64 `json:"backlog_records"`
	BacklogBytes       uint64 `json:"backlog_bytes"`
	BacklogPeakRecords uint64 `json:"backlog_peak_records"`
	BacklogPeakBytes   uint64 `json:"backlog_peak_bytes"`
}
