package model

import (
	"math"
)

// refreshState is the scratch of Refresh and Refit, reused across calls
// (guarded by Model.rmu).
type refreshState struct {
	rows  []scanRow
	kish  []float64  // per entry: N²/Σw² ÷ N, the Kish factor
	pos   [][]int32  // per shard: local index → entry index
	cache [][]qcache // per shard: local index → last interval computed
	grp   []grpAcc   // per entry, as a parent: sums over its children
}

// scanRow is a node's counts decayed to the refresh time.
type scanRow struct {
	key                      Key
	parent                   uint32
	labelOff                 uint32
	local                    uint32
	labelLen                 uint16
	camp                     uint16
	level                    uint8
	shard                    uint8
	n, n2, c, neff           float64
	spend, starts, completes float64
}

// qcache remembers the credible interval of a node's last posterior: it is
// recomputed only when alpha or beta moved by more than qTol (relative),
// which keeps a refresh of a million mostly idle nodes cheap; the interval
// is then off by about qTol at most.
type qcache struct{ a, b, lo, hi float64 }

const qTol = 1e-3

// grpAcc accumulates a sibling group for the empirical-Bayes fit.
type grpAcc struct {
	k, n, q, nn float64 // Σk, Σn, Σk²/n, Σn²
	m           int
}

// campConst is what a refresh needs of a campaign.
type campConst struct {
	lam0   float64
	a      float64
	b      [nComp]float64
	prior  float64
	active bool
	id     string
}

// Estimates returns the latest published table. It never blocks.
func (m *Model) Estimates() *Estimates { return m.est.Load() }

// Refresh recomputes every node's estimate from the live counts as of now
// (Unix seconds), publishes the new table (atomic pointer swap; readers of
// the previous table are not disturbed) and returns it. Writers are blocked
// only shard by shard while their counts are copied. Call it every
// Config.RefreshInterval; calls are serialized.
func (m *Model) Refresh(now int64) *Estimates {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	return m.rebuild(now, false)
}

// Refit refits, as of now, the delay distribution of every learner (from
// its reservoir, with right-censoring) and then the empirical-Bayes prior
// strength of every (campaign, level), and publishes a refreshed table.
// Call it every Config.RefitInterval, never on the bid path; it is
// serialized with Refresh.
func (m *Model) Refit(now int64) *Estimates {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	m.lmu.Lock()
	ls := make([]*learner, 0, len(m.learners))
	for _, l := range m.learners {
		ls = append(ls, l)
	}
	m.lmu.Unlock()
	for _, l := range ls {
		l.refit(now, m.cfg.MinDelaySamples, m.cfg.DelayPrior)
	}
	return m.rebuild(now, true)
}

