// Package control keeps each campaign's realized cost per acquisition at
// its target: a feedback multiplier on the campaign's bids (cpa_control of
// the score answer), and the share of the campaign's spend that Thompson
// exploration may take. Only cpafeed sees both sides of the ratio, spend
// (wins) and conversions (the Conversions API), so it closes the loop for
// the bidder.
//
// # The loop
//
// Bid = value × u with value = 1000 × CVR × target CPA. For a campaign
// that maximizes conversions under an average CPA target T and a budget,
// the Lagrangian gives b = p·(1 + μT)/(λ + μ): linear in the conversion
// rate with one multiplier, so one number per campaign, steered by
// feedback, is the right structure (Yang et al., KDD 2019). The
// controller measures the realized, delay-corrected CPA over a recent
// window (Measure: model.ControlStats, spend ÷ the conversions the recent
// exposures are expected to bring in the end: their predicted conversions
// times a calibration, the conversions of those that had time to convert
// per one predicted for them, so fresh spend is not read as a miss and an
// over-confident model is corrected) and moves ln u by a
// proportional-integral law on e = ln(T ÷ CPA):
//
//	I ← clamp(I + e·Δt/ReactionTime, ln Min, ln Max)
//	ln u = clamp(I + Kp·e, ln Min, ln Max)
//
// with e clipped to ±1 and weighted by the evidence, E ÷ (E + 3) with E
// the conversions the matured exposures were predicted to bring, and
// Kp = 0.5 (Step). Under one such conversion e is +0.5 (a campaign that
// wins too little to measure raises its bids) if the campaign's bids come
// back at all (a win, or a reported loss), else 0: a campaign scored by a
// bidder that reports neither holds its multiplier instead of rising to
// Max. With Params.Incremental the conversions counted are the caused
// ones: the CPA is divided by the share of the campaign's conversions its
// household holdout measures as caused (Measure.CausedShare), so organic
// conversions credited to its exposures do not read as a CPA under the
// target. The integral holds the
// multiplier the market needs; the proportional part damps the lag of the
// measurement window. u may exceed 1: in a second-price auction a bidder
// pays less than it bids, so bidding exactly the value leaves CPA below
// the target and volume on the table. Budget pacing stays the bidder's
// job and may only lower bids below what the controller allows; a budget
// that binds leaves the CPA under the target, and the integral then rests
// at Max (the bounds are its anti-windup).
//
// # Exploration
//
// A score asked with explore=thompson bids on a posterior draw for a
// pseudo-random share Q of (auction, imp, campaign) (Draw < Q), on the
// posterior mean for the rest. The controller counts the spend of wins
// whose draw fell under the current Q as explored (OnExposed) and moves Q
// so that explored spend stays at most Params.ExploreShare of the
// campaign's recent spend.
//
// # State and durability
//
// The Controller's state changes only through journal records (0x20, one
// per Update with every campaign's new State) and the exposures it is told
// of, both applied in log order: live state follows the log as a replay
// sees it (journal's AppendApply contract). Step is a pure function of its
// values and the time passed in; nothing here reads a clock or knows HTTP.
// WriteSnapshot and ReadSnapshot keep the whole state in the server's
// snapshot (section control1).
//
// # Lifetimes and locking
//
// A *Table handed out by Table is immutable; Update publishes a new one by
// pointer swap. Controller methods are safe for concurrent use (one mutex);
// Update is serialized with itself.
package control
