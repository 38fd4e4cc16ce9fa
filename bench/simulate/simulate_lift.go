package simulate

import (
	"math"
	"slices"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/conversions"
	"github.com/cpafeed/cpafeed/signals"
)

// The holdout in the simulation. Every strategy's cpafeed has the
// configured holdout (holdout.share): for each opportunity the player asks
// its engine the arm of the household in each campaign (bidder.Service.
// Arms); a campaign whose household is held out does not bid, and when
// its would-be bid would have won the bidder's own choice and the auction
// (the market knows the competition: an exact ghost, win probability 1),
// the player reports a ghost exposure instead of an impression. Control
// households are never shown the campaign's ad, so the market's truth
// knows what the ads caused: the caused conversions of the treatment arm
// against the organic conversions of the same households in the windows
// after their exposures.

// holdoutTally is a player's record of the holdout and the truth its lift
// is judged against.
type holdoutTally struct {
	arms []bidder.Arm // the current opportunity's, per campaign
	// per campaign: household → times of its real and ghost exposures
	// that cpafeed indexes (the privacy gates let them be matched): the
	// households of the lift measurement; and the households shown the
	// ad at all.
	expT, expC []map[int32][]int64
	shown      []map[int32]bool
	caused     [][]organicConv // conversions caused within the window (household, time)
	organic    [][]organicConv
	ghosts     []int64   // ghost exposures reported
	ghostCVR   []float64 // Σ true CVR of the ghost impressions: conversions not bought
	ghostSpend []float64 // what they would have cost
	ghostBest  int       // the slot's best held-out campaign (−1: none)
	ghostBid   float64

	// Credit accuracy (the cpafeed strategy): the truth of every
	// conversion by its dedup key, index sequence → market exposure.
	seqToExp  map[uint64]uint64
	lastSeq   uint64
	convTruth map[conversions.DedupKey]convTruth
	credit    []creditTally
}

type organicConv struct {
	hh int32
	t  int64
}

type convTruth struct {
	campaign int
	exposure uint64 // market exposure id, market.NoExposure: organic
}

type creditTally struct {
	conversions map[conversions.DedupKey]bool
	caused      float64 // credit given to caused conversions
	causedRight float64 // of which to the exposure that caused it
	organic     float64 // credit given to organic conversions
	organicOK   float64 // of which to "organic"
	organicConv int     // organic conversions credited
	toOrganic   float64 // credit given to "organic", every conversion
	causedConv  int
}

func newHoldoutTally(p *player) *holdoutTally {
	n := len(p.sim.camps)
	h := &holdoutTally{
		expT: make([]map[int32][]int64, n), expC: make([]map[int32][]int64, n), shown: make([]map[int32]bool, n),
		caused: make([][]organicConv, n), organic: make([][]organicConv, n),
		ghosts: make([]int64, n), ghostCVR: make([]float64, n), ghostSpend: make([]float64, n),
		ghostBest: -1,
	}
	for c := range n {
		h.expT[c], h.expC[c], h.shown[c] = map[int32][]int64{}, map[int32][]int64{}, map[int32]bool{}
	}
	if p.name == StrategyCPAfeed {
		h.seqToExp = map[uint64]uint64{}
		h.convTruth = map[conversions.DedupKey]convTruth{}
		h.credit = make([]creditTally, n)
		for c := range h.credit {
			h.credit[c].conversions = map[conversions.DedupKey]bool{}
		}
		byID := map[string]int{}
		for c, camp := range p.sim.camps {
			byID[camp.id] = c
		}
		p.eng.Attributor.SetObserver(func(n conversions.CreditNote) { h.observe(byID[n.Campaign], n) })
	}
	return h
}

