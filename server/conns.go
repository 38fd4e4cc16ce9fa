package server

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cpafeed/cpafeed/apierr"
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
		if err == nil {
			return &envelopeConn{Conn: c}, nil
		}
		if !acceptRetryable(err) {
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

// envelopeConn gives fasthttp's refusal of a connection the API's error
// shape. Beyond Server.Concurrency (http.max_conns) or MaxConnsPerIP,
// fasthttp writes a plain-text 503 or 429 on the new connection, before it
// read anything, and closes it; no handler runs. A write before the first
// read can only be that refusal: it is held back, and Close writes the
// JSON envelope with the same status instead (Retry-After: 1,
// is_transient: true, as Meta's SDKs expect to retry).
type envelopeConn struct {
	net.Conn
	read    atomic.Bool  // a request was read: writes are answers, passed through
	refused atomic.Int32 // the status of fasthttp's refusal, 0 if none
}

// refusedConns numbers the refusals, for their fbtrace_id.
var refusedConns atomic.Uint64

func (c *envelopeConn) Read(p []byte) (int, error) {
	if !c.read.Load() { // Close may run on another goroutine (shutdown)
		c.read.Store(true)
	}
	return c.Conn.Read(p)
}

func (c *envelopeConn) Write(p []byte) (int, error) {
	if c.read.Load() {
		return c.Conn.Write(p)
	}
	if c.refused.Load() == 0 {
		c.refused.Store(int32(statusOfLine(p)))
	}
	return len(p), nil
}

func (c *envelopeConn) Close() error {
	if refused := int(c.refused.Load()); !c.read.Load() && refused != 0 {
		var e *apierr.Error
		if refused == 429 {
			e = apierr.New(429, apierr.CodeTooMany, "overloaded: too many connections from your address (http.max_conns_per_ip), retry later")
		} else {
			e = apierr.New(refused, apierr.CodeUnavailable, "overloaded: too many connections open (http.max_conns), retry later")
		}
		body := apierr.AppendJSON(nil, e, string(apierr.AppendTraceID(nil, 1<<62|refusedConns.Add(1))))
		head := "HTTP/1.1 " + strconv.Itoa(e.Status) + " " + httpStatusText(e.Status) + "\r\nConnection: close\r\n" +
			"Content-Type: application/json\r\nRetry-After: 1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write(append([]byte(head), body...))
	}
	return c.Conn.Close()
}

// statusOfLine reads the status of an HTTP/1.1 status line, 503 if there
// is none.
func statusOfLine(p []byte) int {
	if len(p) >= 12 && string(p[:9]) == "HTTP/1.1 " {
		if n, err := strconv.Atoi(string(p[9:12])); err == nil {
			return n
		}
	}
	return 503
}

func httpStatusText(status int) string {
	if status == 429 {
		return "Too Many Requests"
	}
	return "Service Unavailable"
}
