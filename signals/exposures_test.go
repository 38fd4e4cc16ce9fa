package signals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cpafeed/cpafeed/dedup"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/journal"
	"github.com/cpafeed/cpafeed/model"
)

// countRecorder records what the exposure side hands the model.
type countRecorder struct {
	mu        sync.Mutex
	exposures int
	cost      float64
	paths     map[model.Key]int // leaf -> exposures
	starts    float64
	completes float64
}

func (c *countRecorder) Expose(ts int64, path []model.Key, labels [][]byte, cost float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(labels) != len(path) || labels[0] != nil {
		panic("labels do not match path")
	}
	c.exposures++
	c.cost += cost
	if c.paths == nil {
		c.paths = map[model.Key]int{}
	}
	c.paths[path[len(path)-1]]++
	return true
}

func (c *countRecorder) Video(ts int64, leaf model.Key, starts, completes float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts += starts
	c.completes += completes
	return true
}

type testBidder struct {
	name  string
	camps []string
}

func (b testBidder) BidderName() string { return b.name }
func (b testBidder) SendsWins() bool    { return true }
func (b testBidder) MayUse(c string) bool {
	for _, x := range b.camps {
		if x == c {
			return true
		}
	}
	return false
}

var (
	demoBidder    = testBidder{"demo-bidder", []string{"demo-ctv-purchase", "demo-ctv-signup"}}
	otherBidder   = testBidder{"other-bidder", []string{"other-ctv-purchase"}}
	signingBidder = testBidder{"signing-bidder", []string{"demo-ctv-purchase", "demo-ctv-signup"}}
	testWinSecret = []byte("signing-bidder-win-secret")
)

// testBidders are the bidders win notices find: signing-bidder signs its
// win notices with testWinSecret.
type testBidders struct{ signer *WinSigner }

func (tb testBidders) CampaignBidders(campaign string) []CampaignBidder {
	var out []CampaignBidder
	for _, b := range []testBidder{demoBidder, otherBidder, signingBidder} {
		if b.MayUse(campaign) {
			cb := CampaignBidder{Name: b.name}
			if b.name == signingBidder.name {
				cb.Signer = tb.signer
			}
			out = append(out, cb)
		}
	}
	return out
}

func (tb testBidders) BidderNames() []string {
	return []string{demoBidder.name, otherBidder.name, signingBidder.name}
}

var testCampaigns = []model.Campaign{
	{ID: "demo-ctv-purchase", Advertiser: "demo", Event: "Purchase", TargetCPA: 40},
	{ID: "demo-ctv-signup", Advertiser: "demo", Event: "CompleteRegistration", TargetCPA: 8},
	{ID: "other-ctv-purchase", Advertiser: "other", Event: "Purchase", TargetCPA: 30},
}

type expHarness struct {
	x   *Exposures
	j   *journal.Journal
	c   *countRecorder
	dir string
	now time.Time
}

func openHarness(t testing.TB, dir string) *expHarness {
	t.Helper()
	return openHarnessWith(t, dir, ExposureConfig{})
}

// openHarnessWith is openHarness with an exposure config of the test's.
func openHarnessWith(t testing.TB, dir string, cfg ExposureConfig) *expHarness {
	t.Helper()
	return openHarnessHook(t, dir, cfg, nil)
}

