package server

import (
	"sync"
	"time"
)

// rateLog lets one log line through per interval; the lines in between are
// counted, and the next line that goes through reports how many were not
// written. The zero interval lets every line through.
type rateLog struct {
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether a line may be written now and, if so, how many
// were not written since the last one.
func (r *rateLog) allow() (ok bool, skipped int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.skipped++
		return false, 0
	}
	skipped, r.skipped, r.last = r.skipped, 0, now
	return true, skipped
}
