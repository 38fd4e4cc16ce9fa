package bidder

import (
	"testing"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
)

// ScoreRequest on an extracted request answers what POST /v1/score answers
// for its body.
func TestScoreRequestEqualsPost(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	x := signals.NewExtractor()
	var res Result
	for _, name := range sortedNames(all) {
		status, body := call(w.svc, "POST", "/v1/score?campaigns=ctv-signup,ctv-purchase", all[name], demoBidder)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
		post := decode(t, body)
		req, err := x.Extract(all[name], w.now)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.svc.ScoreRequest(req, ScoreOptions{Campaigns: []string{"ctv-signup", "ctv-purchase"}}, &res); err != nil {
			t.Fatal(err)
		}
		if string(res.ID) != post.ID || len(res.Imps) != len(post.Imps) || res.ModelVersion != post.ModelVersion {
			t.Fatalf("%s: id %q, %d imps, version %d; POST %q, %d, %d", name, res.ID, len(res.Imps), res.ModelVersion, post.ID, len(post.Imps), post.ModelVersion)
		}
		for i := range res.Imps {
			for j, s := range res.Imps[i].Scores {
				sameScore(t, name, post.Imps[i].Campaigns[j], s)
			}
		}
	}
	req, _ := x.Extract(all[sortedNames(all)[0]], w.now)
	f := func(camps []string, status int) {
		t.Helper()
		err := w.svc.ScoreRequest(req, ScoreOptions{Campaigns: camps}, &res)
		if got := apierr.As(err); err == nil || got.Status != status {
			t.Errorf("%q: %v, want status %d", camps, err, status)
		}
	}
	f([]string{"nope"}, 404)
	f([]string{""}, 400)
	if err := w.svc.ScoreRequest(req, ScoreOptions{}, &res); err != nil || len(res.Imps[0].Scores) != len(w.svc.Rules().Campaigns()) {
		t.Fatalf("no campaigns listed: %v, %d scores", err, len(res.Imps[0].Scores))
	}
}
