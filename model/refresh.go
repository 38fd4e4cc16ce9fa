package model

import (
	"math"
	"slices"
)

// refreshState is the scratch of Refresh and Refit, reused across calls
// (guarded by Model.rmu).
type refreshState struct {
	rows  []scanRow
	kish  []float64  // per entry: the Kish factor N/Σw² (Kish size N²/Σw² over N)
	order []int32    // entry index → row index
	pos   [][]int32  // per shard: local index → entry index
	cache [][]qcache // per shard: local index → last interval computed
	fk    []float64  // strength fit: Kish-scaled conversions
	fl    []float64  // strength fit: expected conversions at the parent's rate
	fc    []float64  // strength fit: CV² of the parent's rate (its uncertainty)
	from  []int      // strength fit: first term of each campaign
	qmemo qmemo

	cellLv []uint32 // crossed: level ids of the scanned nodes (see scanRow.lvOff)
	cx     crossFit // crossed: the fit's state, warm-started across rebuilds
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
	lvOff                    uint32 // crossed: the node's level ids are rs.cellLv[lvOff:lvOff+len(tables)]
	n, n2, c, neff           float64
	spend, starts, completes float64
}

// qcache remembers the credible interval of a node's last posterior: it is
// recomputed only when alpha or beta moved by more than qTol (relative),
// which keeps a refresh of a million mostly idle nodes cheap; the interval
// is then off by about qTol at most.
type qcache struct{ a, b, lo, hi float64 }

const qTol = 1e-3

// orphan marks a scanned node whose parent was not scanned.
const orphan = noNode - 1

// campConst is what a refresh needs of a campaign.
type campConst struct {
	adv    string // advertiser (shared effects)
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
		cc[i] = campConst{adv: c.c.Advertiser, lam0: c.lam0, a: f.a, b: f.b, prior: c.c.PriorCVR, active: c.active, id: c.c.ID}
	}
	rs := &m.rs
	e := &Estimates{version: m.ver.Add(1), at: now, q: m.cfg.Quantiles, labels: make([][]byte, len(m.shards))}
	rows, order, count := m.scanOrdered(now, cc, e)
	if m.cr != nil {
		return m.rebuildCrossed(now, fit, cc, e, rows, order, count)
	}
	ncamp := len(cc)
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

	// 3. Prior strengths and posteriors, level by level so that a level's
	// fit sees its parents' new estimates.
	fs := m.fit.Load()
	if fit {
		fs = m.fitRoots(now, e, ents, kish, cc)
	}
	for l := 0; l < MaxLevels; l++ {
		if fit && l > 0 {
			m.fitLevel(fs, l, e, ents, kish)
		}
		for ci := range e.camps {
			lo, hi := e.camps[ci].off[l], e.camps[ci].off[l+1]
			for i := lo; i < hi; i++ {
				m.posterior(&ents[i], &rows[order[i]], kish, int(i), ents, fs, cc, &rs.cache[rows[order[i]].shard][rows[order[i]].local])
			}
		}
	}
	if fit {
		m.fit.Store(fs)
	}
	e.ents = ents
	e.buildSlots()
	m.est.Store(e)
	return e
}

