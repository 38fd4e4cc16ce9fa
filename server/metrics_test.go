package server

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"
)

var update = flag.Bool("update", false, "rewrite the generated parts of README.md")

// scrape answers GET /metrics of s and parses it with Prometheus' own
// text parser (github.com/prometheus/common/expfmt), with the classic
// (legacy) name rules: what a stock Prometheus server accepts.
func scrape(t *testing.T, s *Server) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	RegisterBuildInfo("test")
	status, body := call(s, "GET", "/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus' text parser refuses /metrics: %v", err)
	}
	return fams, body
}

// TestMetricsExposition: /metrics is what Prometheus expects. Its text
// parser accepts it; every family has a # HELP text and a # TYPE;
// histograms have le buckets (no VictoriaMetrics vmrange); cpafeed's
// counters, and only they, end in _total; every cpafeed_ line of
// metricHelp is a metric still exposed; the build, model and bid memory
// gauges are there.
func TestMetricsExposition(t *testing.T) {
	s := testServer(t, nil)
	call(s, "GET", "/healthz", "")
	fams, body := scrape(t, s)
	if strings.Contains(body, "vmrange") {
		t.Error("a histogram still has vmrange buckets")
	}
	for line := range strings.Lines(body) {
		if name, ok := strings.CutPrefix(line, "# HELP "); ok && !strings.Contains(strings.TrimSpace(name), " ") {
			t.Errorf("HELP line without text: %q (add the family to metricHelp)", line)
		}
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s: no HELP text (add it to metricHelp in server/metrics_help.go)", name)
		}
		if f.Type == nil || !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("%s: no TYPE line", name)
		}
		if !strings.HasPrefix(name, "cpafeed_") {
			continue
		}
		if counter := f.GetType() == dto.MetricType_COUNTER; counter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %s; counters, and only they, end in _total", name, f.GetType())
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, m := range f.Metric {
				if len(m.GetHistogram().GetBucket()) < 5 {
					t.Errorf("%s: %d le buckets", name, len(m.GetHistogram().GetBucket()))
				}
			}
		}
	}
	for name := range metricHelp {
		if _, ok := fams[name]; !ok && strings.HasPrefix(name, "cpafeed_") {
			t.Errorf("metricHelp has %s, which /metrics does not expose", name)
		}
	}

	one := func(name string) *dto.Metric {
		t.Helper()
		f := fams[name]
		if f == nil || len(f.Metric) == 0 {
			t.Fatalf("%s: not exposed", name)
		}
		return f.Metric[0]
	}
	bi := one("cpafeed_build_info")
	if bi.GetGauge().GetValue() != 1 || labelsOf(bi)["version"] != "test" || !strings.HasPrefix(labelsOf(bi)["goversion"], "go") {
		t.Errorf("cpafeed_build_info: %v", bi)
	}
	if v := one("cpafeed_model_version").GetGauge().GetValue(); v < 1 {
		t.Errorf("cpafeed_model_version %v, want the published version (>= 1)", v)
	}
	if age := one("cpafeed_model_age_seconds").GetGauge().GetValue(); age < 0 || age > 3600 {
		t.Errorf("cpafeed_model_age_seconds %v", age)
	}
	budget := one("cpafeed_bids_memory_budget_bytes").GetGauge().GetValue()
	if want := float64(s.cfg.Exposures.BidMemoryBytes * 3 / 4); budget != want {
		t.Errorf("cpafeed_bids_memory_budget_bytes %v, want %v", budget, want)
	}
	if fill := one("cpafeed_bids_memory_fill_ratio").GetGauge().GetValue(); fill < 0 || fill > 1 {
		t.Errorf("cpafeed_bids_memory_fill_ratio %v", fill)
	}

	// Every route has a request counter per status class from the start.
	codes := map[string]map[string]bool{}
	for _, m := range fams["cpafeed_http_requests_total"].Metric {
		l := labelsOf(m)
		if codes[l["route"]] == nil {
			codes[l["route"]] = map[string]bool{}
		}
		codes[l["route"]][l["code"]] = true
	}
	for _, r := range routeNames {
		if len(codes[r]) != len(statusClasses) {
			t.Errorf("cpafeed_http_requests_total{route=%q}: codes %v, want %v", r, codes[r], statusClasses)
		}
	}
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestStatusClass(t *testing.T) {
	f := func(code int, want string) {
		t.Helper()
		if got := statusClasses[statusClass(code)]; got != want {
			t.Errorf("statusClass(%d) = %s, want %s", code, got, want)
		}
	}
	f(100, "2xx")
	f(200, "2xx")
	f(204, "2xx")
	f(304, "3xx")
	f(400, "4xx")
	f(429, "4xx")
	f(500, "5xx")
	f(503, "5xx")
	f(600, "5xx")
}

