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

	"github.com/valyala/fasthttp"
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

// call runs the server's handler on one request built from a raw head and
// body, and returns the status and the answer body.
func call(s *Server, method, uri, body string, headers ...string) (int, string) {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	req.SetBodyString(body)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}, nil)
	s.handle(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

const (
	advToken    = "dev-advertiser-token"
	bidderToken = "dev-bidder-token"
)

// TestBodyInflatedOnlyForKnownCaller: where the token travels outside the
// body (Bearer header, Meta's access_token in the query), an unknown token
// is refused before the body is decompressed: a body that is not even
// valid gzip gets 401, not 400. Where the token may be inside the body
// (Meta's path without access_token in the query), the body is read.
func TestBodyInflatedOnlyForKnownCaller(t *testing.T) {
	s := testServer(t, nil)
	const notGzip = "this is not gzip"
	f := func(method, uri, token string, want int) {
		t.Helper()
		h := []string{"Content-Encoding: gzip", "Content-Type: application/json"}
		if token != "" {
			h = append(h, "Authorization: Bearer "+token)
		}
		if status, body := call(s, method, uri, notGzip, h...); status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, uri, status, body, want)
		}
	}
	f("POST", "/v1/conversions?dataset=1234567890", "wrong-token", 401)
	f("POST", "/v1/conversions?dataset=1234567890", "", 401)
	f("DELETE", "/v1/identities", "wrong-token", 401)
	f("POST", "/v24.0/1234567890/events?access_token=wrong-token", "", 401)
	f("POST", "/v1/bids", "wrong-token", 401)
	f("POST", "/v1/exposures", advToken, 403)
	// Known callers' bodies are read (and found not to be gzip).
	f("POST", "/v1/conversions?dataset=1234567890", advToken, 400)
	f("POST", "/v24.0/1234567890/events?access_token="+advToken, "", 400)
	f("POST", "/v24.0/1234567890/events", "", 400) // the token may be in the body
	f("POST", "/v1/pixel?id=1234567890&ev=Purchase", "", 400)
	// A GET pixel's body is not read at all.
	f("GET", "/v1/pixel?id=1234567890&ev=Purchase", "", 200)
}

// TestLargeBodyOfUnknownCallerNotRead: a body over preAuthBodyBytes on an
// endpoint with the token outside the body is not even read for an unknown
// token: the answer (401) comes at once, before the announced body is sent.
func TestLargeBodyOfUnknownCallerNotRead(t *testing.T) {
	s := testServer(t, nil)
	addr := serveOn(t, s)
	head := func(path, token string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
			"\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
	}
	for _, path := range []string{"/v1/conversions?dataset=1234567890", "/v1/bids", "/v1/identities"} {
		status, body := roundTrip(t, addr, head(path, "wrong-token"))
		if status != 401 || !strings.Contains(body, "Authorization") {
			t.Fatalf("%s, unknown token, body announced but not sent: %d %s", path, status, body)
		}
	}
	status, body := roundTrip(t, addr, "POST /v24.0/1234567890/events?access_token=wrong HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
	if status != 401 || !strings.Contains(body, "access_token") {
		t.Fatalf("Meta path, unknown access_token: %d %s", status, body)
	}
	// A known token's body is waited for (no answer before it comes).
	if status, body := roundTripWithin(t, addr, head("/v1/conversions?dataset=1234567890", advToken), 500*time.Millisecond); status != 0 {
		t.Fatalf("known token, body not sent yet: answered %d %s", status, body)
	}
	// Small bodies are read first and refused by the handler, as before.
	if status, body := roundTrip(t, addr, "POST /v1/bids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 2\r\n\r\n{}"); status != 401 {
		t.Fatalf("small body, unknown token: %d %s", status, body)
	}
}

// TestLargeBodyOfTokenlessEndpointNotRead: an endpoint anyone may call
// (win and loss notices, VAST beacons, the pixel, probes) refuses a body
// over preAuthBodyBytes unread, 413; before, a stranger's body was read up
// to http.max_body_bytes (8 MiB) into memory. Small bodies pass as before.
func TestLargeBodyOfTokenlessEndpointNotRead(t *testing.T) {
	s := testServer(t, nil)
	addr := serveOn(t, s)
	for _, path := range []string{"/v1/win?auction=a&imp=1&campaign=demo-ctv-purchase&price=1", "/v1/vast?auction=a&imp=1&campaign=demo-ctv-purchase&ev=start",
		"/v1/loss?auction=a&imp=1&campaign=demo-ctv-purchase", "/v1/pixel?id=1234567890&ev=Purchase", "/healthz", "/metrics", "/nope"} {
		raw := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
		status, body := roundTripWithin(t, addr, raw, 2*time.Second)
		if status != 413 || !strings.Contains(body, "no token") {
			t.Fatalf("%s, 1 MB body announced but not sent: %d %s, want 413 at once", path, status, body)
		}
		chunked := "POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"10000\r\n" + strings.Repeat("a", 0x10000) + "\r\n" + "10\r\n" + strings.Repeat("a", 0x10) + "\r\n0\r\n\r\n"
		if status, body := roundTrip(t, addr, chunked); status != 413 {
			t.Fatalf("%s, chunked body over %d bytes: %d %s, want 413", path, preAuthBodyBytes, status, body)
		}
	}
	if status, body := roundTrip(t, addr, "POST /v1/win?auction=a&imp=1&campaign=demo-ctv-purchase&price=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"); status != 200 {
		t.Fatalf("win notice with a small body: %d %s", status, body)
	}
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
