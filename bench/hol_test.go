package bench_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/bench/internal/suite"
	"github.com/recordmux/recordmux/bench/internal/transport"
)

// TestHOLVirtual runs the head-of-line comparison in virtual time
// (testing/synctest over simnet), where CPU load cannot distort it. It is
// skipped unless RECORDBENCH_HOL_SECONDS gives the virtual seconds per
// run; RECORDBENCH_HOL_SEED (default 1) seeds the packet loss:
//
//	RECORDBENCH_HOL_SECONDS=20 go test -run TestHOLVirtual -v ./bench/
func TestHOLVirtual(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("RECORDBENCH_HOL_SECONDS"))
	seed, err := strconv.ParseUint(os.Getenv("RECORDBENCH_HOL_SEED"), 10, 64)
	if err != nil {
		seed = 1
	}
	if secs <= 0 {
		t.Skip("set RECORDBENCH_HOL_SECONDS to run")
	}
	for _, loss := range []float64{0.01, 0.05} {
		for _, tr := range []string{"recordmux", "mux", "framer"} {
			synctest.Test(t, func(t *testing.T) {
				m, _, err := suite.HOL(context.Background(), transport.Options{}, tr, suite.HOLParams{
					Loss: loss, RTT: 20 * time.Millisecond, Duration: time.Duration(secs) * time.Second,
					Warmup: time.Second, Rate: 250, Size: 256, BulkSize: 1 << 10, Seed: seed, InBubble: true,
				})
				require.NoError(t, err)
				t.Logf("loss %2.0f%%  %-9s  p50 %6.1f ms  p99 %6.1f ms  p99.9 %6.1f ms  bulk %.2f MB/s  samples %.0f  observed loss %.1f%%",
					loss*100, tr, m.P50us/1000, m.P99us/1000, m.P999us/1000, m.MBPerSec, m.Samples, m.LossObserved*100)
			})
		}
	}
}
