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
// Shared effects (Config.SharedEffects). The prior of campaign c's
// multiplier of a value becomes Gamma(σ, σ/g), mean g: g is the value's
// multiplier over the advertiser's campaigns without c's own counts
// (Gamma(s_g + K_group − K, s_g + Λ_group − Λ), centred per advertiser)
// and σ the campaign table's strength widened for g's uncertainty, as the
// chain widens a node's prior for its parent's (1/σ = 1/s + CV²(g)(1 +
// 1/s)). The sweeps go table by table over every campaign so that each
// group sees its campaigns' current sums; s_g is fitted like the other
// strengths, over the groups, pooled over advertisers.
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
	// Shared effects: each level's value group (−1: none), the groups,
	// and per (advertiser, table) the groups' centring divisor.
	lvGroup []int32
	groups  []valueGroup
	gsOff   []int32  // groups of (advertiser a, table t): gsOrder[gsOff[a·T+t]:gsOff[a·T+t+1]]
	gsOrder []uint32 // group indexes
	advOf   []int32  // per campaign: its advertiser index
	nAdv    int
	// cold: the multipliers are not fitted yet (a new or restored model):
	// the next rebuild sweeps to convergence.
	cold bool
}

// lvAcc is a level's sums over its cells in one rebuild, and its prior, in
// one struct (the passes over cells add into it at random: one or two
// cache lines, not one per sum).
type lvAcc struct {
	k, lam, ratio float64 // Kish-scaled conversions, Λ; the last update's ratio
	nk            float64 // Kish-scaled n_eff
	conv, neff    float64 // raw (decayed) evidence
	exps, spend   float64
	starts, compl float64
	// The prior of the last update: Gamma(sg, sg/mu) (mu 1 and sg the
	// table's strength without shared effects); cv2 is the squared
	// coefficient of variation of mu.
	mu, sg, cv2 float64
}

// valueGroup is the values of one effect table over the campaigns of one
// advertiser (Config.SharedEffects): the sums of its campaigns' levels and
// its multiplier g, the prior mean of theirs.
type valueGroup struct {
	k, lam, g float64
	first     uint32 // a level of the group (its key's values and label)
	adv       int32  // advertiser index
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

	if m.cfg.SharedEffects {
		m.buildValueGroups(levels, cc, T)
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
		m.sweepAll(N, T, fs, cc, sweeps, converge)
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
			for _, id := range cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]] {
				l := &levels[id]
				ac := &cx.acc[id]
				a, bb := ac.sg+ac.k, ac.sg/ac.mu+ac.lam
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
			if m.cfg.SharedEffects { // the advertiser's values this campaign has not seen
				ents = m.appendSharedOnly(ents, ci, t, T, fs, levels, root, avg, vtrRoot, lvBase, z)
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

// sweepAll runs up to sweeps backfitting sweeps over every campaign's
// cells (stopping once converged when converge is set), table by table
// (each over all campaigns, so that shared effects see every campaign's
// sums), and leaves each campaign's base posterior in cx.base.
func (m *Model) sweepAll(N, T int, fs *fitState, cc []campConst, sweeps int, converge bool) {
	cx := &m.rs.cx
	a0 := fs.root
	if !(a0 > 0) {
		a0 = m.cfg.PriorConversions
	}
	for ci := range cc {
		b := &cx.base[ci]
		prior := math.Min(math.Max(cc[ci].prior, 1e-9), 1-1e-9)
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
	}
	if T == 0 {
		return
	}
	for range sweeps {
		change := 0.0
		for t := range T {
			// 1. Each level's K and Λ (its expected conversions without
			// its own effect), campaign by campaign.
			for ci := range cc {
				b := &cx.base[ci]
				ids := cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]]
				for _, id := range ids {
					cx.acc[id].k, cx.acc[id].lam = 0, 0
				}
				if b.to == b.from {
					continue
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
				for _, id := range ids {
					a := &cx.acc[id]
					a.lam = eb * a.lam / cx.em[id]
				}
			}
			// 2. Shared effects: the value groups' multipliers.
			if m.cfg.SharedEffects {
				m.updateGroups(t, T, fs)
			}
			// 3. Each campaign's levels, centred, then its cells and base.
			for ci := range cc {
				b := &cx.base[ci]
				if b.to == b.from {
					continue
				}
				s := fs.strength(ci, t+1, m.cfg.DefaultStrength)
				sg := fs.sharedStrength(t+1, m.cfg.DefaultStrength)
				ids := cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]]
				var sw, swm float64
				for _, id := range ids {
					a := &cx.acc[id]
					a.mu, a.cv2, a.sg = 1, 0, s
					if m.cfg.SharedEffects {
						m.sharedPrior(id, a, s, sg)
					}
					old := cx.em[id]
					nw := (a.sg + a.k) / (a.sg/a.mu + a.lam)
					a.ratio = nw / old
					cx.em[id] = nw
					sw += a.lam
					swm += a.lam * nw
				}
				// Centre the table: its multipliers average 1 over the
				// traffic (weighted by Λ), and the base carries the
				// campaign's level. Without it the base and the tables
				// trade along a ridge, and a base prior far from the data
				// inflates every table alike.
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
				col := cx.lvc[t*N+b.from : t*N+b.to]
				cn, cr := cx.cn[b.from:b.to], cx.cr[b.from:b.to]
				snr := b.nres
				for j, id := range col {
					if id != noLevel {
						cr[j] *= cx.acc[id].ratio
					}
					snr += cn[j] * cr[j]
				}
				b.b = b.b0 + snr
			}
		}
		if converge && change < convergedLog {
			break
		}
	}
}

