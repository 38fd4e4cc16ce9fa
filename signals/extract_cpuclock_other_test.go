//go:build !linux

package signals

func threadCPUTime() (int64, bool) { return 0, false }
