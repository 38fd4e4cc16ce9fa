package model

import (
	"math"
)

// The crossed model's fit. Per campaign, with the Kish-scaled counts of
// each cell c (conversions k_c, delay-corrected exposures n_c):
//
//	k_c ~ Poisson(n_c · β · Π_t m_{t,ℓ_t(c)}),  m_{t,ℓ} ~ Gamma(s_t, s_t),
//	β ~ Gamma(a0, a0/PriorCVR)
//
// β is the campaign's base rate, m_{t,ℓ} the multiplier of level ℓ of
// effect table t (mean 1, CV² 1/s_t: log m has sd ≈ 1/√s_t), so log CVR =
// log β + Σ_t log m is additive. The Gamma prior is conjugate to the
// Poisson likelihood, so a coordinate-ascent (mean-field variational)
// update of one level given every other factor is exact and closed form:
//
//	q(m_{t,ℓ}) = Gamma(s_t + K_ℓ, s_t + Λ_ℓ),
//	K_ℓ = Σ_{c∈ℓ} k_c,  Λ_ℓ = E[β] Σ_{c∈ℓ} n_c Π_{t'≠t} E[m_{t'}]
//
// (Λ_ℓ is the level's expected conversions without its own effect), and
// the base's is Gamma(a0 + Σk, a0/PriorCVR + Σ n_c Π_t E[m]). A sweep
// updates every table in turn, each level of a table at once (a cell is in
// one level of each table, so they are independent given the rest), with
// the base after each table: backfitting, O(cells × tables) per sweep.
// Each cell keeps the product of its current multipliers; a table's update
// divides its old multiplier out and multiplies the new one in. After each
// table's update its multipliers are divided by their traffic-weighted
// mean (Σ Λ·E[m] / Σ Λ), which the base then takes up: the mean-one
// priors alone identify base and effects only weakly, and a PriorCVR far
// from the data would otherwise push every table's multipliers up alike.
//
// Spreads. The strength s_t of a table is fitted as the chain's are (see
// refresh.go): by maximum marginal likelihood, the level's K_ℓ given Λ_ℓ
// being negative binomial (exact for the Gamma effect, however few the
// conversions, where PQL's normal approximation is biased toward no
// spread), pooled over campaigns under a log-normal prior centred on
// DefaultStrength (PooledStrengthSpread: without it the estimate collapses
// to MaxStrength whenever a table's spread is lost in chance), then per
// campaign around the pooled value (StrengthSpread). A table with no real
// effect gets a large strength: its multipliers stay near 1. The fit and
// the strengths alternate on Refit.
//
// Uncertainty. q(m) gives E[log m] = ψ(a) − ln b and Var[log m] = ψ'(a);
// summed over the base and the tables (the mean-field posterior has no
// covariances) they make a normal posterior of ln CVR, from which come the
// credible interval and the Thompson draw; CVR itself is E[β]·Π E[m].

// crossFit is the crossed fit's scratch and warm start (guarded by m.rmu).
type crossFit struct {
	em  []float64 // per level id: E[m] of the last fit (1 for a new level)
	acc []lvAcc   // per level id, rebuilt each time
	// Level ids grouped by (campaign, table): group g = campaign·T+table
	// is lvOrder[lvOff[g]:lvOff[g+1]].
	lvOrder []uint32
	lvOff   []int32
	// Per cell (cells of every campaign in entry order).
	ck, cn, cr []float64 // Kish-scaled conversions and n_eff; product of E[m]
	lvc        []uint32  // the cell's level in table t: lvc[t·N+c]
	// Per campaign.
	base []baseFit
	// cold: the multipliers are not fitted yet (a new or restored model):
	// the next rebuild sweeps to convergence.
	cold bool
}

// lvAcc is a level's sums over its cells in one rebuild (one cache line:
// the passes over cells add into it at random).
type lvAcc struct {
	k, lam, ratio float64 // Kish-scaled conversions, Λ; the last update's ratio
	nk            float64 // Kish-scaled n_eff
	conv, neff    float64 // raw (decayed) evidence
	exps, spend   float64
	starts, compl float64
}