// openHarnessHook is openHarnessWith with pre run on the Exposures before
// the journal is replayed (to attach hooks).
func openHarnessHook(t testing.TB, dir string, cfg ExposureConfig, pre func(*Exposures)) *expHarness {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := &expHarness{j: j, c: &countRecorder{}, dir: dir, now: time.Unix(1_795_000_000, 0)}
	chain, err := NewChain([][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}})
	if err != nil {
		t.Fatal(err)
	}
	h.x, err = NewExposures(cfg, ExposureDeps{
		Chain: chain, Hasher: NewHasher([]byte("test-secret")), Index: NewIndex(IndexConfig{MaxExposures: 1000}),
		Counter: h.c, Log: j, Campaigns: testCampaigns,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.x.SetClock(func() time.Time { return h.now })
	h.x.SetBidders(testBidders{NewWinSigner(testWinSecret)})
	if pre != nil {
		pre(h.x)
	}
	if _, err := j.Replay(1, func(_ uint64, rec []byte) error {
		_, err := h.x.Replay(rec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.x.Close(); j.Close() })
	return h
}

func fixture(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/openrtb/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to handler fn and returns the status and the answer
// (for an error: {"err": *apierr.Error}).
func post(t *testing.T, fn func(*fasthttp.RequestCtx, []byte) error, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetContentType(contentType)
	if err := fn(&ctx, body); err != nil {
		e := apierr.As(err)
		return e.Status, map[string]any{"err": e}
	}
	raw := ctx.Response.Body()
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("answer is not JSON: %s", raw)
		}
	}
	return ctx.Response.StatusCode(), out
}

// detailsOf renders an error's details one a line.
func detailsOf(v any) string {
	e, ok := v.(*apierr.Error)
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, d := range e.Details {
		b.WriteString(d.Field + ": " + d.Reason + "\n")
	}
	return b.String()
}

func exposuresBody(t *testing.T, items ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"exposures": items})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *expHarness) postExposures(t *testing.T, b Bidder, body []byte) (int, map[string]any) {
	return post(t, func(ctx *fasthttp.RequestCtx, body []byte) error { return h.x.HandleExposures(ctx, body, b) }, "application/json", body)
}

func TestExposuresFromBidRequestCountedIndexedIdempotent(t *testing.T) {
	h := openHarness(t, t.TempDir())
	roku := fixture(t, "roku-ctv-pod-gpp.json") // gpp usnat without opt-out: indexable
	body := exposuresBody(t,
		map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "creative": "cr-1", "price_cpm": 25.0, "ts": h.now.Unix() - 60},
		map[string]any{"request": roku, "imp_id": "2", "campaign": "demo-ctv-purchase", "price_cpm": 15.0, "ts": h.now.Unix() - 60},
	)
	status, out := h.postExposures(t, demoBidder, body)
	if status != 200 || out["exposures_stored"] != 2.0 {
		t.Fatalf("status %d %v", status, out)
	}
	if h.c.exposures != 2 || h.c.cost < 0.0399 || h.c.cost > 0.0401 {
		t.Fatalf("model got %d exposures, cost %v", h.c.exposures, h.c.cost)
	}
	ip := h.x.hasher.ID(IDIP, []byte("73.92.14.201"))
	ifa := h.x.hasher.ID(IDIFA, []byte("5a6e2c1b-9d3f-5e7a-8b4c-0f1d2e3a4b5c"))
	for _, id := range []ID{ip, ifa} {
		n := 0
		h.x.index.Visit(id.Key, 0, h.now.Unix(), func(uint64, IndexedExposure) bool { n++; return true })
		if n != 2 {
			t.Fatalf("%v: %d exposures in the index, want 2", id.Kind, n)
		}
	}
	// A retry is acknowledged and not counted again.
	status, out = h.postExposures(t, demoBidder, body)
	if status != 200 || out["exposures_stored"] != 0.0 || out["exposures_deduplicated"] != 2.0 || h.c.exposures != 2 {
		t.Fatalf("retry: status %d %v, model %d", status, out, h.c.exposures)
	}
}

func TestExposuresPrivacyGateCountsButDoesNotIndex(t *testing.T) {
	h := openHarness(t, t.TempDir())
	tizen := fixture(t, "samsung-tizen-ctv-usp-optout.json") // us_privacy 1YYN
	status, out := h.postExposures(t, demoBidder, exposuresBody(t,
		map[string]any{"request": tizen, "imp_id": "1", "campaign": "demo-ctv-signup", "price_cpm": 10.0}))
	if status != 200 || out["exposures_stored"] != 1.0 {
		t.Fatalf("status %d %v", status, out)
	}
	if h.c.exposures != 1 {
		t.Fatal("gated exposure not counted in the segment totals")
	}
	if st := h.x.index.Stats(); st.Exposures != 0 || st.Identities != 0 {
		t.Fatalf("opted-out exposure entered the index: %+v", st)
	}
}

