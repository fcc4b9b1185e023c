package diag

import (
	"encoding/json"
	"time"
)

// WindowStats describe a stream's windows and what its sender measures of
// its path (gauges: the values at the snapshot). With adaptive windows
// (the default) the send window follows the measurements, see
// quicrecord's StreamConfig.QueueDelayTarget; with a fixed window it is
// the caps, and the measurements are still shown.
type WindowStats struct {
	// Records and Bytes are the send window: the most records and record
	// bytes Send lets be in flight now, within MaxInFlightRecords and
	// MaxInFlightBytes and the peer's window.
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
	// PeerRecords and PeerBytes are the window the peer announced last:
	// its HELLO's, or its latest WINDOW frame.
	PeerRecords uint64 `json:"peer_records"`
	PeerBytes   uint64 `json:"peer_bytes"`
	// AnnouncedRecords and AnnouncedBytes are the window this side
	// announces to the peer now.
	AnnouncedRecords uint64 `json:"announced_records"`
	AnnouncedBytes   uint64 `json:"announced_bytes"`
	// MinAckDelay is the estimated minimum Send→applied-ack delay: the
	// round trip plus the peer's time for one batch, the floor the
	// queueing delay is measured above (the smallest in the last 10 s,
	// refreshed by a short probe when older); 0 until measured.
	MinAckDelay time.Duration `json:"min_ack_delay"`
	// QueueDelay is the last round's smallest Send→ack delay above the
	// floor, both less their batch's own transmission at the delivery
	// rate (which a batch takes on an empty path, and which grows with
	// it): the queueing the window holds near the target.
	QueueDelay time.Duration `json:"queue_delay"`
	// RecordsPerSec and BytesPerSec are the delivery rate: records and
	// record bytes the peer applied per second (the largest of the last
	// rounds).
	RecordsPerSec uint64 `json:"records_per_sec"`
	BytesPerSec   uint64 `json:"bytes_per_sec"`
}

// windowJSON is the JSON form of WindowStats: durations as Go duration
// strings.
type windowJSON struct {
	Records          uint64 `json:"records"`
	Bytes            uint64 `json:"bytes"`
	PeerRecords      uint64 `json:"peer_records"`
	PeerBytes        uint64 `json:"peer_bytes"`
	AnnouncedRecords uint64 `json:"announced_records"`
	AnnouncedBytes   uint64 `json:"announced_bytes"`
	MinAckDelay      string `json:"min_ack_delay"`
	QueueDelay       string `json:"queue_delay"`
	RecordsPerSec    uint64 `json:"records_per_sec"`
	BytesPerSec      uint64 `json:"bytes_per_sec"`
}

// MarshalJSON writes the delays as Go duration strings ("1.5ms").
func (w WindowStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(windowJSON{
		Records: w.Records, Bytes: w.Bytes, PeerRecords: w.PeerRecords, PeerBytes: w.PeerBytes,
		AnnouncedRecords: w.AnnouncedRecords, AnnouncedBytes: w.AnnouncedBytes,
		MinAckDelay: w.MinAckDelay.String(), QueueDelay: w.QueueDelay.String(),
		RecordsPerSec: w.RecordsPerSec, BytesPerSec: w.BytesPerSec,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (w *WindowStats) UnmarshalJSON(data []byte) error {
	var j windowJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := WindowStats{
		Records: j.Records, Bytes: j.Bytes, PeerRecords: j.PeerRecords, PeerBytes: j.PeerBytes,
		AnnouncedRecords: j.AnnouncedRecords, AnnouncedBytes: j.AnnouncedBytes,
		RecordsPerSec: j.RecordsPerSec, BytesPerSec: j.BytesPerSec,
	}
	if err := parseDurations("window stats", []durationField{{&out.MinAckDelay, j.MinAckDelay}, {&out.QueueDelay, j.QueueDelay}}); err != nil {
		return err
	}
	*w = out
	return nil
}

// WindowTotals summarise the windows of a set of streams: the sums of
// their send windows and delivery rates, the smallest estimated minimum
// ack delay (0 if none was measured) and the largest queueing delay.
type WindowTotals struct {
	Records       uint64        `json:"records"`
	Bytes         uint64        `json:"bytes"`
	RecordsPerSec uint64        `json:"records_per_sec"`
	BytesPerSec   uint64        `json:"bytes_per_sec"`
	MinAckDelay   time.Duration `json:"min_ack_delay_ns"`
	QueueDelayMax time.Duration `json:"queue_delay_max_ns"`
}

// Add adds one stream's windows to t.
func (t *WindowTotals) Add(w *WindowStats) {
	t.Records += w.Records
	t.Bytes += w.Bytes
	t.RecordsPerSec += w.RecordsPerSec
	t.BytesPerSec += w.BytesPerSec
	if w.MinAckDelay > 0 && (t.MinAckDelay == 0 || w.MinAckDelay < t.MinAckDelay) {
		t.MinAckDelay = w.MinAckDelay
	}
	t.QueueDelayMax = max(t.QueueDelayMax, w.QueueDelay)
}
