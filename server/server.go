package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/journal"
)

// Server is one cpafeed process: its state, HTTP server and background loops.
type Server struct {
	cfg     Config
	log     *slog.Logger
	tenants *tenants
	dec     *decoders
	http    *fasthttp.Server
	ready   atomic.Bool
	// draining is set at the shutdown signal: /readyz answers 503
	// "draining" from then on.
	draining atomic.Bool
	errLog   rateLog // server errors: at most one line a second
	// inflight counts requests being processed, by class (bid time or
	// not), for load shedding.
	inflight [2]atomic.Int64
	started  time.Time

	st            *state
	campaignOwner map[string]string  // campaign id -> advertiser
	cancel        context.CancelFunc // stops the background loops
	bg            chan struct{}      // closed when they stopped
}

// NewLogger builds the slog logger described by c.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newRateLimited(h, logRepeatPeriod, logRepeatBurst))
}

// At most logRepeatBurst WARN or ERROR lines with the same message are
// logged per logRepeatPeriod; the next one says how many were suppressed.
const (
	logRepeatPeriod = 10 * time.Second
	logRepeatBurst  = 5
)

// New builds a Server from a validated config. It refuses development
// credentials on an address other than loopback and warns about them on
// loopback.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if dev := cfg.DevCredentials(); len(dev) > 0 {
		if err := cfg.devCredentialsRefused(); err != nil {
			return nil, err
		}
		logger.Warn("development credentials configured; fine on loopback, never in production", "fields", strings.Join(dev, ","))
	}
	s := &Server{
		cfg:     cfg,
		log:     logger,
		tenants: newTenants(cfg),
		dec:     newDecoders(cfg.HTTP.MaxDecompressedBytes, cfg.HTTP.MaxInflateBytes),
		started: time.Now(),
		errLog:  rateLog{every: time.Second},
	}
	cfg.Journal.Logger = logger
	cfg.Exposures.Logger = logger
	st, err := newState(cfg, s.tenants, logger)
	if err != nil {
		return nil, err
	}
	s.st = st
	s.campaignOwner = map[string]string{}
	for _, c := range cfg.Campaigns {
		s.campaignOwner[c.ID] = c.Advertiser
	}
	s.http = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.connError,
		Name:                  "cpafeed",
		ReadTimeout:           cfg.HTTP.ReadTimeout,
		WriteTimeout:          cfg.HTTP.WriteTimeout,
		IdleTimeout:           cfg.HTTP.IdleTimeout,
		MaxRequestBodySize:    cfg.HTTP.MaxBodyBytes,
		HeaderReceived:        s.headerReceived,
		Concurrency:           cfg.HTTP.MaxConns,
		MaxConnsPerIP:         max(cfg.HTTP.MaxConnsPerIP, 0), // -1: no bound
		SecureErrorLogMessage: true,                           // fasthttp's errors quote no request bytes
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		CloseOnShutdown:       true,
		ReduceMemoryUsage:     false,
		Logger:                slogPrinter{logger},
	}
	h := cfg.HTTP
	how := "http.max_conns"
	if h.maxConnsDefault {
		how = "default: the open-file limit less a reserve"
	}
	logger.Info("connection limits", "max_conns", h.MaxConns, "chosen_by", how, "open_file_limit", h.OpenFileLimit,
		"max_conns_per_ip", h.MaxConnsPerIP, "max_inflate_bytes", h.MaxInflateBytes)
	return s, nil
}

// Serve serves HTTP on ln until Shutdown. A failed accept that may succeed
// later (no file descriptor left) is retried with a backoff, not fatal.
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(newRetryListener(ln, s.log)) }

