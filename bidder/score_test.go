package bidder

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

func decode(t *testing.T, body []byte) *Answer {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("answer is not valid JSON: %s", body)
	}
	var p fastjson.Parser
	a, err := decodeAnswer(&p, body)
	if err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return a
}

func sameScore(t *testing.T, where string, got CampaignScore, want Score) {
	t.Helper()
	w := WireFloat // the answer carries six significant digits
	if got.Campaign != want.Campaign || got.Level != want.Level || got.Segment != string(want.Segment) ||
		got.CVR != w(want.CVR) || got.CVRLo != w(want.CVRLo) || got.CVRHi != w(want.CVRHi) || got.VTR != w(want.VTR) ||
		got.NEff != w(want.NEff) || got.Conversions != w(want.Conversions) ||
		got.BidCPM != w(want.BidCPM) || got.Multiplier != w(want.Multiplier) {
		t.Fatalf("%s:\n got %+v\nwant %+v (segment %s)", where, got, want, want.Segment)
	}
}

// TestScoreFixturesCrossed: under the crossed model every fixture's imps
// are scored from their cells (model.Estimates.LookupCell) with the bid
// rule and the campaign's average; imps of pods differ by position and
// slot features, and fixtures without some features reach fewer tables.
func TestScoreFixturesCrossed(t *testing.T) {
	all := fixtures(t)
	w := newCrossedWorld(t)
	w.feedFixtures(t, all)
	x := signals.NewExtractor()
	levels := map[int]int{}
	for _, name := range sortedNames(all) {
		status, body := call(w.svc, "POST", "/v1/score?campaigns=ctv-purchase,ctv-signup", all[name], demoBidder)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
		a := decode(t, body)
		req, err := x.Extract(all[name], w.now)
		if err != nil {
			t.Fatal(err)
		}
		for i := range req.Imps {
			for j, c := range []string{"ctv-purchase", "ctv-signup"} {
				want := w.expectCrossed(t, c, &req.Imps[i])
				sameScore(t, name+" "+c, a.Imps[i].Campaigns[j], want)
				if !(want.CVRLo < want.CVR && want.CVR < want.CVRHi) {
					t.Fatalf("%s: interval [%g, %g] around %g", name, want.CVRLo, want.CVRHi, want.CVR)
				}
				levels[want.Level]++
			}
		}
	}
	// Every fixture's imps were fed: they find every table. Features never
	// seen find fewer (here genre and daypart only).
	if levels[6] == 0 {
		t.Errorf("levels %v: want answers with every table", levels)
	}
	var imp signals.Imp
	imp.SetFeatureString("publisher", "pub-never-seen")
	imp.SetFeatureString("genre", "Sports")
	imp.SetFeatureString("daypart", "prime")
	var res Result
	sc := NewScorerFromSnapshot(SnapshotOf(w.rules, w.m.Estimates()))
	if err := sc.ScoreImp(&imp, ScoreOptions{Campaigns: []string{"ctv-purchase"}}, &res); err != nil {
		t.Fatal(err)
	}
	want := w.expectCrossed(t, "ctv-purchase", &imp)
	got := res.Imps[0].Scores[0]
	if got.Level != want.Level || got.CVR != want.CVR || want.Level >= 6 || string(got.Segment) != "ctv-purchase/pub-never-seen/unknown/Sports/unknown/prime/unknown" {
		t.Errorf("unseen features: %+v, want %+v", got, want)
	}
}

// TestScoreFixtures scores every fixture (every imp, both campaigns) over
// POST /v1/score against a model fed known counts, and checks each answer
// against what was fed: the level and segment used, its estimate, the bid
// rule with its clamps and the multiplier.
func TestScoreFixtures(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	x := signals.NewExtractor()
	levels := map[int]int{}
	capped, floored, between := 0, 0, 0
	for _, name := range sortedNames(all) {
		status, body := call(w.svc, "POST", "/v1/score?campaigns=ctv-purchase,ctv-signup", all[name], demoBidder)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
		a := decode(t, body)
		req, err := x.Extract(all[name], w.now)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != string(req.ID) || len(a.Imps) != len(req.Imps) || a.ModelVersion != w.m.Estimates().Version() {
			t.Fatalf("%s: id %q, %d imps, version %d", name, a.ID, len(a.Imps), a.ModelVersion)
		}
		for i := range req.Imps {
			imp := &req.Imps[i]
			ai := a.Imps[i]
			if ai.ID != string(imp.ID) || len(ai.Campaigns) != 2 {
				t.Fatalf("%s imp[%d]: %+v", name, i, ai)
			}
			for j, c := range []string{"ctv-purchase", "ctv-signup"} {
				want := w.expect(t, c, imp)
				sameScore(t, name+" "+c, ai.Campaigns[j], want)
				if ai.Campaigns[j].Sampled {
					t.Fatalf("%s: a Thompson draw without explore", name)
				}
				if !(want.CVRLo <= want.CVR && want.CVR <= want.CVRHi) {
					t.Fatalf("%s: interval [%g, %g] around %g", name, want.CVRLo, want.CVRHi, want.CVR)
				}
				levels[want.Level]++
				if c == "ctv-purchase" && testing.Verbose() {
					t.Logf("%s %s L%d raw %g", name, c, want.Level, 40000*want.CVR)
				}
				if c == "ctv-purchase" {
					switch raw := 40000 * want.CVR; {
					case raw > 30:
						capped++
					case raw < 10:
						floored++
					default:
						between++
					}
				}
			}
		}
	}
	// The fixtures must exercise every level and both clamps, or this test
	// proves less than it claims.
	for l := range 5 {
		if levels[l] == 0 {
			t.Errorf("no answer at level %d: %v", l, levels)
		}
	}
	if capped == 0 || floored == 0 || between == 0 {
		t.Errorf("bids capped %d, floored %d, in between %d: want each > 0", capped, floored, between)
	}
}

