package bidder

import (
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
)

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
	limit, sortBy, err := queryPage(args, "cvr", "n", "cpa")
	if err != nil {
		return err
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
	rows, total := firstRows(rows, limit)
	return writeJSON(ctx, struct {
		Campaign string          `json:"campaign"`
		Level    int             `json:"level"`
		Total    int             `json:"total"`
		Version  uint64          `json:"model_version"`
		Segments []segmentReport `json:"segments"`
	}{campaign, level, total, est.Version(), rows})
}

// cmpDesc orders a before b when a is larger.
func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
