//go:build linux

package latency

import (
	"syscall"
	"time"
)

const haveFineSleep = true

// fineSleep sleeps with the nanosleep system call: it blocks the thread,
// wakes within the thread's timer slack (50 µs by default), and the
// runtime hands the processor to other goroutines meanwhile.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
