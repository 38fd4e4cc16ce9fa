package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"

	"github.com/cpafeed/cpafeed/api"
	"github.com/cpafeed/cpafeed/signals"
)

// spec is api/openapi.yaml as a validator (libopenapi-validator: OpenAPI
// 3.1 and JSON Schema 2020-12) and as plain JSON for the lookups below.
type spec struct {
	v     validator.Validator
	paths map[string]map[string]operation // path template -> method (lower case) -> operation
}

type operation struct {
	Security   []map[string][]string `json:"security"`
	Parameters []struct {
		Name    string `json:"name"`
		In      string `json:"in"`
		Ref     string `json:"$ref"`
		Example any    `json:"example"`
	} `json:"parameters"`
}

var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	doc, err := libopenapi.NewDocument(api.YAML)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithURLEncodedBodyValidation())
	if len(errs) > 0 {
		t.Fatalf("api/openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("api/openapi.yaml is not valid OpenAPI 3.1: %s (%s)", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", se.FieldPath+" "+se.KeywordLocation+fmt.Sprintf(" (line %d)", se.Line), se.Reason)
			}
		}
		t.FailNow()
	}
	raw, err := api.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	sp := &spec{v: v, paths: map[string]map[string]operation{}}
	for path, item := range d.Paths {
		sp.paths[path] = map[string]operation{}
		for m, op := range item {
			if !slices.Contains(methods, strings.ToUpper(m)) {
				continue
			}
			var o operation
			if err := json.Unmarshal(op, &o); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			sp.paths[path][m] = o
		}
	}
	return sp
}

// concrete is a path template with its path parameters replaced by their
// examples.
func (sp *spec) concrete(t *testing.T, tmpl string) string {
	t.Helper()
	out := tmpl
	for _, op := range sp.paths[tmpl] {
		for _, p := range op.Parameters {
			if p.In == "path" {
				out = strings.ReplaceAll(out, "{"+p.Name+"}", fmt.Sprint(p.Example))
			}
		}
	}
	if strings.Contains(out, "{") {
		t.Fatalf("%s: a path parameter without an example", tmpl)
	}
	return out
}

// template is the path template of the spec a concrete path matches.
func (sp *spec) template(path string) string {
	segs := strings.Split(path, "/")
	for tmpl := range sp.paths {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		ok := true
		for i := range ts {
			if ts[i] != segs[i] && !strings.HasPrefix(ts[i], "{") {
				ok = false
			}
		}
		routed := routeOf([]byte(path)) != routeNotFound || arriving[tmpl] != ""
		if ok && (strings.Contains(tmpl, "{") && routed || tmpl == path) {
			return tmpl
		}
	}
	return ""
}

// tokenFor is the header (or query) that authenticates a request to the
// operation under the embedded default config.
func tokenFor(op operation) (header, query string) {
	for _, sec := range op.Security {
		for name := range sec {
			switch name {
			case "advertiserToken":
				return "Authorization: Bearer " + advToken, ""
			case "bidderToken":
				return "Authorization: Bearer " + bidderToken, ""
			case "accessToken":
				return "", "access_token=" + advToken
			}
		}
	}
	return "", ""
}

// arriving are the paths api/openapi.yaml (and the README) document ahead
// of the branch that routes them: the test checks they are NOT routed yet
// and sends them nowhere. Remove a path here when its branch is merged
// (TestOpenAPIMatchesRouter fails until then).
var arriving = map[string]string{}

// TestOpenAPIMatchesRouter: every route of the router (routeNames, through
// routeOf) has a path in api/openapi.yaml and every path there is routed;
// every method documented is served (not 405) and, on a route that refuses
// some methods, every method served is documented.
func TestOpenAPIMatchesRouter(t *testing.T) {
	sp := loadSpec(t)
	s := testServer(t, nil)
	documented := map[route][]string{}
	for tmpl, ops := range sp.paths {
		path := sp.concrete(t, tmpl)
		r := routeOf([]byte(path))
		if branch, ok := arriving[tmpl]; ok {
			if r != routeNotFound {
				t.Errorf("%s is routed now (%s merged): remove it from arriving", tmpl, branch)
				documented[r] = append(documented[r], tmpl)
			}
			continue
		}
		if r == routeNotFound {
			t.Errorf("%s (%s) is documented but not routed", tmpl, path)
			continue
		}
		documented[r] = append(documented[r], tmpl)
		var hdr, query string
		for _, op := range ops {
			if h, q := tokenFor(op); h != "" || q != "" {
				hdr, query = h, q
			}
		}
		uri := path
		if query != "" {
			uri += "?" + query
		}
		refused := map[string]bool{}
		answered := map[string]int{}
		for _, m := range methods {
			var headers []string
			if hdr != "" {
				headers = append(headers, hdr)
			}
			status, _ := call(s, m, uri, "", headers...)
			answered[m] = status
			refused[m] = status == 405
		}
		anyRefused := slices.ContainsFunc(methods, func(m string) bool { return refused[m] })
		for _, m := range methods {
			_, doc := ops[strings.ToLower(m)]
			switch {
			case doc && refused[m]:
				t.Errorf("%s %s is documented but the route answers 405", m, tmpl)
			case !doc && !refused[m] && anyRefused:
				t.Errorf("%s %s is routed (answered %d) but not documented", m, tmpl, answered[m])
			}
		}
	}
	for r := routeNotFound + 1; r < numRoutes; r++ {
		if len(documented[r]) == 0 {
			t.Errorf("route %s is not documented in api/openapi.yaml (see its header)", r)
		}
	}
}

