package bidder

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// TestScoreWhileModelChanges scores in parallel (the HTTP handler and an
// embedded Scorer, every fixture, with Thompson draws) while exposures and
// conversions stream into the model, Refresh publishes new tables and the
// Scorer swaps snapshots. Run it with -race. Every answer must be whole:
// from one model version, with an estimate for every campaign.
func TestScoreWhileModelChanges(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	sc := NewScorerFromSnapshot(SnapshotOf(w.rules, w.m.Estimates()))
	bodies := make([][]byte, 0, len(all))
	for _, n := range sortedNames(all) {
		bodies = append(bodies, all[n])
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	// Writers: exposures and credits on the fixtures' paths.
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := signals.NewExtractor()
			for i := 0; !stop.Load(); i++ {
				req, err := x.Extract(bodies[i%len(bodies)], w.now)
				if err != nil {
					t.Error(err)
					return
				}
				imp := &req.Imps[0]
				c := "ctv-purchase"
				if (i+g)%2 == 1 {
					c = "ctv-signup"
				}
				path := w.rules.chain.Keys(model.RootKey(c), imp, nil)
				labels := append([][]byte{nil}, w.rules.chain.Labels(imp, nil)...)
				w.m.Expose(t0+int64(i), path, labels, 0.02)
				if i%7 == 0 {
					w.m.Credit(t0+int64(i), t0+int64(i)+600, path[len(path)-1], 1)
				}
			}
		}()
	}
	// Publisher: refreshes and snapshot swaps.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			est := w.m.Refresh(w.now + int64(i))
			sc.Use(SnapshotOf(w.rules, est))
		}
	}()
	// Scorers.
	var scored atomic.Int64
	var sw sync.WaitGroup
	for g := range 4 {
		sw.Add(1)
		go func() {
			defer sw.Done()
			var res Result
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/v1/score?explore=thompson")
			for i := range 300 {
				body := bodies[(i+g)%len(bodies)]
				if g%2 == 0 {
					if err := sc.Score(body, ScoreOptions{Campaigns: []string{"ctv-purchase", "ctv-signup"}, Thompson: true}, &res); err != nil {
						t.Error(err)
						return
					}
				} else {
					ctx.Response.Reset()
					if err := w.svc.HandleScore(&ctx, body, demoBidder); err != nil {
						t.Error(err)
						return
					}
					if err := check(&res, ctx.Response.Body()); err != "" {
						t.Error(err)
						return
					}
				}
				for _, imp := range res.Imps {
					if len(imp.Scores) != 2 {
						t.Errorf("%d scores", len(imp.Scores))
						return
					}
					for _, s := range imp.Scores {
						if s.Level < 0 || !(s.CVR > 0 && s.CVR < 1) || !s.Sampled || len(s.Segment) == 0 {
							t.Errorf("broken score %+v", s)
							return
						}
					}
				}
				scored.Add(1)
			}
		}()
	}
	sw.Wait()
	stop.Store(true)
	wg.Wait()
	if scored.Load() != 4*300 {
		t.Fatalf("%d requests scored", scored.Load())
	}
}

// check decodes an HTTP answer into res's shape for the common checks.
func check(res *Result, body []byte) string {
	a, err := DecodeAnswer(body)
	if err != nil {
		return err.Error()
	}
	res.Imps = res.Imps[:0]
	for _, imp := range a.Imps {
		var ss []Score
		for _, c := range imp.Campaigns {
			ss = append(ss, Score{Campaign: c.Campaign, CVR: c.CVR, Level: c.Level, Segment: []byte(c.Segment), Sampled: c.Sampled})
		}
		res.Imps = append(res.Imps, ImpScores{Scores: ss})
	}
	return ""
}