// observe judges one credit given by the cpafeed strategy's attribution.
func (h *holdoutTally) observe(c int, n conversions.CreditNote) {
	truth, ok := h.convTruth[n.Conversion]
	if !ok {
		return
	}
	t := &h.credit[c]
	if !t.conversions[n.Conversion] {
		t.conversions[n.Conversion] = true
		if truth.exposure == market.NoExposure {
			t.organicConv++
		} else {
			t.causedConv++
		}
	}
	if n.Exposure == 0 {
		t.toOrganic += n.Weight
	}
	if truth.exposure == market.NoExposure {
		t.organic += n.Weight
		if n.Exposure == 0 {
			t.organicOK += n.Weight
		}
		return
	}
	t.caused += n.Weight
	if n.Exposure != 0 && h.seqToExp[n.Exposure] == truth.exposure {
		t.causedRight += n.Weight
	}
}

// holdoutArms asks the engine the arms of the opportunity's household.
func (p *player) holdoutArms(req *signals.Request) error {
	var err error
	p.hold.arms, err = p.eng.Bidder.Arms(req, p.opts, p.hold.arms[:0])
	p.hold.ghostBest, p.hold.ghostBid = -1, 0
	return err
}

// held reports whether campaign c holds the current household out, and
// then keeps its would-be bid b if it is the slot's best so far.
func (p *player) held(c int, b float64) bool {
	h := p.hold
	if c >= len(h.arms) || h.arms[c] != bidder.ArmControl {
		return false
	}
	if b > 0 && p.pace[c].spent+b/1000 <= p.sim.camps[c].budget && b > h.ghostBid {
		h.ghostBest, h.ghostBid = c, b
	}
	return true
}

// reportGhost reports the slot's ghost exposure when a held-out campaign's
// bid would have beaten the bidder's best bid and won the auction.
func (p *player) reportGhost(so *simOpp, req *signals.Request, s int, bestBid float64) error {
	h := p.hold
	c, b := h.ghostBest, h.ghostBid
	h.ghostBest, h.ghostBid = -1, 0
	if c < 0 || b <= bestBid {
		return nil
	}
	won, price := p.sim.m.Auction(so.o.Slots[s], b)
	if !won {
		return nil
	}
	o := &so.o
	if _, err := p.eng.Exposures.ExposeGhost(req, s, p.sim.camps[c].id, b, 1, o.Time); err != nil {
		return err
	}
	if !o.Privacy.Restricted() {
		h.expC[c][o.Household] = append(h.expC[c][o.Household], o.Time)
	}
	h.ghosts[c]++
	h.ghostCVR[c] += o.Truth(s, c).CVR
	h.ghostSpend[c] += price / 1000
	return nil
}

// recordExposure records a real exposure of campaign c (after Expose) and
// the conversion it caused, if any.
func (p *player) recordExposure(so *simOpp, s, c int, out market.Outcome, cv *market.Conversion) {
	h := p.hold
	o := &so.o
	if !o.Privacy.Restricted() {
		h.expT[c][o.Household] = append(h.expT[c][o.Household], o.Time)
	}
	h.shown[c][o.Household] = true
	if out.Converted && out.Delay <= p.window() {
		h.caused[c] = append(h.caused[c], organicConv{hh: o.Household, t: o.Time + int64(out.Delay/time.Second)})
	}
	if h.seqToExp != nil {
		if seq := p.eng.Index.Last(); seq != h.lastSeq {
			h.seqToExp[seq], h.lastSeq = o.Seq<<3|uint64(s&7), seq
		}
		if cv != nil {
			h.convTruth[p.convKey(cv)] = convTruth{campaign: c, exposure: cv.Exposure}
		}
	}
}

// recordOrganic records an organic conversion of the day.
func (p *player) recordOrganic(cv *market.Conversion) {
	h := p.hold
	h.organic[cv.Campaign] = append(h.organic[cv.Campaign], organicConv{hh: cv.Household, t: cv.EventTime})
	if h.convTruth != nil {
		h.convTruth[p.convKey(cv)] = convTruth{campaign: cv.Campaign, exposure: market.NoExposure}
	}
}

