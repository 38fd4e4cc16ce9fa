package bidder

import (
	"github.com/cpafeed/cpafeed/signals"
)

// Arm is a household's arm in a campaign's holdout.
type Arm uint8

// Arms.
const (
	// ArmNone: the campaign has no holdout, or the request no household
	// (no identity; a request failing the privacy gates has one, see
	// signals.Households): bid as usual.
	ArmNone Arm = iota
	// ArmTreatment: the household may be shown the ad.
	ArmTreatment
	// ArmControl: the household is held out. BidCPM is 0; WouldBidCPM is
	// the bid it would have made. Hold the bid back and report the
	// auction as a ghost exposure (POST /v1/exposures with "ghost": true
	// and "bid_cpm") when the bid would have won, so that the control
	// arm is matched as the treatment arm is.
	ArmControl
)

func (a Arm) String() string {
	switch a {
	case ArmTreatment:
		return "treatment"
	case ArmControl:
		return "control"
	}
	return ""
}

// HoldoutConfig is what scoring needs to assign households to arms.
type HoldoutConfig struct {
	// Key is the holdout key (derived from the identity secret by the
	// server; never the secret itself: embedded scorers receive it). Empty:
	// no holdout.
	Key []byte
	// HouseholdSources are the user.eids sources whose ids are household
	// ids (identity.household_eid_sources).
	HouseholdSources []string
	// TCFVendorID is the identity config's TCF vendor id (privacy gates).
	TCFVendorID int
	// HouseholdCache is how many identities the household cache keeps
	// (0: signals.DefaultHouseholdCache).
	HouseholdCache int
}

// holdout is the household assigner of a Rules with its configuration.
type holdout struct {
	cfg HoldoutConfig
	hh  *signals.Households
}

// SetHoldout makes scoring assign households to the arms of the campaigns
// that have a holdout (CampaignRule.HoldoutShare), with a new household
// cache. Call it before serving; an empty key leaves the holdout off.
func (r *Rules) SetHoldout(cfg HoldoutConfig) {
	if len(cfg.Key) == 0 {
		r.holdout = nil
		return
	}
	r.setHoldout(&holdout{cfg: cfg, hh: signals.NewHouseholds(cfg.Key, cfg.HouseholdSources, cfg.TCFVendorID, cfg.HouseholdCache)})
}

// setHoldout sets h and each campaign's salt.
func (r *Rules) setHoldout(h *holdout) {
	r.holdout = h
	for i := range r.camps {
		r.camps[i].salt = h.hh.CampaignSalt(r.camps[i].ID)
	}
}

// household returns the household key of req when some campaign of camps
// has a holdout.
func (r *Rules) household(req *signals.Request, camps []int) (uint64, bool) {
	if r.holdout == nil {
		return 0, false
	}
	for _, ci := range camps {
		if r.camps[ci].HoldoutShare > 0 {
			return r.holdout.hh.Key(req)
		}
	}
	return 0, false
}

// applyArm sets the arm of a score of campaign ci for household hh (ok:
// the request has one): in the control arm the bid moves to WouldBidCPM.
func (r *Rules) applyArm(s *Score, ci int, hh uint64, ok bool) {
	c := &r.camps[ci]
	if !ok || !(c.HoldoutShare > 0) || s.Level < 0 {
		return
	}
	if signals.Held(hh, c.salt, c.HoldoutShare) {
		s.Arm, s.WouldBidCPM, s.BidCPM = ArmControl, s.BidCPM, 0
		return
	}
	s.Arm = ArmTreatment
}

// Arms appends to dst, for each campaign of opts (none: every campaign),
// the arm of req's household in the campaign's holdout (ArmNone without
// one): the arms ScoreRequest's scores carry, without scoring (for
// in-process bidders that price some campaigns without cpafeed's
// estimates). The arm is the request's: every imp has the same.
func (s *Service) Arms(req *signals.Request, opts ScoreOptions, dst []Arm) ([]Arm, error) {
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	camps, err := s.rules.pickIDs(opts.Campaigns, sc.camps[:0])
	sc.camps = camps
	if err != nil {
		return dst, err
	}
	hh, ok := s.rules.household(req, camps)
	for _, ci := range camps {
		sc := Score{Level: 0}
		s.rules.applyArm(&sc, ci, hh, ok)
		dst = append(dst, sc.Arm)
	}
	return dst, nil
}