// TestBidRule checks the bid rule on its own.
func TestBidRule(t *testing.T) {
	f := func(c CampaignRule, cvr, lo, want float64) {
		t.Helper()
		r, err := newRules(testLevels, []CampaignRule{c})
		if err != nil {
			t.Fatal(err)
		}
		p := cvr
		if r.camps[0].onLo {
			p = lo
		}
		if got := r.camps[0].price(p, 1, 1, false, nil, r.chain, &signals.Imp{}).BidCPM; math.Abs(got-want) > 1e-12 {
			t.Errorf("%+v bid(%g, %g) = %g, want %g", c, cvr, lo, got, want)
		}
	}
	base := CampaignRule{ID: "c", TargetCPA: 40, Pacing: 1, BidOn: BidOnCVR}
	f(base, 0.001, 0.0005, 40)                                            // 1000 × 0.001 × 40
	f(with(base, func(c *CampaignRule) { c.Pacing = 0.5 }), 0.001, 0, 20) // pacing
	f(with(base, func(c *CampaignRule) { c.BidOn = BidOnCVRLo }), 0.001, 0.0005, 20)
	f(with(base, func(c *CampaignRule) { c.CapCPM = 30 }), 0.001, 0, 30)
	f(with(base, func(c *CampaignRule) { c.FloorCPM = 50 }), 0.001, 0, 50)
	f(with(base, func(c *CampaignRule) { c.FloorCPM, c.CapCPM = 10, 30 }), 0.0005, 0, 20)
	f(with(base, func(c *CampaignRule) { c.FloorCPM, c.CapCPM = 10, 30 }), 0, 0, 10)
	f(base, 0, 0, 0) // no floor: no bid
}

func with(c CampaignRule, fn func(*CampaignRule)) CampaignRule { fn(&c); return c }

func TestNewRulesProblems(t *testing.T) {
	f := func(levels [][]string, c CampaignRule, want string) {
		t.Helper()
		_, err := newRules(levels, []CampaignRule{c})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v %+v: error %v, want %q", levels, c, err, want)
		}
	}
	ok := CampaignRule{ID: "c", TargetCPA: 40, Pacing: 1, BidOn: BidOnCVR}
	f([][]string{{"gnre"}}, ok, `unknown feature "gnre"`)
	f(testLevels, with(ok, func(c *CampaignRule) { c.ID = "" }), "campaigns[0]: empty id")
	f(testLevels, with(ok, func(c *CampaignRule) { c.TargetCPA = 0 }), "target_cpa")
	f(testLevels, with(ok, func(c *CampaignRule) { c.Pacing = math.NaN() }), "pacing")
	f(testLevels, with(ok, func(c *CampaignRule) { c.FloorCPM, c.CapCPM = 10, 5 }), "cap ≥ floor")
	f(testLevels, with(ok, func(c *CampaignRule) { c.BidOn = "cvr_hi" }), "bid_on")
	long := make([][]string, model.MaxLevels)
	for i, n := range signals.FeatureNames()[:model.MaxLevels] {
		long[i] = []string{n}
	}
	f(long, ok, "16 levels, at most 15")
	if _, err := newRules(testLevels, []CampaignRule{ok, ok}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate ids: %v", err)
	}
}

// TestScoreErrorFixtures walks testdata/invalid: each file is a request
// (method, query, body, bidder's allowed campaigns) and the status and
// message it must get.
func TestScoreErrorFixtures(t *testing.T) {
	w := newWorld(t)
	w.m.Refresh(w.now)
	names, _ := filepath.Glob("testdata/invalid/*.json")
	if len(names) < 8 {
		t.Fatalf("%d invalid fixtures", len(names))
	}
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Method, URI, Message string
			Body                 json.RawMessage
			BodyText             string `json:"body_text"`
			Status               int
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		body := []byte(c.Body)
		if c.BodyText != "" {
			body = []byte(c.BodyText)
		}
		status, got := call(w.svc, c.Method, c.URI, body, demoBidder)
		if status != c.Status || !bytes.HasPrefix(got, []byte(c.Message)) {
			t.Errorf("%s: %d %q, want %d %q", filepath.Base(n), status, got, c.Status, c.Message)
		}
	}
}

