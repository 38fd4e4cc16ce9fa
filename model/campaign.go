package model

import (
	"fmt"
	"math"
	"time"
)

// Campaign is what every package needs to know of a campaign: whose it is,
// which event it optimizes, how conversions are attributed to it and how it
// bids. It is configuration, passed in by value; the model never changes it.
type Campaign struct {
	ID         string `yaml:"id"`         // unique, e.g. "demo-ctv-purchase"
	Advertiser string `yaml:"advertiser"` // owning advertiser name
	Event      string `yaml:"event"`      // optimized event_name, e.g. "Purchase"

	// TargetCPA is the cost per acquisition the advertiser wants, in Currency
	// units (e.g. 40.00 USD). Required, > 0.
	TargetCPA float64 `yaml:"target_cpa"`
	// Currency is the ISO 4217 code of TargetCPA, spend and bids. Default "USD".
	Currency string `yaml:"currency"`

	// Window is the attribution window: conversions are credited to exposures
	// at most this long before them. Default 168h (7 days).
	Window time.Duration `yaml:"window"`
	// Credit is "last_touch" (the latest exposure gets the whole
	// conversion), "linear" (every exposure in the window an equal share)
	// or "probabilistic" (each exposure in proportion to its match's
	// confidence × its segment's CVR × the delay density at its lag,
	// against the campaign's organic rate: the credits sum to the
	// probability that an ad caused the conversion). Default: the server's
	// attribution.credit, else "last_touch".
	Credit string `yaml:"credit"`

	// HoldoutShare is the share of households held out of the campaign
	// (the control arm of its lift measurement): in [0, 0.5], 0 = no
	// holdout. A held-out household is not bid on (the score answers
	// "arm": "control" and bid_cpm 0, with the bid it would have made);
	// the bidder reports the auctions it held back as ghost exposures.
	// Absent (nil): the server's holdout.share.
	HoldoutShare *float64 `yaml:"holdout_share"`

	// FloorCPM and CapCPM clamp the bid, in Currency per thousand impressions.
	// Defaults 0 (no floor) and 0 (no cap).
	FloorCPM float64 `yaml:"floor_cpm"`
	CapCPM   float64 `yaml:"cap_cpm"`
	// Pacing multiplies every bid; default 1.0.
	Pacing float64 `yaml:"pacing"`
	// BidOn is "cvr" (default, the posterior mean) or "cvr_lo" (the lower end
	// of the credible interval: cautious).
	BidOn string `yaml:"bid_on"`

	// PriorCVR is the conversion rate assumed before any data (the prior mean
	// of the campaign's root node). Default 0.001.
	PriorCVR float64 `yaml:"prior_cvr"`

	// Control is how the campaign's bids are steered to its target CPA and,
	// in first-price auctions, shaded (packages control and shading).
	Control Control `yaml:"control"`
}

