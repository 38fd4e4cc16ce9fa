package load

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/valyala/fasthttp"
)

func TestParseMix(t *testing.T) {
	f := func(in string, want map[string]int, wantErr string) {
		t.Helper()
		got, err := ParseMix(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%q: got error %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	f("score=90,exposures=9,conversions=1", map[string]int{"score": 90, "exposures": 9, "conversions": 1}, "")
	f(" win = 1 , vast=0,", map[string]int{"win": 1, "vast": 0}, "")
	f("score", nil, `"score": want kind=weight`)
	f("score=-1", nil, "weight must be an integer ≥ 0")
	f("scores=1", nil, `unknown kind "scores"`)
	f("score=0", nil, "every weight is zero")
	f("", nil, "every weight is zero")
}

func TestSchedule(t *testing.T) {
	f := func(mix string) {
		t.Helper()
		m, _ := ParseMix(mix)
		s := schedule(m)
		got := map[string]int{}
		for _, k := range s {
			got[k.String()]++
		}
		total, stotal := 0, 0
		for _, w := range m {
			total += w
		}
		for _, c := range got {
			stotal += c
		}
		for k, w := range m {
			if got[k]*total != w*stotal {
				t.Errorf("%s: %s appears %d of %d times, want %d/%d", mix, k, got[k], stotal, w, total)
			}
		}
	}
	f("score=90,exposures=9,conversions=1")
	f("score=2,win=4,vast=6")
	f("bids=1")
	// Interleaved: in score=1,win=1 no kind comes twice in a row.
	m, _ := ParseMix("score=1,win=1")
	s := schedule(m)
	if len(s) != 2 || s[0] == s[1] {
		t.Errorf("schedule %v", s)
	}
}

func TestHistogram(t *testing.T) {
	// Every value maps to a bucket whose middle is within 0.8 % of it.
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 999999, 1 << 30, 1<<41 + 12345} {
		mid := histMid(histIndex(v))
		if math.Abs(float64(mid)-float64(v)) > float64(v)/128+0.5 {
			t.Errorf("value %d: bucket middle %d", v, mid)
		}
	}
	if histIndex(1<<62) != histBuckets-1 {
		t.Error("huge value not in the last bucket")
	}
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	f := func(q float64, want time.Duration) {
		t.Helper()
		if got := h.quantile(q); math.Abs(float64(got-want)) > float64(want)/100 {
			t.Errorf("q%v: got %v, want %v", q, got, want)
		}
	}
	f(0.5, 5*time.Millisecond)
	f(0.9, 9*time.Millisecond)
	f(0.99, 9900*time.Microsecond)
	f(0.999, 9990*time.Microsecond)
	f(1, 10*time.Millisecond)
	if h.max.Load() != uint64(10*time.Millisecond) || h.count() != 10000 {
		t.Fatalf("max %d count %d", h.max.Load(), h.count())
	}
	var m histogram
	m.merge(&h)
	m.merge(&h)
	if m.count() != 20000 || m.quantile(0.5) != h.quantile(0.5) {
		t.Fatalf("merge: count %d p50 %v", m.count(), m.quantile(0.5))
	}
	var empty histogram
	if empty.quantile(0.99) != 0 || empty.mean() != 0 {
		t.Fatal("empty histogram")
	}
}

func TestLoopbackOnly(t *testing.T) {
	f := func(target, want string) {
		t.Helper()
		got, err := loopbackAddr(target)
		if want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %q", target, got)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", target, got, err, want)
		}
	}
	f("http://127.0.0.1:8080", "127.0.0.1:8080")
	f("http://localhost:9", "localhost:9")
	f("http://[::1]:8080/", "[::1]:8080")
	f("http://127.0.0.2", "127.0.0.2:80")
	f("http://10.0.0.1:8080", "")
	f("http://example.com", "")
	f("https://127.0.0.1:8443", "")
	f("127.0.0.1:8080", "")
}

func checkKind(t *testing.T, name string, k *KindReport) {
	t.Helper()
	if k == nil || k.Requests == 0 {
		t.Fatalf("%s: no requests", name)
	}
	l := k.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("%s: latency quantiles out of order: %+v", name, l)
	}
	var errs uint64
	for _, n := range k.Errors {
		errs += n
	}
	if k.OK+errs != k.Requests {
		t.Fatalf("%s: %d ok + %d errors != %d requests", name, k.OK, errs, k.Requests)
	}
}

