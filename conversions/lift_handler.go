package conversions

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// LiftReport is the answer of GET /v1/campaigns/{id}/lift: the campaign's
// lift measurement (see liftState) in all and per lift group, the organic
// rate of its control arm and how its credit was shared.
type LiftReport struct {
	Campaign string `json:"campaign"`
	// AsOf is the time of the report (Unix s): the control households'
	// matchable time runs to it.
	AsOf int64 `json:"as_of"`
	// Interval is the probability of the lift intervals (0.9).
	Interval float64 `json:"interval"`
	// Feature names the lift groups' feature (attribution.lift_feature).
	Feature string    `json:"feature"`
	Total   LiftCut   `json:"total"`
	Groups  []LiftCut `json:"groups"`
	// OrganicRate is the control arm's matched conversions per household
	// and day of matchable time (null without control households).
	OrganicRate *float64 `json:"organic_rate_per_household_day"`
	// Credit is the share of the campaign's credit given through each
	// match method, and to "organic" (probabilistic credit), of all the
	// credit given; Credited is that total (conversions).
	Credit   map[string]float64 `json:"credit_share"`
	Credited float64            `json:"credited"`
}

// LiftCut is the lift of the campaign's households of one lift group, or
// of all.
type LiftCut struct {
	// Group is the lift group (1..lift_groups; 0: the value was unknown);
	// absent for the total. Values are the values of the feature the
	// model knows that hash to the group.
	Group     *int     `json:"group,omitempty"`
	Values    []string `json:"values,omitempty"`
	Treatment LiftArm  `json:"treatment"`
	Control   LiftArm  `json:"control"`
	// Incremental is the treatment arm's conversions less what the
	// control arm's rate predicts for its households.
	Incremental *float64 `json:"incremental_conversions"`
	// Lift is the ratio of the arms' conversions per household − 1,
	// LiftLo and LiftHi its interval (null: unbounded or undefined).
	Lift   *float64 `json:"lift"`
	LiftLo *float64 `json:"lift_lo"`
	LiftHi *float64 `json:"lift_hi"`
}

// LiftArm is one arm of a cut.
type LiftArm struct {
	Households              float64  `json:"households"`
	Exposures               float64  `json:"exposures"` // ghost exposures for the control arm
	Conversions             float64  `json:"conversions"`
	ConversionsPerHousehold *float64 `json:"conversions_per_household"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Lift returns a campaign's lift report at now. groupValues, when not
// nil, gives the values of the lift feature the model knows (to name the
// groups).
func (a *Attributor) Lift(campaign string, now time.Time, groupValues []string) (LiftReport, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.byID[campaign]
	if c == nil {
		return LiftReport{}, false
	}
	l := c.lift
	u := l.matchable(now.Unix(), c.window)
	r := LiftReport{Campaign: campaign, AsOf: now.Unix(), Interval: 0.9, Feature: a.cfg.LiftFeature}
	r.Total = cutOf(l.figures(nil, u))
	if f := l.figures(nil, u); f.matchable > 0 {
		r.OrganicRate = finite(f.conv[armControl] / f.matchable * 86400)
	}
	values := map[int][]string{}
	for _, v := range groupValues {
		g := int(signals.LiftGroup([]byte(v), l.groups))
		values[g] = append(values[g], v)
	}
	for g := 0; g <= l.groups; g++ {
		f := l.figures([]int{g}, u)
		if f.exposures[armTreatment] == 0 && f.exposures[armControl] == 0 {
			continue
		}
		cut := cutOf(f)
		cut.Group = &g
		cut.Values = values[g]
		slices.Sort(cut.Values)
		r.Groups = append(r.Groups, cut)
	}
	st := &c.stats
	total := st.Organic
	for _, w := range st.credit {
		total += w
	}
	r.Credited = total
	r.Credit = map[string]float64{}
	if total > 0 {
		for m := MethodIFA; m < numMethods; m++ {
			if w := st.credit[m]; w > 0 {
				r.Credit[m.String()] = w / total
			}
		}
		if st.Organic > 0 {
			r.Credit["organic"] = st.Organic / total
		}
	}
	return r, true
}

func cutOf(f liftFigures) LiftCut {
	e := f.estimate()
	cut := LiftCut{}
	for arm, dst := range [2]*LiftArm{&cut.Treatment, &cut.Control} {
		*dst = LiftArm{Households: math.Round(f.households[arm]), Exposures: f.exposures[arm], Conversions: f.conv[arm]}
		if f.households[arm] > 0 {
			dst.ConversionsPerHousehold = finite(f.conv[arm] / f.households[arm])
		}
	}
	if e.ok {
		cut.Incremental = finite(e.incremental)
		cut.Lift, cut.LiftLo, cut.LiftHi = finite(e.lift), finite(e.lo), finite(e.hi)
	}
	return cut
}

// LiftValues returns the values of a campaign's lift feature that the
// estimates know: the levels of the crossed model's effect table of the
// feature alone, or the chain's segments at its level (≥ 1; 0: none).
func LiftValues(est *model.Estimates, campaign, feature string, level int) []string {
	var out []string
	if est.Crossed() {
		est.Effects(campaign, feature, func(ef model.Effect) bool {
			out = append(out, string(ef.Value))
			return true
		})
		return out
	}
	if level <= 0 {
		return nil
	}
	est.Segments(campaign, level, func(e model.Estimate) bool {
		out = append(out, string(est.Label(e.Key)))
		return true
	})
	return out
}

// HandleCampaignLift serves GET /v1/campaigns/{id}/lift (see LiftReport).
// The server has checked that the caller may read the campaign.
func (a *Attributor) HandleCampaignLift(ctx *fasthttp.RequestCtx, est *model.Estimates, campaign string, level int, now time.Time) error {
	r, ok := a.Lift(campaign, now, LiftValues(est, campaign, a.cfg.LiftFeature, level))
	if !ok {
		return apierr.NotFound("campaign %q: unknown", campaign)
	}
	return writeJSON(ctx, r)
}

// LiftLevel returns the level (1 = the first below the campaign) of the
// segment chain levels whose only feature is feature, 0 when none is.
func LiftLevel(levels [][]string, feature string) int {
	for i, lv := range levels {
		if len(lv) == 1 && strings.EqualFold(lv[0], feature) {
			return i + 1
		}
	}
	return 0
}
