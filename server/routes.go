package server

import (
	"bytes"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/api"
	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/conversions"
)

// handle is the one entry point: it finds the route, counts it, recovers a
// panicking handler (500, counted) and writes errors in the API's shape.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	r := routeOf(ctx.Path())
	class, limit := 0, int64(s.cfg.HTTP.MaxInflight)
	if r.bidTime() {
		class, limit = 1, int64(s.cfg.HTTP.MaxInflightScore)
	}
	if n := s.inflight[class].Add(1); n > limit && r.sheddable() {
		s.inflight[class].Add(-1)
		httpShed[class].Inc()
		httpErrors[r].Inc()
		s.writeError(ctx, apierr.New(429, apierr.CodeTooMany, "overloaded: %d requests in flight, retry later", limit))
		countRequest(ctx, r, start)
		return
	}
	defer s.inflight[class].Add(-1)
	defer func() {
		if p := recover(); p != nil {
			httpPanics.Inc()
			httpErrors[r].Inc()
			s.log.Error("handler panic", "route", r.String(), "panic", p)
			s.writeError(ctx, apierr.New(500, apierr.CodeInternal, "internal error"))
		}
		countRequest(ctx, r, start)
	}()
	if err := s.serve(ctx, r); err != nil {
		httpErrors[r].Inc()
		s.writeError(ctx, err)
	}
}

// routeOf maps a path to its route. Besides the fixed paths it knows
// /v1/campaigns/{id}/stats, /v1/campaigns/{id}/lift and Meta's /{version}/{dataset}/events.
func routeOf(p []byte) route {
	switch string(p) {
	case "/healthz":
		return routeHealthz
	case "/readyz":
		return routeReadyz
	case "/metrics":
		return routeMetrics
	case "/v1/conversions":
		return routeConversions
	case "/v1/pixel":
		return routePixel
	case "/v1/stats":
		return routeStats
	case "/v1/score":
		return routeScore
	case "/v1/bids":
		return routeBids
	case "/v1/exposures":
		return routeExposures
	case "/v1/win":
		return routeWin
	case "/v1/vast":
		return routeVAST
	case "/v1/loss":
		return routeLoss
	case "/v1/identities":
		return routeIdentities
	case "/v1/segments":
		return routeSegments
	case "/v1/model/snapshot":
		return routeModelSnapshot
	case "/v1/test_events":
		return routeTestEvents
	case "/v1/effects":
		return routeEffects
	case "/openapi.json":
		return routeOpenAPI
	}
	if _, ok := campaignStatsID(p); ok {
		return routeCampaignStats
	}
	if _, ok := campaignPathID(p, "/lift"); ok {
		return routeCampaignLift
	}
	if _, ok := metaDataset(p); ok {
		return routeMetaEvents
	}
	return routeNotFound
}

// campaignStatsID matches /v1/campaigns/{id}/stats.
func campaignStatsID(p []byte) (string, bool) { return campaignPathID(p, "/stats") }

// campaignPathID matches /v1/campaigns/{id}{suf}.
func campaignPathID(p []byte, suf string) (string, bool) {
	const pre = "/v1/campaigns/"
	if !bytes.HasPrefix(p, []byte(pre)) || !bytes.HasSuffix(p, []byte(suf)) || len(p) <= len(pre)+len(suf) {
		return "", false
	}
	id := p[len(pre) : len(p)-len(suf)]
	if bytes.IndexByte(id, '/') >= 0 {
		return "", false
	}
	return string(id), true
}

// metaDataset matches Meta's /{version}/{dataset_id}/events, version like
// v24.0, and returns the dataset id.
func metaDataset(p []byte) (string, bool) {
	parts := bytes.Split(bytes.TrimPrefix(p, []byte("/")), []byte("/"))
	if len(parts) != 3 || string(parts[2]) != "events" || len(parts[1]) == 0 {
		return "", false
	}
	v := parts[0]
	if len(v) < 2 || v[0] != 'v' {
		return "", false
	}
	for _, c := range v[1:] {
		if (c < '0' || c > '9') && c != '.' {
			return "", false
		}
	}
	return string(parts[1]), true
}