func (p *player) convKey(cv *market.Conversion) conversions.DedupKey {
	cs := p.sim.m.Scenario().Campaigns[cv.Campaign]
	return conversions.EventDedupKey(cs.Dataset, cs.Event, cv.EventID)
}

// window is the attribution window of the simulated campaigns.
func (p *player) window() time.Duration { return p.sim.cfg.Campaigns[0].Window }

// LiftResult is one campaign's lift measurement in the cpafeed strategy's
// cpafeed against the market's truth.
type LiftResult struct {
	// HoldoutShare is the campaign's share of households held out.
	HoldoutShare float64 `json:"holdout_share"`
	// The estimate (GET /v1/campaigns/{id}/lift, all groups): the lift
	// (ratio of the arms' matched conversions per household − 1) and its
	// 90 % interval, incremental conversions, matched conversions per
	// household in each arm, households per arm (sketch).
	Lift               Ratio   `json:"lift"`
	LiftLo             Ratio   `json:"lift_lo"`
	LiftHi             Ratio   `json:"lift_hi"`
	Incremental        Ratio   `json:"incremental"`
	RateTreatment      Ratio   `json:"conversions_per_household_treatment"`
	RateControl        Ratio   `json:"conversions_per_household_control"`
	HouseholdsT        float64 `json:"households_treatment"`
	HouseholdsC        float64 `json:"households_control"`
	OrganicShare       Ratio   `json:"organic_share"`      // estimated: control rate × treatment households ÷ treatment conversions
	OrganicRate        Ratio   `json:"organic_rate"`       // estimated: matched conversions per control household-day
	TrueLift           Ratio   `json:"true_lift"`          // caused ÷ organic conversions of the treated households in their windows
	TrueCaused         int64   `json:"true_caused"`        // caused conversions in the windows of the treated households' indexed exposures
	TrueOrganicShare   Ratio   `json:"true_organic_share"` // organic ÷ (organic + caused) of the treated households
	TrueOrganicRate    Ratio   `json:"true_organic_rate"`  // organic conversions per control household-day of window
	TrueHouseholdsT    int     `json:"true_households_treatment"`
	TrueHouseholdsC    int     `json:"true_households_control"`
	Covered            bool    `json:"covered"`             // the true lift in the interval
	RelError           Ratio   `json:"rel_error"`           // (estimate − truth) ÷ truth
	Leakage            Ratio   `json:"leakage"`             // control households (truth) also shown the ad
	GhostExposures     int64   `json:"ghost_exposures"`     // auctions held back
	ConversionsForgone float64 `json:"conversions_forgone"` // Σ true CVR of the held-back impressions
	SpendHeldBack      float64 `json:"spend_held_back"`
	// Credit accuracy of the cpafeed strategy's attribution: of the
	// credit given to conversions an ad caused, the share given to that
	// exposure; of the credit given to organic conversions, the share
	// given to "organic"; and the share of all credit given to the true
	// cause.
	CreditCausedRight  Ratio `json:"credit_caused_right"`
	CreditOrganicRight Ratio `json:"credit_organic_right"`
	CreditAccuracy     Ratio `json:"credit_accuracy"`
	// OrganicCredit is the credit given to "organic" over every credited
	// conversion ÷ the organic conversions among them: 1 when the organic
	// term is calibrated, 0 under last touch (every matched conversion
	// goes to an exposure).
	OrganicCredit Ratio `json:"organic_credit"`
}

