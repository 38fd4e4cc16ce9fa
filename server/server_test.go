package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
)

// TestWriteErrorHeaders: the headers an error status calls for survive the
// reset of the response (Allow set by the handler before the 405, Retry-After
// for 429 and 503, WWW-Authenticate for 401).
func TestWriteErrorHeaders(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	f := func(e *apierr.Error, preset, header, want string) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		if preset != "" {
			ctx.Response.Header.Set(header, preset)
		}
		s.writeError(&ctx, e)
		if got := string(ctx.Response.Header.Peek(header)); got != want || ctx.Response.StatusCode() != e.Status {
			t.Fatalf("%d: %s = %q, want %q", ctx.Response.StatusCode(), header, got, want)
		}
	}
	f(apierr.New(429, apierr.CodeTooMany, "overloaded"), "", "Retry-After", "1")
	f(apierr.Unavailable("journal: no space"), "", "Retry-After", "1")
	f(apierr.New(405, apierr.CodeInvalidParameter, "method not allowed"), "GET, POST", "Allow", "GET, POST")
	f(apierr.Unauthorized("unknown token"), "", "WWW-Authenticate", `Bearer realm="cpafeed"`)
	f(apierr.BadRequest("bad"), "", "Retry-After", "")
	f(apierr.BadRequest("bad"), "GET", "Allow", "") // a stale header of another answer is dropped
}

// TestHTTPLogRedactsRequestsAndAddresses: fasthttp's messages about
// connections it could not serve quote the request (a URL may carry clear
// identifiers) and name the client's address; the log keeps neither.
func TestHTTPLogRedactsRequestsAndAddresses(t *testing.T) {
	var buf bytes.Buffer
	p := slogPrinter{slog.New(slog.NewTextHandler(&buf, nil))}
	f := func(format string, args []any, want string) {
		t.Helper()
		buf.Reset()
		p.Printf(format, args...)
		got := buf.String()
		for _, leak := range []string{"leak@example.com", "203.0.113.9", "2001:db8::7", "Bad Header"} {
			if strings.Contains(got, leak) {
				t.Fatalf("log holds %q: %s", leak, got)
			}
		}
		if !strings.Contains(got, want) {
			t.Fatalf("log %s lacks %q", got, want)
		}
	}
	remote := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 55123}
	remote6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 443}
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}
	headerErr := errors.New(`error when reading request headers: malformed mime header: missing colon: "Bad Header": buffer size=99, contents: "GET /v1/pixel?id=1&em=leak@example.com HTTP/1.1\r\nHost: x\r\n\"quoted\"\r\n"`)
	f("error when serving connection %q<->%q: %v", []any{local, remote, headerErr}, `missing colon: \"...\": buffer size=99, contents: \"...\"`)
	f("error when serving connection %q<->%q: %v", []any{local, remote6, errors.New("read tcp 127.0.0.1:8080->[2001:db8::7]:443: use of closed network connection")}, "read tcp [addr]->[addr]: use of closed network connection")
	f("The number of connections from %s exceeds MaxConnsPerIP=%d", []any{net.ParseIP("203.0.113.9"), 10}, "MaxConnsPerIP=10")
	f("%.3f %s - %s", []any{1.5, "#0001 - 127.0.0.1:8080<->203.0.113.9:1 - GET /v1/pixel?em=leak@example.com", "x"}, "1.500 [redacted] - [redacted]")
	f("The incoming connection cannot be served, because %d concurrent connections are served.", []any{100000}, "because 100000 concurrent")
}

func TestRefreshWait(t *testing.T) {
	for _, c := range []struct{ interval, took, want time.Duration }{
		{2 * time.Second, 35 * time.Millisecond, 2 * time.Second},  // 100k segments: the interval
		{2 * time.Second, 200 * time.Millisecond, 2 * time.Second}, // exactly a tenth
		{2 * time.Second, 500 * time.Millisecond, 5 * time.Second}, // a million: stretched
	} {
		if got := refreshWait(c.interval, c.took); got != c.want {
			t.Errorf("refreshWait(%v, %v) = %v, want %v", c.interval, c.took, got, c.want)
		}
	}
}

// TestLoggerRateLimitsRepeatedErrors: a failing disk makes every request
// log the same ERROR lines; at most a burst of each message passes per
// period, and the next line that passes says how many were dropped. Other
// messages and INFO lines are not held back.
func TestLoggerRateLimitsRepeatedErrors(t *testing.T) {
	var buf bytes.Buffer
	h := newRateLimited(slog.NewTextHandler(&buf, nil), 10*time.Second, 5)
	now := time.Unix(1_800_000_000, 0)
	h.state.now = func() time.Time { return now }
	log := slog.New(h).With("component", "journal")
	for range 1000 {
		log.Error("journal: flush failed; records dropped", "err", "no space left on device")
		log.Error("request failed", "status", 503)
		log.Info("ingest", "n", 1)
	}
	if n := strings.Count(buf.String(), "flush failed"); n != 5 {
		t.Fatalf("%d flush-failed lines in one period, want 5", n)
	}
	if n := strings.Count(buf.String(), "request failed"); n != 5 {
		t.Fatalf("%d request-failed lines, want 5", n)
	}
	if n := strings.Count(buf.String(), "msg=ingest"); n != 1000 {
		t.Fatalf("%d INFO lines, want all 1000", n)
	}
	buf.Reset()
	now = now.Add(10 * time.Second)
	log.Error("journal: flush failed; records dropped", "err", "no space left on device")
	if !strings.Contains(buf.String(), "suppressed=995") || !strings.Contains(buf.String(), "component=journal") {
		t.Fatalf("the next period's line: %q", buf.String())
	}
}

// TestServerErrorLoggedWithItsTraceID: a 5xx answer's fbtrace_id is in the
// log line of that failure, so an operator finds the cause a client quotes.
func TestServerErrorLoggedWithItsTraceID(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil)), errLog: rateLog{every: time.Second}}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, nil, nil)
	s.writeError(&ctx, apierr.Unavailable("journal: cannot persist").WithCause(errors.New("disk full")))
	var out struct {
		Error struct {
			Trace string `json:"fbtrace_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil || !strings.HasPrefix(out.Error.Trace, "A") || len(out.Error.Trace) != 25 {
		t.Fatalf("answer %s: %v", ctx.Response.Body(), err)
	}
	if !strings.Contains(buf.String(), "trace_id="+out.Error.Trace) {
		t.Fatalf("log %q lacks trace_id=%s", buf.String(), out.Error.Trace)
	}
}
