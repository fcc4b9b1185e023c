package quicrecord

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRetainLog checks the log against a model under random appends,
// drops and cursor walks, with records of all sizes across chunk edges.
func TestRetainLog(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 9))
			start := rng.Uint64N(1000) + 1
			l := newRetainLog(start)
			model := map[uint64][]byte{}
			first, next := start, start
			var cur logCursor
			l.seek(&cur, start)
			for range 3000 {
				switch rng.IntN(10) {
				case 0, 1, 2, 3, 4:
					n := rng.IntN(200)
					if rng.IntN(50) == 0 {
						n = retainChunkSize + rng.IntN(1000)
					}
					rec := make([]byte, n)
					for i := range rec {
						rec[i] = byte(next) ^ byte(i)
					}
					require.Equal(t, next, l.append(rec))
					model[next] = rec
					next++
				case 5, 6:
					if next > first {
						to := first + rng.Uint64N(next-first)
						l.dropThrough(to)
						for s := first; s <= to; s++ {
							delete(model, s)
						}
						first = to + 1
						if cur.seq < first {
							l.seek(&cur, first)
						}
					}
				default:
					for range rng.IntN(20) {
						seq, rec, ok := l.nextAt(&cur)
						if !ok {
							require.Equal(t, next, cur.seq)
							break
						}
						require.Equal(t, model[seq], rec, "seq %d", seq)
					}
				}
				require.Equal(t, first, l.first)
				require.Equal(t, int(next-first), l.len())
				want := 0
				for _, r := range model {
					want += len(r)
				}
				require.Equal(t, want, l.bytes)
			}
			// A fresh cursor at the head walks every retained record.
			var c2 logCursor
			l.seek(&c2, first)
			for s := first; s < next; s++ {
				seq, rec, ok := l.nextAt(&c2)
				require.True(t, ok)
				require.Equal(t, s, seq)
				require.Equal(t, model[s], rec)
			}
		})
	}
}
