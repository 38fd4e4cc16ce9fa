package load

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// bareBody is the fixed answer of the baseline handler: 200 bytes of JSON,
// about the size of a score answer for one imp and one campaign.
const bareBody = `{"id":"baseline","imp":[{"id":"1","campaigns":[{"campaign":"baseline","cvr":0.0004,"cvr_lo":0.0002,"cvr_hi":0.0007,"vtr":0.91,"n_eff":1234,"conversions":3,"level":2,"bid_cpm":16,"multiplier":1.01}]}]}`

// BareHandler is the baseline handler: it answers every request with 200 and
// bareBody, doing nothing else. Requests are still read in full by fasthttp.
func BareHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(bareBody)
}

// StartBareServer serves BareHandler on a free 127.0.0.1 port. It returns the
// base URL and a function that stops the server (waiting at most 5 s for
// open connections).
func StartBareServer() (url string, stop func() error, err error) {
	return StartServer(BareHandler)
}

// StartServer serves h on a free 127.0.0.1 port with fasthttp (timeouts set,
// keep-alive on). It returns the base URL and a function that stops it (safe to call more than once).
func StartServer(h fasthttp.RequestHandler) (url string, stop func() error, err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &fasthttp.Server{
		Handler:            h,
		Name:               "cpafeed-bench-bare",
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        time.Minute,
		MaxRequestBodySize: 16 << 20,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stopErr = srv.ShutdownWithContext(ctx)
			if err := <-done; stopErr == nil {
				stopErr = err
			}
		})
		return stopErr
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// BudgetHandler is the baseline handler made to do a fixed amount of CPU
// work per request before it answers with size bytes of JSON (the bare
// handler's 200-byte answer when size < 2).
// Loaded like the bare handler, it tells how much work a handler may do on
// this machine and still reach a given fraction of the bare rate: the
// budget a target such as "70 % of a bare handler" leaves to scoring. The
// work is a fixed number of iterations of an arithmetic loop, calibrated
// once (the fastest of several timings), so a descheduled thread does not
// shorten it the way a wall-clock spin would.
func BudgetHandler(work time.Duration, size int) fasthttp.RequestHandler {
	body := []byte(bareBody)
	if size >= 2 {
		body = make([]byte, size)
		for i := range body {
			body[i] = ' '
		}
		body[0], body[len(body)-1] = '{', '}'
	}
	iters := uint64(float64(work.Nanoseconds()) / burnNanosPerIter())
	return func(ctx *fasthttp.RequestCtx) {
		if burn(iters) == 1 { // never: keeps the loop from being dropped
			ctx.SetStatusCode(fasthttp.StatusTeapot)
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}
}

// burn runs n iterations of a xorshift step and returns the state.
func burn(n uint64) uint64 {
	x := uint64(88172645463325252)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// burnSink keeps the calibration's loops from being optimized away.
var burnSink uint64

// burnNanosPerIter times burn: the fastest of five runs of a million
// iterations.
func burnNanosPerIter() float64 {
	const n = 1 << 20
	best := time.Duration(1<<63 - 1)
	for range 5 {
		t := time.Now()
		burnSink += burn(n)
		best = min(best, time.Since(t))
	}
	return max(float64(best.Nanoseconds())/n, 1e-3)
}