func TestExposuresFeaturesForm(t *testing.T) {
	h := openHarness(t, t.TempDir())
	em := strings.Repeat("ab", 32)
	nd := `{"request_id":"r1","imp_id":"1","campaign":"demo-ctv-purchase","price_cpm":12,"features":{"publisher":"pub-1","bundle":"com.x","genre":"Sports","metro":501},"ids":{"ip":"10.1.2.3","em":"` + strings.ToUpper(em) + `"}}
{"request_id":"r2","imp_id":"1","campaign":"demo-ctv-purchase","features":{"publisher":"pub-1"},"ids":{"ip":"10.1.2.3"},"privacy":{"coppa":1}}
`
	status, out := post(t, func(ctx *fasthttp.RequestCtx, b []byte) error { return h.x.HandleExposures(ctx, b, demoBidder) }, "application/x-ndjson", []byte(nd))
	if status != 200 || out["exposures_stored"] != 2.0 {
		t.Fatalf("status %d %v", status, out)
	}
	n := 0
	h.x.index.Visit(h.x.hasher.ID(IDEmail, []byte(em)).Key, 0, h.now.Unix(), func(uint64, IndexedExposure) bool { n++; return true })
	if n != 1 {
		t.Fatalf("hashed email matched %d exposures, want 1 (the COPPA one stays out)", n)
	}
	root := model.RootKey("demo-ctv-purchase")
	leaf := root.Child([]byte("pub-1")).Child([]byte("com.x")).Child([]byte("Sports")).Child([]byte("501"))
	if h.c.paths[leaf] != 1 {
		t.Fatalf("segment path not built from the features: %v", h.c.paths)
	}
}

