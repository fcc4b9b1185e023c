//go:build !unix

package suite

import "time"

// processCPU is not implemented on this platform.
func processCPU() time.Duration { return -1 }