// baseFit is a campaign's base rate posterior Gamma(a, b) and its
// residual: counts of its root not in any cell (foreign exposures, or
// cells dropped when a snapshot of another structure was read).
type baseFit struct {
	a, b       float64
	b0         float64 // the prior's rate a0/PriorCVR (b = b0 + Σ n·Π E[m])
	sn         float64 // Σ of its cells' Kish-scaled n_eff
	kres, nres float64 // Kish-scaled
	from, to   int     // its cells
}

// convergedLog is the largest change of a log multiplier at which sweeps
// stop when converging (0.1%).
const convergedLog = 1e-3

// rebuildCrossed is rebuild for the crossed model, from the ordered rows of
// scanOrdered. m.rmu held.
func (m *Model) rebuildCrossed(now int64, fit bool, cc []campConst, e *Estimates, rows []scanRow, order, count []int32) *Estimates {
	cr := m.cr
	cx := &m.rs.cx
	T := len(cr.tables)
	ncamp := len(cc)

	cr.mu.Lock()
	levels := cr.levels[:len(cr.levels):len(cr.levels)]
	lvLabels := cr.labels[:len(cr.labels):len(cr.labels)]
	cr.mu.Unlock()
	nLv := len(levels)
	for len(cx.em) < nLv {
		cx.em = append(cx.em, 1)
	}
	if cap(cx.acc) < nLv {
		cx.acc = make([]lvAcc, nLv, nLv+nLv/4)
	}
	cx.acc = cx.acc[:nLv]

	// Levels grouped by (campaign, table).
	cx.lvOff = growI32(cx.lvOff, ncamp*T+1)
	clear(cx.lvOff)
	for _, l := range levels {
		if int(l.camp) < ncamp {
			cx.lvOff[int(l.camp)*T+int(l.table)+1]++
		}
	}
	for g := 1; g < len(cx.lvOff); g++ {
		cx.lvOff[g] += cx.lvOff[g-1]
	}
	cx.lvOrder = growU32(cx.lvOrder, int(cx.lvOff[len(cx.lvOff)-1]))
	next := make([]int32, ncamp*T)
	copy(next, cx.lvOff[:ncamp*T])
	for id, l := range levels {
		if int(l.camp) < ncamp {
			g := int(l.camp)*T + int(l.table)
			cx.lvOrder[next[g]] = uint32(id)
			next[g]++
		}
	}

	// Cells: the level-1 entries of each campaign.
	N := 0
	cx.base = make([]baseFit, ncamp)
	for ci := range cc {
		b := &cx.base[ci]
		b.from = N
		N += int(count[ci*MaxLevels+2] - count[ci*MaxLevels+1])
		b.to = N
	}
	cx.ck, cx.cn, cx.cr = grow(cx.ck, N), grow(cx.cn, N), grow(cx.cr, N)
	cx.lvc = growU32(cx.lvc, N*T)
	cellRow := func(ci, j int) *scanRow { // cell j of campaign ci
		return &rows[order[int(count[ci*MaxLevels+1])+j]]
	}
	// One pass over the cells: their Kish-scaled counts, levels (by
	// table), current product of multipliers, and each level's evidence.
	for ci := range cc {
		for g := ci * T; g < (ci+1)*T; g++ {
			for _, id := range cx.lvOrder[cx.lvOff[g]:cx.lvOff[g+1]] {
				cx.acc[id] = lvAcc{}
			}
		}
		b := &cx.base[ci]
		var sk, sn float64
		for c := b.from; c < b.to; c++ {
			r := cellRow(ci, c-b.from)
			f := kish(r)
			ck, cn := f*r.c, f*r.neff
			cx.ck[c], cx.cn[c] = ck, cn
			sk += r.c
			sn += r.neff
			p := 1.0
			for t, id := range m.rs.cellLv[r.lvOff : int(r.lvOff)+T] {
				if id >= uint32(nLv) {
					id = noLevel
				}
				cx.lvc[t*N+c] = id
				if id == noLevel {
					continue
				}
				p *= cx.em[id]
				a := &cx.acc[id]
				a.nk += cn
				a.conv += r.c
				a.neff += r.neff
				a.exps += r.n
				a.spend += r.spend
				a.starts += r.starts
				a.compl += r.completes
			}
			cx.cr[c] = p
		}
		// The residual: root counts that no cell holds.
		if lo, hi := count[ci*MaxLevels], count[ci*MaxLevels+1]; hi > lo {
			r := &rows[order[lo]]
			f := kish(r)
			if k := r.c - sk; k > 1e-9*max(r.c, 1) {
				b.kres = f * k
			}
			if n := r.neff - sn; n > 1e-9*max(r.neff, 1) {
				b.nres = f * n
			}
		}
	}

	// Sweeps, alternating with the strength fit on Refit.
	fs := m.fit.Load()
	if fit {
		fs = m.fitRootsCrossed(now, rows, order, count, cc)
	}
	sweeps, converge := m.cfg.Sweeps, fit || cx.cold
	if converge {
		sweeps = MaxSweeps
	}
	rounds := 1
	if fit {
		rounds = 3
	}
	for round := range rounds {
		for ci := range cc {
			m.sweepCampaign(ci, N, T, fs, cc[ci].prior, sweeps, converge)
		}
		if fit && round < rounds-1 {
			m.fitEffectStrengths(fs, ncamp, T)
		}
	}
	if fit {
		m.fit.Store(fs)
	}
	cx.cold = false

	// The table: per campaign its root, then each table's levels.
	z := [2]float64{normQuantile(m.cfg.Quantiles[0]), normQuantile(m.cfg.Quantiles[1])}
	e.cross = &estCross{dims: cr.dims, tables: cr.tables, z: z}
	var rootLabels []byte
	for ci := range cc {
		rootLabels = append(rootLabels, cc[ci].id...)
	}
	e.labels = [][]byte{lvLabels, rootLabels}
	e.camps = make([]estCamp, ncamp)
	ents := make([]entry, 0, ncamp+int(cx.lvOff[len(cx.lvOff)-1]))
	rootOff := 0
	for ci := range cc {
		c := &e.camps[ci]
		c.id, c.root = cc[ci].id, -1
		c.eff = make([]effPrior, T)
		for t := range T {
			s := fs.strength(ci, t+1, m.cfg.DefaultStrength)
			c.eff[t] = effPrior{s: s, lc: digamma(s) - math.Log(s), lv: trigamma(s)}
		}
		c.off[0] = int32(len(ents))
		lo, hi := count[ci*MaxLevels], count[ci*MaxLevels+1]
		labelOff := rootOff
		rootOff += len(cc[ci].id)
		if hi == lo {
			for l := 1; l <= MaxLevels; l++ {
				c.off[l] = int32(len(ents))
			}
			continue
		}
		r := &rows[order[lo]]
		b := &cx.base[ci]
		root := int32(len(ents))
		c.root = root
		vtrRoot := math.Min((r.completes+m.cfg.VTRPrior*m.cfg.PriorVTR)/(r.starts+m.cfg.VTRPrior), 1)
		lvBase := trigamma(b.a)
		// The average: the fitted CVR of its cells (and residual), weighed
		// by their Kish-scaled n_eff.
		eb := b.a / b.b
		avg := eb
		if sn, snr := b.sn+b.nres, b.b-b.b0; sn > 0 {
			avg = eb * snr / sn
		}
		sd := math.Sqrt(lvBase)
		ents = append(ents, entry{
			key: r.key, labelOff: uint32(labelOff), labelLen: uint16(min(len(cc[ci].id), maxLabel)), arena: 1, camp: uint16(ci),
			parent: -1, cvr: avg, lo: avg * math.Exp(z[0]*sd), hi: math.Min(avg*math.Exp(z[1]*sd), 1), vtr: vtrRoot,
			neff: r.neff, conv: r.c, exps: r.n, spend: r.spend, alpha: b.a, beta: b.b,
			lm: math.Log(b.a / b.b), lc: digamma(b.a) - math.Log(b.b), lv: lvBase,
		})
		for t := range T {
			c.off[t+1] = int32(len(ents))
			s := c.eff[t].s
			for _, id := range cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]] {
				l := &levels[id]
				ac := &cx.acc[id]
				a, bb := s+ac.k, s+ac.lam
				x := entry{
					key: l.key, labelOff: l.labelOff, labelLen: l.labelLen, arena: 0, camp: uint16(ci), level: uint8(t + 1),
					parent: root, neff: ac.neff, conv: ac.conv, exps: ac.exps, spend: ac.spend,
					alpha: a, beta: bb, lm: math.Log(a / bb), lc: digamma(a) - math.Log(bb), lv: trigamma(a),
				}
				// The level's fitted CVR: its cells' predicted conversions
				// (Λ·E[m]) over their Kish-scaled n_eff.
				x.cvr = avg * math.Exp(x.lm)
				if ac.nk > 0 {
					x.cvr = ac.lam * cx.em[id] / ac.nk
				}
				x.cvr = math.Min(x.cvr, 1)
				isd := math.Sqrt(x.lv + lvBase)
				x.lo, x.hi = x.cvr*math.Exp(z[0]*isd), math.Min(x.cvr*math.Exp(z[1]*isd), 1)
				x.vtr = math.Min((ac.compl+m.cfg.VTRPrior*vtrRoot)/(ac.starts+m.cfg.VTRPrior), 1)
				ents = append(ents, x)
			}
		}
		for l := T + 1; l <= MaxLevels; l++ {
			c.off[l] = int32(len(ents))
		}
	}
	e.ents = ents
	e.buildSlots()
	m.est.Store(e)
	return e
}

