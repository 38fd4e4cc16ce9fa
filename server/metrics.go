package server

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// route names one endpoint for metrics; the set is fixed so labels stay
// low-cardinality.
type route int

const (
	routeNotFound route = iota
	routeHealthz
	routeReadyz
	routeMetrics
	routeConversions
	routeMetaEvents
	routePixel
	routeStats
	routeScore
	routeBids
	routeExposures
	routeWin
	routeVAST
	routeIdentities
	routeSegments
	routeCampaignStats
	routeModelSnapshot
	routeTestEvents
	routeEffects
	routeCampaignLift
	numRoutes
)

var routeNames = [numRoutes]string{
	"not_found", "healthz", "readyz", "metrics", "conversions", "meta_events", "pixel", "stats",
	"score", "bids", "exposures", "win", "vast", "identities", "segments", "campaign_stats", "model_snapshot",
	"test_events",
	"effects",
	"campaign_lift",
}

func (r route) String() string { return routeNames[r] }

// bidTime reports whether the route serves bid time (scoring and the
// beacons of won auctions): shed last.
func (r route) bidTime() bool {
	switch r {
	case routeScore, routeBids, routeWin, routeVAST, routeModelSnapshot:
		return true
	}
	return false
}

// sheddable reports whether the route may be refused under overload (the
// probes and metrics never are).
func (r route) sheddable() bool {
	switch r {
	case routeHealthz, routeReadyz, routeMetrics:
		return false
	}
	return true
}

// Per-route request, error and latency metrics, registered once.
var (
	httpRequests [numRoutes]*metrics.Counter
	httpErrors   [numRoutes]*metrics.Counter
	httpDuration [numRoutes]*metrics.Histogram

	httpPanics = metrics.NewCounter(`cpafeed_http_panics_total`)
	httpShed   = [2]*metrics.Counter{
		metrics.NewCounter(`cpafeed_http_shed_total{class="ingest"}`),
		metrics.NewCounter(`cpafeed_http_shed_total{class="bid"}`),
	}
	httpConnRefused = metrics.NewCounter(`cpafeed_http_connection_errors_total`)
	// httpAcceptErrors counts failed accepts that were retried (no file
	// descriptor left, ...).
	httpAcceptErrors = metrics.NewCounter(`cpafeed_http_accept_errors_total`)
	// httpInflateRefused counts requests shed because the bodies being
	// decompressed held http.max_inflate_bytes.
	httpInflateRefused = metrics.NewCounter(`cpafeed_http_inflate_refused_total`)
)

func init() {
	for r := range numRoutes {
		httpRequests[r] = metrics.NewCounter(fmt.Sprintf(`cpafeed_http_requests_total{route=%q}`, routeNames[r]))
		httpErrors[r] = metrics.NewCounter(fmt.Sprintf(`cpafeed_http_errors_total{route=%q}`, routeNames[r]))
		httpDuration[r] = metrics.NewHistogram(fmt.Sprintf(`cpafeed_http_request_duration_seconds{route=%q}`, routeNames[r]))
	}
}
