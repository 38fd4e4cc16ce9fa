package load

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptServer is a TCP server on 127.0.0.1 that reads HTTP requests
// (head and Content-Length body) and answers each with answer(i, body),
// where i counts the requests over all connections. answer writes to the
// connection itself and returns false to close it.
type scriptServer struct {
	ln      net.Listener
	accepts atomic.Int64
	n       atomic.Int64
	wg      sync.WaitGroup
	// readDelay, set before the first request, makes the server wait that
	// long before it reads a connection's first request.
	readDelay time.Duration
}

func startScript(t *testing.T, answer func(i int, body []byte, w net.Conn) bool) *scriptServer {
	return startScriptDelayed(t, 0, answer)
}

func startScriptDelayed(t *testing.T, readDelay time.Duration, answer func(i int, body []byte, w net.Conn) bool) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{ln: ln, readDelay: readDelay}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.wg.Go(func() {
				defer c.Close()
				time.Sleep(s.readDelay)
				r := bufio.NewReader(c)
				for {
					body, err := readRequest(r)
					if err != nil {
						return
					}
					if !answer(int(s.n.Add(1)-1), body, c) {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *scriptServer) addr() string { return s.ln.Addr().String() }

// readRequest reads one request and returns its body.
func readRequest(r *bufio.Reader) ([]byte, error) {
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

// eachMode runs f with the fast path (where available) and the portable one.
func eachMode(t *testing.T, f func(t *testing.T, portable bool)) {
	modes := []bool{true}
	if rawIOAvailable {
		modes = []bool{false, true}
	}
	for _, portable := range modes {
		t.Run(fmt.Sprintf("portable=%v", portable), func(t *testing.T) { f(t, portable) })
	}
}

func testConn(addr string, timeout time.Duration, portable bool) *httpConn {
	c := newHTTPConn(addr, timeout)
	c.portable = c.portable || portable
	return c
}

var testHead = []byte("POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\n")

// roundTrip does one request with body "hello" and returns its status,
// body and transport error class (-1 for none).
func roundTrip(c *httpConn) (int, string, int) {
	code, err := c.do(testHead, []byte("hello"), time.Now())
	if err != nil {
		return code, "", transportClass(err)
	}
	return code, string(c.respBody()), -1
}

func TestHTTPConnKeepAlive(t *testing.T) {
	eachMode(t, func(t *testing.T, portable bool) {
		s := startScript(t, func(i int, body []byte, w net.Conn) bool {
			switch i % 3 {
			case 0: // Content-Length, in two writes
				fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Len")
				time.Sleep(time.Millisecond)
				fmt.Fprintf(w, "gth: %d\r\n\r\n%s", len(body), body)
			case 1: // chunked, a byte at a time
				for _, b := range []byte("HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbus\r\n1\r\ny\r\n0\r\n\r\n") {
					w.Write([]byte{b})
				}
			case 2:
				fmt.Fprintf(w, "HTTP/1.1 204 No Content\r\n\r\n")
			}
			return true
		})
		c := testConn(s.addr(), 5*time.Second, portable)
		defer c.close()
		for range 4 {
			f := func(wantCode int, wantBody string) {
				t.Helper()
				if code, body, class := roundTrip(c); code != wantCode || body != wantBody || class != -1 {
					t.Fatalf("got %d %q class %d; want %d %q", code, body, class, wantCode, wantBody)
				}
			}
			f(200, "hello")
			f(503, "busy")
			f(204, "")
		}
		if n := s.accepts.Load(); n != 1 {
			t.Fatalf("%d connections for 12 keep-alive requests", n)
		}
	})
}

func TestHTTPConnServerCloses(t *testing.T) {
	eachMode(t, func(t *testing.T, portable bool) {
		s := startScript(t, func(i int, body []byte, w net.Conn) bool {
			switch i {
			case 0: // says so: the client closes and dials again
				fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
				return false
			case 1: // does not say so
				fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				return false
			case 3: // HTTP/1.0, body to the close
				fmt.Fprintf(w, "HTTP/1.0 200 OK\r\n\r\nall of it")
				return false
			case 4: // closes in the middle of the body
				fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
				return false
			}
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		c := testConn(s.addr(), 5*time.Second, portable)
		defer c.close()
		f := func(wantCode int, wantBody string, wantClass int) {
			t.Helper()
			if code, body, class := roundTrip(c); code != wantCode || body != wantBody || class != wantClass {
				t.Fatalf("got %d %q class %d; want %d %q class %d", code, body, class, wantCode, wantBody, wantClass)
			}
		}
		f(200, "ok", -1)
		f(200, "ok", -1)
		time.Sleep(20 * time.Millisecond) // the close has arrived
		f(0, "", transportClosed)         // the next request finds the connection closed
		f(200, "ok", -1)                  // request 2, on a new connection
		// Request 3 is on that same connection: its body runs to the close.
		f(200, "all of it", -1)
		f(0, "", transportClosed) // request 4: the body is cut short
		f(200, "ok", -1)
		if n := s.accepts.Load(); n != 5 {
			t.Fatalf("%d connections, want 5", n)
		}
	})
}

func TestHTTPConnErrors(t *testing.T) {
	eachMode(t, func(t *testing.T, portable bool) {
		s := startScript(t, func(i int, body []byte, w net.Conn) bool {
			switch i {
			case 0:
				time.Sleep(400 * time.Millisecond) // slow: the client times out
			case 1:
				fmt.Fprintf(w, "SSH-2.0-OpenSSH\r\n\r\n")
			case 2:
				fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok+extra")
			}
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		c := testConn(s.addr(), 200*time.Millisecond, portable)
		defer c.close()
		f := func(wantCode int, wantClass int) {
			t.Helper()
			if code, _, class := roundTrip(c); code != wantCode || class != wantClass {
				t.Fatalf("got %d class %d; want %d class %d", code, class, wantCode, wantClass)
			}
		}
		t0 := time.Now()
		f(0, transportTimeout)
		if d := time.Since(t0); d < 150*time.Millisecond || d > 300*time.Millisecond {
			t.Errorf("timed out after %v (timeout 200ms)", d)
		}
		f(0, transportBadResponse)
		f(0, transportBadResponse)
		f(200, -1)

		ln, _ := net.Listen("tcp4", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		refused := testConn(addr, time.Second, portable)
		if _, _, class := roundTrip(refused); class != transportRefused {
			t.Fatalf("closed port: class %d", class)
		}
	})
}

func TestHTTPConnLarge(t *testing.T) {
	eachMode(t, func(t *testing.T, portable bool) {
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		// The server waits before it reads: the request does not fit in the
		// socket buffers, the first write is partial.
		s := startScriptDelayed(t, 50*time.Millisecond, func(i int, body []byte, w net.Conn) bool {
			if !bytes.Equal(body, big) {
				fmt.Fprintf(w, "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")
				return true
			}
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
			w.Write(body)
			return true
		})
		c := testConn(s.addr(), 5*time.Second, portable)
		defer c.close()
		if err := c.dial(); err != nil {
			t.Fatal(err)
		}
		c.conn.SetWriteBuffer(64 << 10)
		head := []byte("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n")
		for range 2 {
			code, err := c.do(head, big, time.Now())
			if err != nil || code != 200 || !bytes.Equal(c.respBody(), big) {
				t.Fatalf("got %d, %d bytes, %v", code, len(c.respBody()), err)
			}
		}
	})
}

// TestHTTPConnDeadlineRefresh: the deadline moves once less than 3/4 of the
// timeout is left, so requests keep working well past the first timeout.
func TestHTTPConnDeadlineRefresh(t *testing.T) {
	eachMode(t, func(t *testing.T, portable bool) {
		s := startScript(t, func(i int, body []byte, w net.Conn) bool {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		c := testConn(s.addr(), 100*time.Millisecond, portable)
		defer c.close()
		end := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(end) {
			if code, _, class := roundTrip(c); code != 200 {
				t.Fatalf("got %d class %d", code, class)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n := s.accepts.Load(); n != 1 {
			t.Fatalf("%d connections", n)
		}
	})
}
