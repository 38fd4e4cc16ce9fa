package model

import "math"

// Crossed reports whether the table is of the crossed model (LookupCell,
// Effects) rather than the chain (Lookup).
func (e *Estimates) Crossed() bool { return e.cross != nil }

// Dims returns the crossed model's dimensions, the features a Cell holds
// in order (nil for the chain). The slice is the table's: do not modify.
func (e *Estimates) Dims() []string {
	if e.cross == nil {
		return nil
	}
	return e.cross.dims
}

// EffectKeys returns the names of the crossed model's effect tables
// ("genre", "publisher+bundle"), in order: table t is level t+1 of
// Segments. Nil for the chain; a new slice.
func (e *Estimates) EffectKeys() []string {
	if e.cross == nil {
		return nil
	}
	out := make([]string, len(e.cross.tables))
	for i := range e.cross.tables {
		out[i] = e.cross.tables[i].name
	}
	return out
}

// LookupCell returns the crossed model's estimate for an impression of
// cell c in the campaign whose root key is root: one hash probe per effect
// table, summed in log space; a level never seen contributes its table's
// prior. CVR = E[base]·Π E[multiplier] (capped at 1); Lo and Hi are the
// quantiles of the lognormal posterior (LogCenter, LogSD); VTR is the
// campaign's times each level's ratio to it. Level is how many tables
// knew the cell's level; NEff, Conversions, Exposures and Spend are the
// evidence of the least observed of those levels (the campaign's when
// none). Key is the cell's key (c.Key(root)). False when the table is not
// crossed or does not know the campaign. It does not allocate.
func (e *Estimates) LookupCell(root Key, c *Cell) (Estimate, bool) {
	x := e.cross
	if x == nil {
		return Estimate{}, false
	}
	ri := e.find(root)
	if ri < 0 || e.ents[ri].level != 0 {
		return Estimate{}, false
	}
	r := &e.ents[ri]
	camp := &e.camps[r.camp]
	lm, lc, lv, vtr := r.lm, r.lc, r.lv, r.vtr
	found, ev := 0, ri
	minN := math.Inf(1)
	for t := range x.tables {
		tb := &x.tables[t]
		y := e.findLevel(levelKey(root, valueKey(tb.salt, tb.dims, &c.vals)))
		if y == nil {
			if t < len(camp.eff) {
				lc += camp.eff[t].lc
				lv += camp.eff[t].lv
			}
			continue
		}
		lm += float64(y.lm)
		lc += float64(y.lc)
		lv += float64(y.lv)
		vtr *= float64(y.vr)
		found++
		if n := float64(y.ne); n < minN {
			minN, ev = n, int(y.idx-1)
		}
	}
	sd := math.Sqrt(lv)
	mu := math.Min(math.Exp(lm), 1)
	est := Estimate{
		CVR: mu, Lo: math.Min(math.Exp(lc+x.z[0]*sd), 1), Hi: math.Min(math.Exp(lc+x.z[1]*sd), 1),
		VTR: math.Min(vtr, 1), Level: found, Key: c.Key(root), LogCenter: lc, LogSD: sd,
	}
	y := &e.ents[ev]
	est.NEff, est.Conversions, est.Exposures, est.Spend = y.neff, y.conv, y.exps, y.spend
	// The Beta of the same mean and variance (var = μ²(e^{lv} − 1)).
	v := mu * mu * math.Expm1(lv)
	k := 1e-9
	if v > 0 {
		k = math.Max(mu*(1-mu)/v-1, 1e-9)
	}
	est.Alpha, est.Beta = math.Max(mu*k, 1e-12), math.Max((1-mu)*k, 1e-12)
	return est, true
}

// LogSpread is the standard deviation of ln m for an effect table of the
// given strength (m ~ Gamma(strength, strength)): √ψ'(strength), about
// 1/√strength. It is how much the table's values move the CVR.
func LogSpread(strength float64) float64 {
	if !(strength > 0) {
		return 0
	}
	return math.Sqrt(trigamma(strength))
}

// findLevel returns the slot of effect level k, nil if unknown.
func (e *Estimates) findLevel(k Key) *xslot {
	if len(e.xslots) == 0 {
		return nil
	}
	i := uint64(k) & e.xmask
	for {
		s := &e.xslots[i]
		if s.idx == 0 {
			return nil
		}
		if s.key == k {
			return s
		}
		i = (i + 1) & e.xmask
	}
}

// Effect is one level of one of a campaign's effect tables.
type Effect struct {
	// Value is the level's feature value, or values joined with "+" for a
	// tuple ("Sports", "pub-1+com.example.tv"); aliased to the table's
	// memory (do not modify).
	Value []byte
	Key   Key
	// Multiplier is the level's effect on the CVR, everything else equal
	// (E[m]); Lo and Hi its credible interval.
	Multiplier, Lo, Hi float64
	// CVR is the fitted CVR of the level's own traffic (its exposures'
	// mix of the other features included).
	CVR float64
	// The level's evidence: delay-corrected exposures, credited
	// conversions, exposures and spend (decayed).
	NEff, Conversions, Exposures, Spend float64
}

// Effects calls fn with every level of the campaign's effect table named
// key (an EffectKeys name) until fn returns false, and returns the table's
// strength (pseudo-conversions: the multipliers' CV² is 1/strength; large
// when the data show no spread). False for an unknown campaign or key, or
// a chain table.
func (e *Estimates) Effects(campaign, key string, fn func(Effect) bool) (strength float64, ok bool) {
	if e.cross == nil {
		return 0, false
	}
	t := -1
	for i := range e.cross.tables {
		if e.cross.tables[i].name == key {
			t = i
		}
	}
	c := e.campaign(campaign)
	if t < 0 || c == nil || t >= len(c.eff) {
		return 0, false
	}
	z := e.cross.z
	skip := len(key) + 1 // the label is "key=value"
	for i := c.off[t+1]; i < c.off[t+2]; i++ {
		x := &e.ents[i]
		label := e.labels[x.arena][x.labelOff : x.labelOff+uint32(x.labelLen) : x.labelOff+uint32(x.labelLen)]
		if len(label) >= skip {
			label = label[skip:]
		}
		sd := math.Sqrt(x.lv)
		ef := Effect{
			Value: label, Key: x.key, Multiplier: math.Exp(x.lm),
			Lo: math.Exp(x.lc + z[0]*sd), Hi: math.Exp(x.lc + z[1]*sd), CVR: x.cvr,
			NEff: x.neff, Conversions: x.conv, Exposures: x.exps, Spend: x.spend,
		}
		if !fn(ef) {
			break
		}
	}
	return c.eff[t].s, true
}