// TestExposuresFeaturesFormBadBytes (issue 18): ids and feature values of
// the features form are stored (journal, segment labels) and keyed on, so
// control characters are refused, and bytes that are not UTF-8 in feature
// values (read by fastjson as sent; ids are read as encoding/json reads
// them, with U+FFFD), each naming its path.
func TestExposuresFeaturesFormBadBytes(t *testing.T) {
	h := openHarness(t, t.TempDir())
	nd := `{"request_id":"r\u0007","imp_id":"1","campaign":"demo-ctv-purchase","features":{"publisher":"pub-1"}}
{"request_id":"r2","imp_id":"1\u0000","campaign":"demo-ctv-purchase","features":{"publisher":"pub-1"}}
{"request_id":"r3","imp_id":"1","campaign":"demo-ctv-purchase","features":{"publisher":"pub` + "\xc3" + `","genre":"a\u001bb"}}
`
	status, out := post(t, func(ctx *fasthttp.RequestCtx, b []byte) error { return h.x.HandleExposures(ctx, b, demoBidder) }, "application/x-ndjson", []byte(nd))
	if status != 400 {
		t.Fatalf("status %d %v", status, out)
	}
	msg := detailsOf(out["err"])
	for _, want := range []string{
		`exposures[0].request_id: contains control characters`,
		`exposures[1].imp_id: contains control characters`,
		`exposures[2].features.publisher: not UTF-8`,
		`exposures[2].features.genre: contains control characters`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if h.c.exposures != 0 {
		t.Fatal("stored")
	}
}

func TestExposuresBatchErrorsNameEveryPath(t *testing.T) {
	h := openHarness(t, t.TempDir())
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	status, out := h.postExposures(t, demoBidder, exposuresBody(t,
		map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase"},
		map[string]any{"request": roku, "imp_id": "9", "campaign": "demo-ctv-purchase"},
		map[string]any{"request": roku, "imp_id": "1", "campaign": "nope"},
		map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "ts": 5},
		map[string]any{"imp_id": "1", "campaign": "demo-ctv-purchase"},
		map[string]any{"request": map[string]any{"id": "x", "imp": []any{}}, "imp_id": "1", "campaign": "demo-ctv-purchase"},
	))
	if status != 400 {
		t.Fatalf("status %d %v", status, out)
	}
	msg := detailsOf(out["err"])
	for _, want := range []string{
		`exposures[1].imp_id: no imp "9" in the request`,
		`exposures[2].campaign: unknown campaign "nope"`,
		`exposures[3].ts: older than`,
		`exposures[4]: needs request (the bid request) or features`,
		`exposures[5].request.imp: `,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if h.c.exposures != 0 {
		t.Fatal("an invalid batch was partly stored")
	}
	// A campaign of another tenant is as unknown as a made-up one (issue
	// 18: a 403 told a bidder which ids were another tenant's).
	for _, c := range []string{"other-ctv-purchase", "made-up"} {
		status, out = h.postExposures(t, demoBidder, exposuresBody(t,
			map[string]any{"request": roku, "imp_id": "1", "campaign": c}))
		if msg := detailsOf(out["err"]); status != 400 || msg != `exposures[0].campaign: unknown campaign "`+c+"\"\n" {
			t.Fatalf("campaign %s: status %d %s", c, status, msg)
		}
	}
}

// TestBidsReportWhatWasKept (issue 18): POST /v1/bids refuses a request
// with more imps than exposures.max_imps (100 000 imps were answered
// "remembered: 100000"), and its answer counts only the imps actually
// remembered: none for a request too large to keep.
func TestBidsReportWhatWasKept(t *testing.T) {
	h := openHarness(t, t.TempDir())
	bids := func(body []byte) (int, map[string]any) {
		return post(t, func(ctx *fasthttp.RequestCtx, b []byte) error { return h.x.HandleBids(ctx, b, demoBidder) }, "application/json", body)
	}
	var many bytes.Buffer
	many.WriteString(`{"id":"many","imp":[`)
	for i := range 100_000 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `{"id":"%d"}`, i)
	}
	many.WriteString(`]}`)
	remembered := bidsRemembered.Get()
	status, out := bids(many.Bytes())
	if e, _ := out["err"].(*apierr.Error); status != 400 || e == nil || e.Message != "imp: 100000 imps, at most 32" {
		t.Fatalf("100 000 imps: %d %v", status, out)
	}
	status, out = bids([]byte(`{"id":"huge","imp":[{"id":"` + strings.Repeat("x", maxRemembered) + `"}]}`))
	if status != 200 || out["remembered"] != 0.0 {
		t.Fatalf("a request too large to remember: %d %v", status, out)
	}
	status, out = bids(fixture(t, "roku-ctv-pod-gpp.json"))
	if status != 200 || out["remembered"] != 3.0 {
		t.Fatalf("roku pod: %d %v", status, out)
	}
	if n := bidsRemembered.Get() - remembered; n != 3 {
		t.Fatalf("cpafeed_bids_remembered_total grew by %d, want 3", n)
	}
}

func TestBidWinVAST(t *testing.T) {
	h := openHarness(t, t.TempDir())
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	status, out := post(t, func(ctx *fasthttp.RequestCtx, b []byte) error { return h.x.HandleBids(ctx, b, demoBidder) }, "application/json", roku)
	if status != 200 || out["remembered"] != 3.0 {
		t.Fatalf("bids: %d %v", status, out)
	}
	get := func(fn func(*fasthttp.RequestCtx) error, uri string) *fasthttp.RequestCtx {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(uri)
		if err := fn(&ctx); err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		if string(ctx.Response.Header.ContentType()) != "image/gif" {
			t.Fatalf("%s: not a GIF", uri)
		}
		return &ctx
	}
	get(h.x.HandleWin, "/v1/win?auction=9f1c2d3e-roku-0001&imp=2&campaign=demo-ctv-purchase&creative=c&price=21.5")
	if h.c.exposures != 1 || h.c.cost < 0.0214 || h.c.cost > 0.0216 {
		t.Fatalf("win: %d exposures, cost %v", h.c.exposures, h.c.cost)
	}
	get(h.x.HandleWin, "/v1/win?auction=9f1c2d3e-roku-0001&imp=2&campaign=demo-ctv-purchase&price=21.5") // a second notice
	get(h.x.HandleWin, "/v1/win?auction=unknown&imp=1&campaign=demo-ctv-purchase&price=1")               // forgotten
	if h.c.exposures != 1 {
		t.Fatalf("duplicate or unknown wins counted: %d", h.c.exposures)
	}
	for _, ev := range []string{"impression", "start", "firstQuartile", "midpoint", "thirdQuartile", "complete", "start"} {
		get(h.x.HandleVAST, "/v1/vast?auction=9f1c2d3e-roku-0001&imp=2&campaign=demo-ctv-purchase&ev="+ev)
	}
	if h.c.starts != 1 || h.c.completes != 1 {
		t.Fatalf("VAST: starts %v completes %v", h.c.starts, h.c.completes)
	}
}