// scanOrdered copies every node's counts, decayed to now, and orders them
// by (campaign, level) so that parents come before their children. It
// returns the rows, order (entry index → row index) and count (the rows of
// campaign ci at level l are entries count[ci·MaxLevels+l] to
// count[ci·MaxLevels+l+1]); it sets e's label arenas to the shards'.
// m.rmu held.
func (m *Model) scanOrdered(now int64, cc []campConst, e *Estimates) ([]scanRow, []int32, []int32) {
	rs := &m.rs
	// 1. Copy the counts, decayed to now, shard by shard.
	rows := rs.rows[:0]
	rs.cellLv = rs.cellLv[:0]
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
			nd := &sh.nodes[local]
			if int(nd.camp) >= len(cc) {
				continue // of a campaign added since this rebuild began: next time
			}
			r := m.scan(nd, &cc[nd.camp], now, uint8(si), uint32(local))
			if m.cr != nil {
				t := len(m.cr.tables)
				r.lvOff = uint32(len(rs.cellLv))
				rs.cellLv = append(rs.cellLv, sh.lv[local*t:(local+1)*t]...)
			}
			rows = append(rows, r)
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

	// 2. Order by (campaign, level): parents come before their children. A
	// node whose parent (or an ancestor) was created after the parent's
	// shard was copied is left for the next rebuild.
	ncamp := len(cc)
	count := make([]int32, ncamp*MaxLevels+1)
	var order []int32
	for {
		clear(count)
		for i := range rows {
			count[int(rows[i].camp)*MaxLevels+int(rows[i].level)+1]++
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for si := range rs.pos {
			for j := range rs.pos[si] {
				rs.pos[si][j] = -1
			}
		}
		if cap(rs.order) < len(rows) {
			rs.order = make([]int32, len(rows), len(rows)+len(rows)/4)
		}
		order = rs.order[:len(rows)] // entry index → row index
		next := slices.Clone(count[:len(count)-1])
		for ri := range rows {
			r := &rows[ri]
			b := int(r.camp)*MaxLevels + int(r.level)
			i := next[b]
			next[b]++
			order[i] = int32(ri)
			rs.pos[r.shard][r.local] = i
		}
		orphans := 0
		for i := range order {
			r := &rows[order[i]]
			if r.parent == noNode {
				continue
			}
			ps, pl := uint64(r.parent)&m.shardMask, r.parent>>m.shardBits
			if int(pl) >= len(rs.pos[ps]) || rs.pos[ps][pl] < 0 || rows[order[rs.pos[ps][pl]]].parent == orphan {
				r.parent = orphan
				orphans++
			}
		}
		if orphans == 0 {
			break
		}
		rows = slices.DeleteFunc(rows, func(r scanRow) bool { return r.parent == orphan })
		rs.rows = rows
	}
	return rows, order, count
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

// posterior computes entry x's estimate (its parent's is done). With the
// Kish-scaled counts k = f·c and n = f·n_eff, the prior mean μ and the
// prior strength σ (pseudo-conversions; σ/μ pseudo-exposures):
//
//	alpha = k + σ,  beta = n − k + σ(1−μ)/μ,  CVR = alpha/(alpha+beta).
//
// A root's prior is its campaign's PriorCVR with strength fs.root. Below,
// μ is the parent's posterior mean without this node's own counts (the
// parent's counts include them; using them twice would push every chain of
// sparse nodes toward its own noise), and σ is the level's strength s
// widened for the uncertainty of μ (CV² c): the prior of the node's CVR has
// CV² 1/s + c(1 + 1/s).
func (m *Model) posterior(x *entry, r *scanRow, kish []float64, i int, ents []entry, fs *fitState, cc []campConst, qc *qcache) {
	var mu, sg, vp float64
	if x.parent < 0 {
		mu, sg, vp = cc[x.camp].prior, fs.root, m.cfg.PriorVTR
	} else {
		p := &ents[x.parent]
		s := fs.strength(int(x.camp), int(x.level), m.cfg.DefaultStrength)
		vp = p.vtr
		var c float64
		var ok bool
		if mu, c, ok = looPrior(x, ents, kish); ok {
			sg = 1 / (1/s + c*(1+1/s))
		} else {
			mu, sg = p.cvr, s
		}
	}
	mu = math.Min(math.Max(mu, 1e-9), 1-1e-9)
	kk, nn := kish[i]*x.conv, kish[i]*x.neff
	x.alpha = kk + sg
	x.beta = math.Max(nn-kk, 0) + sg*(1-mu)/mu
	x.cvr = x.alpha / (x.alpha + x.beta)
	x.vtr = math.Min((r.completes+m.cfg.VTRPrior*vp)/(r.starts+m.cfg.VTRPrior), 1)
	if math.Abs(x.alpha-qc.a) > qTol*x.alpha || math.Abs(x.beta-qc.b) > qTol*x.beta {
		qc.a, qc.b = x.alpha, x.beta
		qc.lo, qc.hi = betaInterval(x.alpha, x.beta, m.cfg.Quantiles, &m.rs.qmemo)
	}
	x.lo, x.hi = qc.lo, qc.hi
}

// looPrior returns the mean and squared coefficient of variation of the
// posterior of x's parent without x's own counts (Kish-scaled at the
// parent's factor); false if x is a root or that leaves nothing.
func looPrior(x *entry, ents []entry, kish []float64) (mu, cv2 float64, ok bool) {
	if x.parent < 0 {
		return 0, 0, false
	}
	p := &ents[x.parent]
	fp := kish[x.parent]
	a := p.alpha - fp*x.conv
	ab := p.alpha + p.beta - fp*x.neff
	if !(a > 0 && ab > a) {
		return 0, 0, false
	}
	return a / ab, (ab - a) / (a * (ab + 1)), true
}

// Empirical Bayes. A level's strength s is fitted by maximum marginal
// likelihood over its nodes, each with its own prior mean μ_i (the parent's
// estimate without the node, computed just before; see gather): for rare
// events the Beta prior with mean μ and strength s is the Gamma(shape s,
// rate s/μ) prior of a Poisson rate, under which a node's conversion count k
// given its effective exposures n is negative binomial,
//
//	ℓ_i(s) = lnΓ(k+s) − lnΓ(s) + s ln s − (s+k) ln(s+λ_i) + const,  λ_i = n μ_i,
//
// with score ψ(k+s) − ψ(s) − ln(1+λ_i/s) + (λ_i−k)/(s+λ_i) (s replaced by
// the widened σ_i of posterior when μ_i is uncertain). The root in
// [MinStrength, MaxStrength] is found by bisection in ln s. The strength is
// in units of the parent's rate, so a child's CVR varies around its
// parent's with coefficient of variation 1/√s at any parent CVR (spreads
// are multiplicative). Counts are taken at their Kish effective size.
//
// The method of moments of the estimation reference (b.2) was tried first:
// with 99% of the siblings below one expected conversion its Pearson
// statistic is dominated by single conversions of tiny segments, and its
// per-campaign strengths of one level scattered from 1.2 to 57 where the
// truth was 10.6 (synthetic market, TestMarketHierarchy).

// fitLevel fits the strengths of level l (≥ 1) into fs: first pooled over
// every campaign, as the maximum a posteriori under a log-normal prior
// centred on DefaultStrength with standard deviation PooledStrengthSpread
// (when MinSiblings nodes expect at least one conversion;
// otherwise the level inherits the pooled strength of the level above, or
// DefaultStrength at level 1), then per campaign as the maximum a
// posteriori under a log-normal prior centred on the pooled strength with
// standard deviation StrengthSpread (in ln s): a campaign with little data
// keeps the pooled strength, one with much data gets its own.
func (m *Model) fitLevel(fs *fitState, l int, e *Estimates, ents []entry, kish []float64) {
	rs := &m.rs
	rs.fk, rs.fl, rs.fc = rs.fk[:0], rs.fl[:0], rs.fc[:0]
	if cap(rs.from) < len(e.camps)+1 {
		rs.from = make([]int, len(e.camps)+1)
	}
	from := rs.from[:len(e.camps)+1]
	total := 0
	enough := make([]int, len(e.camps))
	for ci := range e.camps {
		from[ci] = len(rs.fk)
		lo, hi := e.camps[ci].off[l], e.camps[ci].off[l+1]
		enough[ci] = m.gather(ents[lo:hi], kish[lo:hi], ents, kish)
		total += enough[ci]
	}
	from[len(e.camps)] = len(rs.fk)
	switch {
	case total >= m.cfg.MinSiblings:
		fs.pooled[l], fs.pooledFitted[l] = m.mapStrength(rs.fk, rs.fl, rs.fc, m.cfg.DefaultStrength, m.cfg.PooledStrengthSpread), true
	case l == 1:
		fs.pooled[l] = m.cfg.DefaultStrength
	default:
		fs.pooled[l] = fs.pooled[l-1]
	}
	for ci := range e.camps {
		a, b := from[ci], from[ci+1]
		fs.levels[ci][l] = m.mapStrength(rs.fk[a:b], rs.fl[a:b], rs.fc[a:b], fs.pooled[l], m.cfg.StrengthSpread)
		fs.fitted[ci][l] = enough[ci] >= m.cfg.MinSiblings
	}
}

// gather appends the fit terms of the nodes xs (kish: their Kish factors;
// ents, kishAll: every entry's, for the parents) to m.rs.fk, fl and fc, and
// returns how many expect at least one conversion.
//
// A node's prior mean is its parent's posterior mean with the node's own
// counts left out: the parent's counts include the child's, and with Zipf
// traffic a dominant child drags its parent's estimate toward itself,
// which hides its deviation and overstates the strength (measured: 1.5-2×
// at a level of six children). The leave-one-out mean is uncertain (CV²
// fc), which the likelihood accounts for (as posterior does), or the spread
// would be overstated instead.
func (m *Model) gather(xs []entry, kish []float64, ents []entry, kishAll []float64) int {
	rs := &m.rs
	enough := 0
	for i := range xs {
		x := &xs[i]
		mu, c, ok := looPrior(x, ents, kishAll)
		if !ok {
			continue
		}
		lam := kish[i] * x.neff * mu
		if !(lam > 0) {
			continue
		}
		if lam >= 1 {
			enough++
		}
		rs.fk = append(rs.fk, kish[i]*x.conv)
		rs.fl = append(rs.fl, lam)
		rs.fc = append(rs.fc, c)
	}
	return enough
}

// fitRoots returns a new fitState whose root strength (toward PriorCVR) is
// fitted across campaigns when MinSiblings of them expect a conversion.
func (m *Model) fitRoots(now int64, e *Estimates, ents []entry, kish []float64, cc []campConst) *fitState {
	fs := &fitState{at: now, root: m.cfg.PriorConversions,
		levels: make([][MaxLevels]float64, len(cc)), fitted: make([][MaxLevels]bool, len(cc))}
	var ks, ls []float64
	enough := 0
	for ci := range cc {
		r := e.camps[ci].root
		if r < 0 || !cc[ci].active {
			continue
		}
		lam := kish[r] * ents[r].neff * cc[ci].prior
		if !(lam > 0) {
			continue
		}
		if lam >= 1 {
			enough++
		}
		ks = append(ks, kish[r]*ents[r].conv)
		ls = append(ls, lam)
	}
	if enough >= m.cfg.MinSiblings {
		fs.root, fs.rootFitted = m.mapStrength(ks, ls, make([]float64, len(ks)), 0, 0), true
	}
	return fs
}

// mapStrength maximizes Σ_i ℓ_i(s) (see above) over [MinStrength,
// MaxStrength], plus, when sd > 0, the log-density of a normal prior on
// ln s with mean ln s0 and standard deviation sd.
func (m *Model) mapStrength(k, lam, cv []float64, s0, sd float64) float64 {
	score := func(s float64) float64 {
		var g float64
		if sd > 0 {
			g = -(math.Log(s) - math.Log(s0)) / (sd * sd * s)
		}
		for i, l := range lam {
			// The prior of node i around an uncertain mean (CV² cv[i]) has
			// CV² 1/s + cv(1 + 1/s): shape σ_i; dσ_i/ds ∝ σ_i²(1+cv).
			sg := 1 / (1/s + cv[i]*(1+1/s))
			var d float64
			if k[i] > 0 {
				d = digamma(k[i]+sg) - digamma(sg)
			}
			d += (l-k[i])/(sg+l) - math.Log1p(l/sg)
			g += d * sg * sg * (1 + cv[i]) / (s * s)
		}
		return g
	}
	lo, hi := math.Log(m.cfg.MinStrength), math.Log(m.cfg.MaxStrength)
	if score(math.Exp(hi)) >= 0 {
		return m.cfg.MaxStrength // no spread beyond chance: pool fully
	}
	if score(math.Exp(lo)) <= 0 {
		return m.cfg.MinStrength
	}
	for hi-lo > 1e-3 {
		mid := 0.5 * (lo + hi)
		if score(math.Exp(mid)) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp(0.5 * (lo + hi))
}

// digamma returns ψ(x) for x > 0: the recurrence ψ(x) = ψ(x+1) − 1/x up to
// x ≥ 6, then the asymptotic series (error below 1e-12).
func digamma(x float64) float64 {
	if !(x > 0) || math.IsInf(x, 1) {
		return math.NaN()
	}
	var r float64
	for x < 6 {
		r -= 1 / x
		x++
	}
	f := 1 / (x * x)
	return r + math.Log(x) - 0.5/x - f*(1.0/12-f*(1.0/120-f*(1.0/252-f*(1.0/240-f/132))))
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
	if e.cross != nil {
		e.buildXSlots()
	}
}

// buildXSlots builds the crossed model's lookup index of its effect
// levels: each slot holds what LookupCell sums, so that a table costs one
// memory access (the entries are five times larger).
func (e *Estimates) buildXSlots() {
	size := 16
	for size < 2*len(e.ents) {
		size <<= 1
	}
	e.xslots = make([]xslot, size)
	e.xmask = uint64(size - 1)
	for i := range e.ents {
		x := &e.ents[i]
		if x.level == 0 || x.parent < 0 {
			continue
		}
		vr := float32(1)
		if r := e.ents[x.parent].vtr; r > 0 {
			vr = float32(x.vtr / r)
		}
		j := uint64(x.key) & e.xmask
		for e.xslots[j].idx != 0 {
			j = (j + 1) & e.xmask
		}
		e.xslots[j] = xslot{key: x.key, idx: uint32(i + 1), lm: float32(x.lm), lc: float32(x.lc), lv: float32(x.lv), vr: vr, ne: float32(x.neff)}
	}
}
