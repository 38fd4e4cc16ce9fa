package conversions

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/auth"
	"github.com/cpafeed/cpafeed/signals"
	"github.com/valyala/fasthttp"
)

// testNow is the fixed clock of the tests and fixtures: 60 s after the event
// of the reference's example request (event_time 1795628530).
var testNow = time.Unix(1795628590, 0)

const (
	testToken      = "dev-advertiser-token"
	testOtherToken = "other-advertiser-token"
	testDataset    = "1234567890"
	testOtherDS    = "999"
	testSecret     = "test-identity-secret"
)

type testTenants map[string]string

func (t testTenants) Advertiser(tok []byte) (string, bool) {
	a, ok := t[string(tok)]
	return a, ok
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hookLog collects what the stored-events hook receives (deep copies).
type hookLog struct {
	mu     sync.Mutex
	events []StoredEvent
}

func (h *hookLog) fn(evs []StoredEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		e.IDs = append([]signals.ID(nil), e.IDs...)
		h.events = append(h.events, e)
	}
}

func (h *hookLog) all() []StoredEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]StoredEvent(nil), h.events...)
}

type testEnv struct {
	s     *Service
	log   *memLog
	clock *clock
	hook  *hookLog
}

func newTestEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvWithLog(t, newMemLog(), mod)
}

func newTestEnvWithLog(t testing.TB, log *memLog, mod func(*Config)) *testEnv {
	t.Helper()
	c := &clock{t: testNow}
	cfg := Config{
		Datasets: map[string]string{testDataset: "demo", testOtherDS: "other"},
		Now:      c.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewService(cfg, log, signals.NewHasher([]byte(testSecret)), testTenants{testToken: "demo", testOtherToken: "other"})
	if err != nil {
		t.Fatal(err)
	}
	h := &hookLog{}
	s.SetStoredHook(h.fn)
	return &testEnv{s: s, log: log, clock: c, hook: h}
}

// response is a handler's answer, as the server would write it.
type response struct {
	status int
	body   []byte
	ctype  string
	err    *apierr.Error
	ctx    *fasthttp.RequestCtx
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %q is not JSON: %v", r.body, err)
	}
	return m
}

// call runs handler on a request built from method, uri, headers ("K: v")
// and body, from remote address 203.0.113.9 unless a "Remote: ip" header is
// given.
func call(handler func(*fasthttp.RequestCtx, []byte) error, method, uri, body string, headers ...string) response {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	remote := "203.0.113.9"
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if k == "Remote" {
			remote = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.SetBodyString(body)
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(remote), Port: 40000}, nil)
	err := handler(ctx, ctx.Request.Body())
	r := response{ctx: ctx}
	if err != nil {
		r.err = apierr.As(err)
		r.status = r.err.Status
		r.body = apierr.AppendJSON(nil, r.err, apierr.TraceID(ctx.ID()))
		r.ctype = "application/json"
		return r
	}
	r.status = ctx.Response.StatusCode()
	r.body = append([]byte(nil), ctx.Response.Body()...)
	r.ctype = string(ctx.Response.Header.ContentType())
	return r
}

// raw adapts a handler that reads its body through a Body to call.
func raw(h func(*fasthttp.RequestCtx, Body) error) func(*fasthttp.RequestCtx, []byte) error {
	return func(ctx *fasthttp.RequestCtx, b []byte) error { return h(ctx, bodyOf(b)) }
}

// advertiserOf resolves a request's caller as the server's front door does
// (server/auth.go, roleAdvertiser): the Authorization header read by the one
// parser, auth.Bearer, and looked up in the service's Tenants. The
// handlers receive the advertiser, never the token.
func (e *testEnv) advertiserOf(ctx *fasthttp.RequestCtx) (string, error) {
	tok := auth.Bearer(ctx.Request.Header.Peek("Authorization"))
	if tok == nil {
		return "", apierr.Unauthorized("Authorization: missing; send \"Authorization: Bearer <token>\"")
	}
	adv, ok := e.s.tenants.Advertiser(tok)
	if !ok {
		return "", apierr.Unauthorized("Authorization: unknown token")
	}
	return adv, nil
}

// asAdvertiser is an advertiser's handler behind the front door (advertiserOf).
func (e *testEnv) asAdvertiser(h func(*fasthttp.RequestCtx, Body, string) error) func(*fasthttp.RequestCtx, []byte) error {
	return func(ctx *fasthttp.RequestCtx, b []byte) error {
		adv, err := e.advertiserOf(ctx)
		if err != nil {
			return err
		}
		return h(ctx, bodyOf(b), adv)
	}
}

// metaEvents is HandleMetaEvents for dataset behind the front door
// (server/auth.go, roleMeta): an access_token in the query is resolved
// first; one in the body, by the handler.
func (e *testEnv) metaEvents(ctx *fasthttp.RequestCtx, body Body, dataset string) error {
	adv := ""
	if tok := ctx.QueryArgs().Peek("access_token"); len(tok) > 0 {
		var ok bool
		if adv, ok = e.s.tenants.Advertiser(tok); !ok {
			return apierr.Unauthorized("access_token: invalid")
		}
	}
	return e.s.HandleMetaEvents(ctx, body, dataset, adv)
}

// bodyOf is a Body that returns b as it is.
func bodyOf(b []byte) Body { return func() ([]byte, error) { return b, nil } }

// noBody is a Body for requests without one.
var noBody Body = func() ([]byte, error) { return nil, nil }

// postCAPI posts body to /v1/conversions with the demo token.
func (e *testEnv) postCAPI(body string, headers ...string) response {
	h := append([]string{"Authorization: Bearer " + testToken, "Content-Type: application/json"}, headers...)
	return call(e.asAdvertiser(e.s.HandleConversions), "POST", "/v1/conversions?dataset="+testDataset, body, h...)
}

// postMeta posts body to the Meta-compatible path of the demo dataset.
func (e *testEnv) postMeta(query, body string, headers ...string) response {
	return call(func(ctx *fasthttp.RequestCtx, b []byte) error {
		return e.metaEvents(ctx, bodyOf(b), testDataset)
	}, "POST", "/v24.0/"+testDataset+"/events"+query, body, headers...)
}

// pixel fires a GET pixel hit with the query.
func (e *testEnv) pixel(query string, headers ...string) response {
	h := append([]string{"User-Agent: Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0)"}, headers...)
	return call(raw(e.s.HandlePixel), "GET", "/v1/pixel?"+query, "", h...)
}

func (e *testEnv) stats(t testing.TB) map[string]any {
	t.Helper()
	r := call(e.asAdvertiser(func(ctx *fasthttp.RequestCtx, _ Body, adv string) error { return e.s.HandleStats(ctx, adv) }),
		"GET", "/v1/stats?dataset="+testDataset, "", "Authorization: Bearer "+testToken)
	if r.status != 200 {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	return r.json(t)
}

// ev is a valid website event with the given event_id ("" = none) and user
// data JSON (the members of user_data, without braces).
func ev(name, id string, t int64, user string) string {
	s := `{"event_name":"` + name + `","event_time":` + itoa(t) + `,"action_source":"website","event_source_url":"https://shop.example.com/thanks"`
	if id != "" {
		s += `,"event_id":"` + id + `"`
	}
	s += `,"user_data":{"client_user_agent":"Mozilla/5.0"`
	if user != "" {
		s += "," + user
	}
	return s + `},"custom_data":{"value":12.5,"currency":"usd"}}`
}

func batchOf(events ...string) string { return `{"data":[` + strings.Join(events, ",") + `]}` }

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func num(m map[string]any, k string) int {
	f, _ := m[k].(float64)
	return int(f)
}