// TestScoreDefaultCampaigns: without campaigns, every campaign the bidder
// may score, in configuration order.
func TestScoreDefaultCampaigns(t *testing.T) {
	w := newWorld(t)
	w.m.Refresh(w.now)
	body := fixtures(t)["roku-ctv-pod-gpp"]
	f := func(b testBidder, want ...string) {
		t.Helper()
		status, out := call(w.svc, "POST", "/v1/score", body, b)
		if status != 200 {
			t.Fatalf("%d %s", status, out)
		}
		a := decode(t, out)
		var got []string
		for _, c := range a.Imps[0].Campaigns {
			got = append(got, c.Campaign)
			if c.Level != 0 || c.Segment != c.Campaign || c.Multiplier != 1 {
				t.Errorf("untrained %s: level %d, segment %q, multiplier %g", c.Campaign, c.Level, c.Segment, c.Multiplier)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s scored %v, want %v", b.name, got, want)
		}
	}
	f(demoBidder, "ctv-purchase", "ctv-signup")
	f(testBidder{name: "all"}, "ctv-purchase", "ctv-signup", "other-tenant")
	f(testBidder{name: "one", allowed: map[string]bool{"ctv-signup": true}}, "ctv-signup")
}

// TestScoreFeaturesEqualsRequest: GET /v1/score with an imp's features
// answers what POST /v1/score answers for that imp.
func TestScoreFeaturesEqualsRequest(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	x := signals.NewExtractor()
	for _, name := range sortedNames(all) {
		_, body := call(w.svc, "POST", "/v1/score?campaigns=ctv-signup,ctv-purchase", all[name], demoBidder)
		post := decode(t, body)
		req, _ := x.Extract(all[name], w.now)
		q := "/v1/score?campaign=ctv-signup&campaign=ctv-purchase"
		for _, f := range []signals.FeatureID{signals.FeaturePublisher, signals.FeatureBundle, signals.FeatureGenre, signals.FeatureMetro, signals.FeatureDeviceType} {
			q += "&" + f.String() + "=" + urlEscape(string(req.Imps[0].Feature(f)))
		}
		status, out := call(w.svc, "GET", q, nil, demoBidder)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, out)
		}
		var p fastjson.Parser
		got, err := decodeFeatureAnswer(&p, out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Campaigns) != 2 || got.ModelVersion != post.ModelVersion {
			t.Fatalf("%s: %s", name, out)
		}
		for j := range got.Campaigns {
			if got.Campaigns[j] != post.Imps[0].Campaigns[j] {
				t.Fatalf("%s: GET %+v\nPOST %+v", name, got.Campaigns[j], post.Imps[0].Campaigns[j])
			}
		}
	}
}

func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + string("0123456789ABCDEF"[c>>4]) + string("0123456789ABCDEF"[c&15]))
		}
	}
	return b.String()
}

// TestThompson: explore=thompson adds a draw in (0, 1), and the draws
// follow the segment's posterior (their mean is its CVR).
func TestThompson(t *testing.T) {
	t.Run("chain", func(t *testing.T) { testThompson(t, newWorld(t)) })
	t.Run("crossed", func(t *testing.T) { testThompson(t, newCrossedWorld(t)) })
}

func testThompson(t *testing.T, w *world) {
	all := fixtures(t)
	w.feedFixtures(t, all)
	status, body := call(w.svc, "POST", "/v1/score?explore=thompson", all["roku-ctv-pod-gpp"], demoBidder)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	for _, c := range decode(t, body).Imps[0].Campaigns {
		if !c.Sampled || !(c.CVRSample > 0 && c.CVRSample < 1) {
			t.Fatalf("%+v", c)
		}
	}
	req, _ := signals.NewExtractor().Extract(all["roku-ctv-pod-gpp"], w.now)
	tab := newTable(w.rules, w.m.Estimates(), nil)
	rng := rand.New(rand.NewPCG(1, 2))
	o := &scoreCtx{rng: rng, pace: 1}
	var s Score
	var cell model.Cell
	c := &cell
	if !tab.fillCell(&req.Imps[0], c) {
		c = nil
	}
	const n = 20000
	sum, sum2 := 0.0, 0.0
	for range n {
		w.rules.score(tab, 0, &req.Imps[0], c, o, &s, nil)
		sum += s.Sample
		sum2 += s.Sample * s.Sample
	}
	mean := sum / n
	sd := math.Sqrt(sum2/n - mean*mean)
	if math.Abs(mean-s.CVR) > 4*sd/math.Sqrt(n) {
		t.Fatalf("mean draw %g, CVR %g (sd %g)", mean, s.CVR, sd)
	}
}