func TestRunLoadBareHandler(t *testing.T) {
	u, stop, err := StartBareServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var out bytes.Buffer
	rep, err := Run(context.Background(), Options{
		Target: u, Duration: time.Second, Concurrency: 4, Scenario: testScenario(), Seed: 1,
		Pool: PoolOptions{Requests: 64, Exposed: 32}, Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"score", "exposures", "conversions"} {
		checkKind(t, name, rep.Kinds[name])
		if len(rep.Kinds[name].Errors) != 0 {
			t.Fatalf("%s: errors %v against the bare handler", name, rep.Kinds[name].Errors)
		}
	}
	if len(rep.Kinds) != 3 || rep.Mode != "closed" || rep.Total.Throughput <= 0 {
		t.Fatalf("report %+v", rep)
	}
	if s := rep.Kinds["score"].Requests; s < 5*rep.Kinds["exposures"].Requests {
		t.Errorf("mix not followed: %d score, %d exposures", s, rep.Kinds["exposures"].Requests)
	}
	// The bare handler has no metrics: the report says so instead of failing.
	if rep.Server == nil || rep.Server.Error == "" {
		t.Errorf("server metrics of a bare handler: %+v", rep.Server)
	}
	if !strings.Contains(out.String(), "total") || !strings.Contains(out.String(), "req/s") {
		t.Errorf("no table in the output:\n%s", out.String())
	}
}

// fakeServer answers the routes of the public contract with fixed bodies,
// checks what it is sent, and answers 503 to every 4th conversions and every
// 10th score request.
type fakeServer struct {
	mu       sync.Mutex
	requests map[string]int // by route
	errors   map[string]int // 503s by route
	bad      []string       // protocol violations seen
	eventIDs map[string]int
	fsync    *metrics.Histogram
	set      *metrics.Set
}

func newFakeServer() *fakeServer {
	f := &fakeServer{requests: map[string]int{}, errors: map[string]int{}, eventIDs: map[string]int{}, set: metrics.NewSet()}
	f.fsync = f.set.NewHistogram("cpafeed_journal_fsync_seconds")
	return f
}

var gif = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")

func (f *fakeServer) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	route := map[string]string{
		"/v1/score": "score", "/v1/bids": "bids", "/v1/exposures": "exposures",
		"/v1/conversions": "conversions", "/v1/win": "win", "/v1/vast": "vast", "/metrics": "metrics",
	}[path]
	if route == "score" && ctx.IsGet() {
		route = "score_get"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bad := func(why string) {
		f.bad = append(f.bad, route+": "+why)
		ctx.SetStatusCode(400)
	}
	if route == "" {
		bad("unknown path " + path)
		return
	}
	f.requests[route]++
	n := f.requests[route]
	auth := string(ctx.Request.Header.Peek("Authorization"))
	switch route {
	case "metrics":
		f.fsync.Update(0.001 * float64(n))
		var buf bytes.Buffer
		f.set.WritePrometheus(&buf)
		metrics.WriteProcessMetrics(&buf)
		ctx.SetBody(buf.Bytes())
		return
	case "win", "vast":
		if !ctx.IsGet() || auth != "" || len(ctx.QueryArgs().Peek("auction")) == 0 || len(ctx.QueryArgs().Peek("campaign")) == 0 {
			bad("bad beacon " + string(ctx.RequestURI()))
			return
		}
		ctx.SetContentType("image/gif")
		ctx.SetBody(gif)
		return
	case "score_get":
		q := ctx.QueryArgs()
		if auth != "Bearer dev-bidder-token" || !strings.HasPrefix(string(q.Peek("campaign")), "demo-ctv-") ||
			len(q.Peek("publisher")) == 0 || len(q.Peek("devicetype")) == 0 || len(ctx.PostBody()) != 0 {
			bad("bad feature score " + string(ctx.RequestURI()))
			return
		}
		ctx.SetBodyString(bareBody)
		return
	case "conversions":
		if auth != "Bearer dev-advertiser-token" || string(ctx.QueryArgs().Peek("dataset")) != "1234567890" {
			bad("auth or dataset")
			return
		}
		var cb capiBody
		if err := json.Unmarshal(ctx.PostBody(), &cb); err != nil || len(cb.Data) == 0 {
			bad("body: " + err.Error())
			return
		}
		for _, e := range cb.Data {
			f.eventIDs[e.EventID]++
		}
		if n%4 == 0 {
			f.errors[route]++
			ctx.SetStatusCode(503)
			ctx.SetBodyString(`{"error":{"code":"unavailable","message":"try later"}}`)
			return
		}
		ctx.SetBodyString(`{"events_received":1,"events_deduplicated":0,"messages":[],"fbtrace_id":"x"}`)
		return
	}
	// score, bids, exposures
	if !ctx.IsPost() || auth != "Bearer dev-bidder-token" || !json.Valid(ctx.PostBody()) {
		bad("method, auth or body")
		return
	}
	if route == "score" && string(ctx.QueryArgs().Peek("campaigns")) != "demo-ctv-purchase,demo-ctv-signup" {
		bad("campaigns")
		return
	}
	if route == "score" && n%10 == 0 {
		f.errors[route]++
		ctx.SetStatusCode(503)
		return
	}
	ctx.SetBodyString(bareBody)
}

func TestRunLoadFakeServer(t *testing.T) {
	fake := newFakeServer()
	u, stop, err := StartServer(fake.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	mix, _ := ParseMix("score=5,exposures=2,conversions=2,win=1,vast=1,bids=1,score_get=1")
	rep, err := Run(context.Background(), Options{
		Target: u, Mix: mix, Duration: time.Second, Concurrency: 4, Scenario: testScenario(), Seed: 2,
		Pool: PoolOptions{Requests: 40, Exposed: 20, ExposuresPerBatch: 3}, Baseline: true, JSONPath: jsonPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.bad) > 0 {
		t.Fatalf("the fake server saw bad requests: %v", fake.bad[:min(5, len(fake.bad))])
	}
	for name := range mix {
		k := rep.Kinds[name]
		checkKind(t, name, k)
		want := uint64(fake.requests[name])
		if name == "bids" {
			want -= 20 // primed before the run
		}
		if k.Requests != want {
			t.Errorf("%s: report says %d requests, the server answered %d", name, k.Requests, want)
		}
		if k.Errors["503"] != uint64(fake.errors[name]) || len(k.Errors) > 1 || len(k.Errors) == 1 && k.Errors["503"] == 0 {
			t.Errorf("%s: report says errors %v, the server sent %d 503s", name, k.Errors, fake.errors[name])
		}
	}
	if fake.errors["conversions"] == 0 || fake.errors["score"] == 0 {
		t.Fatalf("no 503s sent: %v", fake.errors)
	}
	if rep.Total.Errors["503"] != uint64(fake.errors["conversions"]+fake.errors["score"]) {
		t.Errorf("total errors %v", rep.Total.Errors)
	}
	if fake.requests["metrics"] != 2 || rep.Server == nil || rep.Server.RSSBytes <= 0 || rep.Server.JournalFsync == nil ||
		rep.Server.JournalFsync.Count != 1 || rep.Server.GCPauseSeconds == nil {
		t.Errorf("server metrics %+v (fsync %+v)", rep.Server, rep.Server.JournalFsync)
	}
	if rep.Baseline == nil || rep.Ratio <= 0 || rep.Baseline.Total.Requests == 0 || len(rep.Baseline.Total.Errors) != 0 {
		t.Fatalf("baseline %+v ratio %v", rep.Baseline, rep.Ratio)
	}

	// The JSON report has the documented shape.
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"target", "mode", "concurrency", "duration_seconds", "mix", "kinds", "total", "server", "baseline", "ratio"} {
		if _, ok := j[key]; !ok {
			t.Errorf("JSON report has no %q", key)
		}
	}
	score := j["kinds"].(map[string]any)["score"].(map[string]any)
	for _, key := range []string{"requests", "ok", "errors", "throughput_rps", "latency_ms"} {
		if _, ok := score[key]; !ok {
			t.Errorf("JSON kinds.score has no %q", key)
		}
	}
	lat := score["latency_ms"].(map[string]any)
	for _, key := range []string{"p50", "p90", "p99", "p99_9", "max"} {
		if _, ok := lat[key].(float64); !ok {
			t.Errorf("JSON latency_ms has no %q", key)
		}
	}
	if _, ok := j["server"].(map[string]any)["journal_fsync_seconds"].(map[string]any)["p99"]; !ok {
		t.Error("JSON server.journal_fsync_seconds.p99 missing")
	}
}

func TestConversionIDsUniqueAcrossPasses(t *testing.T) {
	pool, err := buildPool(testScenario(), 3, PoolOptions{Requests: 8, Exposed: 8})
	if err != nil {
		t.Fatal(err)
	}
	kp := &pool.kinds[KindConversions]
	if len(kp.reqs) == 0 || len(kp.reqs[0].patch) == 0 {
		t.Fatal("conversion bodies are not patchable")
	}
	var seq atomic.Uint64
	sched := []Kind{KindConversions}
	w := newLoadWorker(0, 1, nil, renderPhase(pool, "127.0.0.1:1", sched), sched, &seq, 7)
	ids := func() map[string]bool {
		got := map[string]bool{}
		for range kp.reqs {
			var cb capiBody
			head, body := w.prepare(KindConversions)
			if want := "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"; !strings.Contains(string(head), want) {
				t.Fatalf("head %q has no %q", head, want)
			}
			if err := json.Unmarshal(body, &cb); err != nil {
				t.Fatal(err)
			}
			for _, e := range cb.Data {
				got[e.EventID] = true
			}
		}
		return got
	}
	first, second := ids(), ids()
	for id := range first {
		if second[id] {
			t.Fatalf("event id %s repeats in the second pass over the pool", id)
		}
		if !strings.HasSuffix(id, "-00000007") {
			t.Fatalf("event id %s: first pass not patched", id)
		}
	}
	if len(second) != len(first) {
		t.Fatalf("passes have %d and %d distinct ids", len(first), len(second))
	}
	// The pool bodies themselves are never modified.
	if !bytes.Contains(kp.reqs[0].body, []byte("-00000000\"")) {
		t.Fatal("pool body was patched in place")
	}
}

func TestOpenLoopCountsStalls(t *testing.T) {
	// The handler stalls once for 200 ms, 300 ms into the run (the first
	// win notice starts the clock: bids are primed before).
	var once, first sync.Once
	var start time.Time
	u, stop, err := StartServer(func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/v1/win" {
			first.Do(func() { start = time.Now() })
			if time.Since(start) > 300*time.Millisecond {
				once.Do(func() { time.Sleep(200 * time.Millisecond) })
			}
		}
		ctx.SetBodyString(bareBody)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	mix, _ := ParseMix("win=1")
	rep, err := Run(context.Background(), Options{
		Target: u, Mix: mix, Duration: time.Second, Rate: 200, Concurrency: 1, Scenario: testScenario(),
		Pool: PoolOptions{Requests: 16, Exposed: 16},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Kinds["win"].Latency
	// One request waited 200 ms; under an open loop the ~40 requests
	// scheduled during the stall are charged for their wait too, so the
	// stall shows in p99, not only in max.
	if l.Max < 190 || l.P999 < 150 || l.P99 < 100 {
		t.Fatalf("open-loop latency does not show the stall: %+v", l)
	}
	if rep.Mode != "open" || rep.Kinds["win"].Requests < 150 {
		t.Fatalf("open loop sent %d requests", rep.Kinds["win"].Requests)
	}
}

func TestRunLoadRejects(t *testing.T) {
	f := func(o Options, want string) {
		t.Helper()
		o.Scenario = testScenario()
		_, err := Run(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	f(Options{Target: "http://192.0.2.1:80"}, "only loopback hosts")
	f(Options{Target: "http://127.0.0.1:1", Duration: time.Hour}, "duration 1h0m0s not within")
	f(Options{Target: "http://127.0.0.1:1", Concurrency: -1}, "concurrency -1 not within")
	f(Options{Target: "http://127.0.0.1:1", Mix: map[string]int{"nope": 1}}, `unknown kind "nope"`)
	f(Options{Target: "http://127.0.0.1:1", Spawn: func() (string, func() error, error) { return "", nil, nil }}, "either Target or Spawn")
}

func TestRunLoadSpawn(t *testing.T) {
	stopped := false
	rep, err := Run(context.Background(), Options{
		Duration: 300 * time.Millisecond, Concurrency: 2, Scenario: testScenario(), Pool: PoolOptions{Requests: 16, Exposed: 8},
		Spawn: func() (string, func() error, error) {
			u, stop, err := StartBareServer()
			return u, func() error { stopped = true; return stop() }, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !stopped || rep.Total.Requests == 0 || !strings.HasPrefix(rep.Target, "http://127.0.0.1:") {
		t.Fatalf("spawned run: stopped %v, %+v", stopped, rep)
	}
}

func TestLoadWorkerSendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not measured under -race")
	}
	u, stop, err := StartBareServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr, _ := loopbackAddr(u)
	pool, err := buildPool(testScenario(), 1, PoolOptions{Requests: 16, Exposed: 16})
	if err != nil {
		t.Fatal(err)
	}
	var seq atomic.Uint64
	for _, k := range []Kind{KindScore, KindWin, KindConversions} {
		sched := []Kind{k}
		w := newLoadWorker(0, 1, newHTTPConn(addr, 5*time.Second), renderPhase(pool, addr, sched), sched, &seq, 1)
		w.send(k, time.Now()) // connect, warm the pools
		if n := testing.AllocsPerRun(200, func() { w.send(k, time.Now()) }); n != 0 {
			t.Errorf("%s: %v allocations per request", k, n)
		}
	}
}

// testScenario is a smaller market so that tests stay fast under -race.
func testScenario() market.Scenario {
	sc := market.DefaultScenario()
	sc.Inventory.Publishers = 60
	sc.Inventory.OpportunitiesPerDay = 30000
	sc.Reporting.Households = 20000
	return sc
}

// capiBody is what the tests read of a Meta CAPI body.
type capiBody struct {
	Data []struct {
		EventID string `json:"event_id"`
	} `json:"data"`
}

func TestSampleRequest(t *testing.T) {
	raw, err := SampleRequest("http://127.0.0.1:18080", "score", testScenario(), 1, PoolOptions{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok || !json.Valid(body) {
		t.Fatalf("not a request with a JSON body: %q", raw[:min(len(raw), 300)])
	}
	for _, want := range []string{
		"POST /v1/score?campaigns=demo-ctv-purchase,demo-ctv-signup HTTP/1.1\r\n", "\r\nHost: 127.0.0.1:18080\r\n",
		"\r\nAuthorization: Bearer dev-bidder-token\r\n", "\r\nContent-Length: " + strconv.Itoa(len(body)),
	} {
		if !strings.Contains(string(head)+"\r\n", want) {
			t.Errorf("head has no %q:\n%s", want, head)
		}
	}
	win, err := SampleRequest("http://localhost:9", "win", testScenario(), 1, PoolOptions{Requests: 1})
	if err != nil || !bytes.HasPrefix(win, []byte("GET /v1/win?")) || !bytes.HasSuffix(win, []byte("\r\nHost: localhost:9\r\nUser-Agent: cpafeed-bench\r\n\r\n")) {
		t.Fatalf("win: %q, %v", win, err)
	}
	if _, err := SampleRequest("http://10.0.0.1:80", "score", testScenario(), 1, PoolOptions{}); err == nil {
		t.Error("a non-loopback target was accepted")
	}
	if _, err := SampleRequest("http://127.0.0.1:1", "nope", testScenario(), 1, PoolOptions{}); err == nil {
		t.Error("an unknown kind was accepted")
	}
}

// TestRunLoadServerCloses: a server that closes every third connection
// after its answer (saying so) costs the run new connections, not errors.
func TestRunLoadServerCloses(t *testing.T) {
	var served, closed atomic.Int64
	u, stop, err := StartServer(func(ctx *fasthttp.RequestCtx) {
		if served.Add(1)%3 == 0 {
			closed.Add(1)
			ctx.SetConnectionClose()
		}
		ctx.SetBodyString(bareBody)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	mix, _ := ParseMix("score=1")
	rep, err := Run(context.Background(), Options{
		Target: u, Mix: mix, Duration: 300 * time.Millisecond, Concurrency: 3, Scenario: testScenario(),
		Pool: PoolOptions{Requests: 16, Exposed: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	k := rep.Kinds["score"]
	checkKind(t, "score", k)
	// served also counts the two /metrics scrapes.
	if len(k.Errors) != 0 || k.Requests < 10 || k.Requests+2 != uint64(served.Load()) || closed.Load() == 0 {
		t.Fatalf("%d requests, errors %v; the server served %d and closed %d connections", k.Requests, k.Errors, served.Load(), closed.Load())
	}
}
