//go:build !linux

package pace

import "time"

// defaultFineSleep returns nil here: the fine wait spins.
func defaultFineSleep() func(time.Duration) { return nil }

// NanoSleep falls back to time.Sleep on this platform.
func NanoSleep(d time.Duration) { time.Sleep(d) }