// TestOpenAPIServed: GET /openapi.json is the document.
func TestOpenAPIServed(t *testing.T) {
	s := testServer(t, nil)
	status, body := call(s, "GET", "/openapi.json", "")
	want, _ := api.JSON()
	if status != 200 || body != string(want) {
		t.Fatalf("/openapi.json: %d %.200s", status, body)
	}
}

// TestOpenAPIScoreFeatures: GET /v1/score documents a query parameter per
// feature the server reads (signals.FeatureNames).
func TestOpenAPIScoreFeatures(t *testing.T) {
	sp := loadSpec(t)
	var names []string
	for _, p := range sp.paths["/v1/score"]["get"].Parameters {
		names = append(names, p.Name)
	}
	for _, f := range signals.FeatureNames() {
		if !slices.Contains(names, f) {
			t.Errorf("GET /v1/score: feature %s is not a documented query parameter", f)
		}
	}
}

// exchange is one request to validate and send.
type exchange struct {
	what    string
	method  string
	uri     string // path and query
	headers []string
	body    []byte
}

func (x exchange) request(base string) *http.Request {
	req, err := http.NewRequest(x.method, base+x.uri, bytes.NewReader(x.body))
	if err != nil {
		panic(err)
	}
	for _, h := range x.headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return req
}

