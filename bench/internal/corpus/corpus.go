package corpus

import (
	"fmt"
	"math/rand/v2"

	"github.com/recordmux/recordmux/frames"
)

// Record sizes of both corpora, in bytes, inclusive.
const (
	MinRecordSize = 200
	MaxRecordSize = 1500
)

// Kind names a corpus.
type Kind uint8

const (
	// Telemetry is structured JSON log, metric and event lines, as an
	// agent on an edge host or a service's log shipper sends them.
	Telemetry Kind = iota + 1
	// Incompressible is uniformly random bytes, record for record the
	// same sizes as Telemetry's for the same seed.
	Incompressible
)

// Kinds lists every corpus, in a fixed order.
var Kinds = [...]Kind{Telemetry, Incompressible}

// String returns the corpus name used in benchmark names and flags.
func (k Kind) String() string {
	switch k {
	case Telemetry:
		return "telemetry"
	case Incompressible:
		return "incompressible"
	}
	return fmt.Sprintf("corpus(%d)", uint8(k))
}

// ParseKind returns the corpus named s (as [Kind.String] prints it).
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("corpus: unknown corpus %q (want telemetry or incompressible)", s)
}

// Generator produces the records of one corpus from a seed. The same kind
// and seed give the same records, in the same order, on every machine and
// run. A Generator is used by one goroutine.
type Generator struct {
	kind Kind
	tel  telemetry
	rng  *rand.Rand // Incompressible's bytes; Telemetry's come from tel
	buf  []byte     // Incompressible: the telemetry record whose size it takes
}

// New returns a generator of kind's records for seed. It panics on an
// unknown kind, a programming error.
func New(kind Kind, seed uint64) *Generator {
	g := &Generator{kind: kind, tel: newTelemetry(seed)}
	switch kind {
	case Telemetry:
	case Incompressible:
		g.rng = rand.New(rand.NewPCG(seed, seed^0x5eed_b17e_5eed_b17e))
	default:
		panic(fmt.Sprintf("corpus: unknown kind %d", kind))
	}
	return g
}

// Kind returns the generator's corpus.
func (g *Generator) Kind() Kind { return g.kind }

// Append appends the next record to dst and returns the extended slice.
// The record is between [MinRecordSize] and [MaxRecordSize] bytes long.
// It allocates only when dst (or, for Incompressible, the generator's
// scratch buffer) has to grow.
func (g *Generator) Append(dst []byte) []byte {
	if g.kind == Telemetry {
		return g.tel.append(dst)
	}
	g.buf = g.tel.append(g.buf[:0])
	n := len(g.buf)
	for range n / 8 {
		v := g.rng.Uint64()
		dst = append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24),
			byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	}
	v := g.rng.Uint64()
	for i := range n % 8 {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// Records returns the first n records of kind for seed, each in a slice
// of its own.
func Records(kind Kind, seed uint64, n int) [][]byte {
	g := New(kind, seed)
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.Append(nil)
	}
	return out
}

// Batches returns n record sections of kind's records for seed, encoded as
// a BATCH frame carries them ([frames.AppendRecord]: a varint length, the
// bytes), each holding whole records up to batchBytes (at least one): the
// input a sender compresses. Consecutive sections continue the same
// sequence of records.
func Batches(kind Kind, seed uint64, batchBytes, n int) [][]byte {
	g := New(kind, seed)
	out := make([][]byte, n)
	var rec []byte
	for i := range out {
		sec := make([]byte, 0, batchBytes)
		for {
			if rec == nil {
				rec = g.Append(nil)
			}
			if len(sec) > 0 && len(sec)+frames.RecordLen(len(rec)) > batchBytes {
				break
			}
			sec = frames.AppendRecord(sec, rec)
			rec = nil
		}
		out[i] = sec
	}
	return out
}