// kish is a row's Kish factor N/Σw² (1 without weights).
func kish(r *scanRow) float64 {
	if r.n2 > 0 {
		return r.n / r.n2
	}
	return 1
}

// sweepCampaign runs up to sweeps backfitting sweeps over campaign ci's
// cells (stopping once converged when converge is set) and leaves its base
// posterior in cx.base[ci].
func (m *Model) sweepCampaign(ci, N, T int, fs *fitState, prior float64, sweeps int, converge bool) {
	cx := &m.rs.cx
	b := &cx.base[ci]
	a0 := fs.root
	if !(a0 > 0) {
		a0 = m.cfg.PriorConversions
	}
	prior = math.Min(math.Max(prior, 1e-9), 1-1e-9)
	sk, snr := b.kres, b.nres
	b.sn = 0
	for c := b.from; c < b.to; c++ {
		sk += cx.ck[c]
		snr += cx.cn[c] * cx.cr[c]
		b.sn += cx.cn[c]
	}
	b.b0 = a0 / prior
	b.a = a0 + sk
	b.b = b.b0 + snr
	if b.to == b.from || T == 0 {
		return
	}
	for range sweeps {
		change := 0.0
		for t := range T {
			s := fs.strength(ci, t+1, m.cfg.DefaultStrength)
			ids := cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]]
			for _, id := range ids {
				cx.acc[id].k, cx.acc[id].lam = 0, 0
			}
			col := cx.lvc[t*N+b.from : t*N+b.to]
			ck, cn, cr := cx.ck[b.from:b.to], cx.cn[b.from:b.to], cx.cr[b.from:b.to]
			for j, id := range col {
				if id != noLevel {
					a := &cx.acc[id]
					a.k += ck[j]
					a.lam += cn[j] * cr[j]
				}
			}
			eb := b.a / b.b
			var sw, swm float64
			for _, id := range ids {
				a := &cx.acc[id]
				old := cx.em[id]
				lam := eb * a.lam / old
				a.lam = lam
				nw := (s + a.k) / (s + lam)
				a.ratio = nw / old
				cx.em[id] = nw
				sw += lam
				swm += lam * nw
			}
			// Centre the table: its multipliers average 1 over the traffic
			// (weighted by Λ), and the base carries the campaign's level.
			// Without it the base and the tables trade along a ridge, and
			// a base prior far from the data inflates every table alike.
			g := 1.0
			if sw > 0 && swm > 0 {
				g = swm / sw
			}
			for _, id := range ids {
				a := &cx.acc[id]
				if g != 1 {
					cx.em[id] /= g
					a.ratio /= g
				}
				change = math.Max(change, math.Abs(math.Log(a.ratio)))
			}
			snr = b.nres
			for j, id := range col {
				if id != noLevel {
					cr[j] *= cx.acc[id].ratio
				}
				snr += cn[j] * cr[j]
			}
			b.b = b.b0 + snr
		}
		if converge && change < convergedLog {
			break
		}
	}
}

