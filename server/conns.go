package server

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// defaultMaxConns is http.max_conns when the config leaves it zero: the
// open-file limit less a reserve of an eighth of it (at least 64, at most
// 1024) for the journal, snapshots and the process itself, at most 100000.
// A limit too small for the reserve gets half of it. 0 (limit unknown): 100000.
func defaultMaxConns(openFileLimit int) int {
	if openFileLimit <= 0 {
		return 100000
	}
	reserve := min(max(openFileLimit/8, 64), 1024)
	if openFileLimit < 2*reserve {
		return max(openFileLimit/2, 1)
	}
	return min(openFileLimit-reserve, 100000)
}

// acceptBackoffMin and acceptBackoffMax bound the wait after a failed
// Accept (net/http's values).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptLogEvery is the least time between two log lines about failed
// accepts; the lines between are counted, not written.
const acceptLogEvery = 10 * time.Second

// retryListener keeps a server accepting through the errors of an
// exhausted process or system: when Accept fails with EMFILE or ENFILE (no
// file descriptor left), ENOBUFS or ENOMEM, or a connection aborted before
// it was accepted, it waits (5 ms, doubling up to 1 s) and accepts again,
// instead of handing the error to fasthttp, which stops serving on any
// error but a timeout. Every such failure is counted
// (cpafeed_http_accept_errors_total); the log gets at most one line per
// acceptLogEvery with the failures since the last one. Close ends a wait at
// once.
type retryListener struct {
	net.Listener
	log       *slog.Logger
	done      chan struct{}
	closeOnce sync.Once
	rate      rateLog
}

func newRetryListener(ln net.Listener, log *slog.Logger) *retryListener {
	return &retryListener{Listener: ln, log: log, done: make(chan struct{}), rate: rateLog{every: acceptLogEvery}}
}

// Accept waits for the next connection, retrying temporary failures.
func (l *retryListener) Accept() (net.Conn, error) {
	wait := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err == nil || !acceptRetryable(err) {
			return c, err
		}
		httpAcceptErrors.Inc()
		wait = min(max(2*wait, acceptBackoffMin), acceptBackoffMax)
		if ok, skipped := l.rate.allow(); ok {
			l.log.Warn("http: cannot accept connections, retrying", "err", err.Error(), "backoff", wait.String(),
				"failures_not_logged", skipped)
		}
		t := time.NewTimer(wait)
		select {
		case <-l.done:
			t.Stop()
			return nil, net.ErrClosed
		case <-t.C:
		}
	}
}

// Close stops accepting; a waiting Accept returns net.ErrClosed.
func (l *retryListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// acceptRetryable reports whether a failed Accept may succeed later without
// anything being changed: the process or the system is out of file
// descriptors or buffers, or the client went away first.
func acceptRetryable(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EPROTO:
		return true
	}
	return false
}
