//go:build unix

package server

import "syscall"

// openFileLimit returns the soft RLIMIT_NOFILE of the process (which Go
// raised to the hard limit at start), 1<<20 for "unlimited", 0 if unknown.
func openFileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return int(min(lim.Cur, 1<<20))
}