// fitEffectStrengths fits the strength of every effect table (level t+1
// of fs) from the last sweep's K and Λ: pooled over campaigns, then per
// campaign (see the comment at the top and fitLevel).
func (m *Model) fitEffectStrengths(fs *fitState, ncamp, T int) {
	cx := &m.rs.cx
	rs := &m.rs
	if cap(rs.from) < ncamp+1 {
		rs.from = make([]int, ncamp+1)
	}
	from := rs.from[:ncamp+1]
	enough := make([]int, ncamp)
	for t := range T {
		rs.fk, rs.fl, rs.fc = rs.fk[:0], rs.fl[:0], rs.fc[:0]
		total := 0
		for ci := range ncamp {
			from[ci] = len(rs.fk)
			enough[ci] = 0
			for _, id := range cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]] {
				a := &cx.acc[id]
				if !(a.lam > 0) {
					continue
				}
				if a.lam >= 1 {
					enough[ci]++
				}
				rs.fk = append(rs.fk, a.k)
				rs.fl = append(rs.fl, a.lam)
				rs.fc = append(rs.fc, 0)
			}
			total += enough[ci]
		}
		from[ncamp] = len(rs.fk)
		l := t + 1
		fs.pooled[l], fs.pooledFitted[l] = m.cfg.DefaultStrength, false
		if total >= m.cfg.MinSiblings {
			fs.pooled[l], fs.pooledFitted[l] = m.mapStrength(rs.fk, rs.fl, rs.fc, m.cfg.DefaultStrength, m.cfg.PooledStrengthSpread), true
		}
		for ci := range ncamp {
			a, b := from[ci], from[ci+1]
			fs.levels[ci][l] = m.mapStrength(rs.fk[a:b], rs.fl[a:b], rs.fc[a:b], fs.pooled[l], m.cfg.StrengthSpread)
			fs.fitted[ci][l] = enough[ci] >= m.cfg.MinSiblings
		}
	}
}

