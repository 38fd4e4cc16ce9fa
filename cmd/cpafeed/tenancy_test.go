package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/signals"
)

// bidWithID is the bid request bid with its id replaced.
func bidWithID(t *testing.T, bid []byte, id string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bid, &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = id
	return jsonBody(t, m)
}

func zstdDecode(b []byte) ([]byte, error) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return dec.DecodeAll(b, nil)
}

// TestTenancyEveryTokenSeesOnlyItsTenant runs configs/examples/two-tenants.yaml:
// advertisers demo (dataset 1234567890) and other (2222222222), bidders
// demo-bidder (the demo campaigns) and other-bidder (other-ctv-purchase
// only). Every cross-tenant attempt is refused and changes nothing; every
// refusal has a positive control that the same request with the right
// token succeeds.
func TestTenancyEveryTokenSeesOnlyItsTenant(t *testing.T) {
	const (
		otherAdv    = "other-advertiser-token"
		otherBidder = "other-bidder-token"
		household   = "203.0.113.200" // a household both advertisers reach
	)
	p := start(t, t.TempDir(), "--config", "../../configs/examples/two-tenants.yaml")
	c := newHTTPC(10 * time.Second)
	now := time.Now().Unix()
	send := func(method, path, token string, body []byte) answer {
		t.Helper()
		ct := ""
		if body != nil {
			ct = "application/json"
		}
		return c.mustSend(t, method, p.base+path, ct, token, body)
	}
	must := func(a answer, status int, what string) answer {
		t.Helper()
		if a.status != status {
			t.Fatalf("%s: %v, want %d", what, a, status)
		}
		if status >= 400 && errorMessage(a) == "" {
			t.Fatalf("%s: not a JSON error: %v", what, a)
		}
		return a
	}
	exposures := func(campaign, rid string) []byte {
		return jsonBody(t, map[string]any{"exposures": []any{exposure(rid, campaign, 30, now-3600,
			map[string]any{"publisher": "pub-7", "bundle": "com.tv", "genre": "News", "metro": "501"}, map[string]any{"ip": household})}})
	}
	conversion := func(id string) []byte {
		return jsonBody(t, map[string]any{"data": []any{conversionEvent("Purchase", id, now-60, 50, map[string]any{"client_ip_address": household})}})
	}
	report := func(campaign, token string) answer {
		t.Helper()
		return must(send("GET", "/v1/campaigns/"+campaign+"/stats", token, nil), 200, "own report "+campaign)
	}
	// alike: a request naming another tenant's campaign gets the status
	// and message the same request naming a made-up id gets, so that no
	// token can list other tenants' campaign ids (issue 18: 403 for
	// another's, 404 for an unknown one).
	alike := func(method, path, token string, body []byte, campaign string, status int, what string) {
		t.Helper()
		const madeUp = "no-such-campaign"
		a := must(send(method, path, token, body), status, what)
		var madeBody []byte
		if body != nil {
			madeBody = bytes.ReplaceAll(body, []byte(campaign), []byte(madeUp))
		}
		b := must(send(method, strings.ReplaceAll(path, campaign, madeUp), token, madeBody), status, what+", with a made-up id")
		if x, y := strings.ReplaceAll(errorMessage(a), campaign, "ID"), strings.ReplaceAll(errorMessage(b), madeUp, "ID"); x != y {
			t.Fatalf("%s: %q; with a made-up id: %q", what, errorMessage(a), errorMessage(b))
		}
	}

	// Both tenants reach the household: an exposure and a conversion each.
	must(send("POST", "/v1/exposures", otherBidder, exposures("other-ctv-purchase", "b-1")), 200, "other-bidder's exposure")
	must(send("POST", "/v1/exposures", bidderToken, exposures("demo-ctv-purchase", "a-1")), 200, "demo-bidder's exposure")
	must(send("POST", "/v1/conversions?dataset=2222222222", otherAdv, conversion("b-order-1")), 200, "other's conversion")
	must(send("POST", "/v1/conversions?dataset=1234567890", advToken, conversion("a-order-1")), 200, "demo's conversion")
	bReport := func() (exposures, attributed float64) {
		r := report("other-ctv-purchase", otherAdv)
		return num(r.json, "exposures"), num(r.json, "conversions", "attributed")
	}
	if e, a := bReport(); e != 1 || a != 1 {
		t.Fatalf("other's report: %v exposures, %v attributed", e, a)
	}
	bStats := func() string {
		a := must(send("GET", "/v1/stats?dataset=2222222222", otherAdv, nil), 200, "other's stats")
		return string(a.raw)
	}
	bBefore := bStats()

	// Advertiser demo against other's dataset, reports and data.
	// Another tenant's dataset answers as Meta answers for an unknown
	// pixel (400, code 100, subcode 33), as a made-up one does (issue 15).
	must(send("POST", "/v1/conversions?dataset=2222222222", advToken, conversion("a-into-b-1")), 400, "demo posts to other's dataset")
	must(send("POST", "/v24.0/2222222222/events?access_token="+advToken, "", conversion("a-into-b-2")), 400, "demo posts to other's dataset on Meta's path")
	form := url.Values{"data": {string(jsonBody(t, []any{conversionEvent("Purchase", "a-into-b-3", now-60, 5, map[string]any{"client_ip_address": household})}))}, "access_token": {advToken}}
	if a := c.mustSend(t, "POST", p.base+"/v24.0/2222222222/events", "application/x-www-form-urlencoded", "", []byte(form.Encode())); a.status != 400 {
		t.Fatalf("demo posts a form to other's dataset on Meta's path: %v", a)
	}
	must(send("GET", "/v1/stats?dataset=2222222222", advToken, nil), 400, "demo reads other's stats")
	alike("GET", "/v1/campaigns/other-ctv-purchase/stats", advToken, nil, "other-ctv-purchase", 404, "demo reads other's campaign report")
	alike("GET", "/v1/segments?campaign=other-ctv-purchase", advToken, nil, "other-ctv-purchase", 404, "demo reads other's segments")
	must(send("GET", "/v1/segments?campaign=other-ctv-purchase", otherAdv, nil), 200, "other reads its segments")
	// Deleting the household with demo's token removes demo's exposure only.
	del := must(send("DELETE", "/v1/identities", advToken, []byte(`{"client_ip_address":"`+household+`"}`)), 200, "demo's deletion")
	if num(del.json, "exposures_removed") != 1 {
		t.Fatalf("demo's deletion: %s (want its own exposure removed, only)", del.raw)
	}
	if got := bStats(); got != bBefore {
		t.Fatalf("other's stats changed by demo's attempts:\n%s\n%s", bBefore, got)
	}
	// other's exposure still attributes other's next conversion; demo's is
	// gone.
	must(send("POST", "/v1/conversions?dataset=2222222222", otherAdv, conversion("b-order-2")), 200, "other's second conversion")
	if e, a := bReport(); e != 1 || a != 2 {
		t.Fatalf("other's report after demo's deletion: %v exposures, %v attributed, want 1 and 2", e, a)
	}
	must(send("POST", "/v1/conversions?dataset=1234567890", advToken, conversion("a-order-2")), 200, "demo's second conversion")
	if r := report("demo-ctv-purchase", advToken); num(r.json, "conversions", "attributed") != 1 {
		t.Fatalf("demo's deleted exposure still attributes: %s", r.raw)
	}

	// Bidders: only their campaigns, to report and to read.
	alike("POST", "/v1/exposures", bidderToken, exposures("other-ctv-purchase", "a-into-b"), "other-ctv-purchase", 400, "demo-bidder reports for other's campaign")
	mixed := jsonBody(t, map[string]any{"exposures": []any{
		exposure("mixed-1", "demo-ctv-purchase", 30, now-60, map[string]any{"publisher": "pub-7"}, nil),
		exposure("mixed-2", "other-ctv-purchase", 30, now-60, map[string]any{"publisher": "pub-7"}, nil)}})
	must(send("POST", "/v1/exposures", bidderToken, mixed), 400, "demo-bidder's batch with one of other's campaign")
	alike("POST", "/v1/exposures", otherBidder, exposures("demo-ctv-purchase", "b-into-a"), "demo-ctv-purchase", 400, "other-bidder reports for demo's campaign")
	if e, _ := bReport(); e != 1 {
		t.Fatalf("other's exposures changed: %v", e)
	}
	if r := report("demo-ctv-purchase", advToken); num(r.json, "exposures") != 1 {
		t.Fatalf("demo's exposures changed (a forbidden batch is not stored in part): %s", r.raw)
	}
	alike("GET", "/v1/campaigns/other-ctv-purchase/stats", bidderToken, nil, "other-ctv-purchase", 404, "demo-bidder reads other's report")
	alike("GET", "/v1/segments?campaign=other-ctv-purchase", bidderToken, nil, "other-ctv-purchase", 404, "demo-bidder reads other's segments")
	alike("GET", "/v1/campaigns/demo-ctv-purchase/stats", otherBidder, nil, "demo-ctv-purchase", 404, "other-bidder reads demo's report")
	alike("GET", "/v1/segments?campaign=demo-ctv-signup", otherBidder, nil, "demo-ctv-signup", 404, "other-bidder reads demo's segments")
	// A bidder's model snapshot holds its own campaigns, nothing of the
	// others (it named them).
	for _, b := range []struct{ token, own, other string }{
		{bidderToken, "demo-ctv-purchase,demo-ctv-signup", "other-ctv-purchase"},
		{otherBidder, "other-ctv-purchase", "demo-ctv"},
	} {
		a := must(send("GET", "/v1/model/snapshot", b.token, nil), 200, "snapshot")
		sn, err := bidder.ParseSnapshot(a.raw, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		sn.Estimates().Campaigns(func(id string) bool { ids = append(ids, id); return true })
		for _, r := range sn.Rules().Campaigns() {
			ids = append(ids, "rule:"+r.ID)
		}
		if want := b.own + ",rule:" + strings.ReplaceAll(b.own, ",", ",rule:"); strings.Join(ids, ",") != want {
			t.Fatalf("snapshot holds %v, want %s", ids, want)
		}
		raw, err := zstdDecode(a.raw)
		if err != nil || bytes.Contains(raw, []byte(b.other)) {
			t.Fatalf("snapshot names %s (%v)", b.other, err)
		}
	}
	report("other-ctv-purchase", otherBidder)
	report("demo-ctv-signup", bidderToken)
	must(send("GET", "/v1/segments?campaign=other-ctv-purchase", otherBidder, nil), 200, "other-bidder reads its segments")

	// Roles: an advertiser's token is no bidder's and vice versa.
	bid := readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	for _, tok := range []string{advToken, otherAdv} {
		must(send("POST", "/v1/exposures", tok, exposures("demo-ctv-purchase", "adv-as-bidder")), 403, "advertiser token on /v1/exposures")
		must(send("POST", "/v1/bids", tok, bid), 403, "advertiser token on /v1/bids")
	}
	must(send("POST", "/v1/bids", otherBidder, bid), 200, "other-bidder's bids")

	// Win notices come without a token: one may only name a campaign the
	// bidder that remembered the bid may use (issue 18: a stranger's win
	// for demo-bidder's bid, naming other's campaign at a price of
	// 1 000 000, added an exposure and 1000 USD of spend to it).
	win := func(query string) {
		t.Helper()
		a := c.mustSend(t, "GET", p.base+"/v1/win?"+query, "", "", nil)
		if a.status != 200 || a.header.Get("Content-Type") != "image/gif" {
			t.Fatalf("win %s: %v", query, a)
		}
	}
	spend := func(campaign, token string) (exposures, spend float64) {
		r := report(campaign, token)
		return num(r.json, "exposures"), num(r.json, "spend")
	}
	must(send("POST", "/v1/bids", bidderToken, bidWithID(t, bid, "stranger-1")), 200, "demo-bidder's bid")
	e0, s0 := spend("other-ctv-purchase", otherAdv)
	win("auction=stranger-1&imp=1&campaign=other-ctv-purchase&price=1000000")
	win("auction=stranger-1&imp=2&campaign=other-ctv-purchase&price=20")
	if e, s := spend("other-ctv-purchase", otherAdv); e != e0 || s != s0 {
		t.Fatalf("a win for demo-bidder's bid booked %v exposures and %v spend on other's campaign", e-e0, s-s0)
	}
	// The same win for demo-bidder's own campaign counts, at a price no
	// higher than exposures.max_win_price_cpm (above: counted at 0).
	d0, ds0 := spend("demo-ctv-signup", advToken)
	win("auction=stranger-1&imp=1&campaign=demo-ctv-signup&price=1000000")
	win("auction=stranger-1&imp=2&campaign=demo-ctv-signup&price=20")
	if e, s := spend("demo-ctv-signup", advToken); e != d0+2 || math.Abs(s-ds0-0.02) > 1e-9 {
		t.Fatalf("demo-bidder's own wins: %v exposures, %v spend; want 2 and 0.02", e-d0, s-ds0)
	}
	// other-bidder signs its win notices (win_secret): without the sig of
	// their auction, imp and campaign they book nothing.
	must(send("POST", "/v1/bids", otherBidder, bidWithID(t, bid, "signed-1")), 200, "other-bidder's bid")
	signer := signals.NewWinSigner([]byte("other-bidder-win-secret"))
	sig := func(imp string) string { return string(signer.AppendSig(nil, "signed-1", imp, "other-ctv-purchase")) }
	e0, _ = spend("other-ctv-purchase", otherAdv)
	win("auction=signed-1&imp=1&campaign=other-ctv-purchase&price=20")
	win("auction=signed-1&imp=1&campaign=other-ctv-purchase&price=20&sig=" + sig("2"))
	if e, _ := spend("other-ctv-purchase", otherAdv); e != e0 {
		t.Fatalf("unsigned wins of a signing bidder booked %v exposures", e-e0)
	}
	win("auction=signed-1&imp=1&campaign=other-ctv-purchase&price=20&sig=" + sig("1"))
	if e, _ := spend("other-ctv-purchase", otherAdv); e != e0+1 {
		t.Fatalf("a signed win booked %v exposures", e-e0)
	}

	// Scoring: a bidder scores only its campaigns (another tenant's is as
	// unknown as a made-up one); without ?campaigns, only its own are
	// scored.
	alike("POST", "/v1/score?campaigns=demo-ctv-purchase", otherBidder, bid, "demo-ctv-purchase", 404, "other-bidder scores demo's campaign")
	must(send("POST", "/v1/score?campaigns=other-ctv-purchase", otherBidder, bid), 200, "other-bidder scores its campaign")
	all := must(send("POST", "/v1/score", otherBidder, bid), 200, "other-bidder scores its campaigns")
	if strings.Contains(string(all.raw), "demo-ctv") || !strings.Contains(string(all.raw), "other-ctv-purchase") {
		t.Fatalf("other-bidder's default scoring: %s", all.raw)
	}
	must(send("POST", "/v1/score", advToken, bid), 403, "advertiser token on /v1/score")
	for _, tok := range []string{bidderToken, otherBidder} {
		must(send("POST", "/v1/conversions?dataset=1234567890", tok, conversion("bidder-as-adv")), 401, "bidder token on /v1/conversions")
		must(send("POST", "/v24.0/1234567890/events?access_token="+tok, "", conversion("bidder-as-adv")), 401, "bidder token on Meta's path")
		must(send("GET", "/v1/stats?dataset=1234567890", tok, nil), 401, "bidder token on /v1/stats")
		must(send("DELETE", "/v1/identities", tok, []byte(`{"client_ip_address":"`+household+`"}`)), 401, "bidder token on /v1/identities")
	}

	// Unknown and missing tokens.
	for _, tok := range []string{"nope", "dev-advertiser-token2", strings.ToUpper(advToken), ""} {
		for _, r := range []struct{ method, path string }{
			{"POST", "/v1/conversions?dataset=1234567890"}, {"POST", "/v24.0/1234567890/events"},
			{"GET", "/v1/stats?dataset=1234567890"}, {"POST", "/v1/exposures"}, {"POST", "/v1/bids"},
			{"GET", "/v1/campaigns/demo-ctv-purchase/stats"}, {"GET", "/v1/segments?campaign=demo-ctv-purchase"},
			{"DELETE", "/v1/identities"},
		} {
			path := r.path
			if strings.HasPrefix(path, "/v24.0") && tok != "" {
				path += "?access_token=" + url.QueryEscape(tok)
			}
			body := conversion("unknown-token")
			switch {
			case strings.Contains(path, "exposures"):
				body = exposures("demo-ctv-purchase", "unknown-token")
			case strings.Contains(path, "bids"):
				body = bid
			case r.method == "GET":
				body = nil
			case r.method == "DELETE":
				body = []byte(`{"client_ip_address":"` + household + `"}`)
			}
			must(send(r.method, path, tok, body), 401, r.method+" "+r.path+" with token "+tok)
		}
	}
	if got := bStats(); !strings.Contains(got, `"stored":2`) {
		t.Fatalf("other's stats at the end: %s", got)
	}
	if r := report("demo-ctv-purchase", advToken); num(r.json, "exposures") != 1 || num(r.json, "conversions", "received") != 2 {
		t.Fatalf("demo's report at the end: %s", r.raw)
	}
}
