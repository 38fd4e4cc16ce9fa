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
	numRoutes
)

var routeNames = [numRoutes]string{
	"not_found", "healthz", "readyz", "metrics", "conversions", "meta_events", "pixel", "stats",
	"score", "bids", "exposures", "win", "vast", "identities", "segments", "campaign_stats", "model_snapshot",
}

func (r route) String() string { return routeNames[r] }

// Per-route request, error and latency metrics, registered once.
var (
	httpRequests [numRoutes]*metrics.Counter
	httpErrors   [numRoutes]*metrics.Counter
	httpDuration [numRoutes]*metrics.Histogram

	httpPanics      = metrics.NewCounter(`cpafeed_http_panics_total`)
	httpConnRefused = metrics.NewCounter(`cpafeed_http_connection_errors_total`)
)

func init() {
	for r := range numRoutes {
		httpRequests[r] = metrics.NewCounter(fmt.Sprintf(`cpafeed_http_requests_total{route=%q}`, routeNames[r]))
		httpErrors[r] = metrics.NewCounter(fmt.Sprintf(`cpafeed_http_errors_total{route=%q}`, routeNames[r]))
		httpDuration[r] = metrics.NewHistogram(fmt.Sprintf(`cpafeed_http_request_duration_seconds{route=%q}`, routeNames[r]))
	}
}
