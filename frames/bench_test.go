package frames_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/recordmux/recordmux/frames"
)

// benchSizes are the record sizes of the codec benchmarks and how many
// records go in one batch: 64 KiB of data per batch for the small record,
// then 64 KiB and 256 KiB for the larger ones.
var benchSizes = []struct {
	name  string
	size  int
	count int
}{
	{"64B", 64, 1024},
	{"1KiB", 1 << 10, 64},
	{"16KiB", 16 << 10, 16},
}

// benchRecords returns count records of size random bytes from a seeded
// RNG, so every run encodes the same data.
func benchRecords(size, count int) [][]byte {
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	data := make([]byte, size*count)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	records := make([][]byte, count)
	for i := range records {
		records[i] = data[i*size : (i+1)*size : (i+1)*size]
	}
	return records
}

// reportPerRecord adds the ns/record metric; it must run after the b.Loop
// loop, when b.N holds the number of iterations.
func reportPerRecord(b *testing.B, count int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*count), "ns/record")
}

var benchHeader = frames.BatchHeader{HasAck: true, Ack: 1 << 20, FirstSeq: 1 << 30}

func BenchmarkEncodeBatch(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			records := benchRecords(s.size, s.count)
			buf := make([]byte, 0, frames.BatchLen(benchHeader, records))
			b.SetBytes(int64(s.size * s.count))
			b.ReportAllocs()
			for b.Loop() {
				buf = frames.AppendBatch(buf[:0], benchHeader, records)
			}
			reportPerRecord(b, s.count)
		})
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			records := benchRecords(s.size, s.count)
			frame := frames.AppendBatch(nil, benchHeader, records)
			_, payload, _, err := frames.ParseFrame(frame, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(s.size * s.count))
			b.ReportAllocs()
			var sink int
			for b.Loop() {
				batch, _, err := frames.ParseBatch(payload, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				it := batch.Iter()
				for _, rec, ok := it.Next(); ok; _, rec, ok = it.Next() {
					sink += len(rec)
				}
			}
			if sink != b.N*s.size*s.count {
				b.Fatalf("decoded %d bytes, want %d", sink, b.N*s.size*s.count)
			}
			reportPerRecord(b, s.count)
		})
	}
}

func BenchmarkEncodeDecodeBatch(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			records := benchRecords(s.size, s.count)
			buf := make([]byte, 0, frames.BatchLen(benchHeader, records))
			b.SetBytes(int64(s.size * s.count))
			b.ReportAllocs()
			var sink int
			for b.Loop() {
				buf = frames.AppendBatch(buf[:0], benchHeader, records)
				_, payload, _, err := frames.ParseFrame(buf, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				batch, _, err := frames.ParseBatch(payload, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				it := batch.Iter()
				for _, rec, ok := it.Next(); ok; _, rec, ok = it.Next() {
					sink += len(rec)
				}
			}
			if sink != b.N*s.size*s.count {
				b.Fatalf("decoded %d bytes, want %d", sink, b.N*s.size*s.count)
			}
			reportPerRecord(b, s.count)
		})
	}
}

// BenchmarkUvarintFramer is the baseline for the codec benchmarks: the
// simplest hand-written framer, a uvarint length (encoding/binary) before
// each record, with no header, no validation pass and no limits. It runs
// the same sizes and reports the same metric, so the ratio to
// BenchmarkEncodeBatch, BenchmarkDecodeBatch and BenchmarkEncodeDecodeBatch
// is measured in one run on one machine.
func BenchmarkUvarintFramer(b *testing.B) {
	encode := func(buf []byte, records [][]byte) []byte {
		for _, r := range records {
			buf = binary.AppendUvarint(buf, uint64(len(r)))
			buf = append(buf, r...)
		}
		return buf
	}
	decode := func(buf []byte) (total int) {
		for len(buf) > 0 {
			l, n := binary.Uvarint(buf)
			if n <= 0 || uint64(len(buf)-n) < l {
				panic("bad uvarint framing")
			}
			end := n + int(l)
			rec := buf[n:end:end]
			total += len(rec)
			buf = buf[end:]
		}
		return total
	}
	for _, mode := range []string{"encode", "decode", "encode-decode"} {
		b.Run(mode, func(b *testing.B) {
			for _, s := range benchSizes {
				b.Run(s.name, func(b *testing.B) {
					records := benchRecords(s.size, s.count)
					buf := encode(nil, records)
					b.SetBytes(int64(s.size * s.count))
					b.ReportAllocs()
					var sink int
					for b.Loop() {
						switch mode {
						case "encode":
							buf = encode(buf[:0], records)
						case "decode":
							sink += decode(buf)
						default:
							buf = encode(buf[:0], records)
							sink += decode(buf)
						}
					}
					if mode != "encode" && sink != b.N*s.size*s.count {
						b.Fatalf("decoded %d bytes, want %d", sink, b.N*s.size*s.count)
					}
					reportPerRecord(b, s.count)
				})
			}
		})
	}
}