func TestExposuresReplayRebuildsState(t *testing.T) {
	dir := t.TempDir()
	h := openHarness(t, dir)
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	body := exposuresBody(t, map[string]any{"request": roku, "imp_id": "3", "campaign": "demo-ctv-purchase", "price_cpm": 30.0})
	if status, out := h.postExposures(t, demoBidder, body); status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	post(t, func(ctx *fasthttp.RequestCtx, b []byte) error { return h.x.HandleBids(ctx, b, demoBidder) }, "application/json", roku)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/vast?auction=9f1c2d3e-roku-0001&imp=3&campaign=demo-ctv-purchase&ev=start")
	if err := h.x.HandleVAST(&ctx); err != nil {
		t.Fatal(err)
	}
	h.x.Close()
	h.j.Close()

	h2 := openHarness(t, dir)
	if h2.c.exposures != 1 || h2.c.starts != 1 {
		t.Fatalf("replay: %d exposures, %v starts", h2.c.exposures, h2.c.starts)
	}
	if st := h2.x.index.Stats(); st.Exposures != 1 {
		t.Fatalf("replay: index %+v", st)
	}
	// A retry after the restart is still deduplicated.
	if status, out := h2.postExposures(t, demoBidder, body); status != 200 || out["exposures_deduplicated"] != 1.0 || h2.c.exposures != 1 {
		t.Fatalf("retry after restart: %d %v", status, out)
	}
}

func TestExposuresJournalDownIs503(t *testing.T) {
	h := openHarness(t, t.TempDir())
	h.j.Close()
	status, _ := h.postExposures(t, demoBidder, exposuresBody(t,
		map[string]any{"request": fixture(t, "roku-ctv-pod-gpp.json"), "imp_id": "1", "campaign": "demo-ctv-purchase"}))
	if status != 503 || h.c.exposures != 0 {
		t.Fatalf("status %d, %d counted", status, h.c.exposures)
	}
}

func TestExposureRecordRoundTrip(t *testing.T) {
	es := []exposure{{ts: 5, campaign: "c", cost: 0.02, indexed: true, auction: []byte("a"), imp: []byte("1"),
		path: []model.Key{1, 2, 3}, labels: [][]byte{nil, []byte("x"), []byte("y")}, ids: []ID{{IDIP, 9}}}}
	es[0].key[3] = 7
	rec := appendExposures(nil, 42, es)
	ingest, got, err := decodeExposures(rec)
	if err != nil || ingest != 42 || len(got) != 1 || got[0].campaign != "c" || got[0].path[2] != 3 || string(got[0].labels[2]) != "y" || got[0].ids[0] != (ID{IDIP, 9}) || got[0].key != es[0].key || !got[0].indexed {
		t.Fatalf("round trip: %v %+v %v", ingest, got, err)
	}
	for i := range rec {
		if _, _, err := decodeExposures(rec[:i]); err == nil {
			t.Fatalf("truncated record at %d decoded", i)
		}
	}
}

