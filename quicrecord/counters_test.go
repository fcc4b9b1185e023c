package quicrecord

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/quicrecord/diag"
)

// fillNumbers sets every number field of v (walked by reflection, so a
// field added later is covered) to base plus its position.
func fillNumbers(v reflect.Value, base uint64, next *uint64) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fillNumbers(v.Field(i), base, next)
		}
	case reflect.Uint64, reflect.Int64:
		*next++
		n := base + *next
		if v.Kind() == reflect.Uint64 {
			v.SetUint(n)
		} else {
			v.SetInt(int64(n))
		}
	default:
		panic("unexpected field kind " + v.Kind().String())
	}
}

// TestCountersAdd: Add sums every counter and keeps the larger of each
// maximum; the fields are walked by reflection, so a counter added
// without its add fails here.
func TestCountersAdd(t *testing.T) {
	var a, b diag.Counters
	var n uint64
	fillNumbers(reflect.ValueOf(&a).Elem(), 1000, &n)
	n = 0
	fillNumbers(reflect.ValueOf(&b).Elem(), 5000, &n)
	b.Barrier.FlushWaitMax = time.Nanosecond // a's is the larger
	sum := a
	sum.Add(&b)

	var check func(path string, s, x, y reflect.Value)
	check = func(path string, s, x, y reflect.Value) {
		if s.Kind() == reflect.Struct {
			for i := range s.NumField() {
				name := path + "." + s.Type().Field(i).Name
				check(name, s.Field(i), x.Field(i), y.Field(i))
			}
			return
		}
		got, xa, ya := toU(s), toU(x), toU(y)
		if strings.HasSuffix(path, "Max") {
			require.Equal(t, max(xa, ya), got, path)
			return
		}
		require.Equal(t, xa+ya, got, path)
	}
	check("diag.Counters", reflect.ValueOf(sum), reflect.ValueOf(a), reflect.ValueOf(b))
}

func toU(v reflect.Value) uint64 {
	if v.Kind() == reflect.Int64 {
		return uint64(v.Int())
	}
	return v.Uint()
}

// TestSnapshotCounters: RecordSnapshot.Counters carries every counter of
// the snapshot (the traffic totals of both directions and the counter
// structs), and a summary's counters are the sum of its streams'.
func TestSnapshotCounters(t *testing.T) {
	var s RecordSnapshot
	var n uint64
	fillNumbers(reflect.ValueOf(&s.Out).Elem(), 0, &n)
	fillNumbers(reflect.ValueOf(&s.In).Elem(), 0, &n)
	for _, v := range []any{&s.FramesOut, &s.FramesIn, &s.Acks, &s.Barrier, &s.Errors} {
		fillNumbers(reflect.ValueOf(v).Elem(), 0, &n)
	}
	c := s.Counters()
	require.Equal(t, diag.Counters{
		Out: s.Out.TrafficTotals, In: s.In.TrafficTotals, FramesOut: s.FramesOut, FramesIn: s.FramesIn,
		Acks: s.Acks, Barrier: s.Barrier, Errors: s.Errors,
	}, c)

	snaps := goldenSnapshots()
	var want diag.Counters
	for i := range snaps {
		sc := snaps[i].Counters()
		want.Add(&sc)
	}
	require.Equal(t, want, Summarize(snaps, nil).Counters)
}
