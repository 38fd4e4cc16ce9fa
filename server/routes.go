package server

import (
	"bytes"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/conversions"
)

// handle is the one entry point: it finds the route, counts it, recovers a
// panicking handler (500, counted) and writes errors in the API's shape.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	r := routeOf(ctx.Path())
	httpRequests[r].Inc()
	class, limit := 0, int64(s.cfg.HTTP.MaxInflight)
	if r.bidTime() {
		class, limit = 1, int64(s.cfg.HTTP.MaxInflightScore)
	}
	if n := s.inflight[class].Add(1); n > limit && r.sheddable() {
		s.inflight[class].Add(-1)
		httpShed[class].Inc()
		httpErrors[r].Inc()
		s.writeError(ctx, apierr.New(429, apierr.CodeTooMany, "overloaded: %d requests in flight, retry later", limit))
		httpDuration[r].UpdateDuration(start)
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
		httpDuration[r].UpdateDuration(start)
	}()
	if err := s.serve(ctx, r); err != nil {
		httpErrors[r].Inc()
		s.writeError(ctx, err)
	}
}

// routeOf maps a path to its route. Besides the fixed paths it knows
// /v1/campaigns/{id}/stats and Meta's /{version}/{dataset}/events.
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
	case "/v1/identities":
		return routeIdentities
	case "/v1/segments":
		return routeSegments
	case "/v1/model/snapshot":
		return routeModelSnapshot
	case "/v1/effects":
		return routeEffects
	}
	if _, ok := campaignStatsID(p); ok {
		return routeCampaignStats
	}
	if _, ok := metaDataset(p); ok {
		return routeMetaEvents
	}
	return routeNotFound
}

// campaignStatsID matches /v1/campaigns/{id}/stats.
func campaignStatsID(p []byte) (string, bool) {
	const pre, suf = "/v1/campaigns/", "/stats"
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
		if !s.ready.Load() {
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"status":"recovering"}`)
			return nil
		}
		ctx.SetBodyString(`{"status":"ready"}`)
		return nil
	case routeMetrics:
		ctx.SetContentType("text/plain; version=0.0.4")
		metrics.WritePrometheus(ctx, true)
		return nil
	case routeNotFound:
		return apierr.NotFound("%s %s: no such endpoint", ctx.Method(), ctx.Path())
	}
	if !s.ready.Load() {
		return apierr.Unavailable("not ready: the journal is being replayed")
	}
	switch r {
	case routeConversions:
		return s.withBody(ctx, "POST", func(body []byte) error { return s.st.conv.HandleConversions(ctx, body) })
	case routeMetaEvents:
		dataset, _ := metaDataset(ctx.Path())
		return s.withBody(ctx, "POST", func(body []byte) error { return s.st.conv.HandleMetaEvents(ctx, body, dataset) })
	case routePixel:
		return s.withBody(ctx, "GET POST", func(body []byte) error { return s.st.conv.HandlePixel(ctx, body) })
	case routeStats:
		return s.only(ctx, "GET", func() error { return s.st.conv.HandleStats(ctx) })
	case routeExposures:
		b, err := s.bidder(ctx)
		if err != nil {
			return err
		}
		return s.withBody(ctx, "POST", func(body []byte) error { return s.st.exp.HandleExposures(ctx, body, b) })
	case routeBids:
		b, err := s.bidder(ctx)
		if err != nil {
			return err
		}
		return s.withBody(ctx, "POST", func(body []byte) error { return s.st.exp.HandleBids(ctx, body, b) })
	case routeScore:
		b, err := s.bidder(ctx)
		if err != nil {
			return err
		}
		if ctx.IsGet() {
			return s.st.bid.HandleScoreFeatures(ctx, b)
		}
		return s.withBody(ctx, "GET POST", func(body []byte) error { return s.st.bid.HandleScore(ctx, body, b) })
	case routeModelSnapshot:
		b, err := s.bidder(ctx)
		if err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error { return s.st.bid.HandleSnapshot(ctx, b) })
	case routeWin:
		return s.only(ctx, "GET POST", func() error { return s.st.exp.HandleWin(ctx) })
	case routeVAST:
		return s.only(ctx, "GET POST", func() error { return s.st.exp.HandleVAST(ctx) })
	case routeIdentities:
		return s.withBody(ctx, "DELETE POST", func(body []byte) error { return s.st.eraser.HandleDeleteIdentities(ctx, body) })
	case routeCampaignStats:
		id, _ := campaignStatsID(ctx.Path())
		if err := s.mayRead(ctx, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error { return s.st.attr.HandleCampaignStats(ctx, s.st.model, id) })
	case routeSegments:
		id := string(ctx.QueryArgs().Peek("campaign"))
		if err := s.mayRead(ctx, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error {
			est := s.st.model.Estimates()
			depth := s.st.chain.Depth()
			if est.Crossed() { // a level per effect key
				depth = len(est.EffectKeys())
			}
			return conversions.HandleSegments(ctx, est, id, depth)
		})
	case routeEffects:
		id := string(ctx.QueryArgs().Peek("campaign"))
		if err := s.mayRead(ctx, id); err != nil {
			return err
		}
		return s.only(ctx, "GET", func() error { return bidder.HandleEffects(ctx, s.st.model.Estimates(), id) })
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

// withBody is only, with the request body decompressed within the limits.
func (s *Server) withBody(ctx *fasthttp.RequestCtx, methods string, fn func(body []byte) error) error {
	return s.only(ctx, methods, func() error {
		body, buf, err := s.dec.decode(ctx.Request.Header.ContentEncoding(), ctx.Request.Body())
		if err != nil {
			return err
		}
		defer s.dec.release(buf)
		return fn(body)
	})
}

// mayRead checks that the bearer token may read a campaign's reports: its
// advertiser's token, or a token of a bidder allowed the campaign.
func (s *Server) mayRead(ctx *fasthttp.RequestCtx, campaign string) error {
	tok := bearer(ctx.Request.Header.Peek("Authorization"))
	if tok == nil {
		return apierr.Unauthorized("Authorization: a Bearer token is required")
	}
	tn := s.tenants.lookup(tok)
	if tn == nil {
		return apierr.Unauthorized("Authorization: unknown token")
	}
	if campaign == "" {
		return apierr.BadRequest("campaign: required")
	}
	owner, ok := s.campaignOwner[campaign]
	switch {
	case !ok:
		return apierr.NotFound("campaign %q: unknown", campaign)
	case tn.advertiser && tn.name != owner, !tn.advertiser && !tn.MayUse(campaign):
		return apierr.Forbidden("campaign %q: not readable with this token", campaign)
	}
	return nil
}

// bidder authenticates a bidder's bearer token.
func (s *Server) bidder(ctx *fasthttp.RequestCtx) (*tenant, error) {
	tok := bearer(ctx.Request.Header.Peek("Authorization"))
	if tok == nil {
		return nil, apierr.Unauthorized("Authorization: a bidder's Bearer token is required")
	}
	tn := s.tenants.lookup(tok)
	switch {
	case tn == nil:
		return nil, apierr.Unauthorized("Authorization: unknown token")
	case tn.advertiser:
		return nil, apierr.Forbidden("Authorization: an advertiser's token cannot use a bidder endpoint")
	}
	return tn, nil
}

func traceID(ctx *fasthttp.RequestCtx) string {
	var b [16]byte
	return string(apierr.AppendTraceID(b[:0], ctx.ID()))
}
