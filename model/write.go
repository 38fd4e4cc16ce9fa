package model

import (
	"math"
	"time"
)

// Expose records one exposure at time ts (Unix seconds) with spend cost
// (currency units, i.e. price_cpm/1000) on every node of path, creating the
// nodes it lacks. path[0] must be RootKey of a configured campaign and
// path[j] = path[j−1].Child(value_j); labels[j] is the readable value of
// level j (copied only when the node is created; labels[0] is ignored, the
// root is named after the campaign; missing labels are empty). It returns
// false, counting it, when the campaign is unknown. It does not allocate
// except to create nodes.
func (m *Model) Expose(ts int64, path []Key, labels [][]byte, cost float64) bool {
	if len(path) == 0 {
		return false
	}
	cs := m.camps.Load().byRoot[path[0]]
	if cs == nil {
		m.unknownCampaign.Add(1)
		return false
	}
	if len(path) > MaxLevels {
		path = path[:MaxLevels]
		m.cutPaths.Add(1)
	}
	if math.IsNaN(cost) || math.IsInf(cost, 0) {
		cost = 0
	}
	if m.cr != nil {
		return m.exposeCrossed(ts, cs, path, labels, cost)
	}
	parent := noNode
	for j, k := range path {
		var label []byte
		if j > 0 && j < len(labels) {
			label = labels[j]
		}
		id, ok := m.exposeNode(ts, cs, k, parent, j, label, nil, cost)
		if !ok {
			return true
		}
		parent = id
	}
	return true
}

// exposeNode counts one exposure on node k (creating it, at level with
// parent and label, when new: a root is named after its campaign; a
// crossed cell also gets the ids of its effect levels from cell, its
// path's labels) and returns its node id; false, counted, when the key
// belongs to another campaign or level.
func (m *Model) exposeNode(ts int64, cs *campState, k Key, parent uint32, level int, label []byte, cell [][]byte, cost float64) (uint32, bool) {
	si := uint64(k) & m.shardMask
	sh := &m.shards[si]
	sh.mu.Lock()
	local, ok := sh.index[k]
	if !ok {
		switch {
		case level == 0:
			label = []byte(cs.c.ID)
		case cell != nil:
			label = m.cr.cellLabel(nil, cell)
		}
		local = sh.add(k, parent, uint16(cs.idx), level, label, ts)
		if m.cr != nil {
			sh.lv = m.cr.appendLevels(sh.lv, cs, level, cell)
		}
	}
	nd := &sh.nodes[local]
	if int(nd.camp) != cs.idx || int(nd.level) != level {
		// A 64-bit key collision (or a caller mixing campaigns): keep
		// the existing node's statistics clean and stop here.
		sh.mu.Unlock()
		m.collisions.Add(1)
		return 0, false
	}
	if ts > nd.tRef {
		m.advance(nd, cs.lam0, ts)
	}
	h, x := m.ageFactors(cs.lam0, nd.tRef-ts)
	nd.n += h
	nd.n2 += h * h
	nd.spend += h * cost
	for i := range nd.s {
		nd.s[i] += h * x
		x = x * x * x
	}
	if level == 0 {
		cs.tot.exposures++
		cs.tot.spend += cost
		cs.tot.r.expose(cs.rGamma, cs.lam0, ts, cost)
		cs.tot.long.expose(cs.rGamma/longWindows, cs.lam0, ts, cost)
	}
	sh.mu.Unlock()
	return m.nodeID(si, local), true
}

// Credit records an attributed conversion at convTS of the exposure at
// expTS on the segment whose deepest node is leaf, with weight 1 for
// last-touch or 1/k for a linear share: on every node from leaf up to the
// root, at the exposure's time (a conversion decays with its exposure, not
// its arrival), and the exposure's unconverted contribution to the delay
// accumulators is removed (weight-scaled), so n_eff ≥ conversions holds.
// The delay convTS−expTS feeds the delay learner of the campaign's
// advertiser, event and window. It returns false, counting it, when the
// model has no node for leaf or the weight is not positive.
func (m *Model) Credit(expTS, convTS int64, leaf Key, weight float64) bool {
	if !(weight > 0) || math.IsInf(weight, 0) {
		return false
	}
	t := max(convTS, expTS)
	cs, ok := m.upFromLeaf(leaf, func(cs *campState, nd *node) {
		if t > nd.tRef {
			m.advance(nd, cs.lam0, t)
		}
		h, x := m.ageFactors(cs.lam0, nd.tRef-expTS)
		nd.c += weight * h
		for i := range nd.s {
			nd.s[i] = math.Max(nd.s[i]-weight*h*x, 0)
			x = x * x * x
		}
		if nd.level == 0 {
			cs.tot.credited += weight
			cs.tot.r.credit(cs.rGamma, cs.lam0, expTS, t, weight)
			cs.tot.long.credit(cs.rGamma/longWindows, cs.lam0, expTS, t, weight)
		}
	})
	if !ok {
		return false
	}
	if d := convTS - expTS; d < 0 || d > cs.win {
		m.badDelay.Add(1)
	} else {
		cs.l.add(expTS, convTS, weight)
	}
	return true
}

// Video records VAST video starts and completes at ts on every node from
// leaf up to the root (the completion rate is completes/starts, shrunk to
// the parent's). It returns false for negative or non-finite counts, and,
// counting it, for an unknown leaf.
func (m *Model) Video(ts int64, leaf Key, starts, completes float64) bool {
	if !(starts >= 0 && completes >= 0) || math.IsInf(starts+completes, 0) {
		return false
	}
	_, ok := m.upFromLeaf(leaf, func(cs *campState, nd *node) {
		if ts > nd.tRef {
			m.advance(nd, cs.lam0, ts)
		}
		h, _ := m.ageFactors(cs.lam0, nd.tRef-ts)
		nd.starts += h * starts
		nd.completes += h * completes
		if nd.level == 0 {
			cs.tot.starts += starts
			cs.tot.completes += completes
		}
	})
	return ok
}