func FuzzExposureRecord(f *testing.F) {
	es := []exposure{{ts: 5, campaign: "c", path: []model.Key{1, 2}, labels: [][]byte{nil, []byte("x")}, ids: []ID{{IDIP, 9}}}}
	f.Add(appendExposures(nil, 1, es))
	f.Add(appendVideo(nil, &videoEvent{ts: 1, campaign: "c", leaf: 3, starts: 1}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		if _, es, err := decodeExposures(rec); err == nil {
			for _, e := range es {
				if len(e.path) == 0 || len(e.labels) != len(e.path) {
					t.Fatalf("inconsistent exposure %+v", e)
				}
			}
		}
		decodeVideo(rec)
	})
}

func TestExposuresSnapshotRoundTrip(t *testing.T) {
	h := openHarness(t, t.TempDir())
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	body := exposuresBody(t, map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "price_cpm": 10.0})
	if status, out := h.postExposures(t, demoBidder, body); status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	post(t, func(ctx *fasthttp.RequestCtx, b []byte) error { return h.x.HandleBids(ctx, b, demoBidder) }, "application/json", roku)
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	h.x.WriteSnapshot(w, math.MaxUint64)
	h.x.Index().WriteSnapshot(w, h.x.CampaignIDs())
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h2 := openHarness(t, t.TempDir())
	r := binenc.NewReader(&buf)
	if err := h2.x.ReadSnapshot(r); err != nil {
		t.Fatal(err)
	}
	if err := h2.x.Index().ReadSnapshot(r, h2.x.CampaignNumber); err != nil {
		t.Fatal(err)
	}
	// The idempotency key survived: a retry is a duplicate.
	if status, out := h2.postExposures(t, demoBidder, body); status != 200 || out["exposures_deduplicated"] != 1.0 {
		t.Fatalf("retry after restore: %d %v", status, out)
	}
	// The remembered bid survived: its win counts.
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/win?auction=9f1c2d3e-roku-0001&imp=2&campaign=demo-ctv-signup&price=5")
	if err := h2.x.HandleWin(&ctx); err != nil || h2.c.exposures != 1 {
		t.Fatalf("win after restore: %v, %d exposures", err, h2.c.exposures)
	}
	if st := h2.x.Index().Stats(); st.Exposures != 2 {
		t.Fatalf("index after restore and win: %+v", st)
	}
	// The posted exposure is still remembered as won: its VAST start counts.
	var vast fasthttp.RequestCtx
	vast.Request.SetRequestURI("/v1/vast?auction=9f1c2d3e-roku-0001&imp=1&campaign=demo-ctv-purchase&ev=start")
	if err := h2.x.HandleVAST(&vast); err != nil || h2.c.starts != 1 {
		t.Fatalf("VAST after restore: %v, %v starts", err, h2.c.starts)
	}
}

// FuzzExposureBatch: the exposure body scanner never panics, and whatever
// it accepts (a JSON batch or NDJSON lines) also goes through the handler
// without panicking.
func FuzzExposureBatch(f *testing.F) {
	roku, _ := os.ReadFile("testdata/openrtb/roku-ctv-pod-gpp.json")
	f.Add([]byte(`{"exposures":[{"request":` + string(roku) + `,"imp_id":"1","campaign":"demo-ctv-purchase","price_cpm":12.5,"ts":1795000000}]}`))
	f.Add([]byte(`{"exposures":[{"request_id":"r","imp_id":"1","campaign":"demo-ctv-purchase","features":{"publisher":"p","metro":501},"ids":{"ip":"10.0.0.1"},"privacy":{"coppa":1}}]}`))
	f.Add([]byte(`{"exposures":[1,null,"x",{"request":5},{"request":{"id":"a","imp":[{"id":"1"}]},"imp_id":"1"}]}`))
	f.Add([]byte(`{"exposures":[{"campaign":"\u0064emo","ts":"x","price_cpm":-1}],"exposures":[]}`))
	h := openHarness(f, f.TempDir())
	ex := NewExtractor()
	f.Fuzz(func(t *testing.T, body []byte) {
		n, at := exposureBatch(body, ex, func(i int, fl *exposureFields) {
			if fl != nil && fl.request {
				ex.finish(1795000000)
			}
		})
		if n < 0 && at > len(body) {
			t.Fatalf("error offset %d past the body (%d bytes)", at, len(body))
		}
		for line := range bytes.Lines(body) {
			exposureLine(line, 0, ex, func(int, *exposureFields) {})
		}
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetContentType("application/json")
		h.x.HandleExposures(&ctx, body, demoBidder)
	})
}

