package load

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestBudgetHandler(t *testing.T) {
	serve := func(h fasthttp.RequestHandler) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/score")
		h(&ctx)
		return &ctx
	}
	for _, tc := range []struct {
		size, want int
	}{{0, len(bareBody)}, {1, len(bareBody)}, {2, 2}, {1265, 1265}} {
		ctx := serve(BudgetHandler(0, tc.size))
		body := ctx.Response.Body()
		if ctx.Response.StatusCode() != 200 || len(body) != tc.want {
			t.Errorf("size %d: status %d, %d bytes, want 200 and %d", tc.size, ctx.Response.StatusCode(), len(body), tc.want)
		}
		if body[0] != '{' || body[len(body)-1] != '}' || string(ctx.Response.Header.ContentType()) != "application/json" {
			t.Errorf("size %d: not a JSON answer: %q…, %q", tc.size, body[:2], ctx.Response.Header.ContentType())
		}
	}
	// A xorshift step is three dependent shift-xors: well over 0.3 ns on
	// any machine, unless the timed loop was optimized away.
	if ns := burnNanosPerIter(); ns < 0.3 {
		t.Errorf("calibration: %.3f ns per iteration", ns)
	}
	// The work is done: a request of 2 ms of work takes at least half of
	// that (the calibration is the fastest timing, so the work is not
	// shorter than asked; wall time only adds to it).
	h := BudgetHandler(2*time.Millisecond, 0)
	start := time.Now()
	serve(h)
	if d := time.Since(start); d < time.Millisecond {
		t.Errorf("2 ms of work took %v", d)
	}
}
