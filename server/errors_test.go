package server

import (
	"log/slog"
	"testing"

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
