package compress

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// compressible returns n bytes of log-like text from seed: JSON lines over
// a small vocabulary with random numbers, which S2 and zstd shrink several
// times.
func compressible(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"info", "warn", "request", "completed", "orders", "latency_ms", "status", "eu-west-1", "host"}
	b := make([]byte, 0, n+128)
	for len(b) < n {
		b = append(b, `{"level":"`...)
		b = append(b, words[rng.IntN(2)]...)
		b = append(b, `","msg":"`...)
		b = append(b, words[2+rng.IntN(3)]...)
		b = append(b, `","region":"eu-west-1","host":"edge-`...)
		b = strconv.AppendInt(b, int64(rng.IntN(40)), 10)
		b = append(b, `","latency_ms":`...)
		b = strconv.AppendInt(b, int64(rng.IntN(5000)), 10)
		b = append(b, "}\n"...)
	}
	return b[:n]
}

// random returns n random bytes from seed.
func random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// zstdScratchMax bounds the block buffers the zstd decoder grows on first
// use and keeps for reuse (literals, RLE output and sequences of the
// largest block seen): a one-time cost per decoder slot, allowed on the
// first run of a measurement.
const zstdScratchMax = 3 << 20

// allocs measures the bytes f allocates on its first run and the fewest
// it allocates on either of two more runs: the first run may grow buffers
// a codec keeps for reuse, the repeats show what each call costs once
// they are there. runtime.ReadMemStats runs outside the measured region;
// the counts are global to the process, so an unrelated background
// allocation can land in one run, never in all.
func allocs(f func()) (first, repeat uint64) {
	measure := func() uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	first = measure()
	repeat = min(measure(), measure())
	return first, repeat
}
