package bidder

import (
	"cmp"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
)

// effectReport is one row of GET /v1/effects: a value of the key and its
// effect on the campaign's CVR.
type effectReport struct {
	Value string `json:"value"`
	// Effect multiplies the campaign's CVR for this value, everything else
	// equal; EffectLo and EffectHi are its credible interval.
	Effect   float64 `json:"effect"`
	EffectLo float64 `json:"effect_lo"`
	EffectHi float64 `json:"effect_hi"`
	// CVR is the fitted CVR of this value's own traffic.
	CVR         float64 `json:"cvr"`
	NEff        float64 `json:"n_eff"`
	Conversions float64 `json:"conversions"`
	Exposures   float64 `json:"exposures"`
	Spend       float64 `json:"spend"`
}

// HandleEffects serves GET /v1/effects?campaign=ID&key=K&sort=effect|n
// &limit=N: the values of effect key K of the crossed model for the
// campaign, each with its effect as a CVR multiplier (and interval), the
// fitted CVR of its traffic and its evidence (decayed). sort=effect
// (default) and n are descending. The answer also gives the key's
// strength (pseudo-conversions) and spread (the fitted standard deviation
// of the log effect: near 0 when the key does not matter). Without key, or
// with an unknown one, the answer is a 400 listing the keys. The model
// must be crossed (model.structure: crossed). The caller checks that the
// token may read the campaign.
func HandleEffects(ctx *fasthttp.RequestCtx, est *model.Estimates, campaign string) error {
	args := ctx.QueryArgs()
	if !est.Crossed() {
		return apierr.BadRequest("effects: the model is a chain (model.structure: chain); use /v1/segments")
	}
	keys := est.EffectKeys()
	key := string(args.Peek("key"))
	if !slices.Contains(keys, key) {
		return apierr.BadRequest("key: must be one of the model's effect keys: %s", strings.Join(keys, ", "))
	}
	limit, sortBy, err := queryPage(args, "effect", "n")
	if err != nil {
		return err
	}
	var rows []effectReport
	strength, ok := est.Effects(campaign, key, func(e model.Effect) bool {
		rows = append(rows, effectReport{
			Value: string(e.Value), Effect: e.Multiplier, EffectLo: e.Lo, EffectHi: e.Hi, CVR: e.CVR,
			NEff: e.NEff, Conversions: e.Conversions, Exposures: e.Exposures, Spend: e.Spend,
		})
		return true
	})
	if !ok {
		return apierr.NotFound("campaign %q: no estimates", campaign)
	}
	slices.SortFunc(rows, func(x, y effectReport) int {
		if sortBy == "n" {
			return cmp.Compare(y.NEff, x.NEff)
		}
		return cmp.Compare(y.Effect, x.Effect)
	})
	rows, total := firstRows(rows, limit)
	return writeJSON(ctx, struct {
		Campaign string         `json:"campaign"`
		Key      string         `json:"key"`
		Strength float64        `json:"strength"`
		Spread   float64        `json:"spread"`
		Total    int            `json:"total"`
		Version  uint64         `json:"model_version"`
		Effects  []effectReport `json:"effects"`
	}{campaign, key, strength, model.LogSpread(strength), total, est.Version(), rows})
}
