package server

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
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
	routeLoss
	routeOpenAPI
	numRoutes
)

var routeNames = [numRoutes]string{
	"not_found", "healthz", "readyz", "metrics", "conversions", "meta_events", "pixel", "stats",
	"score", "bids", "exposures", "win", "vast", "identities", "segments", "campaign_stats", "model_snapshot",
	"test_events",
	"effects",
	"campaign_lift",
	"loss",
	"openapi",
}

func (r route) String() string { return routeNames[r] }

// bidTime reports whether the route serves bid time (scoring and the
// beacons of won auctions): shed last.
func (r route) bidTime() bool {
	switch r {
	case routeScore, routeBids, routeWin, routeVAST, routeModelSnapshot, routeLoss:
		return true
	}
	return false
}

// sheddable reports whether the route may be refused under overload (the
// probes and metrics never are).
func (r route) sheddable() bool {
	switch r {
	case routeHealthz, routeReadyz, routeMetrics, routeOpenAPI:
		return false
	}
	return true
}

// statusClasses are the values of the code label of the request counter:
// a fixed set, so each (route, class) counter is registered once.
var statusClasses = [...]string{"2xx", "3xx", "4xx", "5xx"}

// statusClass is the index in statusClasses of an HTTP status (1xx, never
// answered by a handler, counts as 2xx).
func statusClass(code int) int { return min(max(code/100-2, 0), len(statusClasses)-1) }

// latencyBuckets are the upper bounds (seconds) of the request duration
// histograms: from a feature lookup (microseconds) to a slow ingest batch
// held up by a stalled disk.
var latencyBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}

// Per-route request, error and latency metrics, registered once.
var (
	httpRequests [numRoutes][len(statusClasses)]*metrics.Counter
	httpErrors   [numRoutes]*metrics.Counter
	httpDuration [numRoutes]*metrics.PrometheusHistogram

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

	// The published estimates, set when /metrics is scraped.
	modelVersion    = metrics.NewGauge(`cpafeed_model_version`, nil)
	modelAgeSeconds = metrics.NewGauge(`cpafeed_model_age_seconds`, nil)
)

func init() {
	for r := range numRoutes {
		for c, class := range statusClasses {
			httpRequests[r][c] = metrics.NewCounter(fmt.Sprintf(`cpafeed_http_requests_total{route=%q,code=%q}`, routeNames[r], class))
		}
		httpErrors[r] = metrics.NewCounter(fmt.Sprintf(`cpafeed_http_errors_total{route=%q}`, routeNames[r]))
		httpDuration[r] = metrics.NewPrometheusHistogramExt(fmt.Sprintf(`cpafeed_http_request_duration_seconds{route=%q}`, routeNames[r]), latencyBuckets)
	}
	// # HELP and # TYPE lines; writeMetrics fills in the HELP texts.
	metrics.ExposeMetadata(true)
}

// countRequest counts an answered request by route and status class, with
// its duration since start. It does not allocate.
func countRequest(ctx *fasthttp.RequestCtx, r route, start time.Time) {
	httpRequests[r][statusClass(ctx.Response.StatusCode())].Inc()
	httpDuration[r].UpdateDuration(start)
}

var buildInfoOnce sync.Once

// RegisterBuildInfo exposes cpafeed_build_info{version,goversion} 1 for
// the running binary (cmd/cpafeed calls it with the version it was built
// with). Only the first call registers.
func RegisterBuildInfo(version string) {
	buildInfoOnce.Do(func() {
		metrics.NewGauge(fmt.Sprintf(`cpafeed_build_info{version=%q,goversion=%q}`, version, runtime.Version()), func() float64 { return 1 })
	})
}

// setScrapeGauges sets the gauges that are read when /metrics is scraped.
func (s *Server) setScrapeGauges(now time.Time) {
	if est := s.st.eng.Model.Estimates(); est != nil {
		modelVersion.Set(float64(est.Version()))
		modelAgeSeconds.Set(float64(max(now.Unix()-est.At(), 0)))
	}
}

// writeMetrics writes every registered metric in the Prometheus text
// format (version 0.0.4), each family under its # HELP text from
// metricHelp and its # TYPE. The library writes "# HELP name" with no text;
// those lines get the text here. Not a hot path: a scrape allocates.
func writeMetrics(w io.Writer) {
	var raw bytes.Buffer
	metrics.WritePrometheus(&raw, true)
	out := make([]byte, 0, raw.Len()+raw.Len()/4)
	for rest := raw.Bytes(); len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if name, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok && bytes.IndexByte(name, ' ') < 0 {
			if help := metricHelp[string(name)]; help != "" {
				line = append(append(line[:len(line):len(line)], ' '), escapeHelp(help)...)
			}
		}
		out = append(append(out, line...), '\n')
	}
	w.Write(out)
}

// escapeHelp escapes a HELP text as the text format wants: \\ and \n.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
