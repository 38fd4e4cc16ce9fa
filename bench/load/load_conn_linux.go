//go:build linux

package load

import (
	"syscall"
	"unsafe"
)

// rawIOAvailable: on Linux a request and its answer go through one
// RawConn.Read (rawRoundTrip).
const rawIOAvailable = true

func bindRaw(c *httpConn) { c.step = c.rawStep }

// rawRoundTrip sends the request and reads its answer inside one
// RawConn.Read. The callback's first call writes the request (one writev)
// and reports "not ready" without trying a read: the answer cannot be there
// yet, and net.Conn.Read's first read would fail with EAGAIN on almost every
// request. This is safe because RawConn.Read clears the descriptor's read
// readiness before its first call, so the edge of the answer's arrival
// (after the write) always wakes it. The later calls read until the answer
// is complete or the socket is empty. A request the socket buffer does not
// take in one writev is finished with conn.Write, then read normally.
func (c *httpConn) rawRoundTrip(head, body []byte) error {
	c.head, c.body, c.sent, c.err = head, body, 0, nil
	defer func() { c.head, c.body = nil, nil }()
	err := c.raw.Read(c.step)
	if err == nil && c.err == nil && c.sent < len(head)+len(body) {
		err = c.writeRest()
		if err == nil {
			err = c.raw.Read(c.step)
		}
	}
	if err != nil {
		return err
	}
	return c.err
}

// writeRest writes what the first writev left (the socket buffer was
// full) through the poller.
func (c *httpConn) writeRest() error {
	if c.sent < len(c.head) {
		if _, err := c.conn.Write(c.head[c.sent:]); err != nil {
			return err
		}
		c.sent = len(c.head)
	}
	if _, err := c.conn.Write(c.body[c.sent-len(c.head):]); err != nil {
		return err
	}
	c.sent = len(c.head) + len(c.body)
	return nil
}

// rawStep is the RawConn.Read callback of rawRoundTrip; it returns true
// when done (c.err tells how).
func (c *httpConn) rawStep(fd uintptr) bool {
	if c.sent == 0 {
		n, err := writev(fd, c.head, c.body)
		if n > 0 {
			c.sent = n
		}
		if err != nil && err != syscall.EAGAIN {
			c.err = err
			return true
		}
		// Written in full: wait for the answer. Otherwise return to finish
		// the write through the poller.
		return c.sent < len(c.head)+len(c.body)
	}
	for {
		if err := c.room(); err != nil {
			c.err = err
			return true
		}
		b := c.buf[c.n:]
		r, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		m := int(r)
		switch {
		case errno == syscall.EAGAIN:
			return false
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			c.err = errno
			return true
		case m == 0:
			c.err = c.p.eof(c.buf[:c.n])
			return true
		}
		c.n += m
		if done, err := c.p.advance(c.buf[:c.n]); err != nil || done {
			c.err = err
			return true
		}
	}
}

// The socket is non-blocking: its reads and writes return at once, so they
// are made as raw system calls, without telling the scheduler (a syscall
// the scheduler is told of costs a state change on entry and exit, and a
// descheduled one makes sysmon hand the P to another thread and keep
// polling every 20 µs: 7 % of the generator's CPU before).

// writev writes head and body (body may be empty) in one system call.
func writev(fd uintptr, head, body []byte) (int, error) {
	var iov [2]syscall.Iovec
	iov[0].Base = &head[0]
	iov[0].SetLen(len(head))
	k := 1
	if len(body) > 0 {
		iov[1].Base = &body[0]
		iov[1].SetLen(len(body))
		k = 2
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}
