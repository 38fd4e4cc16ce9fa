package conversions

import (
	"encoding/json"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
)

// campaignReport is the answer of GET /v1/campaigns/{id}/stats.
type campaignReport struct {
	Campaign    string           `json:"campaign"`
	Exposures   uint64           `json:"exposures"`
	Spend       float64          `json:"spend"`
	Starts      float64          `json:"starts"`
	Completes   float64          `json:"completes"`
	VTR         float64          `json:"vtr"`
	Conversions conversionReport `json:"conversions"`
	// CPA is spend per attributed conversion (credit), null without one.
	CPA *float64 `json:"cpa"`
	// CampaignCPA is spend per conversion of the campaign's event,
	// attributed or not (campaign-level CPA), null without one.
	CampaignCPA *float64    `json:"campaign_cpa"`
	Delay       delayReport `json:"delay"`
	CVR         *float64    `json:"cvr"` // the campaign node's estimate
	ModelVer    uint64      `json:"model_version"`
}

type conversionReport struct {
	Received     uint64            `json:"received"`
	Attributed   uint64            `json:"attributed"`
	Unattributed uint64            `json:"unattributed"`
	Pending      int               `json:"pending"`
	LateMatched  uint64            `json:"late_matched"`
	ByMethod     map[string]uint64 `json:"attributed_by_method"`
	Excluded     map[string]uint64 `json:"unattributable"`
	// Control counts the conversions matched only to ghost exposures
	// (the holdout's control arm); Credited the credit given to exposures
	// (conversions; fractional under linear and probabilistic credit),
	// OrganicCredit what probabilistic credit gave "organic", and
	// AwaitingCredit the matched conversions whose probabilistic credit is
	// not journaled yet.
	Control        uint64  `json:"control"`
	Credited       float64 `json:"credited"`
	OrganicCredit  float64 `json:"organic_credit"`
	AwaitingCredit int     `json:"awaiting_credit"`
}

type delayReport struct {
	P50Seconds float64 `json:"p50_seconds"`
	P90Seconds float64 `json:"p90_seconds"`
	F1h        float64 `json:"f_1h"`
	F24h       float64 `json:"f_24h"`
	Fitted     bool    `json:"fitted"`
	Samples    int     `json:"samples"`
}

// HandleCampaignStats serves GET /v1/campaigns/{id}/stats: exposures,
// spend, video starts and completes, VTR, conversions received, attributed
// by match method and unattributed, CPA, and the delay distribution's
// quantiles. The server has checked that the caller may read the campaign.
func (a *Attributor) HandleCampaignStats(ctx *fasthttp.RequestCtx, m *model.Model, campaign string) error {
	ms, ok := m.CampaignStats(campaign)
	as, ok2 := a.Stats(campaign)
	if !ok || !ok2 {
		return apierr.NotFound("campaign %q: unknown", campaign)
	}
	r := campaignReport{
		Campaign: campaign, Exposures: ms.Exposures, Spend: ms.Spend, Starts: ms.Starts,
		Completes: ms.Completes, VTR: ms.VTR,
		Conversions: conversionReport{
			Received: as.Conversions + uint64(as.Pending), Attributed: as.Attributed, Unattributed: as.Unattributed,
			Pending: as.Pending, LateMatched: as.Late, ByMethod: as.ByMethod, Excluded: as.Excluded,
			Control: as.Control, Credited: as.Credited, OrganicCredit: as.Organic, AwaitingCredit: as.AwaitingCredit,
		},
		Delay: delayReport{P50Seconds: ms.DelayP50.Seconds(), P90Seconds: ms.DelayP90.Seconds(),
			F1h: ms.DelayF1h, F24h: ms.DelayF24h, Fitted: ms.DelayFitted, Samples: ms.DelaySamples},
	}
	if as.Credited > 0 {
		cpa := ms.Spend / as.Credited
		r.CPA = &cpa
	}
	if as.Conversions > 0 {
		cpa := ms.Spend / float64(as.Conversions)
		r.CampaignCPA = &cpa
	}
	est := m.Estimates()
	r.ModelVer = est.Version()
	if e, ok := est.Campaign(campaign); ok {
		r.CVR = &e.CVR
	}
	return writeJSON(ctx, r)
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}
