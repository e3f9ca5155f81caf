//go:build !unix

package bench

import "time"

// processCPU is unknown here: CPUMicrosPerCommand stays 0.
func processCPU() time.Duration { return 0 }