// serve is the route table: one case per endpoint, each calling one handler.
func (s *Server) serve(ctx *fasthttp.RequestCtx, r route) error {
	switch r {
	case routeHealthz:
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return nil
	case routeReadyz:
		ctx.SetContentType("application/json")
		if s.draining.Load() {
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"status":"draining"}`)
			return nil
		}
		if !s.ready.Load() {
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"status":"recovering"}`)
			return nil
		}
		ctx.SetBodyString(`{"status":"ready"}`)
		return nil
	case routeMetrics:
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		s.setScrapeGauges(time.Now())
		writeMetrics(ctx)
		return nil
	case routeOpenAPI:
		return s.only(ctx, "GET", func() error {
			doc, err := api.JSON()
			if err != nil {
				return apierr.New(500, apierr.CodeInternal, "internal error").WithCause(err)
			}
			ctx.SetContentType("application/json")
			ctx.SetBody(doc)
			return nil
		})
	case routeNotFound:
		return apierr.NotFound("%s %s: no such endpoint", ctx.Method(), ctx.Path())
	}
	if !s.ready.Load() {
		return apierr.Unavailable("not ready: the journal is being replayed")
	}
	// The front door: every caller is resolved, and its role checked, here.
	tn, err := s.authenticateRequest(ctx, r)
	if err != nil {
		return err
	}
	switch r {
	case routeConversions:
		return s.withLazyBody(ctx, "POST", func(body conversions.Body) error { return s.st.eng.Conversions.HandleConversions(ctx, body, tn.name) })
	case routeMetaEvents:
		dataset, _ := metaDataset(ctx.Path())
		adv := "" // the token is in the body
		if tn != nil {
			adv = tn.name
		}
		return s.withLazyBody(ctx, "POST", func(body conversions.Body) error {
			return s.st.eng.Conversions.HandleMetaEvents(ctx, body, dataset, adv)
		})
	case routePixel:
		return s.withLazyBody(ctx, "GET POST", func(body conversions.Body) error { return s.st.eng.Conversions.HandlePixel(ctx, body) })
	case routeStats:
		return s.only(ctx, "GET", func() error { return s.st.eng.Conversions.HandleStats(ctx, tn.name) })
	case routeTestEvents:
		return s.only(ctx, "GET", func() error { return s.st.eng.Conversions.HandleTestEvents(ctx, tn.name) })
	case routeExposures:
		return s.withBody(ctx, "POST", func(body []byte) error { return s.st.eng.Exposures.HandleExposures(ctx, body, tn) })
	case routeBids:
		return s.withBody(ctx, "POST", func(body []byte) error { return s.st.eng.Exposures.HandleBids(ctx, body, tn) })
	case routeScore:
		if ctx.IsGet() {
			return s.st.eng.Bidder.HandleScoreFeatures(ctx, tn)
		}
		return s.withBody(ctx, "GET POST", func(body []byte) error { return s.st.eng.Bidder.HandleScore(ctx, body, tn) })
	case routeModelSnapshot:
		return s.only(ctx, "GET", func() error { return s.st.eng.Bidder.HandleSnapshot(ctx, tn) })
	case routeWin:
		return s.only(ctx, "GET POST", func() error { return s.st.eng.Exposures.HandleWin(ctx) })
	case routeVAST:
		return s.only(ctx, "GET POST", func() error { return s.st.eng.Exposures.HandleVAST(ctx) })
	case routeLoss:
		return s.only(ctx, "GET POST", func() error { return s.st.eng.Exposures.HandleLoss(ctx) })
	case routeIdentities:
		return s.withLazyBody(ctx, "DELETE POST", func(body conversions.Body) error { return s.st.eng.Eraser.HandleDeleteIdentities(ctx, body, tn.name) })
	case routeCampaignStats:
		id, _ := campaignStatsID(ctx.Path())
		if err := s.mayRead(tn, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error { return s.st.eng.Attributor.HandleCampaignStats(ctx, s.st.eng.Model, id) })
	case routeCampaignLift:
		id, _ := campaignPathID(ctx.Path(), "/lift")
		if err := s.mayRead(tn, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error {
			return s.st.eng.Attributor.HandleCampaignLift(ctx, s.st.eng.Model.Estimates(), id, s.st.eng.LiftLevel, time.Now())
		})
	case routeSegments:
		id := string(ctx.QueryArgs().Peek("campaign"))
		if err := s.mayRead(tn, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error {
			est := s.st.eng.Model.Estimates()
			depth := s.st.eng.Chain.Depth()
			if est.Crossed() { // a level per effect key
				depth = len(est.EffectKeys())
			}
			return bidder.HandleSegments(ctx, est, id, depth)
		})
	case routeEffects:
		id := string(ctx.QueryArgs().Peek("campaign"))
		if err := s.mayRead(tn, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error { return bidder.HandleEffects(ctx, s.st.eng.Model.Estimates(), id) })
	}
	return apierr.NotFound("%s %s: no such endpoint", ctx.Method(), ctx.Path())
}

