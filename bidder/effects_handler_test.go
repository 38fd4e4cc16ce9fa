package bidder

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
)

type effectsAnswer struct {
	Campaign string         `json:"campaign"`
	Key      string         `json:"key"`
	Strength float64        `json:"strength"`
	Spread   float64        `json:"spread"`
	Total    int            `json:"total"`
	Version  uint64         `json:"model_version"`
	Effects  []effectReport `json:"effects"`
}

func effects(t *testing.T, est *model.Estimates, query string) (int, effectsAnswer, string) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/effects?" + query)
	args := ctx.QueryArgs()
	if err := HandleEffects(&ctx, est, string(args.Peek("campaign"))); err != nil {
		e := apierr.As(err)
		return e.Status, effectsAnswer{}, e.Message
	}
	var a effectsAnswer
	if err := json.Unmarshal(ctx.Response.Body(), &a); err != nil {
		t.Fatalf("%s: %v", ctx.Response.Body(), err)
	}
	return 200, a, ""
}

// TestHandleEffects: GET /v1/effects lists a key's values with their
// multipliers, intervals and evidence, as model.Estimates.Effects gives
// them, sorted and limited; bad parameters are 400s naming them.
func TestHandleEffects(t *testing.T) {
	w := newCrossedWorld(t)
	w.feedFixtures(t, fixtures(t))
	est := w.m.Estimates()
	status, a, msg := effects(t, est, "campaign=ctv-purchase&key=genre")
	if status != 200 {
		t.Fatalf("%d %s", status, msg)
	}
	var want []model.Effect
	strength, _ := est.Effects("ctv-purchase", "genre", func(e model.Effect) bool { want = append(want, e); return true })
	if a.Campaign != "ctv-purchase" || a.Key != "genre" || a.Total != len(want) || len(a.Effects) != len(want) ||
		a.Strength != strength || a.Spread != model.LogSpread(strength) || a.Version != est.Version() || len(want) < 3 {
		t.Fatalf("answer %+v, want %d effects of strength %g", a, len(want), strength)
	}
	for i, r := range a.Effects {
		if i > 0 && r.Effect > a.Effects[i-1].Effect {
			t.Fatalf("not sorted by effect: %+v", a.Effects)
		}
		found := false
		for _, e := range want {
			if string(e.Value) == r.Value {
				found = true
				if r.Effect != e.Multiplier || r.EffectLo != e.Lo || r.EffectHi != e.Hi || r.NEff != e.NEff || r.Conversions != e.Conversions {
					t.Fatalf("%s: %+v, want %+v", r.Value, r, e)
				}
				if !(r.EffectLo < r.Effect && r.Effect < r.EffectHi) {
					t.Fatalf("%s: interval [%g, %g] around %g", r.Value, r.EffectLo, r.EffectHi, r.Effect)
				}
			}
		}
		if !found || strings.Contains(r.Value, "=") {
			t.Fatalf("value %q", r.Value)
		}
	}
	_, byN, _ := effects(t, est, "campaign=ctv-purchase&key=publisher%2Bbundle&sort=n&limit=2")
	if len(byN.Effects) != 2 || byN.Total < 3 || byN.Effects[0].NEff < byN.Effects[1].NEff || !strings.Contains(byN.Effects[0].Value, "+") {
		t.Fatalf("sort=n limit=2: %+v", byN)
	}
	f := func(query string, status int, prefix string) {
		t.Helper()
		got, _, msg := effects(t, est, query)
		if got != status || !strings.HasPrefix(msg, prefix) {
			t.Errorf("%s: %d %q, want %d %q", query, got, msg, status, prefix)
		}
	}
	f("campaign=ctv-purchase", 400, "key: must be one of the model's effect keys: publisher, publisher+bundle, genre")
	f("campaign=ctv-purchase&key=hour", 400, "key: must be one of")
	f("campaign=ctv-purchase&key=genre&sort=cvr", 400, "sort: must be effect or n")
	f("campaign=ctv-purchase&key=genre&limit=0", 400, "limit: must be 1 to 10000")
	f("campaign=nope&key=genre", 404, `campaign "nope": no estimates`)
	chain := newWorld(t)
	if got, _, msg := effects(t, chain.m.Estimates(), "campaign=ctv-purchase&key=genre"); got != 400 || !strings.Contains(msg, "chain") {
		t.Errorf("a chain model: %d %q", got, msg)
	}
}
