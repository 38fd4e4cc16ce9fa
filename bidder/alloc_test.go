package bidder

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// TestScoreAllocations: scoring a bid request from its bytes (extract,
// every imp × 2 campaigns, with and without Thompson draws, the JSON
// answer), scoring features, and the POST and GET handlers (without the
// remembering, which copies the request by design) allocate nothing once
// warm, with the closed loop steering the bids (a multiplier, capped
// exploration, and a curve that shades the first-price fixtures).
func TestScoreAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	t.Run("chain", func(t *testing.T) { testScoreAllocations(t, newWorld(t)) })
	t.Run("crossed", func(t *testing.T) { testScoreAllocations(t, newCrossedWorld(t)) })
	t.Run("holdout", func(t *testing.T) {
		w := holdoutWorld(t)
		w.fed = map[model.Key]bool{} // holdoutWorld fed the fixtures already
		testScoreAllocations(t, w)
	})
}

func testScoreAllocations(t *testing.T, w *world) {
	all := fixtures(t)
	w.feedFixtures(t, all)
	st := steeringOf(t, map[string]control.Entry{"ctv-purchase": {U: 1.2, Q: 0.5}, "ctv-signup": {U: 0.9, Q: 0.5}}, true)
	w.svc.SetSteering(st)
	var hold HoldoutConfig
	if w.rules.holdout != nil { // as a server's snapshot carries it
		hold = w.rules.holdout.cfg
	}
	sc := NewScorerFromSnapshot(&Snapshot{rules: w.rules, tab: newTable(w.rules, w.m.Estimates(), st), hold: hold})
	opts := ScoreOptions{Campaigns: []string{"ctv-purchase", "ctv-signup"}}
	explore := ScoreOptions{Campaigns: opts.Campaigns, Thompson: true}
	var res Result
	var out []byte
	var imp signals.Imp
	imp.SetFeatureString("publisher", "pub-1203")
	imp.SetFeatureString("bundle", "151908")
	imp.SetFeatureString("genre", "Sports")
	var b signals.Bidder = demoBidder // converted once: a real caller's tenant is a pointer
	for _, name := range sortedNames(all) {
		body := all[name]
		f := func(what string, fn func()) {
			t.Helper()
			fn()
			if n := testing.AllocsPerRun(50, fn); n != 0 {
				t.Errorf("%s: %s allocates %.1f times per call", name, what, n)
			}
		}
		f("Scorer.Score", func() {
			if err := sc.Score(body, opts, &res); err != nil {
				t.Fatal(err)
			}
			out = res.AppendJSON(out[:0])
		})
		f("Scorer.Score with Thompson", func() {
			if err := sc.Score(body, explore, &res); err != nil {
				t.Fatal(err)
			}
		})
		f("Scorer.ScoreImp", func() {
			if err := sc.ScoreImp(&imp, opts, &res); err != nil {
				t.Fatal(err)
			}
			out = res.AppendJSON(out[:0])
		})
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/score?campaigns=ctv-purchase,ctv-signup")
		f("HandleScore", func() {
			ctx.Response.Reset()
			if err := w.svc.HandleScore(&ctx, body, b); err != nil {
				t.Fatal(err)
			}
		})
		var get fasthttp.RequestCtx
		get.Request.SetRequestURI("/v1/score?campaign=ctv-purchase,ctv-signup&publisher=pub-1203&bundle=151908&genre=Sports&metro=501&at=1&pace=0.8")
		f("HandleScoreFeatures", func() {
			get.Response.Reset()
			if err := w.svc.HandleScoreFeatures(&get, b); err != nil {
				t.Fatal(err)
			}
		})
	}
}
