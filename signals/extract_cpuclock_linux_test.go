//go:build linux

package signals

import (
	"syscall"
	"unsafe"
)

// threadCPUTime is the CPU time of the calling OS thread in nanoseconds
// (clock_gettime(CLOCK_THREAD_CPUTIME_ID)); benchmarks report it beside
// wall time because it does not grow while the thread waits for a core on
// a loaded machine.
func threadCPUTime() (int64, bool) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
