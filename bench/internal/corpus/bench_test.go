package corpus

import (
	"fmt"
	"testing"

	"github.com/recordmux/recordmux/internal/compress"
)

// The codec benchmarks run on record sections of the two corpora, in the
// batch size of a stream trickling records (4 KiB) and the default
// maximum (64 KiB), 4 MiB of records in all, cycled. MB/s counts the
// uncompressed bytes; ratio is uncompressed / compressed bytes.
//
//	go test -run '^$' -bench 'Compress|Decompress|Encoder' ./bench/internal/corpus/

const benchTotal = 4 << 20

var benchSizes = []int{4 << 10, 64 << 10}

var benchCodecs = []compress.Codec{compress.S2, compress.Zstd}

// avgLen returns the average length of batches, for SetBytes.
func avgLen(batches [][]byte) (total, avg int) {
	for _, b := range batches {
		total += len(b)
	}
	return total, total / len(batches)
}

func benchName(k Kind, size int, codec fmt.Stringer) string {
	return fmt.Sprintf("%v/%dKiB/%v", k, size>>10, codec)
}

// BenchmarkCompress measures each codec alone (Codecs.Encode: no
// adaptive skip), as a sender that always compresses would pay it.
func BenchmarkCompress(b *testing.B) {
	c := compress.NewCodecs(1)
	defer c.Close()
	for _, k := range Kinds {
		for _, size := range benchSizes {
			batches := Batches(k, 1, size, benchTotal/size)
			_, avg := avgLen(batches)
			for _, codec := range benchCodecs {
				b.Run(benchName(k, size, codec), func(b *testing.B) {
					dst := c.Encode(nil, batches[0], codec) // warm up, and size dst
					var in, out, i int
					b.SetBytes(int64(avg))
					b.ReportAllocs()
					for b.Loop() {
						src := batches[i%len(batches)]
						i++
						dst = c.Encode(dst[:0], src, codec)
						in += len(src)
						out += len(dst)
					}
					b.ReportMetric(float64(in)/float64(out), "ratio")
				})
			}
		}
	}
}

// BenchmarkDecompress measures the receiver's side of each codec.
func BenchmarkDecompress(b *testing.B) {
	c := compress.NewCodecs(1)
	defer c.Close()
	for _, k := range Kinds {
		for _, size := range benchSizes {
			batches := Batches(k, 1, size, benchTotal/size)
			_, avg := avgLen(batches)
			for _, codec := range benchCodecs {
				encoded := make([][]byte, len(batches))
				var in, out int
				for i, src := range batches {
					encoded[i] = c.Encode(nil, src, codec)
					in += len(src)
					out += len(encoded[i])
				}
				b.Run(benchName(k, size, codec), func(b *testing.B) {
					dst := make([]byte, 0, 2*size)
					var i int
					b.SetBytes(int64(avg))
					b.ReportAllocs()
					for b.Loop() {
						j := i % len(batches)
						i++
						var err error
						dst, err = c.Decompress(dst[:0], encoded[j], codec, len(batches[j]), size)
						if err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(in)/float64(out), "ratio")
				})
			}
		}
	}
}

// BenchmarkEncoder measures what a sender pays with the adaptive Encoder:
// on incompressible data it stops compressing, so its cost per byte falls
// to a probe every few hundred batches. ratio counts every batch, the
// ones sent plain at 1.
func BenchmarkEncoder(b *testing.B) {
	c := compress.NewCodecs(1)
	defer c.Close()
	const size = 64 << 10
	for _, k := range Kinds {
		batches := Batches(k, 1, size, benchTotal/size)
		_, avg := avgLen(batches)
		for _, mode := range []compress.Mode{compress.ModeS2, compress.ModeZstd, compress.Auto} {
			b.Run(benchName(k, size, mode), func(b *testing.B) {
				e := c.NewEncoder(compress.EncoderOptions{Mode: mode, Peer: compress.Supported})
				dst := make([]byte, 0, 2*size)
				var in, out, i int
				b.SetBytes(int64(avg))
				b.ReportAllocs()
				for b.Loop() {
					src := batches[i%len(batches)]
					i++
					var codec compress.Codec
					dst, codec = e.Compress(dst[:0], src)
					in += len(src)
					if codec == compress.None {
						out += len(src)
					} else {
						out += len(dst)
					}
				}
				b.ReportMetric(float64(in)/float64(out), "ratio")
			})
		}
	}
}