// buildValueGroups groups the levels of every table by (advertiser,
// values) for shared effects. m.rmu held.
func (m *Model) buildValueGroups(levels []level, cc []campConst, T int) {
	cx := &m.rs.cx
	advs := map[string]int32{}
	cx.advOf = cx.advOf[:0]
	for _, c := range cc {
		a, ok := advs[c.adv]
		if !ok {
			a = int32(len(advs))
			advs[c.adv] = a
		}
		cx.advOf = append(cx.advOf, a)
	}
	cx.nAdv = len(advs)
	type gk struct {
		adv int32
		t   uint8
		vk  uint64
	}
	index := make(map[gk]int32, len(levels)/2)
	cx.groups = cx.groups[:0]
	cx.lvGroup = cx.lvGroup[:0]
	for id, l := range levels {
		if int(l.camp) >= len(cc) {
			cx.lvGroup = append(cx.lvGroup, -1)
			continue
		}
		k := gk{cx.advOf[l.camp], l.table, l.vk}
		g, ok := index[k]
		if !ok {
			g = int32(len(cx.groups))
			index[k] = g
			cx.groups = append(cx.groups, valueGroup{g: 1, first: uint32(id), adv: k.adv})
		}
		cx.lvGroup = append(cx.lvGroup, g)
	}
	// Warm start: a group's multiplier is the mean of its levels' of the
	// last fit (the first sweep's step 2 recomputes it).
	cx.gsOff = growI32(cx.gsOff, cx.nAdv*T+1)
	clear(cx.gsOff)
	for gi := range cx.groups {
		gr := &cx.groups[gi]
		cx.gsOff[int(gr.adv)*T+int(levels[gr.first].table)+1]++
	}
	for i := 1; i < len(cx.gsOff); i++ {
		cx.gsOff[i] += cx.gsOff[i-1]
	}
	cx.gsOrder = growU32(cx.gsOrder, len(cx.groups))
	next := make([]int32, cx.nAdv*T)
	copy(next, cx.gsOff[:cx.nAdv*T])
	for gi := range cx.groups {
		gr := &cx.groups[gi]
		b := int(gr.adv)*T + int(levels[gr.first].table)
		cx.gsOrder[next[b]] = uint32(gi)
		next[b]++
	}
}

// updateGroups sets the multiplier of every value group of table t from
// its campaigns' K and Λ (Gamma(s_g + ΣK, s_g + ΣΛ), s_g the table's
// shared strength), centred per advertiser.
func (m *Model) updateGroups(t, T int, fs *fitState) {
	cx := &m.rs.cx
	sg := fs.sharedStrength(t+1, m.cfg.DefaultStrength)
	for a := range cx.nAdv {
		gs := cx.gsOrder[cx.gsOff[a*T+t]:cx.gsOff[a*T+t+1]]
		for _, gi := range gs {
			cx.groups[gi].k, cx.groups[gi].lam = 0, 0
		}
	}
	for ci, b := range cx.base {
		if b.to == b.from {
			continue
		}
		for _, id := range cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]] {
			if gi := cx.lvGroup[id]; gi >= 0 {
				cx.groups[gi].k += cx.acc[id].k
				cx.groups[gi].lam += cx.acc[id].lam
			}
		}
	}
	for a := range cx.nAdv {
		gs := cx.gsOrder[cx.gsOff[a*T+t]:cx.gsOff[a*T+t+1]]
		var sw, swg float64
		for _, gi := range gs {
			gr := &cx.groups[gi]
			gr.g = (sg + gr.k) / (sg + gr.lam)
			sw += gr.lam
			swg += gr.lam * gr.g
		}
		if sw > 0 && swg > 0 {
			for _, gi := range gs {
				cx.groups[gi].g *= sw / swg
			}
		}
	}
}

