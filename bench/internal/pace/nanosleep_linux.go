//go:build linux

package pace

import (
	"syscall"
	"time"
)

// defaultFineSleep returns the fine sleep of this platform.
func defaultFineSleep() func(time.Duration) { return NanoSleep }

// NanoSleep sleeps for d with the nanosleep system call, which on Linux
// wakes within the thread's timer slack (50 µs by default) instead of the
// millisecond that time.Sleep may take on a loaded machine. It blocks its
// thread, not just its goroutine, and unlike spinning with
// runtime.Gosched it leaves the processor to the runtime, which keeps
// polling the network.
func NanoSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