// Recover rebuilds the in-memory state from disk, publishes the first
// estimates, starts the background loops and marks the server ready.
func (s *Server) Recover() error {
	rep, err := s.st.recoverState()
	if err != nil {
		return err
	}
	s.log.Info("journal replayed", "records", rep.Records, "bytes", rep.Bytes, "segments", rep.Segments,
		"truncated_bytes", rep.TruncatedBytes, "dropped_ranges", len(rep.Dropped), "duration", rep.Duration.Round(time.Millisecond).String())
	// From a snapshot the model already has its fitted priors and a table:
	// the background loop publishes the replayed counts right away. Without
	// one, fit now so the first answers use the replayed evidence.
	if s.st.lastSnapshot == 0 {
		s.st.eng.Model.Refit(time.Now().Unix())
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.bg = cancel, make(chan struct{})
	go func() { defer close(s.bg); s.st.background(ctx) }()
	s.ready.Store(true)
	return nil
}

// Ready reports whether the state is rebuilt and ingest is accepted.
func (s *Server) Ready() bool { return s.ready.Load() }

// Shutdown stops accepting connections, waits for in-flight requests (until
// ctx ends) and flushes the state to disk. /readyz answers 503 "draining"
// from the start; a request still arriving (its body being read) is served
// as usual; once the connections are closed (or ctx ended), requests are
// answered 503 while the state closes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	err := s.http.ShutdownWithContext(ctx)
	s.ready.Store(false)
	if s.cancel != nil {
		s.cancel()
		<-s.bg
	}
	// A snapshot at shutdown makes the next start fast (only when the
	// state was recovered: before that there is nothing new to keep).
	if cerr := s.st.close(s.cancel != nil && !s.cfg.Snapshot.Disable); err == nil {
		err = cerr
	}
	return err
}

// Drain makes /readyz answer 503 "draining" from now on, so that load
// balancers stop sending requests; every route is still served.
func (s *Server) Drain() { s.draining.Store(true) }

// Run listens on cfg.Listen, recovers state and serves until ctx is done.
// Then it drains: /readyz answers 503 "draining" for http.drain_delay
// (cut short when hurry is closed, e.g. by a second signal) while every
// request is still served; then it stops accepting, finishes the requests
// in flight, snapshots and returns nil after a clean shutdown.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, hurry <-chan struct{}) error {
	s, err := New(cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen: %w", err)
	}
	logger.Info("cpafeed listening", "addr", ln.Addr().String(), "data_dir", cfg.DataDir)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve(ln) }()

	start := time.Now()
	if err := s.Recover(); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(shutdownCtx)
		if errors.Is(err, journal.ErrCorrupt) {
			return fmt.Errorf("cannot recover state: %w (from the command line: cpafeed serve --repair)", err)
		}
		return fmt.Errorf("cannot recover state: %w", err)
	}
	logger.Info("cpafeed ready", "recovery", time.Since(start).Round(time.Millisecond).String())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("http server stopped: %w", err)
		}
	}
	s.Drain()
	if d := cfg.HTTP.Drain(); d > 0 && ctx.Err() != nil {
		logger.Info("cpafeed draining: /readyz answers 503, requests are still served (a second signal stops at once)", "drain_delay", d.String())
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-hurry:
			t.Stop()
			logger.Info("drain cut short by a second signal")
		}
	}
	logger.Info("cpafeed shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("cpafeed stopped")
	return nil
}

// slogPrinter adapts slog to fasthttp's Logger.
type slogPrinter struct{ l *slog.Logger }

// Printf logs a message of fasthttp without the raw bytes it carries:
// fasthttp quotes the request it could not parse (whose URL may hold clear
// identifiers, e.g. a pixel's em=) and names the client's address, and
// neither may reach a log. Numbers are kept; other arguments are replaced by
// "[redacted]", errors keep their text with quoted parts and IP addresses
// redacted.
func (p slogPrinter) Printf(format string, args ...any) {
	safe := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int, int64, uint64, uint32, int32, float64, time.Duration:
			safe[i] = v
		case error:
			safe[i] = redactLogText(v.Error())
		default:
			safe[i] = "[redacted]"
		}
	}
	p.l.Warn("http", "msg", redactLogText(fmt.Sprintf(format, safe...)))
}

// ipLike matches IPv4 and IPv6 addresses, with an optional port.
var ipLike = regexp.MustCompile(`(?i)\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b|\[?\b[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}(%\w+)?\]?(:\d+)?`)

// redactLogText replaces every double-quoted part of s (Go %q quoting, as
// fasthttp's errors quote request bytes) with "..." and every IP address
// with [addr].
func redactLogText(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if s[i+1:min(j, len(s))] == "[redacted]" {
			b.WriteString(`"[redacted]"`)
		} else {
			b.WriteString(`"..."`)
		}
		if j >= len(s) {
			break
		}
		s = s[j+1:]
	}
	return ipLike.ReplaceAllString(b.String(), "[addr]")
}

