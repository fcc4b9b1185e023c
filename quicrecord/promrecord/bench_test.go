package promrecord_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recordmux/recordmux/quicrecord"
	"github.com/recordmux/recordmux/quicrecord/promrecord"
)

// fakeSource serves fixed snapshots.
type fakeSource []quicrecord.RecordSnapshot

func (f fakeSource) Snapshots() []quicrecord.RecordSnapshot {
	return append([]quicrecord.RecordSnapshot(nil), f...)
}

// BenchmarkCollect is one scrape of a source with n synthetic streams,
// including the copy of the snapshots a Conn or Listener would return
// (but not the cost of taking them: see quicrecord's
// BenchmarkDiagDiagnostics).
func BenchmarkCollect(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			src := make(fakeSource, n)
			for i := range src {
				s := &src[i]
				s.Identity = quicrecord.StreamIdentity{Scope: "bench", Conn: uint64(i % 7), StreamID: quicrecord.StreamID(4 * i),
					Role: quicrecord.RoleAcceptor, Version: 2}
				s.Status.State = quicrecord.StateOpen
				s.Out.Records, s.In.Records, s.In.BacklogRecords = uint64(i), uint64(2*i), uint64(i%5)
			}
			c := promrecord.NewCollector(src, nil)
			ch := make(chan prometheus.Metric, 128)
			done := make(chan struct{})
			go func() {
				for range ch {
				}
				close(done)
			}()
			b.ReportAllocs()
			for b.Loop() {
				c.Collect(ch)
			}
			close(ch)
			<-done
		})
	}
}