// fitRootsCrossed is fitRoots from the rows: a new fitState whose base
// strength (toward each campaign's PriorCVR, in pseudo-conversions) is
// fitted across campaigns when MinSiblings of them expect a conversion.
func (m *Model) fitRootsCrossed(now int64, rows []scanRow, order, count []int32, cc []campConst) *fitState {
	fs := &fitState{at: now, root: m.cfg.PriorConversions,
		levels: make([][MaxLevels]float64, len(cc)), fitted: make([][MaxLevels]bool, len(cc))}
	old := m.fit.Load()
	for ci := range cc { // until refitted, the strengths of before
		if ci < len(old.levels) {
			fs.levels[ci], fs.fitted[ci] = old.levels[ci], old.fitted[ci]
		}
	}
	fs.pooled, fs.pooledFitted = old.pooled, old.pooledFitted
	var ks, ls []float64
	enough := 0
	for ci := range cc {
		lo, hi := count[ci*MaxLevels], count[ci*MaxLevels+1]
		if hi == lo || !cc[ci].active {
			continue
		}
		r := &rows[order[lo]]
		f := kish(r)
		lam := f * r.neff * cc[ci].prior
		if !(lam > 0) {
			continue
		}
		if lam >= 1 {
			enough++
		}
		ks = append(ks, f*r.c)
		ls = append(ls, lam)
	}
	if enough >= m.cfg.MinSiblings {
		fs.root, fs.rootFitted = m.mapStrength(ks, ls, make([]float64, len(ks)), 0, 0), true
	}
	return fs
}

// trigamma returns ψ'(x) for x > 0: the recurrence ψ'(x) = ψ'(x+1) + 1/x²
// up to x ≥ 6, then the asymptotic series (error below 1e-10).
func trigamma(x float64) float64 {
	if !(x > 0) || math.IsInf(x, 1) {
		return math.NaN()
	}
	var r float64
	for x < 6 {
		r += 1 / (x * x)
		x++
	}
	f := 1 / (x * x)
	return r + 1/x + f/2 + f/x*(1.0/6-f*(1.0/30-f*(1.0/42-f/30)))
}

// normQuantile is the standard normal quantile of p in (0, 1).
func normQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n, n+n/4)
	}
	return s[:n]
}

func growU32(s []uint32, n int) []uint32 {
	if cap(s) < n {
		return make([]uint32, n, n+n/4)
	}
	return s[:n]
}

func growI32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n, n+n/4)
	}
	return s[:n]
}
