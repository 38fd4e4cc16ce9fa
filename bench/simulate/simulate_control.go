package simulate

import (
	"fmt"
	"math"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/signals"
)

// closedLoop is how a CPA strategy (cpa_raw, cpafeed, oracle) goes through
// cpafeed's closed loop, the same for the three so that they compare on
// their estimates alone: each bid is the strategy's conversion rate priced
// by its own cpafeed (bidder.Service.Steer: × target CPA × cpa_control ×
// the pacer's multiplier, shaded in a first-price auction), the pacer may
// only lower bids below what CPA control allows (its multiplier is capped
// at 1), the controllers step every Options.ControlEvery on what the
// strategy's cpafeed measured, and in a first-price market every bid's
// outcome is reported (signals.Exposures.Outcome, as loss notices and win
// notices with bid= would) for the win-rate curves. flat and vtr stay
// outside: their pacer alone spends the budget, up to PacingConfig.Max; so
// do the CPA strategies unless Options.CPAControl.
type closedLoop struct {
	on    bool
	first bool  // a first-price market: report outcomes, shade
	idx   []int // each simulated campaign's index in the bidder's rules
	next  int64 // the next controller step (MaxInt64: none)
	every int64
}

func newClosedLoop(p *player) closedLoop {
	l := closedLoop{next: math.MaxInt64}
	switch p.name {
	case StrategyCPARaw, StrategyCPAfeed, StrategyOracle:
		l.on = p.sim.opts.CPAControl
	}
	if !l.on {
		return l
	}
	l.first = p.sim.m.Scenario().Market.Auction == market.FirstPrice
	l.every = int64(p.sim.opts.ControlEvery.Seconds())
	l.next = p.now + l.every
	for _, c := range p.sim.camps {
		i, _ := p.eng.Bidder.Rules().Index(c.id)
		l.idx = append(l.idx, i)
	}
	return l
}

// step steps the controllers and refits the curves when one is due at t.
func (l *closedLoop) step(p *player, t int64) error {
	if t != l.next {
		return nil
	}
	l.next += l.every
	if err := p.eng.Steer(t); err != nil {
		return fmt.Errorf("controller step at %d: %w", t, err)
	}
	return nil
}

// paceMax is the pacer's upper bound: 1 inside the loop.
func (l *closedLoop) paceMax(max float64) float64 {
	if l.on {
		return min(max, 1)
	}
	return max
}

// multiplier is campaign c's cpa_control now (1 outside the loop).
func (l *closedLoop) multiplier(p *player, c int) float64 {
	if !l.on {
		return 1
	}
	e, _ := p.eng.Control.Table().Get(p.sim.camps[c].id)
	return e.U
}

// outcome reports a first-price bid's outcome to the strategy's cpafeed.
func (l *closedLoop) outcome(p *player, req *signals.Request, s, c int, bid, price float64, won bool, ts int64) error {
	if !l.on || !l.first {
		return nil
	}
	return p.eng.Exposures.Outcome(req, s, p.sim.camps[c].id, bid, price, won, ts)
}

// pred is the conversion rate a won impression of campaign c in slot s
// was bid on (journaled with the exposure: the CPA controller's predicted
// conversions); −1 outside the loop (cpafeed's own estimate then).
func (l *closedLoop) pred(p *player, so *simOpp, s, c int) float64 {
	if !l.on {
		return -1
	}
	return p.cvrOf(so, s, c)
}

// bid is the strategy's bid (USD CPM) for campaign c in slot s: inside the
// loop its conversion rate priced by cpafeed's Steer with the pacer's
// multiplier, else its base bid times the pacer's multiplier; capped at
// the campaign's cap.
func (p *player) bid(so *simOpp, req *signals.Request, s, c int) float64 {
	camp := &p.sim.camps[c]
	if !p.loop.on {
		return min(p.pace[c].m*p.base(so, s, c), camp.capCPM)
	}
	cvr := p.cvrOf(so, s, c)
	if !(cvr > 0) {
		return 0
	}
	st := p.eng.Bidder.Steer(p.loop.idx[c], &req.Imps[s], cvr, p.pace[c].m, p.loop.first)
	return min(st.BidCPM, camp.capCPM)
}

// cvrOf is the conversion rate a CPA strategy bids on for campaign c in
// slot s: the truth (oracle), the leaf's raw c/n (cpa_raw), or cpafeed's
// estimate, its posterior draw when the score explored (explore=thompson,
// within the campaign's explore share).
func (p *player) cvrOf(so *simOpp, s, c int) float64 {
	switch p.name {
	case StrategyOracle:
		return so.o.Truth(s, c).CVR
	case StrategyCPARaw:
		return p.base(so, s, c) / (1000 * p.sim.camps[c].target)
	}
	sc := &p.slots[s*len(p.sim.camps)+c]
	if sc.Level < 0 {
		return 0
	}
	if sc.Explored {
		return sc.Sample
	}
	return sc.CVR
}