// upFromLeaf calls fn on leaf's node and then on each ancestor up to the
// root, each under its shard's lock, with the campaign of the path. It
// returns that campaign, or false, counting it, for an unknown leaf.
func (m *Model) upFromLeaf(leaf Key, fn func(cs *campState, nd *node)) (*campState, bool) {
	sh := &m.shards[uint64(leaf)&m.shardMask]
	sh.mu.Lock()
	local, ok := sh.index[leaf]
	if !ok {
		sh.mu.Unlock()
		m.unknownLeaf.Add(1)
		return nil, false
	}
	cs := m.camps.Load().list[sh.nodes[local].camp]
	for {
		nd := &sh.nodes[local]
		fn(cs, nd)
		p := nd.parent
		sh.mu.Unlock()
		if p == noNode {
			return cs, true
		}
		sh, local = m.splitID(p)
		sh.mu.Lock()
	}
}

// CampaignConversion counts a conversion of the campaign's event reported
// at convTS, attributed (to one of its exposures) or not, for the campaign
// report; Credit does the estimation. It returns false for an unknown
// campaign.
func (m *Model) CampaignConversion(convTS int64, campaign string, attributed bool) bool {
	cs := m.camps.Load().byID[campaign]
	if cs == nil {
		m.unknownCampaign.Add(1)
		return false
	}
	sh := &m.shards[uint64(cs.root)&m.shardMask]
	sh.mu.Lock()
	cs.tot.conversions++
	if attributed {
		cs.tot.attributed++
	} else {
		cs.tot.unattribed++
	}
	sh.mu.Unlock()
	return true
}

// CampaignStats is a campaign's report: totals since the model started (or
// since the snapshot it was restored from started), not decayed.
type CampaignStats struct {
	Campaign  string
	Exposures uint64
	Spend     float64 // currency units
	Starts    float64 // video starts
	Completes float64 // video completes
	VTR       float64 // Completes/Starts, 0 without starts
	// Credited is the total credit weight given by Credit (attributed
	// conversions; fractional under linear credit).
	Credited float64
	// Conversions counts CampaignConversion calls; Attributed +
	// Unattributed = Conversions.
	Conversions, Attributed, Unattributed uint64
	// CPA is Spend/Credited (0 without credits): realised, not delay-corrected.
	CPA float64

	// The campaign's delay distribution (its advertiser, event and window):
	// median and 90th percentile, whether it is fitted (false: the default
	// shape) and how many delays the fit used.
	DelayP50, DelayP90  time.Duration
	DelayF1h, DelayF24h float64 // F(1 h), F(24 h)
	DelayFitted         bool
	DelaySamples        int
	// Strengths are the prior strengths in pseudo-conversions: [0] of the
	// root (the crossed model's base) toward PriorCVR, [j] of chain level j
	// toward its parent, or of the crossed model's effect table Effects[j−1]
	// (its multipliers' CV² is 1/strength).
	Strengths []float64
	// Fitted[j] tells whether Strengths[j] was fitted (false: default or
	// inherited from the level above).
	Fitted []bool
	// Effects names the crossed model's effect tables (nil for the chain).
	Effects []string
}

// CampaignStats returns the report of a campaign (configured now or
// earlier).
func (m *Model) CampaignStats(campaign string) (CampaignStats, bool) {
	cs := m.camps.Load().byID[campaign]
	if cs == nil {
		return CampaignStats{}, false
	}
	sh := &m.shards[uint64(cs.root)&m.shardMask]
	sh.mu.Lock()
	t := *cs.tot
	sh.mu.Unlock()
	st := CampaignStats{
		Campaign: campaign, Exposures: t.exposures, Spend: t.spend,
		Starts: t.starts, Completes: t.completes, Credited: t.credited,
		Conversions: t.conversions, Attributed: t.attributed, Unattributed: t.unattribed,
	}
	if t.starts > 0 {
		st.VTR = t.completes / t.starts
	}
	if t.credited > 0 {
		st.CPA = t.spend / t.credited
	}
	f := cs.l.fit.Load()
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	st.DelayP50 = sec(f.quantile(&cs.l.g, 0.5))
	st.DelayP90 = sec(f.quantile(&cs.l.g, 0.9))
	st.DelayF1h = f.cdf(&cs.l.g, 3600)
	st.DelayF24h = f.cdf(&cs.l.g, 86400)
	st.DelayFitted, st.DelaySamples = f.fitted, f.samples
	if m.cr != nil {
		for _, t := range m.cr.tables {
			st.Effects = append(st.Effects, t.name)
		}
	}
	fs := m.fit.Load()
	st.Strengths = make([]float64, MaxLevels)
	st.Fitted = make([]bool, MaxLevels)
	st.Strengths[0], st.Fitted[0] = fs.root, fs.rootFitted
	for j := 1; j < MaxLevels; j++ {
		st.Strengths[j] = fs.strength(cs.idx, j, m.cfg.DefaultStrength)
		if cs.idx < len(fs.fitted) {
			st.Fitted[j] = fs.fitted[cs.idx][j]
		}
	}
	return st, true
}

// strength is the prior strength of level (≥ 1) of campaign ci.
func (f *fitState) strength(ci, level int, def float64) float64 {
	if ci < len(f.levels) {
		if s := f.levels[ci][level]; s > 0 {
			return s
		}
	}
	if s := f.pooled[level]; s > 0 {
		return s
	}
	return def
}