// liftResults sums up the cpafeed strategy's lift measurement against the
// truth, once every conversion is delivered (after drain).
func (p *player) liftResults(end int64) map[string]LiftResult {
	h := p.hold
	out := map[string]LiftResult{}
	w := int64(p.window() / time.Second)
	for c, camp := range p.sim.camps {
		caused := organicInWindows(h.caused[c], h.expT[c], w)
		r := LiftResult{GhostExposures: h.ghosts[c], ConversionsForgone: h.ghostCVR[c], SpendHeldBack: h.ghostSpend[c],
			TrueCaused: int64(caused), TrueHouseholdsT: len(h.expT[c]), TrueHouseholdsC: len(h.expC[c])}
		if sh := p.sim.cfg.Campaigns[c].HoldoutShare; sh != nil {
			r.HoldoutShare = *sh
		}
		if lr, ok := p.eng.Attributor.Lift(camp.id, time.Unix(end, 0), nil); ok {
			t := lr.Total
			r.Lift, r.LiftLo, r.LiftHi, r.Incremental = ptrRatio(t.Lift), ptrRatio(t.LiftLo), ptrRatio(t.LiftHi), ptrRatio(t.Incremental)
			r.RateTreatment, r.RateControl = ptrRatio(t.Treatment.ConversionsPerHousehold), ptrRatio(t.Control.ConversionsPerHousehold)
			r.HouseholdsT, r.HouseholdsC = t.Treatment.Households, t.Control.Households
			r.OrganicShare = Ratio(ratio(float64(r.RateControl)*t.Treatment.Households, t.Treatment.Conversions))
			r.OrganicRate = ptrRatio(lr.OrganicRate)
		}
		orgT := organicInWindows(h.organic[c], h.expT[c], w)
		orgC := organicInWindows(h.organic[c], h.expC[c], w)
		r.TrueLift = Ratio(ratio(float64(caused), float64(orgT)))
		r.TrueOrganicShare = Ratio(ratio(float64(orgT), float64(orgT)+float64(caused)))
		r.TrueOrganicRate = Ratio(ratio(float64(orgC), windowDays(h.expC[c], w, end)))
		r.Covered = float64(r.LiftLo) <= float64(r.TrueLift) && float64(r.TrueLift) <= float64(r.LiftHi)
		if math.IsNaN(float64(r.LiftHi)) && float64(r.LiftLo) <= float64(r.TrueLift) {
			r.Covered = true // an interval unbounded above
		}
		r.RelError = Ratio(ratio(float64(r.Lift)-float64(r.TrueLift), float64(r.TrueLift)))
		both := 0
		for hh := range h.expC[c] {
			if h.shown[c][hh] {
				both++
			}
		}
		r.Leakage = Ratio(ratio(float64(both), float64(len(h.expC[c]))))
		if h.credit != nil {
			ct := &h.credit[c]
			r.CreditCausedRight = Ratio(ratio(ct.causedRight, ct.caused))
			r.CreditOrganicRight = Ratio(ratio(ct.organicOK, ct.organic))
			r.CreditAccuracy = Ratio(ratio(ct.causedRight+ct.organicOK, float64(ct.causedConv+ct.organicConv)))
			r.OrganicCredit = Ratio(ratio(ct.toOrganic, float64(ct.organicConv)))
		}
		out[camp.id] = r
	}
	return out
}

func ptrRatio(v *float64) Ratio {
	if v == nil {
		return Ratio(math.NaN())
	}
	return Ratio(*v)
}

// organicInWindows counts the conversions whose household had an exposure
// in the window before them.
func organicInWindows(convs []organicConv, exps map[int32][]int64, w int64) int {
	n := 0
	for _, cv := range convs {
		for _, t := range exps[cv.hh] {
			if t <= cv.t && cv.t-t <= w {
				n++
				break
			}
		}
	}
	return n
}

// windowDays is Σ over households of the union of their exposures'
// windows, up to end, in days.
func windowDays(exps map[int32][]int64, w, end int64) float64 {
	var sec int64
	for _, ts := range exps {
		ts = slices.Clone(ts)
		slices.Sort(ts)
		var lo, hi int64 = -1, -1
		for _, t := range ts {
			if t > hi {
				if hi > lo {
					sec += hi - lo
				}
				lo = t
			}
			hi = max(hi, min(t+w, end))
		}
		if hi > lo {
			sec += hi - lo
		}
	}
	return float64(sec) / 86400
}