// heldLog is a Log whose records stay pending (appended, not durable, not
// applied) until release: the state between an append and its apply, where
// a journal checkpoint can fall.
type heldLog struct {
	mu      sync.Mutex
	cond    *sync.Cond
	next    uint64
	applied uint64
	applies []func()
	// failFrom > 0 fails every Wait for a record at or after it (a flush
	// that failed and dropped them).
	failFrom uint64
}

func newHeldLog() *heldLog { l := &heldLog{}; l.cond = sync.NewCond(&l.mu); return l }

func (l *heldLog) AppendApply(_ []byte, _, apply func()) (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	l.applies = append(l.applies, apply)
	return l.next, 0, nil
}

func (l *heldLog) Wait(lsn, _ uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.applied < lsn {
		if l.failFrom > 0 && lsn >= l.failFrom {
			return errors.New("journal: flush failed")
		}
		l.cond.Wait()
	}
	return nil
}

func (l *heldLog) pending() int { l.mu.Lock(); defer l.mu.Unlock(); return int(l.next - l.applied) }

// release applies every pending record, in order.
func (l *heldLog) release() {
	l.mu.Lock()
	fns := l.applies[l.applied:]
	l.mu.Unlock()
	for _, fn := range fns {
		if fn != nil {
			fn()
		}
	}
	l.mu.Lock()
	l.applied = l.next
	l.cond.Broadcast()
	l.mu.Unlock()
}

// TestExposuresSnapshotAtCheckpointExcludesInflight: a checkpoint that falls
// between an exposure batch's append and its apply does not hold the batch's
// idempotency keys (nor a VAST event's). If the record never reached the
// disk, the bidder's retry after the restart stores the exposure; before the
// fix it was answered as a duplicate and the exposure was lost.
func TestExposuresSnapshotAtCheckpointExcludesInflight(t *testing.T) {
	h := openHarness(t, t.TempDir())
	held := newHeldLog()
	h.x.log = held
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	body := exposuresBody(t, map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "price_cpm": 10.0, "ts": h.now.Unix() - 60})
	done := make(chan int, 1)
	go func() { status, _ := h.postExposures(t, demoBidder, body); done <- status }()
	deadline := time.Now().Add(5 * time.Second)
	for held.pending() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the exposure record was not appended")
		}
		time.Sleep(time.Millisecond)
	}
	vast := make(chan error, 1)
	go func() {
		vast <- h.x.commitVideo(h.x.videoEventOf(h.now.Unix(), []byte("a-1"), []byte("1"), "demo-ctv-purchase", "complete", 1))
	}()
	for held.pending() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the VAST record was not appended")
		}
		time.Sleep(time.Millisecond)
	}
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	h.x.WriteSnapshot(w, 1) // the checkpoint: no record applied yet
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	held.release()
	if status := <-done; status != 200 {
		t.Fatalf("exposures: %d", status)
	}
	if err := <-vast; err != nil {
		t.Fatal(err)
	}

	h2 := openHarness(t, t.TempDir())
	if err := h2.x.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	if status, out := h2.postExposures(t, demoBidder, body); status != 200 || out["exposures_stored"] != 1.0 {
		t.Fatalf("retry of an exposure the snapshot does not cover: %d %v", status, out)
	}
	if err := h2.x.commitVideo(h2.x.videoEventOf(h.now.Unix(), []byte("a-1"), []byte("1"), "demo-ctv-purchase", "complete", 1)); err != nil || h2.c.completes != 1 {
		t.Fatalf("retry of a VAST event the snapshot does not cover: %v, %v completes", err, h2.c.completes)
	}
}