// Control configures the closed loop of a campaign's bids: the CPA
// controller's multiplier (cpa_control of the score answer), first-price
// shading and the cap on Thompson exploration. Every zero field takes its
// default; shading is on unless disabled, the CPA controller off unless
// enabled.
type Control struct {
	// CPA turns the CPA controller on. Default false: cpa_control stays 1.
	// It is opt-in because of what it did on the synthetic market (README
	// "Keeping the target CPA", 4 scenarios × 4 seeds): it holds the
	// attributed CPA, which keeps the true one under the target where the
	// estimates rank but spent 17–57 % of the default's budgets (attribution
	// misses a third of the caused conversions, so a campaign under its
	// true target reads as over it), and it cannot hold the true CPA where
	// the estimates do not rank (scarce.yaml, 2.3–4.1× the target).
	CPA bool `yaml:"cpa"`
	// Min and Max bound the cpa_control multiplier. Defaults 0.2 and 4
	// (the upper bound lets a campaign whose budget binds bid up to 4×
	// its value when its realized CPA stays under the target: the average
	// target allows it, as the Lagrangian b = p(1+μT)/(λ+μ) says).
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
	// ReactionTime is the controller's integral time: a realized CPA that
	// stays a factor e above (below) the target moves the multiplier down
	// (up) by a factor e per ReactionTime. Default 24h (package control's
	// known-truth tests: with a dozen conversions a day, 24 h and 48 h
	// held the target alike, 24 h corrected a 3-fold over-estimating
	// model sooner).
	ReactionTime time.Duration `yaml:"reaction_time"`
	// Window is the half-life of the recent spend and conversions the
	// realized CPA is measured on (model.ControlStats). Default 24h.
	Window time.Duration `yaml:"window"`
	// DisableShading turns first-price shading off: bid_cpm is the
	// unshaded bid in every auction.
	DisableShading bool `yaml:"disable_shading"`
	// ExploreShare is the most share of the campaign's recent spend that
	// Thompson draws may win (explore=thompson): cpafeed lowers the share
	// of scored imps that bid on a draw until it holds; the rest bid on the
	// posterior mean. In (0, 1]; default 0.05; 1 = no cap.
	ExploreShare float64 `yaml:"explore_share"`
	// Count is what the controller counts as the campaign's conversions:
	// "attributed" (default) the credited ones as they are; "incremental"
	// the credited ones times the share its household holdout measures as
	// caused (the treated arm's conversions less what the control arm's
	// rate predicts for them; control.Measure.CausedShare), so that
	// organic conversions credited to exposures do not read as a CPA under
	// the target. A campaign without a holdout counts attributed
	// conversions either way. Attributed is the default because, with the
	// default 5 % holdout, counting incremental conversions did not move
	// the true CPA on the synthetic market (README "Keeping the target
	// CPA": 4 scenarios × 4 seeds, cpafeed's purchase campaign 2.93 →
	// 3.00 × target on scarce.yaml, the oracle's 1.34 → 1.31): a control
	// arm of a few conversions measures the organic share too loosely.
	Count string `yaml:"count"`
}

// Control counts (Control.Count).
const (
	CountIncremental = "incremental"
	CountAttributed  = "attributed"
)

// WithDefaults returns c with every zero field set to its default.
func (c Control) WithDefaults() Control {
	if c.Min == 0 {
		c.Min = 0.2
	}
	if c.Max == 0 {
		c.Max = 4
	}
	if c.ReactionTime == 0 {
		c.ReactionTime = 24 * time.Hour
	}
	if c.Window == 0 {
		c.Window = 24 * time.Hour
	}
	if c.ExploreShare == 0 {
		c.ExploreShare = 0.05
	}
	if c.Count == "" {
		c.Count = CountAttributed
	}
	return c
}

// Validate reports every problem of c (after WithDefaults), each naming
// its field under prefix (e.g. "campaigns[0].control").
func (c Control) Validate(prefix string) []error {
	var errs []error
	if !(c.Min > 0) || !(c.Max >= c.Min) || math.IsInf(c.Max, 0) {
		errs = append(errs, fmt.Errorf("%s.min, %s.max: want 0 < min ≤ max, finite (got %g, %g)", prefix, prefix, c.Min, c.Max))
	}
	if c.ReactionTime < time.Minute {
		errs = append(errs, fmt.Errorf("%s.reaction_time: at least 1m, got %v", prefix, c.ReactionTime))
	}
	if c.Window < time.Minute {
		errs = append(errs, fmt.Errorf("%s.window: at least 1m, got %v", prefix, c.Window))
	}
	if !(c.ExploreShare > 0 && c.ExploreShare <= 1) {
		errs = append(errs, fmt.Errorf("%s.explore_share: want a share in (0, 1], got %g", prefix, c.ExploreShare))
	}
	if c.Count != CountIncremental && c.Count != CountAttributed {
		errs = append(errs, fmt.Errorf("%s.count: %q, want %q or %q", prefix, c.Count, CountIncremental, CountAttributed))
	}
	return errs
}

// Credit methods.
const (
	CreditLastTouch = "last_touch"
	CreditLinear    = "linear"
	// CreditProbabilistic splits a conversion among its matched exposures
	// and "organic" (no ad): see Campaign.Credit.
	CreditProbabilistic = "probabilistic"
)

// WithDefaults returns c with every zero field set to its default.
func (c Campaign) WithDefaults() Campaign {
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if c.Window == 0 {
		c.Window = 7 * 24 * time.Hour
	}
	if c.Credit == "" {
		c.Credit = CreditLastTouch
	}
	if c.Pacing == 0 {
		c.Pacing = 1
	}
	if c.BidOn == "" {
		c.BidOn = "cvr"
	}
	if c.PriorCVR == 0 {
		c.PriorCVR = 0.001
	}
	c.Control = c.Control.WithDefaults()
	return c
}