// connError answers errors fasthttp finds before a handler runs (body too
// large, malformed request, timeouts) with the JSON error shape. The answer
// names the kind of problem and never echoes the request: fasthttp's error
// quotes the raw head, whose Authorization header and query (a pixel's em=)
// must not come back.
func (s *Server) connError(ctx *fasthttp.RequestCtx, err error) {
	httpConnRefused.Inc()
	var e *apierr.Error
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		// Also the body of an unknown caller, refused unread
		// (headerReceived).
		if aerr := s.preAuth(&ctx.Request.Header); aerr != nil {
			e = apierr.As(aerr)
		} else if r := routeOfHeader(&ctx.Request.Header); r != routeNotFound && r.role() == roleNone {
			e = apierr.New(413, apierr.CodeInvalidParameter, "body: larger than %d bytes (an endpoint that takes no token)", preAuthBodyBytes)
		} else {
			// A chunked body's error comes with the head reset: the route
			// is not known here.
			e = apierr.New(413, apierr.CodeInvalidParameter, "body: larger than %d bytes (%d on an endpoint that takes no token)", s.cfg.HTTP.MaxBodyBytes, preAuthBodyBytes)
		}
	case errors.As(err, &te) && te.Timeout():
		e = apierr.New(408, apierr.CodeInvalidParameter, "request: not read within %s", s.cfg.HTTP.ReadTimeout)
	case errors.As(err, new(*fasthttp.ErrSmallBuffer)):
		e = apierr.New(431, apierr.CodeInvalidParameter, "request: HTTP head too large (request line and headers over %d bytes, or too many headers)", headBufferBytes)
	default:
		e = apierr.BadRequest("request: malformed HTTP %s", malformedKind(err))
	}
	s.writeError(ctx, e)
}

// headBufferBytes is fasthttp's default read buffer, which bounds a
// request's line and headers.
const headBufferBytes = 4096

// malformedKind names the kind of a request fasthttp could not parse, from
// its error, without quoting any of the request.
func malformedKind(err error) string {
	if errors.As(err, new(*fasthttp.ErrBrokenChunk)) {
		return "body (broken chunked encoding)"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "request (cut short)"
	}
	msg := strings.ToLower(err.Error())
	for _, k := range [...]struct{ in, kind string }{
		{"transfer-encoding", "head (unsupported or repeated Transfer-Encoding)"},
		{"content-length", "head (invalid or repeated Content-Length)"},
		{"host header", "head (more than one Host header)"},
		{"http version", "head (unsupported HTTP version)"},
		{"method", "head (missing or unknown method)"},
		{"uri", "head (invalid request URI)"},
		{"whitespace", "head (malformed request line)"},
		{"header", "head (invalid header)"},
	} {
		if strings.Contains(msg, k.in) {
			return k.kind
		}
	}
	return "request"
}

// writeError writes err in the API's one error shape, with the headers its
// status calls for (Allow, Retry-After, WWW-Authenticate). A server error
// (5xx) is logged with its cause (which the answer never holds), at most
// once a second with the count of those not logged.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	e := apierr.As(err)
	if e.Status >= 500 {
		if ok, skipped := s.errLog.allow(); ok {
			cause := err.Error()
			if e.Cause != nil {
				cause = e.Cause.Error()
			}
			s.log.Error("request failed", "trace_id", traceID(ctx), "path", string(ctx.Path()), "status", e.Status, "err", e.Message, "cause", cause, "not_logged", skipped)
		}
	}
	allow := string(ctx.Response.Header.Peek("Allow")) // set with a 405 by only
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	switch e.Status {
	case 401:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="cpafeed"`)
	case 405:
		if allow != "" {
			ctx.Response.Header.Set("Allow", allow)
		}
	case 429, 503: // shed, not ready, or the journal cannot persist: retry
		ctx.Response.Header.Set("Retry-After", "1")
	}
	ctx.SetBody(apierr.AppendJSON(nil, e, traceID(ctx)))
}

// Spawn starts a server in this process on a free loopback port with cfg
// (its Listen is replaced) and waits until it is ready. It returns the base
// URL and a function that shuts it down. For `cpafeed bench --spawn`,
// simulations and tests.
func Spawn(cfg Config, logger *slog.Logger) (url string, stop func() error, err error) {
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, logger)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.st.close(false)
		return "", nil, err
	}
	go s.Serve(ln)
	if err := s.Recover(); err != nil {
		s.Shutdown(context.Background())
		return "", nil, err
	}
	stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String(), stop, nil
}
