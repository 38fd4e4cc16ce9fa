package bidder

import (
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
)

// TestScorerCampaignErrors: the embedded scorer refuses what the server
// refuses, with the same status: a campaign it does not know is a 404 (as
// one of another tenant's, which a snapshot never holds), a malformed
// request a 400 with the JSON path.
func TestScorerCampaignErrors(t *testing.T) {
	w := newWorld(t)
	w.m.Refresh(w.now)
	sn := SnapshotOf(w.rules, w.m.Estimates())
	sc := NewScorerFromSnapshot(sn)
	body := fixtures(t)["ctv-1imp"]
	var res Result
	f := func(body string, campaigns []string, status int, msg string) {
		t.Helper()
		err := sc.Score([]byte(body), ScoreOptions{Campaigns: campaigns}, &res)
		e, ok := err.(*apierr.Error)
		if !ok || e.Status != status || !strings.HasPrefix(e.Message, msg) {
			t.Errorf("%v: %v, want %d %q", campaigns, err, status, msg)
		}
	}
	f(string(body), []string{"ctv-purchase", "secret-campaign"}, 404, `campaigns: unknown campaign "secret-campaign"`)
	f(string(body), []string{"nope"}, 404, `campaigns: unknown campaign "nope"`)
	f(string(body), []string{""}, 400, "campaigns: empty campaign id")
	f(`{"id":"r","imp":[{"id":"1"},{}]}`, nil, 400, "imp[1].id: missing")
	if err := sc.Score(body, ScoreOptions{Campaigns: []string{"ctv-signup", "ctv-signup"}}, &res); err != nil || len(res.Imps[0].Scores) != 1 {
		t.Errorf("a campaign asked twice: %v, %d scores", err, len(res.Imps[0].Scores))
	}
	var imp signals.Imp
	if err := sc.ScoreImp(&imp, ScoreOptions{}, &res); err != nil || len(res.Imps[0].Scores) != 3 || res.Imps[0].Scores[0].Segment == nil {
		t.Errorf("features, every campaign: %v %+v", err, res.Imps)
	}
	if _, err := sc.Refresh(t.Context()); err == nil {
		t.Error("a scorer without a client refreshed")
	}
}
