//go:build !linux

package latency

import "time"

// haveFineSleep is false here: the pacer spins for its fine wait.
const haveFineSleep = false

func fineSleep(d time.Duration) { time.Sleep(d) }
