package conversions

import (
	"encoding/json"
	"slices"
	"strconv"

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

// segmentReport is one row of GET /v1/segments.
type segmentReport struct {
	Segment     string   `json:"segment"`
	Level       int      `json:"level"`
	CVR         float64  `json:"cvr"`
	CVRLo       float64  `json:"cvr_lo"`
	CVRHi       float64  `json:"cvr_hi"`
	VTR         float64  `json:"vtr"`
	NEff        float64  `json:"n_eff"`
	Exposures   float64  `json:"exposures"`
	Conversions float64  `json:"conversions"`
	Spend       float64  `json:"spend"`
	CPA         *float64 `json:"cpa"` // spend per conversion (decayed counts), null without one
}

// HandleSegments serves GET /v1/segments?campaign=ID&level=N&sort=cvr|n|cpa
// &limit=K: the campaign's segments of one level of the chain with their
// estimates, intervals, evidence and VTR, readable keys. sort=cvr (default)
// and n are descending, cpa ascending (segments without conversions last).
func HandleSegments(ctx *fasthttp.RequestCtx, est *model.Estimates, campaign string, depth int) error {
	args := ctx.QueryArgs()
	level := 1
	if v := args.Peek("level"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || n > depth {
			return apierr.BadRequest("level: must be 0 (the campaign) to %d", depth)
		}
		level = n
	}
	limit := 100
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 10000 {
			return apierr.BadRequest("limit: must be 1 to 10000")
		}
		limit = n
	}
	sortBy := string(args.Peek("sort"))
	switch sortBy {
	case "":
		sortBy = "cvr"
	case "cvr", "n", "cpa":
	default:
		return apierr.BadRequest("sort: must be cvr, n or cpa, not %q", sortBy)
	}
	var rows []segmentReport
	var name []byte
	est.Segments(campaign, level, func(e model.Estimate) bool {
		name = est.Name(e.Key, name[:0])
		r := segmentReport{Segment: string(name), Level: e.Level, CVR: e.CVR, CVRLo: e.Lo, CVRHi: e.Hi, VTR: e.VTR,
			NEff: e.NEff, Exposures: e.Exposures, Conversions: e.Conversions, Spend: e.Spend}
		if e.Conversions > 0 {
			cpa := e.Spend / e.Conversions
			r.CPA = &cpa
		}
		rows = append(rows, r)
		return true
	})
	slices.SortFunc(rows, func(x, y segmentReport) int {
		switch sortBy {
		case "n":
			return cmpDesc(x.NEff, y.NEff)
		case "cpa":
			switch {
			case x.CPA == nil && y.CPA == nil:
				return cmpDesc(x.NEff, y.NEff)
			case x.CPA == nil:
				return 1
			case y.CPA == nil:
				return -1
			}
			return -cmpDesc(*x.CPA, *y.CPA)
		}
		return cmpDesc(x.CVR, y.CVR)
	})
	total := len(rows)
	if len(rows) > limit {
		rows = rows[:limit]
	}
	if rows == nil {
		rows = []segmentReport{}
	}
	return writeJSON(ctx, struct {
		Campaign string          `json:"campaign"`
		Level    int             `json:"level"`
		Total    int             `json:"total"`
		Version  uint64          `json:"model_version"`
		Segments []segmentReport `json:"segments"`
	}{campaign, level, total, est.Version(), rows})
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
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
