package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveOn serves s on a loopback listener until the test ends and returns
// its address.
func serveOn(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	return ln.Addr().String()
}

// roundTrip writes raw to a new connection and reads one answer (a 0
// status when none came within 3 s).
func roundTrip(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	return roundTripWithin(t, addr, raw, 3*time.Second)
}

// roundTripWithin is roundTrip, waiting for the answer at most wait.
func roundTripWithin(t *testing.T, addr, raw string, wait time.Duration) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMalformedRequestAnswerEchoesNothing: a request fasthttp cannot parse
// is answered with the kind of problem only: nothing of the head (a Bearer
// token, a query with an email) comes back.
func TestMalformedRequestAnswerEchoesNothing(t *testing.T) {
	s := testServer(t, nil)
	addr := serveOn(t, s)
	const secret = "Bearer s3cret-t0ken-value"
	const email = "alice.leak@example.com"
	var many strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&many, "X-Header-%d: v\r\n", i)
	}
	for _, c := range []struct {
		name, raw string
		status    int
		kind      string
	}{
		{"1000 headers", "GET /v1/pixel?id=1&em=" + email + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + secret + "\r\n" + many.String() + "\r\n",
			431, "HTTP head too large"},
		{"a header without colon", "GET /v1/pixel?id=1&em=" + email + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + secret + "\r\nBad Header " + email + "\r\n\r\n",
			400, "request: malformed HTTP head"},
		{"a bad Content-Length", "POST /v1/conversions?em=" + email + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + secret + "\r\nContent-Length: 12" + email + "\r\n\r\n",
			400, "request: malformed HTTP head (invalid or repeated Content-Length)"},
		{"a bad request line", "GET  /v1/pixel?em=" + email + " HTTP/1.1 " + secret + "\r\nHost: x\r\n\r\n",
			400, "request: malformed HTTP"},
	} {
		status, body := roundTrip(t, addr, c.raw)
		t.Logf("%s: %d %s", c.name, status, body)
		for _, leak := range []string{"s3cret", "alice.leak", "X-Header", "Authorization", "Bad Header"} {
			if strings.Contains(body, leak) {
				t.Fatalf("%s: the answer echoes %q: %d %s", c.name, leak, status, body)
			}
		}
		if status != c.status || !strings.Contains(body, c.kind) {
			t.Fatalf("%s: %d %s, want %d %q", c.name, status, body, c.status, c.kind)
		}
	}
}
