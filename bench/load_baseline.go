package bench

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
