package model

import "math"

// longWindows is how many control windows the long counts (the
// calibration of the predictions) are decayed over.
const longWindows = 4

// recent is a campaign's recent delivery for its CPA controller (package
// control): exposures, spend and credited conversions decayed by
// 2^(−age/Control.Window) instead of the model's HalfLife, and the delay
// accumulators S_j of its unconverted exposures, as a node keeps them. It
// is part of campTotals (the root shard's lock guards it) and, like every
// count, changes only in Expose and Credit, so it follows the journal.
type recent struct {
	tRef     int64 // the time the counts are decayed to, Unix seconds
	n, spend float64
	c        float64 // credited conversions, decayed by their exposure's time
	s        [nComp]float64
	p        float64 // Σ the exposures' predicted conversion rates (Predicted)
}

// advance decays r to t (> r.tRef) at rate gamma (per second) and the
// slowest delay component's rate lam0.
func (r *recent) advance(gamma, lam0 float64, t int64) {
	dt := float64(t - r.tRef)
	r.tRef = t
	h := math.Exp(-gamma * dt)
	r.n *= h
	r.spend *= h
	r.c *= h
	r.p *= h
	decayPending(&r.s, h, lam0, dt)
}

// factors returns the decay weight h and the slowest component's factor x
// of an event at ts, relative to r.tRef.
func (r *recent) factors(gamma, lam0 float64, ts int64) (h, x float64) {
	age := r.tRef - ts
	if age <= 0 {
		return 1, 1
	}
	return math.Exp(-gamma * float64(age)), math.Exp(-lam0 * float64(age))
}

// expose counts an exposure at ts costing cost.
func (r *recent) expose(gamma, lam0 float64, ts int64, cost float64) {
	if ts > r.tRef {
		r.advance(gamma, lam0, ts)
	}
	h, x := r.factors(gamma, lam0, ts)
	r.n += h
	r.spend += h * cost
	for j := range r.s {
		r.s[j] += h * x
		x = x * x * x
	}
}

// credit counts a conversion credited with weight w to an exposure at
// expTS, known at t ≥ expTS.
func (r *recent) credit(gamma, lam0 float64, expTS, t int64, w float64) {
	if t > r.tRef {
		r.advance(gamma, lam0, t)
	}
	h, x := r.factors(gamma, lam0, expTS)
	r.c += w * h
	for j := range r.s {
		r.s[j] = math.Max(r.s[j]-w*h*x, 0)
		x = x * x * x
	}
}

// Predicted counts the conversion rate predicted for an exposure of
// campaign at ts (pred; not a rate in (0, 1]: the campaign's PriorCVR) in
// its recent delivery: the conversions its recent exposures were expected
// to bring. Call it where the exposure is applied, beside Expose (in log
// order). It returns false for an unknown campaign.
func (m *Model) Predicted(campaign string, ts int64, pred float64) bool {
	cs := m.camps.Load().byID[campaign]
	if cs == nil {
		return false
	}
	if !(pred > 0 && pred <= 1) {
		pred = cs.c.PriorCVR
	}
	sh := &m.shards[uint64(cs.root)&m.shardMask]
	sh.mu.Lock()
	for _, x := range [...]struct {
		r     *recent
		gamma float64
	}{{&cs.tot.r, cs.rGamma}, {&cs.tot.long, cs.rGamma / longWindows}} {
		if ts > x.r.tRef {
			x.r.advance(x.gamma, cs.lam0, ts)
		}
		h, _ := x.r.factors(x.gamma, cs.lam0, ts)
		x.r.p += h * pred
	}
	sh.mu.Unlock()
	return true
}

// ControlStats is what a campaign's CPA controller measures: its recent
// delivery, decayed with its Control.Window by the exposures' time. The
// delay-corrected realized CPA is Spend ÷ (Predicted × calibration), the
// calibration being the conversions of the exposures that had time to
// convert over their predicted ones (package control): conversions still
// to come from fresh exposures are expected, not missed.
type ControlStats struct {
	Spend     float64 // currency units
	Exposures float64
	// Conversions are the credited conversions of those exposures; NEff
	// the exposures' weight that had time to convert (Σ F(age) over the
	// unconverted ones, plus Conversions), as a node's n_eff.
	Conversions, NEff float64
	// Predicted is Σ the exposures' predicted conversion rates (Predicted):
	// the conversions they were expected to bring in the end.
	Predicted float64
	// Long holds the same counts decayed over four control windows: the
	// calibration of the predictions, which changes slowly, is measured
	// on them with four times the conversions.
	Long struct {
		Exposures, Conversions, NEff, Predicted float64
	}
}

// ControlStats returns campaign's recent delivery as of now (Unix
// seconds): false for a campaign the model does not know.
func (m *Model) ControlStats(campaign string, now int64) (ControlStats, bool) {
	cs := m.camps.Load().byID[campaign]
	if cs == nil {
		return ControlStats{}, false
	}
	f := cs.l.fit.Load()
	sh := &m.shards[uint64(cs.root)&m.shardMask]
	sh.mu.Lock()
	r, l := cs.tot.r, cs.tot.long
	sh.mu.Unlock()
	if now > r.tRef {
		r.advance(cs.rGamma, cs.lam0, now)
	}
	if now > l.tRef {
		l.advance(cs.rGamma/longWindows, cs.lam0, now)
	}
	st := ControlStats{Spend: r.spend, Exposures: r.n, Conversions: r.c, NEff: m.neff(f, r.n, r.c, &r.s), Predicted: r.p}
	st.Long.Exposures, st.Long.Conversions, st.Long.NEff, st.Long.Predicted = l.n, l.c, m.neff(f, l.n, l.c, &l.s), l.p
	return st, true
}

// neff is the delay-corrected effective exposures c + A·(n − c) − Σ b_j S_j,
// at least c and at most n (n without delay correction).
func (m *Model) neff(f *delayFit, n, c float64, s *[nComp]float64) float64 {
	if m.cfg.NoDelayCorrection {
		return n
	}
	v := c + f.a*(n-c)
	for j := range s {
		v -= f.b[j] * s[j]
	}
	return math.Min(math.Max(v, c), math.Max(n, c))
}
