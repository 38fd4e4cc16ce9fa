package load

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// httpConn is one keep-alive HTTP/1.1 client connection of the load
// generator, used by one goroutine. A request (its head and body rendered
// before the run) goes out in one write; the answer is read into a buffer
// reused from request to request and framed by respParser, which reads the
// status, Content-Length or chunked, and Connection, and nothing else. One
// request is in flight at a time (no pipelining). The connection is dialed
// on first use and again after the server closed it or a request failed.
type httpConn struct {
	addr    string
	timeout time.Duration
	conn    *net.TCPConn
	raw     syscall.RawConn
	// deadline is the read and write deadline set on conn: refreshed to
	// now+timeout once less than 3/4 of timeout remains, so every request
	// has between 3/4 timeout and timeout (one timer change per many
	// requests instead of one per request).
	deadline time.Time

	buf []byte // received bytes of the answer: buf[:n]
	n   int
	p   respParser

	// The request being sent (the fast path's state, see rawRoundTrip).
	head, body []byte
	bufs       net.Buffers // portableRoundTrip's writev, reused
	sent       int
	err        error
	step       func(fd uintptr) bool // c.rawStep, bound once (see bindRaw)
	// portable sends with a write and reads with conn.Read where the fast
	// path is not available (and in the tests that cover both).
	portable bool
}

// Answer buffer sizes: the first allocation, and the largest answer
// accepted (a /metrics page is well within it).
const (
	respBufInitial = 16 << 10
	maxResponse    = 64 << 20
)

func newHTTPConn(addr string, timeout time.Duration) *httpConn {
	c := &httpConn{addr: addr, timeout: timeout, buf: make([]byte, respBufInitial), portable: !rawIOAvailable}
	bindRaw(c)
	return c
}

// do sends the request head+body (body may be nil) and reads its answer;
// now is a recent reading of the clock (not later than the real time). It
// returns the status; the answer's body is c.respBody() until the next call.
// On an error the connection is closed (the next call dials again).
func (c *httpConn) do(head, body []byte, now time.Time) (status int, err error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	if c.deadline.Sub(now) < c.timeout*3/4 {
		c.deadline = now.Add(c.timeout)
		if err := c.conn.SetDeadline(c.deadline); err != nil {
			c.close()
			return 0, err
		}
	}
	c.n = 0
	c.p.reset()
	if c.portable {
		err = c.portableRoundTrip(head, body)
	} else {
		err = c.rawRoundTrip(head, body)
	}
	if err != nil {
		c.close()
		return 0, err
	}
	if c.p.close {
		c.close()
	}
	return c.p.status, nil
}

// respBody is the body of the last answer (valid until the next do).
func (c *httpConn) respBody() []byte { return c.buf[c.p.bodyStart:c.p.bodyEnd] }

func (c *httpConn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
	if err != nil {
		return err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return fmt.Errorf("dial %s: not a TCP connection", c.addr)
	}
	c.conn, c.deadline = tc, time.Time{}
	if !c.portable {
		if c.raw, err = tc.SyscallConn(); err != nil {
			c.close()
			return err
		}
	}
	return nil
}

func (c *httpConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.raw = nil, nil
	}
}

// portableRoundTrip writes the request with net.Buffers (one writev) and
// reads the answer with conn.Read.
func (c *httpConn) portableRoundTrip(head, body []byte) error {
	c.bufs = append(c.bufs[:0], head)
	if len(body) > 0 {
		c.bufs = append(c.bufs, body)
	}
	if _, err := c.bufs.WriteTo(c.conn); err != nil {
		return err
	}
	for {
		if err := c.room(); err != nil {
			return err
		}
		m, err := c.conn.Read(c.buf[c.n:])
		if m > 0 {
			c.n += m
			if done, perr := c.p.advance(c.buf[:c.n]); perr != nil || done {
				return perr
			}
		}
		if err == io.EOF {
			return c.p.eof(c.buf[:c.n])
		}
		if err != nil {
			return err
		}
	}
}

// room makes sure buf has free space after n, growing it up to
// maxResponse.
func (c *httpConn) room() error {
	if c.n < len(c.buf) {
		return nil
	}
	if len(c.buf) >= maxResponse {
		return fmt.Errorf("%w: answer longer than %d bytes", errBadResponse, maxResponse)
	}
	b := make([]byte, min(2*len(c.buf), maxResponse))
	copy(b, c.buf[:c.n])
	c.buf = b
	return nil
}

// Transport error classes.
const (
	transportTimeout = iota
	transportClosed
	transportRefused
	transportBadResponse
	transportOther
	numTransport
)

var transportNames = [numTransport]string{"timeout", "conn_closed", "conn_refused", "bad_response", "transport"}

func transportClass(err error) int {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return transportTimeout
	case errors.Is(err, errBadResponse):
		return transportBadResponse
	case errors.Is(err, errConnClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return transportClosed
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection refused"):
		return transportRefused
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return transportTimeout
	}
	return transportOther
}
