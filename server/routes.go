package server

import (
	"bytes"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
)

// handle is the one entry point: it finds the route, counts it, recovers a
// panicking handler (500, counted) and writes errors in the API's shape.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	r := routeOf(ctx.Path())
	httpRequests[r].Inc()
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
	}
	return apierr.NotFound("%s %s: no such endpoint", ctx.Method(), ctx.Path())
}

func traceID(ctx *fasthttp.RequestCtx) string {
	var b [16]byte
	return string(apierr.AppendTraceID(b[:0], ctx.ID()))
}