// rebuild is Refresh (and, with fit, the strength fit of Refit). m.rmu held.
func (m *Model) rebuild(now int64, fit bool) *Estimates {
	cs := m.camps.Load()
	cc := make([]campConst, len(cs.list))
	for i, c := range cs.list {
		f := c.l.fit.Load()
		cc[i] = campConst{lam0: c.lam0, a: f.a, b: f.b, prior: c.c.PriorCVR, active: c.active, id: c.c.ID}
	}
	rs := &m.rs
	e := &Estimates{version: m.ver.Add(1), at: now, q: m.cfg.Quantiles, labels: make([][]byte, len(m.shards))}

	// 1. Copy the counts, decayed to now, shard by shard.
	rows := rs.rows[:0]
	if len(rs.pos) != len(m.shards) {
		rs.pos = make([][]int32, len(m.shards))
		rs.cache = make([][]qcache, len(m.shards))
	}
	// The node counts of all shards are read at one instant (every shard
	// locked): a node then existed with all its ancestors, so scanning each
	// shard up to its count never finds a child whose parent was created
	// after that shard was scanned.
	counts := make([]int, len(m.shards))
	for si := range m.shards {
		m.shards[si].mu.Lock()
	}
	for si := range m.shards {
		counts[si] = len(m.shards[si].nodes)
		m.shards[si].mu.Unlock()
	}
	for si := range m.shards {
		sh := &m.shards[si]
		sh.mu.Lock()
		e.labels[si] = sh.labels[:len(sh.labels):len(sh.labels)]
		n := counts[si]
		for local := range sh.nodes[:n] {
			rows = append(rows, m.scan(&sh.nodes[local], &cc[sh.nodes[local].camp], now, uint8(si), uint32(local)))
		}
		sh.mu.Unlock()
		if cap(rs.pos[si]) < n {
			rs.pos[si] = make([]int32, n, n+n/4)
		}
		rs.pos[si] = rs.pos[si][:n]
		if len(rs.cache[si]) < n {
			rs.cache[si] = append(rs.cache[si], make([]qcache, n-len(rs.cache[si]))...)
		}
	}
	rs.rows = rows

	// 2. Order by (campaign, level): parents come before their children.
	ncamp := len(cc)
	count := make([]int32, ncamp*MaxLevels+1)
	for i := range rows {
		count[int(rows[i].camp)*MaxLevels+int(rows[i].level)+1]++
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	e.camps = make([]estCamp, ncamp)
	for ci := range e.camps {
		c := &e.camps[ci]
		c.id, c.root = cc[ci].id, -1
		for l := 0; l <= MaxLevels; l++ {
			c.off[l] = count[ci*MaxLevels+l]
		}
	}
	ents := make([]entry, len(rows))
	if cap(rs.kish) < len(rows) {
		rs.kish = make([]float64, len(rows), len(rows)+len(rows)/4)
	}
	kish := rs.kish[:len(rows)]
	next := count[:len(count)-1]
	order := make([]int32, len(rows)) // entry index → row index
	for ri := range rows {
		r := &rows[ri]
		b := int(r.camp)*MaxLevels + int(r.level)
		i := next[b]
		next[b]++
		order[i] = int32(ri)
		rs.pos[r.shard][r.local] = i
	}
	for i := range ents {
		r := &rows[order[i]]
		x := &ents[i]
		x.key, x.labelOff, x.labelLen, x.arena, x.level, x.camp = r.key, r.labelOff, r.labelLen, r.shard, r.level, r.camp
		x.exps, x.conv, x.neff, x.spend = r.n, r.c, r.neff, r.spend
		x.parent = -1
		if r.parent != noNode {
			x.parent = rs.pos[uint64(r.parent)&m.shardMask][r.parent>>m.shardBits]
		} else {
			e.camps[r.camp].root = int32(i)
		}
		kish[i] = 1
		if r.n2 > 0 {
			kish[i] = r.n / r.n2
		}
	}

	// 3. Prior strengths.
	if fit {
		m.fit.Store(m.fitStrengths(now, e, ents, kish, cc))
	}
	fs := m.fit.Load()

	// 4. Posteriors, top-down.
	for i := range ents {
		x := &ents[i]
		r := &rows[order[i]]
		var pp, s, vp float64
		if x.parent < 0 {
			pp, s, vp = cc[x.camp].prior, fs.root, m.cfg.PriorVTR
		} else {
			p := &ents[x.parent]
			pp, s, vp = p.cvr, fs.strength(int(x.camp), int(x.level), m.cfg.DefaultStrength), p.vtr
		}
		pp = math.Min(math.Max(pp, 1e-9), 1-1e-9)
		kk, nn := kish[i]*x.conv, kish[i]*x.neff
		x.alpha = kk + s
		x.beta = math.Max(nn-kk, 0) + s*(1-pp)/pp
		x.cvr = x.alpha / (x.alpha + x.beta)
		x.vtr = math.Min((r.completes+m.cfg.VTRPrior*vp)/(r.starts+m.cfg.VTRPrior), 1)
		qc := &rs.cache[r.shard][r.local]
		if math.Abs(x.alpha-qc.a) > qTol*x.alpha || math.Abs(x.beta-qc.b) > qTol*x.beta {
			qc.a, qc.b = x.alpha, x.beta
			qc.lo = betaQuantile(x.alpha, x.beta, m.cfg.Quantiles[0])
			qc.hi = betaQuantile(x.alpha, x.beta, m.cfg.Quantiles[1])
		}
		x.lo, x.hi = qc.lo, qc.hi
	}
	e.ents = ents
	e.buildSlots()
	m.est.Store(e)
	return e
}

// scan returns nd's counts decayed to now, with its delay-corrected
// effective exposures n_eff = c + A·U − Σ_j b_j S_j, U = n − c.
func (m *Model) scan(nd *node, cc *campConst, now int64, si uint8, local uint32) scanRow {
	r := scanRow{
		key: nd.key, parent: nd.parent, labelOff: nd.labelOff, labelLen: nd.labelLen,
		camp: nd.camp, level: nd.level, shard: si, local: local,
	}
	h, x := 1.0, 1.0
	if dt := now - nd.tRef; dt > 0 {
		h, x = m.ageFactors(cc.lam0, dt)
	}
	r.n, r.n2, r.c = nd.n*h, nd.n2*h*h, nd.c*h
	r.spend, r.starts, r.completes = nd.spend*h, nd.starts*h, nd.completes*h
	if m.cfg.NoDelayCorrection {
		r.neff = r.n
		return r
	}
	var sum float64
	for j := range nd.s {
		sum += cc.b[j] * nd.s[j] * h * x
		x = x * x * x
	}
	neff := r.c + cc.a*(r.n-r.c) - sum
	r.neff = math.Max(math.Min(neff, r.n), r.c)
	return r
}

// fitStrengths fits the prior strength s (pseudo-conversions) of every
// (campaign, level ≥ 1) by the method of moments for a Beta-binomial with
// unequal n, pooled over all sibling groups of the level, and the roots'
// strength toward PriorCVR across campaigns.
//
// A child i of a group with pooled rate μ has Var(k_i) = n_i μ(1−μ)[1 +
// (n_i−1)ρ], ρ = 1/(m+1). With the strength in units of the parent's rate,
// m = s/μ, a child's CVR varies around its parent's with coefficient of
// variation 1/√s at every parent CVR (spreads are multiplicative), so
// ρ ≈ μ/s. Summing the Pearson statistic S/(μ(1−μ)), S = Σ (k_i − n_i μ)²/n_i,
// over groups, whose expectation is (M−1) + ρ·(N − Σn_i²/N − (M−1)), gives
//
//	1/s = Σ_g [S_g/(μ_g(1−μ_g)) − (M_g−1)] / Σ_g μ_g (N_g − Σn²/N_g − (M_g−1)).
//
// Counts are taken at their Kish effective size. A level with fewer than
// MinSiblings children in groups with conversions inherits the level above.
func (m *Model) fitStrengths(now int64, e *Estimates, ents []entry, kish []float64, cc []campConst) *fitState {
	cfg := &m.cfg
	fs := &fitState{at: now, root: cfg.PriorConversions,
		levels: make([][MaxLevels]float64, len(cc)), fitted: make([][MaxLevels]bool, len(cc))}
	if cap(m.rs.grp) < len(ents) {
		m.rs.grp = make([]grpAcc, len(ents))
	}
	grp := m.rs.grp[:len(ents)]
	clear(grp)
	clamp := func(v float64) float64 { return math.Min(math.Max(v, cfg.MinStrength), cfg.MaxStrength) }
	for ci := range cc {
		c := &e.camps[ci]
		for l := 1; l < MaxLevels; l++ {
			for i := c.off[l]; i < c.off[l+1]; i++ {
				x := &ents[i]
				nn := kish[i] * x.neff
				if nn < 1 || x.parent < 0 {
					continue
				}
				kk := kish[i] * x.conv
				g := &grp[x.parent]
				g.k += kk
				g.n += nn
				g.q += kk * kk / nn
				g.nn += nn * nn
				g.m++
			}
			var num, den float64
			sib := 0
			for p := c.off[l-1]; p < c.off[l]; p++ {
				g := &grp[p]
				if g.m >= 2 && g.k > 0 && g.k < g.n {
					mu := g.k / g.n
					s := g.q - g.k*g.k/g.n
					num += s/(mu*(1-mu)) - float64(g.m-1)
					den += mu * math.Max(g.n-g.nn/g.n-float64(g.m-1), 0)
					sib += g.m
				}
			}
			switch {
			case sib >= cfg.MinSiblings && den > 0:
				fs.fitted[ci][l] = true
				if num <= 0 {
					fs.levels[ci][l] = cfg.MaxStrength
				} else {
					fs.levels[ci][l] = clamp(den / num)
				}
			case l == 1:
				fs.levels[ci][l] = cfg.DefaultStrength
			default:
				fs.levels[ci][l] = fs.levels[ci][l-1]
			}
		}
	}
	// Roots against their configured PriorCVR (a known mean: no degree of
	// freedom is spent on it).
	var num, den float64
	n := 0
	for ci := range cc {
		r := e.camps[ci].root
		if r < 0 || !cc[ci].active {
			continue
		}
		nn, kk := kish[r]*ents[r].neff, kish[r]*ents[r].conv
		if nn < 1 {
			continue
		}
		mu := cc[ci].prior
		d := kk - nn*mu
		num += d*d/(nn*mu*(1-mu)) - 1
		den += mu * (nn - 1)
		n++
	}
	if n >= cfg.MinSiblings && den > 0 {
		fs.rootFitted = true
		if num <= 0 {
			fs.root = cfg.MaxStrength
		} else {
			fs.root = clamp(den / num)
		}
	}
	return fs
}

// buildSlots builds the open-addressing index of e.ents (load ≤ 1/2).
func (e *Estimates) buildSlots() {
	size := 16
	for size < 2*len(e.ents) {
		size <<= 1
	}
	e.slots = make([]slot, size)
	e.mask = uint64(size - 1)
	for i := range e.ents {
		k := e.ents[i].key
		j := uint64(k) & e.mask
		for e.slots[j].idx != 0 {
			j = (j + 1) & e.mask
		}
		e.slots[j] = slot{key: k, idx: uint32(i + 1)}
	}
}
