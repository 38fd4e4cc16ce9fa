package bidder

import (
	"math/rand/v2"

	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/shading"
	"github.com/cpafeed/cpafeed/signals"
)

// Steering is the closed loop's state at bid time: every campaign's CPA
// controller (its multiplier and exploration probability, package
// control) and the first-price win-rate curves (package shading). The
// server implements it over its controller and its book of outcomes.
type Steering interface {
	Controls() *control.Table
	Curves() *shading.Curves
}

// ctlEntry is one campaign's controller entry in a table.
type ctlEntry struct {
	u, q float64
}

// scoreCtx is what one scoring call knows of its auction.
type scoreCtx struct {
	rng     *rand.Rand // explore=thompson: the draws; nil: none
	auction []byte     // the request's id: whether a pair explores is a function of (campaign, auction, imp); nil: the rng decides
	first   bool       // a first-price auction: shade
	pace    float64    // the bidder's budget pacer multiplier, in (0, 1]
}

// pace reads a bidder's pacer multiplier: at most 1 (a budget pacer may
// only lower bids below what the CPA controller allows); 0 or less, or not
// a number, means none (1).
func clampPace(p float64) float64 {
	if !(p > 0) || p > 1 {
		return 1
	}
	return p
}

// Steered is a bid after the closed loop: BidCPM is what to bid;
// UnshadedCPM = 1000 × p × target CPA × pacing × cpa_control × pace,
// clamped to [floor, cap]; Shading = BidCPM ÷ UnshadedCPM (1 when not
// shaded).
type Steered struct {
	BidCPM, UnshadedCPM float64
	CPAControl, Shading float64
}

// price steers campaign c's bid on conversion rate p with multiplier u:
// the unshaded bid and, in a first-price auction when c shades and has a
// curve (of its cut, else its own), the surplus-maximizing one, never
// under the floor. cut is computed only when needed.
func (c *campaign) price(p, u, pace float64, first bool, curves *shading.Curves, chain *signals.Chain, imp *signals.Imp) Steered {
	st := Steered{CPAControl: u, Shading: 1}
	st.UnshadedCPM = c.CampaignRule.bidWith(p, u*pace)
	st.BidCPM = st.UnshadedCPM
	if first && c.Shading && curves.Len() > 0 && st.UnshadedCPM > 0 {
		if cv, ok := curves.Lookup(uint64(c.root), uint64(chain.Cut(c.root, imp))); ok {
			st.BidCPM = max(cv.Shade(st.UnshadedCPM), shading.MinShade*st.UnshadedCPM, c.FloorCPM)
			st.Shading = st.BidCPM / st.UnshadedCPM
		}
	}
	return st
}

// Steer prices a bid for campaign i of the rules (Rules.Index) on
// conversion rate p in imp as scoring does, with the latest published
// controls and curves: 1000 × p × target CPA × pacing × cpa_control ×
// pace (a budget pacer's multiplier, at most 1; 0 = none), clamped to
// [floor, cap], shaded when firstPrice. For in-process bidders that bid on
// a conversion rate of their own (the simulation's oracle and cpa_raw) and
// need the same controller and shading as cpafeed's bids. imp is read
// during the call only; it does not allocate.
func (s *Service) Steer(i int, imp *signals.Imp, p, pace float64, firstPrice bool) Steered {
	c := &s.rules.camps[i]
	u := 1.0
	var curves *shading.Curves
	if s.steer != nil {
		e, _ := s.steer.Controls().Get(c.ID)
		u = e.U
		curves = s.steer.Curves()
	}
	return c.price(p, u, clampPace(pace), firstPrice, curves, s.rules.chain, imp)
}

// Index returns the position of campaign id in the rules (Campaigns order).
func (r *Rules) Index(id string) (int, bool) {
	i, ok := r.byID[id]
	return i, ok
}

// steerTable fills t's controller entries and curves from st (nil: every
// multiplier 1, no exploration, no curves).
func (t *table) steerFrom(r *Rules, st Steering) {
	t.ctl = make([]ctlEntry, len(r.camps))
	var ctl *control.Table
	if st != nil {
		ctl, t.curves = st.Controls(), st.Curves()
	}
	for i := range r.camps {
		e, _ := ctl.Get(r.camps[i].ID)
		t.ctl[i] = ctlEntry{u: e.U, q: e.Q}
	}
}

// keysOf returns the curves of the campaigns allowed (by root key).
func curvesOf(cv *shading.Curves, roots map[model.Key]bool) (camps, keys []uint64, curves []shading.Curve) {
	cv.Each(func(camp, key uint64, c shading.Curve) {
		if roots[model.Key(camp)] {
			camps, keys, curves = append(camps, camp), append(keys, key), append(curves, c)
		}
	})
	return camps, keys, curves
}

// Predict returns campaign's estimated conversion rate for imp with the
// latest estimates (its bid basis: the CVR, or the credible interval's low
// end for bid_on: cvr_lo); 0 for a campaign unknown or without an estimate.
// Exposures reported without a rate of their own are journaled with it
// (signals.Exposures.SetPredictor). It does not allocate.
func (s *Service) Predict(campaign string, imp *signals.Imp) float64 {
	i, ok := s.rules.byID[campaign]
	if !ok {
		return 0
	}
	t := s.table()
	c := &s.rules.camps[i]
	var e model.Estimate
	if t.est.Crossed() {
		var cell model.Cell
		if !t.fillCell(imp, &cell) {
			return 0
		}
		e, ok = t.est.LookupCell(c.root, &cell)
	} else {
		var buf [model.MaxLevels]model.Key
		e, ok = t.est.Lookup(s.rules.chain.Keys(c.root, imp, buf[:0]))
	}
	if !ok {
		return 0
	}
	if c.onLo {
		return e.Lo
	}
	return e.CVR
}