// sharedPrior sets the prior of level id (its campaign's strength s) to
// its value group's multiplier without the level's own counts (leave one
// out, as the chain's looPrior: a campaign that dominates its advertiser's
// data would otherwise be shrunk toward itself), its strength widened for
// that mean's uncertainty (CV² 1/(s_g + K_group − K)); sg is the table's
// shared strength.
func (m *Model) sharedPrior(id uint32, a *lvAcc, s, sg float64) {
	cx := &m.rs.cx
	gi := cx.lvGroup[id]
	if gi < 0 {
		return
	}
	gr := &cx.groups[gi]
	kk, ll := gr.k-a.k, gr.lam-a.lam
	if !(ll > 1e-12) {
		return // the level is its group's only data
	}
	// The group's centred multiplier without the level: the centring
	// divisor is gr.g over its raw estimate.
	raw := (sg + gr.k) / (sg + gr.lam)
	a.mu = (sg + kk) / (sg + ll) * gr.g / raw
	a.cv2 = 1 / (sg + kk)
	a.sg = 1 / (1/s + a.cv2*(1+1/s))
}

// appendSharedOnly appends campaign ci's entries of table t for the
// values of its advertiser's other campaigns it has no level of: their
// group's multiplier as its prior mean, no evidence of its own.
func (m *Model) appendSharedOnly(ents []entry, ci, t, T int, fs *fitState, levels []level, root int32, avg, vtrRoot, lvBase float64, z [2]float64) []entry {
	cx := &m.rs.cx
	a := cx.advOf[ci]
	s := fs.strength(ci, t+1, m.cfg.DefaultStrength)
	sg := fs.sharedStrength(t+1, m.cfg.DefaultStrength)
	seen := map[int32]bool{}
	for _, id := range cx.lvOrder[cx.lvOff[ci*T+t]:cx.lvOff[ci*T+t+1]] {
		seen[cx.lvGroup[id]] = true
	}
	rootKey := RootKey(m.camps.Load().list[ci].c.ID)
	for _, gi := range cx.gsOrder[cx.gsOff[int(a)*T+t]:cx.gsOff[int(a)*T+t+1]] {
		if seen[int32(gi)] {
			continue
		}
		gr := &cx.groups[gi]
		l := &levels[gr.first]
		cv2 := 1 / (sg + gr.k)
		sig := 1 / (1/s + cv2*(1+1/s))
		aa, bb := sig, sig/gr.g
		x := entry{
			key: levelKey(rootKey, l.vk), labelOff: l.labelOff, labelLen: l.labelLen, camp: uint16(ci), level: uint8(t + 1),
			parent: root, alpha: aa, beta: bb, lm: math.Log(aa / bb), lc: digamma(aa) - math.Log(bb), lv: trigamma(aa),
		}
		x.cvr = math.Min(avg*math.Exp(x.lm), 1)
		isd := math.Sqrt(x.lv + lvBase)
		x.lo, x.hi = x.cvr*math.Exp(z[0]*isd), math.Min(x.cvr*math.Exp(z[1]*isd), 1)
		x.vtr = vtrRoot
		ents = append(ents, x)
	}
	return ents
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
				// Expected conversions at the prior's mean (its uncertainty
				// widens the prior, as in mapStrength's terms).
				rs.fk = append(rs.fk, a.k)
				rs.fl = append(rs.fl, a.lam*a.mu)
				rs.fc = append(rs.fc, a.cv2)
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
		if !m.cfg.SharedEffects {
			continue
		}
		// The values' shared multipliers, pooled over advertisers.
		rs.fk, rs.fl, rs.fc = rs.fk[:0], rs.fl[:0], rs.fc[:0]
		n := 0
		for a := range cx.nAdv {
			for _, gi := range cx.gsOrder[cx.gsOff[a*T+t]:cx.gsOff[a*T+t+1]] {
				gr := &cx.groups[gi]
				if !(gr.lam > 0) {
					continue
				}
				if gr.lam >= 1 {
					n++
				}
				rs.fk = append(rs.fk, gr.k)
				rs.fl = append(rs.fl, gr.lam)
				rs.fc = append(rs.fc, 0)
			}
		}
		fs.shared[l], fs.sharedFitted[l] = m.cfg.DefaultStrength, false
		if n >= m.cfg.MinSiblings {
			fs.shared[l], fs.sharedFitted[l] = m.mapStrength(rs.fk, rs.fl, rs.fc, m.cfg.DefaultStrength, m.cfg.PooledStrengthSpread), true
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
	fs.shared, fs.sharedFitted = old.shared, old.sharedFitted
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
