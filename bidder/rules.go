package bidder

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"unsafe"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/shading"
	"github.com/cpafeed/cpafeed/signals"
)

// Bid bases of a campaign (model.Campaign.BidOn).
const (
	BidOnCVR   = "cvr"    // the posterior mean
	BidOnCVRLo = "cvr_lo" // the lower end of the credible interval (cautious)
)

// CampaignRule is what scoring needs of one campaign: its bid rule.
type CampaignRule struct {
	ID        string
	Currency  string  // ISO 4217 code of the bid
	TargetCPA float64 // currency per conversion, > 0
	FloorCPM  float64 // currency per mille; 0 = no floor
	CapCPM    float64 // currency per mille; 0 = no cap
	Pacing    float64 // bid multiplier, > 0
	BidOn     string  // BidOnCVR or BidOnCVRLo
	// Shading: first-price bids are shaded (model.Control.DisableShading
	// false).
	Shading bool
	// HoldoutShare is the share of households held out of the campaign
	// (in [0, 0.5]; 0 = none): see Arm.
	HoldoutShare float64
}

// Bid is the bid rule: 1000 × p × TargetCPA × Pacing clamped to the floor
// and the cap (each 0 = none), in Currency per mille; p is the conversion
// rate bid on (the CVR, its credible interval's low end for bid_on: cvr_lo,
// or a Thompson draw).
func (c *CampaignRule) Bid(p float64) float64 { return c.bidWith(p, 1) }

// bidWith is Bid with the pacing multiplied by m (the CPA controller's
// multiplier and the bidder's pacer).
func (c *CampaignRule) bidWith(p, m float64) float64 {
	bid := 1000 * c.TargetCPA * c.Pacing * m * p
	if c.CapCPM > 0 && bid > c.CapCPM {
		bid = c.CapCPM
	}
	if bid < c.FloorCPM {
		bid = c.FloorCPM
	}
	return bid
}

// campaign is a CampaignRule with its constants precomputed.
type campaign struct {
	CampaignRule
	root model.Key
	seed uint64 // control.Draw's seed
	onLo bool
	salt uint64 // of its holdout assignment (SetHoldout)
}

// Rules is the immutable part of scoring: the segment chain below the
// campaign and every campaign's bid rule, with the per-campaign constants
// (root key) computed once. It is safe for concurrent use.
type Rules struct {
	chain  *signals.Chain
	levels [][]string
	camps  []campaign
	byID   map[string]int

	features    map[string]signals.FeatureID // by config name
	featureList string                       // the names, comma-separated
	holdout     *holdout                     // nil: no household is held out
}

// NewRules builds the rules of a segment chain (feature names per level,
// as in the server config's segments) and campaigns (taken WithDefaults).
// Every problem is reported together.
func NewRules(levels [][]string, campaigns []model.Campaign) (*Rules, error) {
	rules := make([]CampaignRule, len(campaigns))
	for i, c := range campaigns {
		c = c.WithDefaults()
		rules[i] = CampaignRule{ID: c.ID, Currency: c.Currency, TargetCPA: c.TargetCPA, FloorCPM: c.FloorCPM, CapCPM: c.CapCPM, Pacing: c.Pacing, BidOn: c.BidOn,
			Shading: !c.Control.DisableShading}
		if c.HoldoutShare != nil {
			rules[i].HoldoutShare = *c.HoldoutShare
		}
	}
	return newRules(levels, rules)
}

