package model

import "math"

// SegmentCVR returns the conversion rate the published estimates give the
// segment whose deepest node is leaf (an exposure's leaf, as the identity
// index keeps it): for the chain, the estimate of the deepest node of
// leaf's path that the table knows; for the crossed model, the cell's
// estimate as LookupCell gives it (the campaign's base times the mean
// multiplier of each of the cell's levels the table knows). False when the
// model has no node for leaf or the table does not know its campaign yet.
// It reads the live nodes, one shard lock at a time, and the current
// table; it does not allocate. Probabilistic credit weighs candidate
// exposures with it.
func (m *Model) SegmentCVR(leaf Key) (float64, bool) {
	est := m.est.Load()
	if est == nil {
		return 0, false
	}
	var path [MaxLevels]Key
	var lv [MaxLevels]uint32
	nt := 0
	n := 0
	sh := &m.shards[uint64(leaf)&m.shardMask]
	sh.mu.Lock()
	local, ok := sh.index[leaf]
	if !ok {
		sh.mu.Unlock()
		return 0, false
	}
	if m.cr != nil {
		nt = len(m.cr.tables)
		if off := int(local) * nt; off+nt <= len(sh.lv) {
			copy(lv[:nt], sh.lv[off:off+nt])
		} else {
			nt = 0
		}
	}
	for n < MaxLevels {
		nd := &sh.nodes[local]
		path[n] = nd.key
		n++
		p := nd.parent
		sh.mu.Unlock()
		if p == noNode {
			break
		}
		sh, local = m.splitID(p)
		sh.mu.Lock()
	}
	if m.cr == nil || est.cross == nil {
		for i := 0; i < n; i++ {
			if j := est.find(path[i]); j >= 0 {
				return est.ents[j].cvr, true
			}
		}
		return 0, false
	}
	root := est.find(path[n-1])
	if root < 0 || est.ents[root].level != 0 {
		return 0, false
	}
	lm := est.ents[root].lm
	if n > 1 { // a cell: its levels' multipliers
		var keys [MaxLevels]Key
		m.cr.mu.Lock()
		for t := 0; t < nt; t++ {
			if id := lv[t]; id != noLevel && int(id) < len(m.cr.levels) {
				keys[t] = m.cr.levels[id].key
			}
		}
		m.cr.mu.Unlock()
		for t := 0; t < nt; t++ {
			if keys[t] == 0 {
				continue
			}
			if y := est.findLevel(keys[t]); y != nil {
				lm += float64(y.lm)
			}
		}
	}
	return math.Min(math.Exp(lm), 1), true
}

// DelayDensity returns the density (per second) of the campaign's fitted
// delay distribution at lag seconds: the derivative of F, the probability
// that a conversion the exposure causes within the window comes lag
// seconds after it (0 outside [0, window]). False for an unknown campaign.
// It reads the latest fit (Refit) and does not allocate.
func (m *Model) DelayDensity(campaign string, lag int64) (float64, bool) {
	cs := m.camps.Load().byID[campaign]
	if cs == nil {
		return 0, false
	}
	g := &cs.l.g
	tau := float64(lag)
	if tau < 0 || tau > g.w {
		return 0, true
	}
	f := cs.l.fit.Load()
	var d float64
	for j := range nComp {
		d += f.b[j] * g.lam[j] * math.Exp(-g.lam[j]*tau)
	}
	return d, true
}
