package diag

import (
	"encoding/json"
	"time"
)

// CompressionStats count what batch compression did, each way
// (counters). Every BATCH counts: a plain one adds its record bytes to
// both BytesBefore and BytesAfter, so the ratio is that of the whole
// direction, plain batches included.
type CompressionStats struct {
	Out CompressionTotals `json:"out"` // batches this side sent
	In  CompressionTotals `json:"in"`  // batches this side received
}

func (c *CompressionStats) add(o *CompressionStats) {
	c.Out.add(&o.Out)
	c.In.add(&o.In)
}

// CompressionTotals count one direction's record sections (the encoded
// records of each BATCH, without the frame and batch headers) before and
// after compression, the batches that went compressed, and the time the
// codec took: compressing, for the out direction (tries that did not pay
// included), decompressing, for the in direction.
type CompressionTotals struct {
	Compressed  uint64        // BATCH frames whose record section was compressed
	BytesBefore uint64        // record-section bytes before compression (uncompressed size)
	BytesAfter  uint64        // record-section bytes on the wire
	CodecTime   time.Duration // time spent in the codec
}

// Ratio is BytesBefore / BytesAfter: 3 means the record sections took a
// third of their size on the wire; 1 with no compression; 0 when no
// batch went.
func (c CompressionTotals) Ratio() float64 { return ratio(c.BytesBefore, c.BytesAfter) }

// Saved is the record-section bytes compression kept off the wire.
func (c CompressionTotals) Saved() uint64 { return c.BytesBefore - min(c.BytesAfter, c.BytesBefore) }

func (c *CompressionTotals) add(o *CompressionTotals) {
	c.Compressed += o.Compressed
	c.BytesBefore += o.BytesBefore
	c.BytesAfter += o.BytesAfter
	c.CodecTime += o.CodecTime
}

// compressionJSON is the JSON form of CompressionTotals: the time as a Go
// duration string, with the ratio included for readers of the raw JSON.
type compressionJSON struct {
	Compressed  uint64  `json:"compressed_batches"`
	BytesBefore uint64  `json:"bytes_before"`
	BytesAfter  uint64  `json:"bytes_after"`
	CodecTime   string  `json:"codec_time"`
	Ratio       float64 `json:"ratio"`
}

// MarshalJSON writes the codec time as a Go duration string and adds the
// ratio.
func (c CompressionTotals) MarshalJSON() ([]byte, error) {
	return json.Marshal(compressionJSON{
		Compressed: c.Compressed, BytesBefore: c.BytesBefore, BytesAfter: c.BytesAfter,
		CodecTime: c.CodecTime.String(), Ratio: c.Ratio(),
	})
}

// UnmarshalJSON reads what MarshalJSON writes; the ratio is ignored.
func (c *CompressionTotals) UnmarshalJSON(data []byte) error {
	var j compressionJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := CompressionTotals{Compressed: j.Compressed, BytesBefore: j.BytesBefore, BytesAfter: j.BytesAfter}
	if err := parseDurations("compression stats", []durationField{{&out.CodecTime, j.CodecTime}}); err != nil {
		return err
	}
	*c = out
	return nil
}