func newRules(levels [][]string, rules []CampaignRule) (*Rules, error) {
	chain, err := signals.NewChain(levels)
	if err != nil {
		return nil, fmt.Errorf("segments: %w", err)
	}
	if chain.Depth()+1 > model.MaxLevels {
		return nil, fmt.Errorf("segments: %d levels, at most %d below the campaign", chain.Depth(), model.MaxLevels-1)
	}
	r := &Rules{chain: chain, byID: make(map[string]int, len(rules)), features: map[string]signals.FeatureID{}}
	names := signals.FeatureNames()
	for _, n := range names {
		r.features[n], _ = signals.FeatureByName(n)
	}
	r.featureList = strings.Join(names, ", ")
	for _, lv := range levels {
		r.levels = append(r.levels, append([]string(nil), lv...))
	}
	var errs []error
	bad := func(i int, format string, a ...any) {
		errs = append(errs, fmt.Errorf("campaigns[%d]: "+format, append([]any{i}, a...)...))
	}
	for i, c := range rules {
		if c.ID == "" {
			bad(i, "empty id")
		} else if _, dup := r.byID[c.ID]; dup {
			bad(i, "duplicate id %q", c.ID)
		}
		if !(c.TargetCPA > 0) || math.IsInf(c.TargetCPA, 0) {
			bad(i, "target_cpa %g: must be > 0", c.TargetCPA)
		}
		if !(c.Pacing > 0) || math.IsInf(c.Pacing, 0) {
			bad(i, "pacing %g: must be > 0", c.Pacing)
		}
		if !(c.FloorCPM >= 0) || !(c.CapCPM >= 0) || (c.CapCPM > 0 && c.CapCPM < c.FloorCPM) {
			bad(i, "floor_cpm %g, cap_cpm %g: want ≥ 0 with cap ≥ floor (0 = none)", c.FloorCPM, c.CapCPM)
		}
		if c.BidOn != BidOnCVR && c.BidOn != BidOnCVRLo {
			bad(i, "bid_on %q: must be cvr or cvr_lo", c.BidOn)
		}
		if !(c.HoldoutShare >= 0 && c.HoldoutShare <= 0.5) {
			bad(i, "holdout_share %g: must be in [0, 0.5]", c.HoldoutShare)
		}
		r.byID[c.ID] = len(r.camps)
		r.camps = append(r.camps, campaign{
			CampaignRule: c,
			root:         model.RootKey(c.ID),
			seed:         control.Seed(c.ID),
			onLo:         c.BidOn == BidOnCVRLo,
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// feature returns the feature of a config name, without allocating.
func (r *Rules) feature(name []byte) (signals.FeatureID, bool) {
	f, ok := r.features[string(name)]
	return f, ok
}

// Chain is the segment chain.
func (r *Rules) Chain() *signals.Chain { return r.chain }

// Levels returns the feature names of each chain level (a copy).
func (r *Rules) Levels() [][]string {
	out := make([][]string, len(r.levels))
	for i, lv := range r.levels {
		out[i] = append([]string(nil), lv...)
	}
	return out
}

// Campaigns returns the campaigns' rules, in configuration order (a copy).
func (r *Rules) Campaigns() []CampaignRule {
	out := make([]CampaignRule, len(r.camps))
	for i := range r.camps {
		out[i] = r.camps[i].CampaignRule
	}
	return out
}

// Campaign returns the rule of a campaign.
func (r *Rules) Campaign(id string) (CampaignRule, bool) {
	i, ok := r.byID[id]
	if !ok {
		return CampaignRule{}, false
	}
	return r.camps[i].CampaignRule, true
}

// Score is the answer for one imp and one campaign.
type Score struct {
	Campaign string
	// CVR is the posterior mean conversion rate of the segment used; CVRLo
	// and CVRHi its credible interval; VTR its video completion rate.
	CVR, CVRLo, CVRHi, VTR float64
	// NEff (delay-corrected effective exposures) and Conversions (credited,
	// decayed) are the segment's evidence.
	NEff, Conversions float64
	// Level is the depth of the segment used (0 = the campaign's average),
	// −1 when the model has no estimate of the campaign at all (then every
	// number is 0 and the campaign should not bid). For the crossed model
	// it is how many effect tables knew the imp's level (0: only the
	// campaign's base), and NEff and Conversions are the evidence of the
	// least observed of those levels (model.Estimates.LookupCell).
	Level int
	// Key is the segment's key; Segment its readable name, e.g.
	// "demo-ctv-purchase/pub-1203/151908/Sports" (valid as the Result).
	// For the crossed model the segment is the imp's cell: the campaign,
	// then the value of every dimension, and Key the cell's key (the leaf
	// its exposures are counted under).
	Key     model.Key
	Segment []byte
	// BidCPM is the bid to place, in the campaign's currency per mille:
	// UnshadedCPM, shaded in a first-price auction (never under FloorCPM).
	BidCPM float64
	// UnshadedCPM = 1000 × p × TargetCPA × Pacing × CPAControl × the
	// bidder's pace, clamped to [FloorCPM, CapCPM]; p = CVR (CVRLo for
	// bid_on: cvr_lo; the Thompson draw when Explored).
	UnshadedCPM float64
	// CPAControl is the campaign's CPA controller multiplier (package
	// control; 1 when off); Pacing its configured pacing; Shading =
	// BidCPM ÷ UnshadedCPM (1 when not shaded).
	CPAControl, Pacing, Shading float64
	// Multiplier is CVR ÷ the campaign's average CVR.
	Multiplier float64
	// Sample is a Thompson draw from the segment's posterior (a Beta for
	// the chain, the lognormal of the crossed model), set when Sampled
	// (explore=thompson); Explored when the bid is on it (within the
	// campaign's explore share), else it is on the mean.
	Sample            float64
	Sampled, Explored bool
	// Arm is the household's arm in the campaign's holdout (ArmNone
	// without one); in ArmControl, BidCPM is 0 and WouldBidCPM the bid it
	// would have made.
	Arm         Arm
	WouldBidCPM float64

	segOff, segLen int // Segment in Result.arena
}

// table is one published Estimates with the per-campaign constants derived
// from it: the campaigns' average CVRs (the multiplier's reference), indexed
// as Rules.camps, and for a crossed model the features of its dimensions.
// Immutable.
type table struct {
	est  *model.Estimates
	avg  []float64           // 0 when the campaign has no root in est
	dims []signals.FeatureID // crossed: the feature of each dimension; NumFeatures (Unknown) for a name signals does not know
	// The closed loop as it stood when the table was built: one version
	// of the estimates answers with one set of multipliers and curves,
	// here and in an embedded scorer's snapshot of it.
	ctl    []ctlEntry // as camps
	curves *shading.Curves
}

func newTable(r *Rules, est *model.Estimates, st Steering) *table {
	t := &table{est: est, avg: make([]float64, len(r.camps))}
	for i := range r.camps {
		if e, ok := est.Get(r.camps[i].root); ok && e.Level == 0 {
			t.avg[i] = e.CVR
		}
	}
	t.resolveDims()
	t.steerFrom(r, st)
	return t
}

// resolveDims sets t.dims from the estimates' dimension names.
func (t *table) resolveDims() {
	t.dims = t.dims[:0]
	for _, name := range t.est.Dims() {
		f, ok := signals.FeatureByName(name)
		if !ok {
			f = signals.NumFeatures
		}
		t.dims = append(t.dims, f)
	}
}

// fillCell sets cell to imp's values of the crossed model's dimensions
// (once per imp: every campaign uses it); false for a chain table.
func (t *table) fillCell(imp *signals.Imp, cell *model.Cell) bool {
	if !t.est.Crossed() {
		return false
	}
	cell.Reset(len(t.dims))
	for d, f := range t.dims {
		cell.SetValue(d, imp.Feature(f))
	}
	return true
}

// score scores imp for campaign ci into out (all but the segment name,
// which is returned appended to seg); cell is imp's (fillCell) for a
// crossed table, nil for a chain. o says whether to explore (o.rng nil:
// no Thompson draw), shade (o.first) and pace. It does not allocate.
func (r *Rules) score(t *table, ci int, imp *signals.Imp, cell *model.Cell, o *scoreCtx, out *Score, seg []byte) []byte {
	c := &r.camps[ci]
	var e model.Estimate
	var ok bool
	if cell != nil {
		e, ok = t.est.LookupCell(c.root, cell)
	} else {
		var buf [model.MaxLevels]model.Key
		path := r.chain.Keys(c.root, imp, buf[:0])
		e, ok = t.est.Lookup(path)
	}
	*out = Score{Campaign: c.ID, Level: -1}
	if !ok {
		return seg
	}
	out.CVR, out.CVRLo, out.CVRHi, out.VTR = e.CVR, e.Lo, e.Hi, e.VTR
	out.NEff, out.Conversions, out.Level, out.Key = e.NEff, e.Conversions, e.Level, e.Key
	p := e.CVR
	if c.onLo {
		p = e.Lo
	}
	ctl := t.ctl[ci]
	if o.rng != nil {
		out.Sample, out.Sampled = e.Sample(o.rng), true
		var x float64
		if o.auction != nil {
			x = control.Draw(c.seed, o.auction, imp.ID)
		} else {
			x = o.rng.Float64()
		}
		if x < ctl.q {
			p, out.Explored = out.Sample, true
		}
	}
	st := c.price(p, ctl.u, o.pace, o.first, t.curves, r.chain, imp)
	out.BidCPM, out.UnshadedCPM, out.CPAControl, out.Shading, out.Pacing = st.BidCPM, st.UnshadedCPM, st.CPAControl, st.Shading, c.Pacing
	if avg := t.avg[ci]; avg > 0 {
		out.Multiplier = e.CVR / avg
	}
	start := len(seg)
	if cell != nil { // the cell: the campaign, then each dimension's value
		seg = append(seg, c.ID...)
		for _, f := range t.dims {
			seg = append(seg, '/')
			seg = append(seg, imp.Feature(f)...)
		}
	} else {
		seg = t.est.Name(e.Key, seg)
	}
	out.segOff, out.segLen = start, len(seg)-start
	return seg
}

// runtimeSource is a rand.Source on the runtime's per-thread generator: safe
// for concurrent use, without locks or allocation (what math/rand/v2's
// top-level functions use).
type runtimeSource struct{}

func (runtimeSource) Uint64() uint64 { return rand.Uint64() }

// newRand returns a *rand.Rand that is safe for concurrent use.
func newRand() *rand.Rand { return rand.New(runtimeSource{}) }

// allowFunc says whether campaign i of the rules may be scored.
type allowFunc func(i int) bool

// pick appends the index of campaign id to dst: 404 when it is unknown or
// not allowed, alike, so that a token cannot tell another tenant's
// campaign ids from made-up ones. A campaign already in dst is not added
// again.
func (r *Rules) pick(id string, allow allowFunc, dst []int) ([]int, error) {
	i, ok := r.byID[id]
	if !ok || !allow(i) {
		return dst, apierr.NotFound("campaigns: unknown campaign %q", id)
	}
	for _, j := range dst {
		if j == i {
			return dst, nil
		}
	}
	return append(dst, i), nil
}

// pickIDs appends the campaigns named in ids (every campaign when none), as
// the Go API names them (a snapshot holds only the campaigns its bidder
// may score: any other is unknown).
func (r *Rules) pickIDs(ids []string, dst []int) ([]int, error) {
	if len(ids) == 0 {
		return r.pickAll(allowAll, dst), nil
	}
	var err error
	for _, id := range ids {
		if id == "" {
			return dst, apierr.BadRequest("campaigns: empty campaign id in the list")
		}
		if dst, err = r.pick(id, allowAll, dst); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// pickList appends the campaigns of a comma-separated list (a query
// parameter); an empty list means every allowed campaign.
func (r *Rules) pickList(list []byte, allow allowFunc, dst []int) ([]int, error) {
	if len(list) == 0 {
		return r.pickAll(allow, dst), nil
	}
	var err error
	for len(list) > 0 {
		j := 0
		for j < len(list) && list[j] != ',' {
			j++
		}
		if j == 0 {
			return dst, apierr.BadRequest("campaigns: empty campaign id in the list")
		}
		if dst, err = r.pick(unsafe.String(&list[0], j), allow, dst); err != nil {
			return dst, err
		}
		if j == len(list) {
			break
		}
		list = list[j+1:]
		if len(list) == 0 {
			return dst, apierr.BadRequest("campaigns: empty campaign id in the list")
		}
	}
	return dst, nil
}

// pickAll appends every allowed campaign.
func (r *Rules) pickAll(allow allowFunc, dst []int) []int {
	for i := range r.camps {
		if allow(i) {
			dst = append(dst, i)
		}
	}
	return dst
}
