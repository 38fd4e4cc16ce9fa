package model

import "time"

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
	return c
}