// TestDuplicateIgnoresLaterUnrelatedFailure: a duplicate of a durable
// exposure (or VAST event) answers at once, even while a later, unrelated
// record is pending and then fails. Before, the duplicate waited for the
// journal's tail, so that failure answered it 503 although its original
// was durable and applied (the same defect issue 18 fixed in dedup).
func TestDuplicateIgnoresLaterUnrelatedFailure(t *testing.T) {
	h := openHarness(t, t.TempDir())
	held := newHeldLog()
	h.x.log = held
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	post := func(body []byte) chan int {
		done := make(chan int, 1)
		go func() { status, _ := h.postExposures(t, demoBidder, body); done <- status }()
		return done
	}
	waitPending := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for held.pending() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d records pending, want %d", held.pending(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	a := exposuresBody(t, map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "price_cpm": 10.0, "ts": h.now.Unix() - 60})
	done := post(a)
	waitPending(1)
	vast := make(chan error, 1)
	go func() {
		vast <- h.x.commitVideo(h.x.videoEventOf(h.now.Unix(), []byte("a-1"), []byte("1"), "demo-ctv-purchase", "complete", 1))
	}()
	waitPending(2)
	held.release()
	if status := <-done; status != 200 {
		t.Fatalf("exposures: %d", status)
	}
	if err := <-vast; err != nil {
		t.Fatal(err)
	}

	b := exposuresBody(t, map[string]any{"request": roku, "imp_id": "2", "campaign": "demo-ctv-purchase", "price_cpm": 10.0, "ts": h.now.Unix() - 30})
	other := post(b) // unrelated, pending, and its flush will fail
	waitPending(1)
	held.mu.Lock()
	held.failFrom = held.next
	held.cond.Broadcast()
	held.mu.Unlock()
	dup := post(a)
	select {
	case status := <-dup:
		if status != 200 {
			t.Fatalf("duplicate of a durable exposure answered %d while an unrelated record failed", status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("duplicate of a durable exposure waits for an unrelated pending record")
	}
	if err := h.x.commitVideo(h.x.videoEventOf(h.now.Unix(), []byte("a-1"), []byte("1"), "demo-ctv-purchase", "complete", 1)); err != nil {
		t.Fatalf("duplicate of a durable VAST event: %v while an unrelated record failed", err)
	}
	if status := <-other; status == 200 {
		t.Fatal("the failed record was acknowledged")
	}
}

// TestAwaitSeenFindsNewestInflight: a duplicate waits for the newest
// in-flight record holding one of its keys, whether it has a few keys or
// a batch of them; undone records and keys in no record are ignored.
func TestAwaitSeenFindsNewestInflight(t *testing.T) {
	var x Exposures
	key := func(i int) dedup.Key { return dedup.Key{byte(i), 1} }
	x.inflight = []*idemReservation{
		{lsn: 5, epoch: 1, keys: []dedup.Key{key(1), key(2)}},
		{lsn: 9, epoch: 2, keys: []dedup.Key{key(3)}},
		{lsn: 12, epoch: 2, keys: []dedup.Key{key(4)}, done: true},
	}
	many := func(k ...dedup.Key) []dedup.Key {
		out := append([]dedup.Key(nil), k...)
		for i := 100; i < 120; i++ {
			out = append(out, key(i))
		}
		return out
	}
	for _, c := range []struct {
		dups       []dedup.Key
		lsn, epoch uint64
	}{
		{[]dedup.Key{key(2)}, 5, 1},
		{[]dedup.Key{key(2), key(3)}, 9, 2},
		{[]dedup.Key{key(4)}, 0, 0},
		{[]dedup.Key{key(7)}, 0, 0},
		{many(key(2)), 5, 1},
		{many(key(3), key(1)), 9, 2},
		{many(key(4)), 0, 0},
	} {
		if lsn, epoch := x.awaitSeenLocked(c.dups); lsn != c.lsn || epoch != c.epoch {
			t.Errorf("%d dups: lsn %d epoch %d, want %d %d", len(c.dups), lsn, epoch, c.lsn, c.epoch)
		}
	}
}