// check validates x against the spec, sends it to the server at base and
// validates the answer. Query parameters must be documented (the validator
// lets undocumented ones pass).
func (sp *spec) check(t *testing.T, base string, x exchange) {
	t.Helper()
	req := x.request("http://127.0.0.1:8080")
	sniff(req, x.body)
	if ok, errs := sp.v.ValidateHttpRequest(req); !ok {
		for _, e := range errs {
			t.Errorf("%s: %s %s: not a valid request: %s (%s)", x.what, x.method, x.uri, e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", se.FieldPath+" "+se.KeywordLocation+fmt.Sprintf(" (line %d)", se.Line), se.Reason)
			}
		}
	}
	u, _ := url.Parse(x.uri)
	tmpl := sp.template(u.Path)
	op, ok := sp.paths[tmpl][strings.ToLower(x.method)]
	if !ok {
		t.Errorf("%s: %s %s is not documented", x.what, x.method, u.Path)
		return
	}
	for k := range u.Query() {
		if len(k) > 4 && (strings.HasPrefix(k, "ud[") || strings.HasPrefix(k, "cd[")) && strings.HasSuffix(k, "]") {
			k = k[3 : len(k)-1] // the pixel's ud[em] is em (the spec says so)
		}
		declared := k == "access_token" && tmpl == "/{version}/{dataset}/events"
		for _, p := range op.Parameters {
			name := p.Name
			if p.Ref != "" {
				name = p.Ref[strings.LastIndexByte(p.Ref, '/')+1:]
			}
			declared = declared || p.In == "query" && name == k || p.Ref != "" && name == k
		}
		if !declared {
			t.Errorf("%s: %s %s: query parameter %s is not documented", x.what, x.method, tmpl, k)
		}
	}

	if _, ok := arriving[tmpl]; ok {
		return // not routed on this branch: its answer cannot be checked
	}
	resp, err := http.DefaultClient.Do(x.request(base))
	if err != nil {
		t.Fatalf("%s: %v", x.what, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := sp.v.ValidateHttpResponse(x.request("http://127.0.0.1:8080"), resp); !ok {
		for _, e := range errs {
			t.Errorf("%s: %s %s answered %d %.300s: not a documented answer: %s (%s)", x.what, x.method, x.uri, resp.StatusCode, body, e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", se.FieldPath+" "+se.KeywordLocation+fmt.Sprintf(" (line %d)", se.Line), se.Reason)
			}
		}
	}
}

// sniff sets the Content-Type of a CAPI request as the server reads its
// body (documented in the CAPI request body): a body that starts with {
// is JSON whatever its type says, one without a type is a form.
func sniff(req *http.Request, body []byte) {
	if !strings.HasSuffix(req.URL.Path, "/events") && req.URL.Path != "/v1/conversions" {
		return
	}
	ct := req.Header.Get("Content-Type")
	switch {
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")):
		req.Header.Set("Content-Type", "application/json")
	case ct == "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
}

// TestOpenAPIREADMEExamples: every curl example of the README is a valid
// request, the server's answer to it is a documented answer, and every
// path of the spec has an example.
func TestOpenAPIREADMEExamples(t *testing.T) {
	sp := loadSpec(t)
	s := testServer(t, nil)
	base := "http://" + serveOn(t, s)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	xs, err := curlExamples(string(readme), "..")
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) < 15 {
		t.Fatalf("%d curl examples found in README.md", len(xs))
	}
	seen := map[string]bool{}
	for _, x := range xs {
		u, _ := url.Parse(x.uri)
		seen[sp.template(u.Path)] = true
		sp.check(t, base, x)
	}
	var missing []string
	for tmpl := range sp.paths {
		if !seen[tmpl] {
			missing = append(missing, tmpl)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no README example for %v", missing)
	}
}

// TestOpenAPIFixtures: the fixtures of the Conversions API
// (conversions/testdata: valid, invalid, sdk) and every OpenRTB fixture
// (signals/testdata/openrtb, and the shared ones copied under shared/) are
// valid requests (the invalid CAPI ones: as far as a schema can tell,
// so they are only sent), and every answer to them is documented.
func TestOpenAPIFixtures(t *testing.T) {
	sp := loadSpec(t)
	// The CAPI fixtures' events are of their own clock.
	s := testServer(t, func(c *Config) { c.Conversions.Now = func() time.Time { return time.Unix(1795628590, 0) } })
	base := "http://" + serveOn(t, s)
	for _, dir := range []string{"valid", "sdk", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("../conversions/testdata", dir, "*.json"))
		if len(files) == 0 {
			t.Fatalf("no fixtures in conversions/testdata/%s", dir)
		}
		for _, f := range files {
			x := capiFixture(t, f, dir == "sdk")
			if dir != "invalid" {
				sp.check(t, base, x)
				continue
			}
			resp, err := http.DefaultClient.Do(x.request(base))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if ok, errs := sp.v.ValidateHttpResponse(x.request("http://127.0.0.1:8080"), resp); !ok {
				for _, e := range errs {
					t.Errorf("%s: answered %d %.300s: not a documented answer: %s (%s)", f, resp.StatusCode, body, e.Message, e.Reason)
				}
			}
		}
	}
	var bidRequests []string
	for _, pattern := range []string{"../signals/testdata/openrtb/*.json", "../signals/testdata/openrtb/shared/*.json"} {
		files, _ := filepath.Glob(pattern)
		bidRequests = append(bidRequests, files...)
	}
	if len(bidRequests) < 15 {
		t.Fatalf("%d OpenRTB fixtures", len(bidRequests))
	}
	auth := "Authorization: Bearer " + bidderToken
	for _, f := range bidRequests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, uri := range []string{"/v1/score?campaigns=demo-ctv-purchase,demo-ctv-signup", "/v1/score?explore=thompson", "/v1/bids"} {
			sp.check(t, base, exchange{what: f, method: "POST", uri: uri, headers: []string{auth, "Content-Type: application/json"}, body: b})
		}
	}
}

// capiFixture is the request of a conversions/testdata fixture, sent as
// conversions' fixture runner sends it.
func capiFixture(t *testing.T, path string, sdk bool) exchange {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Endpoint string          `json:"endpoint"`
		URI      string          `json:"uri"`
		Query    string          `json:"query"`
		Headers  []string        `json:"headers"`
		Body     json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	body := []byte(fx.Body)
	var str string
	if len(body) > 0 && body[0] == '"' && json.Unmarshal(body, &str) == nil {
		body = []byte(str)
	}
	x := exchange{what: path, method: "POST", headers: fx.Headers, body: body}
	if sdk { // sent to Meta's path, as the SDK does (conversions/sdk_test.go)
		fx.Endpoint = "meta"
	}
	switch fx.Endpoint {
	case "meta":
		x.uri = "/v24.0/1234567890/events"
	case "pixel":
		x.uri = "/v1/pixel"
		if len(body) == 0 {
			x.method = "GET"
		}
	default:
		x.uri = "/v1/conversions?dataset=1234567890"
		if len(x.headers) == 0 {
			x.headers = []string{"Authorization: Bearer " + advToken, "Content-Type: application/json"}
		}
	}
	if fx.URI != "" {
		x.uri = fx.URI
	}
	x.uri += fx.Query
	return x
}