// only runs fn when the method is one of methods (space separated), else
// answers 405. It does not allocate.
func (s *Server) only(ctx *fasthttp.RequestCtx, methods string, fn func() error) error {
	m := ctx.Method()
	for rest := methods; rest != ""; {
		ok, next, _ := strings.Cut(rest, " ")
		if string(m) == ok {
			return fn()
		}
		rest = next
	}
	ctx.Response.Header.Set("Allow", strings.ReplaceAll(methods, " ", ", "))
	return apierr.New(405, apierr.CodeInvalidParameter, "%s %s: method not allowed (use %s)", m, ctx.Path(), methods)
}

// withBody is only, with the request body decompressed within the limits,
// for endpoints that authenticated the caller before.
func (s *Server) withBody(ctx *fasthttp.RequestCtx, methods string, fn func(body []byte) error) error {
	return s.only(ctx, methods, func() error {
		body, buf, err := s.dec.decode(ctx.Request.Header.ContentEncoding(), ctx.Request.Body())
		defer s.dec.release(buf)
		if err != nil {
			return err
		}
		return fn(body)
	})
}

// withLazyBody is only, for handlers that authenticate the caller
// themselves: the body is decompressed when the handler asks for it, after
// it checked a token sent outside the body.
func (s *Server) withLazyBody(ctx *fasthttp.RequestCtx, methods string, fn func(body conversions.Body) error) error {
	return s.only(ctx, methods, func() error {
		var (
			buf  *inflated
			body []byte
			err  error
			read bool
		)
		defer func() { s.dec.release(buf) }()
		return fn(func() ([]byte, error) {
			if !read {
				read = true
				body, buf, err = s.dec.decode(ctx.Request.Header.ContentEncoding(), ctx.Request.Body())
			}
			return body, err
		})
	})
}

// preAuthBodyBytes is the largest body read before its token is checked, on
// endpoints whose token travels outside the body; a larger one, or one of
// unknown length (chunked), is read only for a known token. It is also the
// largest body of an endpoint that takes no token (probes, metrics, the
// pixel, win and loss notices, VAST beacons): anyone may call those, and a
// pixel's form or a POSTed notice is a few hundred bytes.
const preAuthBodyBytes = 64 << 10

// headerReceived runs once a request's head is read, before its body: when
// the body is larger than preAuthBodyBytes and preAuth refuses the token,
// the body limit drops to 1 byte, so that fasthttp refuses the body
// unread; connError then answers preAuth's error, not 413. On an endpoint
// that takes no token the limit is preAuthBodyBytes: a larger body is
// refused unread (chunked, once that much arrived), answered 413.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if n := h.ContentLength(); n >= 0 && n <= preAuthBodyBytes {
		return fasthttp.RequestConfig{}
	}
	if s.preAuth(h) != nil {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	}
	if tokenless(h) {
		return fasthttp.RequestConfig{MaxRequestBodySize: preAuthBodyBytes}
	}
	return fasthttp.RequestConfig{}
}

// tokenless reports whether a request's route takes no token (an unknown
// path included: it is answered 404 without one).
func tokenless(h *fasthttp.RequestHeader) bool { return routeOfHeader(h).role() == roleNone }

// routeOfHeader is the route of a request's head.
func routeOfHeader(h *fasthttp.RequestHeader) route {
	path, _, _ := bytes.Cut(h.RequestURI(), []byte("?"))
	return routeOf(path)
}

func traceID(ctx *fasthttp.RequestCtx) string { return apierr.TraceID(ctx.ID()) }
