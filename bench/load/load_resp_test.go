package load

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// parseFed feeds in to a respParser step bytes at a time (all at once when
// step ≤ 0), then reports the close of the connection if the answer is not
// complete.
func parseFed(in []byte, step int) (p respParser, body []byte, err error) {
	b := append([]byte(nil), in...) // the parser decodes chunks in place
	if step <= 0 {
		step = len(b)
	}
	p.reset()
	done := false
	for n := min(step, len(b)); ; n = min(n+step, len(b)) {
		if done, err = p.advance(b[:n]); err != nil {
			return p, nil, err
		}
		if done || n == len(b) {
			break
		}
	}
	if !done {
		if err = p.eof(b); err != nil {
			return p, nil, err
		}
	}
	return p, b[p.bodyStart:p.bodyEnd], nil
}

func TestRespParser(t *testing.T) {
	f := func(in string, status int, body string, closeConn bool, wantErr string) {
		t.Helper()
		steps := []int{0, 1, 7}
		if strings.Contains(wantErr, "after the answer") {
			// Delivered in pieces, the answer is complete before the
			// extra bytes come: they are the next answer's problem.
			steps = steps[:1]
		}
		for _, step := range steps {
			p, got, err := parseFed([]byte(in), step)
			if wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), wantErr) {
					t.Errorf("%q (step %d): got error %v, want %q", in, step, err, wantErr)
				}
				continue
			}
			if err != nil || p.status != status || string(got) != body || p.close != closeConn {
				t.Errorf("%q (step %d): got %d %q close=%v err %v; want %d %q close=%v", in, step, p.status, got, p.close, err, status, body, closeConn)
			}
		}
	}
	f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, "")
	f("HTTP/1.1 503 Service Unavailable\r\ncontent-length:  2 \r\nConnection: close\r\n\r\nno", 503, "no", true, "")
	f("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, "", false, "")
	f("HTTP/1.1 204 No Content\r\n\r\n", 204, "", false, "")
	f("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, "", false, "")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, "hello, world", false, "")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 3\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", 200, "0123456789", false, "")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "", false, "")
	f("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, "")
	f("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, "")
	f("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, "")
	f("HTTP/1.1 200 OK\r\n\r\nto the end", 200, "to the end", true, "")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", 200, "raw", true, "")
	f("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", 201, "x", false, "")
	f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, "")

	f("", 0, "", false, "connection closed before the answer")
	f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 0, "", false, "connection closed before the answer")
	f("HTTP/1.1 200 OK\r\nContent-Len", 0, "", false, "connection closed before the answer")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 0, "", false, "connection closed before the answer")
	f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, world", 0, "", false, "7 bytes after the answer")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP", 0, "", false, "4 bytes after the answer")
	f("hello", 0, "", false, "does not start with HTTP/")
	f("HTTP/2 200\r\n\r\n", 0, "", false, "status line")
	f("HTTP/1.1 2000 OK\r\n\r\n", 0, "", false, "status line")
	f("HTTP/1.1 20x OK\r\n\r\n", 0, "", false, "status line")
	f("HTTP/1.1 099 Low\r\n\r\n", 0, "", false, "status 99")
	f("HTTP/1.1 101 Switching Protocols\r\n\r\n", 0, "", false, "status 101")
	f("HTTP/1.1 200 OK\nContent-Length: 0\n\n", 0, "", false, "not ended by CRLF")
	f("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 0, "", false, "header line")
	f("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 0, "", false, "header line")
	f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "", false, "Content-Length")
	f("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 0, "", false, "Content-Length")
	f("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n", 0, "", false, "Content-Length")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, "", false, "chunk size")
	f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n0\r\n\r\n", 0, "", false, "no CRLF after chunk data")
	f("HTTP/1.1 200 OK\r\n"+strings.Repeat("X-Pad: 0123456789\r\n", 4000)+"\r\n", 0, "", false, "header block longer than")
}

// FuzzRespParser: any input, delivered in any pieces, frames the same way,
// and a framed body is within the input.
func FuzzRespParser(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step < 1 || step > 64 {
			step = 1 + step&63
		}
		step = max(step, len(in)/256) // long inputs in at most ~256 pieces
		p1, b1, err1 := parseFed(in, 0)
		p2, b2, err2 := parseFed(in, step)
		if err1 != nil && err2 == nil && strings.Contains(err1.Error(), "after the answer") {
			return // in pieces, the answer was complete before the extra bytes came
		}
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %v; in pieces of %d: %v", err1, step, err2)
		}
		if err1 != nil {
			if !errors.Is(err1, errBadResponse) && !errors.Is(err1, errConnClosed) {
				t.Fatalf("error of no class: %v", err1)
			}
			return
		}
		if p1.status != p2.status || p1.close != p2.close || !bytes.Equal(b1, b2) {
			t.Fatalf("whole: %d %q close=%v; in pieces of %d: %d %q close=%v", p1.status, b1, p1.close, step, p2.status, b2, p2.close)
		}
		if p1.status < 200 || p1.status > 999 || len(b1) > len(in) {
			t.Fatalf("status %d, body of %d bytes from %d", p1.status, len(b1), len(in))
		}
	})
}
