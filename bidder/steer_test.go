package bidder

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/shading"
	"github.com/cpafeed/cpafeed/signals"
)

// fixedSteering is a Steering of fixed controls and curves.
type fixedSteering struct {
	ctl    *control.Table
	curves *shading.Curves
}

func (f *fixedSteering) Controls() *control.Table { return f.ctl }
func (f *fixedSteering) Curves() *shading.Curves  { return f.curves }

// testCurve is ctv-signup's win-rate curve (median 18 CPM).
var testCurve = shading.Curve{A: -2.5 * 2.9, K: 2.5}

func steeringOf(t testing.TB, entries map[string]control.Entry, withCurve bool) *fixedSteering {
	t.Helper()
	st := &fixedSteering{ctl: control.NewTable(entries)}
	if withCurve {
		root := uint64(model.RootKey("ctv-signup"))
		cv, err := shading.NewCurves([]uint64{root}, []uint64{root}, []shading.Curve{testCurve})
		if err != nil {
			t.Fatal(err)
		}
		st.curves = cv
	}
	return st
}

// TestSteeredScores: bid_cpm carries the CPA controller's multiplier and
// the bidder's pace, is shaded on the campaign's curve in a first-price
// auction only, and the answer breaks it into its parts; the embedded
// Scorer on a snapshot answers the same numbers.
func TestSteeredScores(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	w.svc.SetSteering(steeringOf(t, map[string]control.Entry{"ctv-purchase": {U: 0.8}, "ctv-signup": {U: 1.5}}, true))
	w.m.Refresh(w.now) // a table built with the steering
	first := all["roku-ctv-pod-gpp"]
	second := bytes.Replace(first, []byte(`"at": 1,`), []byte(`"at": 2,`), 1)
	if bytes.Equal(first, second) {
		t.Fatal("fixture without a top-level at")
	}
	answer := func(uri string, body []byte) *Answer {
		t.Helper()
		status, out := call(w.svc, "POST", uri, body, demoBidder)
		if status != 200 {
			t.Fatalf("%s: %d %s", uri, status, out)
		}
		for _, f := range []string{`"bid_unshaded_cpm":`, `"cpa_control":`, `"pacing":`, `"shading":`} {
			if !strings.Contains(string(out), f) {
				t.Fatalf("answer without %s: %s", f, out)
			}
		}
		return decode(t, out)
	}
	sp := answer("/v1/score?campaigns=ctv-purchase,ctv-signup", second)
	fp := answer("/v1/score?campaigns=ctv-purchase,ctv-signup", first)
	half := answer("/v1/score?campaigns=ctv-purchase,ctv-signup&pace=0.5", second)
	for i := range sp.Imps {
		for k, c := range sp.Imps[i].Campaigns {
			rule, _ := w.rules.Campaign(c.Campaign)
			u := map[string]float64{"ctv-purchase": 0.8, "ctv-signup": 1.5}[c.Campaign]
			p := c.CVR
			if rule.BidOn == BidOnCVRLo {
				p = c.CVRLo
			}
			want := rule.bidWith(p, u)
			if !near(c.BidCPM, want) || !near(c.BidUnshadedCPM, want) || c.CPAControl != u || c.Shading != 1 || c.Pacing != rule.Pacing {
				t.Errorf("second price %s: %+v, want bid %g", c.Campaign, c, want)
			}
			if h := half.Imps[i].Campaigns[k]; !near(h.BidUnshadedCPM, rule.bidWith(p, u*0.5)) {
				t.Errorf("pace 0.5 %s: unshaded %g, want %g", c.Campaign, h.BidUnshadedCPM, rule.bidWith(p, u*0.5))
			}
			f := fp.Imps[i].Campaigns[k]
			switch c.Campaign {
			case "ctv-signup": // has a curve: shaded
				shaded := max(testCurve.Shade(f.BidUnshadedCPM), rule.FloorCPM)
				if !near(f.BidCPM, shaded) || !(f.BidCPM < f.BidUnshadedCPM) || !near(f.Shading, f.BidCPM/f.BidUnshadedCPM) {
					t.Errorf("first price %s: %+v, want bid %g", c.Campaign, f, shaded)
				}
			case "ctv-purchase": // no curve: not shaded
				if f.BidCPM != f.BidUnshadedCPM || f.Shading != 1 {
					t.Errorf("first price without a curve %s: %+v", c.Campaign, f)
				}
			}
		}
	}
	if status, out := call(w.svc, "POST", "/v1/score?pace=2", second, demoBidder); status != 400 || !strings.Contains(string(out), "pace") {
		t.Fatalf("pace 2: %d %s", status, out)
	}

	// GET: at=1 shades; the embedded Scorer answers the same.
	get := func(uri string) []CampaignScore {
		t.Helper()
		status, out := call(w.svc, "GET", uri, nil, demoBidder)
		if status != 200 {
			t.Fatalf("%s: %d %s", uri, status, out)
		}
		var fp fastjson.Parser
		a, err := decodeFeatureAnswer(&fp, out)
		if err != nil {
			t.Fatal(err)
		}
		return a.Campaigns
	}
	g1 := get("/v1/score?campaign=ctv-signup&publisher=pub-1203&at=1")
	g2 := get("/v1/score?campaign=ctv-signup&publisher=pub-1203&at=2")
	if !(g1[0].Shading < 1) || g2[0].Shading != 1 || !near(g1[0].BidUnshadedCPM, g2[0].BidCPM) {
		t.Fatalf("GET at=1 %+v, at=2 %+v", g1[0], g2[0])
	}
	if status, _ := call(w.svc, "GET", "/v1/score?campaign=ctv-signup&at=3", nil, demoBidder); status != 400 {
		t.Fatalf("at=3: %d", status)
	}
	sn, err := ParseSnapshot(snapshotOf(t, w, testBidder{name: "all"}), 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := NewScorerFromSnapshot(sn)
	sc.SetClock(w.svc.now)
	var res Result
	if err := sc.Score(first, ScoreOptions{Campaigns: []string{"ctv-purchase", "ctv-signup"}}, &res); err != nil {
		t.Fatal(err)
	}
	embedded, err := DecodeAnswer(res.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := range fp.Imps {
		for k, c := range fp.Imps[i].Campaigns {
			if e := embedded.Imps[i].Campaigns[k]; e != c {
				t.Errorf("embedded %+v, server %+v", e, c)
			}
		}
	}
	// Steer, the in-process price, equals the score's.
	req, _ := signals.NewExtractor().Extract(first, w.now)
	i, _ := w.rules.Index("ctv-signup")
	c := fp.Imps[0].Campaigns[1]
	if got := w.svc.Steer(i, &req.Imps[0], c.CVRLo, 1, true); !near(got.BidCPM, c.BidCPM) || !near(got.UnshadedCPM, c.BidUnshadedCPM) {
		t.Errorf("Steer %+v, the score %+v", got, c)
	}
}

// TestExploreCap: with explore=thompson a pair bids on its draw when its
// Draw falls under the campaign's exploration probability: never at 0,
// always at 1, and for the same (campaign, auction, imp) every time.
func TestExploreCap(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	body := all["roku-ctv-pod-gpp"]
	for _, q := range []float64{0, 1, 0.5} {
		w.svc.SetSteering(steeringOf(t, map[string]control.Entry{"ctv-purchase": {U: 1, Q: q}, "ctv-signup": {U: 1, Q: q}}, false))
		w.svc.tab.Store(nil)
		var first []bool
		for round := range 3 {
			status, out := call(w.svc, "POST", "/v1/score?explore=thompson&campaigns=ctv-purchase,ctv-signup", body, demoBidder)
			if status != 200 {
				t.Fatalf("%d %s", status, out)
			}
			var flags []bool
			for _, imp := range decode(t, out).Imps {
				for _, c := range imp.Campaigns {
					rule, _ := w.rules.Campaign(c.Campaign)
					p := c.CVR
					if rule.BidOn == BidOnCVRLo {
						p = c.CVRLo
					}
					if c.Explored {
						p = c.CVRSample
					}
					if !near(c.BidUnshadedCPM, rule.Bid(p)) {
						t.Errorf("q %g: %+v: the bid is not on %g", q, c, p)
					}
					if q == 0 && c.Explored || q == 1 && !c.Explored {
						t.Errorf("q %g: explored %v", q, c.Explored)
					}
					flags = append(flags, c.Explored)
				}
			}
			if round == 0 {
				first = flags
			} else if !slicesEqual(first, flags) {
				t.Errorf("q %g: explored %v, then %v", q, first, flags)
			}
		}
	}
}

func slicesEqual(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5*math.Max(math.Abs(b), 1e-9) }

// TestShadeFloor: a flat win-rate curve (the win rate hardly depends on
// the bid) puts the surplus optimum far below the value; the bid is
// shaded no lower than shading.MinShade of it, where a curve's curvature
// still lets it win (the simulation's first-price collapse).
func TestShadeFloor(t *testing.T) {
	root := model.RootKey("c")
	c := &campaign{CampaignRule: CampaignRule{ID: "c", TargetCPA: 40, Pacing: 1, Shading: true}, root: root}
	flat := shading.Curve{A: 0, K: 0.2}
	if s := flat.Shade(16); s >= shading.MinShade*16 {
		t.Fatalf("the flat curve shades 16 to %g: the test needs one below half", s)
	}
	cv, err := shading.NewCurves([]uint64{uint64(root)}, []uint64{uint64(root)}, []shading.Curve{flat})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := signals.NewChain(nil)
	if err != nil {
		t.Fatal(err)
	}
	var imp signals.Imp
	st := c.price(0.0004, 1, 1, true, cv, chain, &imp)
	if st.UnshadedCPM != 16 || st.BidCPM != shading.MinShade*16 || st.Shading != shading.MinShade {
		t.Fatalf("flat curve: %+v, want the bid at %g × 16", st, shading.MinShade)
	}
	// The curve of the steered tests shades by less: untouched.
	cv, _ = shading.NewCurves([]uint64{uint64(root)}, []uint64{uint64(root)}, []shading.Curve{testCurve})
	if st := c.price(0.0004, 1, 1, true, cv, chain, &imp); st.BidCPM != testCurve.Shade(16) || st.BidCPM <= 8 {
		t.Fatalf("steep curve: %+v, want %g", st, testCurve.Shade(16))
	}
}
