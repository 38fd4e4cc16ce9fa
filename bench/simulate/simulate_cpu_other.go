//go:build !unix

package simulate

import "time"

// processCPU is not measured on this platform.
func processCPU() time.Duration { return 0 }