// TestRequestCountersByStatusClass: each answer counts once, under its
// route and the class of the status it was answered with, shed and
// panicking requests included.
func TestRequestCountersByStatusClass(t *testing.T) {
	s := testServer(t, nil)
	auth := "Authorization: Bearer " + bidderToken
	f := func(method, uri string, r route, class string, headers ...string) {
		t.Helper()
		c := slices.Index(statusClasses[:], class)
		before := httpRequests[r][c].Get()
		status, body := call(s, method, uri, "", headers...)
		if statusClasses[statusClass(status)] != class {
			t.Fatalf("%s %s: %d %s, want a %s", method, uri, status, body, class)
		}
		if got := httpRequests[r][c].Get() - before; got != 1 {
			t.Errorf("%s %s: cpafeed_http_requests_total{route=%q,code=%q} grew by %d, want 1", method, uri, r, class, got)
		}
	}
	f("GET", "/healthz", routeHealthz, "2xx")
	f("GET", "/no/such/path", routeNotFound, "4xx")
	f("GET", "/v1/score?campaign=demo-ctv-purchase", routeScore, "4xx") // no token
	f("GET", "/v1/score?campaign=demo-ctv-purchase&publisher=p", routeScore, "2xx", auth)
	ver := s.st.eng.Model.Estimates().Version()
	f("GET", fmt.Sprintf("/v1/model/snapshot?since=%d", ver), routeModelSnapshot, "3xx", auth)

	s.ready.Store(false) // as while the journal is replayed
	f("GET", "/v1/stats", routeStats, "5xx")
	s.ready.Store(true)

	s.inflight[0].Add(int64(s.cfg.HTTP.MaxInflight)) // as under overload
	f("GET", "/v1/stats", routeStats, "4xx")
	s.inflight[0].Add(-int64(s.cfg.HTTP.MaxInflight))
}

// TestRequestAccountingAllocatesNothing: routing, counting by status class
// and timing a request cost no allocation.
func TestRequestAccountingAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	s := testServer(t, nil)
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/healthz")
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}, nil)
	fn := func() {
		ctx.Response.Reset()
		s.handle(&ctx)
	}
	fn()
	if n := testing.AllocsPerRun(200, fn); n != 0 {
		t.Errorf("GET /healthz allocates %.1f times per request", n)
	}
}

// The README's metric table sits between these lines.
const (
	metricsTableBegin = "<!-- metrics table: generated from server/metrics_help.go by `go test ./server -run TestREADMEMetrics -update`; do not edit -->\n"
	metricsTableEnd   = "<!-- end of the metrics table -->\n"
)

// TestREADMEMetrics: the README lists every cpafeed_ metric family with
// its type, labels and meaning, as /metrics exposes them; -update rewrites
// the table.
func TestREADMEMetrics(t *testing.T) {
	s := testServer(t, nil)
	fams, _ := scrape(t, s)
	var names []string
	for name := range fams {
		if strings.HasPrefix(name, "cpafeed_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(metricsTableBegin)
	b.WriteString("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n")
	for _, name := range names {
		f := fams[name]
		var labels []string
		for _, m := range f.Metric {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		for i, l := range labels {
			labels[i] = "`" + l + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", name, strings.ToLower(f.GetType().String()), strings.Join(labels, ", "), metricHelp[name])
	}
	b.WriteString(metricsTableEnd)
	want := b.String()

	const path = "../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(metricsTableBegin))
	j := bytes.Index(readme, []byte(metricsTableEnd))
	if i < 0 || j < i {
		t.Fatalf("README.md has no metrics table between %q and %q", metricsTableBegin, metricsTableEnd)
	}
	got := string(readme[i : j+len(metricsTableEnd)])
	if got == want {
		return
	}
	if *update {
		out := append(append(readme[:i:i], want...), readme[j+len(metricsTableEnd):]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's metrics table is out of date; run go test ./server -run TestREADMEMetrics -update. Want:\n%s", want)
}
