package model

import (
	"math"
	"math/rand/v2"
)

// Estimate is the posterior of one segment node, as looked up at bid time.
type Estimate struct {
	// CVR is the posterior mean conversion rate (eventual conversions
	// within the attribution window per exposure).
	CVR float64
	// Lo and Hi are the Config.Quantiles of the posterior (a credible
	// interval, by default 90%).
	Lo, Hi float64
	// VTR is the video completion rate, shrunk toward the parent's.
	VTR float64
	// NEff is the delay-corrected effective exposure count (decayed):
	// conversions plus Σ F(age) over unconverted exposures.
	NEff float64
	// Conversions and Exposures are the decayed counts of credited
	// conversions and exposures; Spend the decayed spend.
	Conversions, Exposures, Spend float64
	// Level is the node's depth (0 = campaign) and Key its key.
	Level int
	Key   Key
	// Alpha and Beta are the Beta posterior's parameters (CVR =
	// Alpha/(Alpha+Beta)); SampleBeta(Alpha, Beta, r) is a Thompson draw.
	// They count the evidence at its Kish effective size (a decayed count
	// whose weights vary is worth N²/Σw² draws) plus the prior's
	// pseudo-counts. For the crossed model they are the Beta with the
	// posterior's mean and variance (LookupCell), or the Gamma posterior
	// (shape, rate) of a campaign's base rate or an effect's multiplier
	// (Get, Segments).
	Alpha, Beta float64
	// LogCenter and LogSD describe the crossed model's posterior of ln CVR,
	// about normal (LookupCell): Lo and Hi are e^{LogCenter + z·LogSD} at
	// the quantiles' z, and Sample draws from it. Zero for the chain.
	LogCenter, LogSD float64
}

// Sample is a Thompson draw of the conversion rate from the posterior: a
// lognormal draw for the crossed model (LogSD > 0), else a Beta one. It
// does not allocate.
func (e *Estimate) Sample(r *rand.Rand) float64 {
	if e.LogSD > 0 {
		return math.Min(math.Exp(e.LogCenter+e.LogSD*r.NormFloat64()), 1)
	}
	return SampleBeta(e.Alpha, e.Beta, r)
}

// entry is one row of the table: flat, no pointers.
type entry struct {
	key                     Key
	cvr, lo, hi, vtr        float64
	neff, conv, exps, spend float64
	alpha, beta             float64
	lm, lc, lv              float64 // crossed: ln E[·], E[ln ·], Var[ln ·] of the base or multiplier
	parent                  int32   // entry index, −1 for a root
	labelOff                uint32
	labelLen                uint16
	arena                   uint8 // which label arena
	level                   uint8
	camp                    uint16
}

type slot struct {
	key Key
	idx uint32 // entry index + 1; 0 = empty
}

// xslot is a slot of the crossed model's effect levels with the values
// LookupCell sums (float32: it holds 32 bytes, two to a cache line).
type xslot struct {
	key                Key
	idx                uint32 // entry index + 1; 0 = empty
	lm, lc, lv, vr, ne float32
}

// estCamp is a campaign of the table.
type estCamp struct {
	id   string
	root int32 // entry index of the root, −1 if none
	// Entries of level l are ents[off[l]:off[l+1]].
	off [MaxLevels + 1]int32
	// eff holds, for the crossed model, each effect table's prior (the
	// posterior of a level never seen).
	eff []effPrior
}

// effPrior is an effect table's prior Gamma(s, s) of a multiplier: its
// strength, E[ln m] and Var[ln m].
type effPrior struct{ s, lc, lv float64 }

// estCross is what lookups need of the crossed model: its dimensions and
// tables, and the normal quantiles of the credible interval.
type estCross struct {
	dims   []string
	tables []effTable
	z      [2]float64
}

// Estimates is an immutable table of the estimates of every node, built by
// Refresh and published by pointer swap. It is safe for concurrent use and
// stays valid as long as it is referenced; its lookups take no lock and do
// not allocate. Entries are grouped by campaign and level.
type Estimates struct {
	version uint64
	at      int64 // time the table was computed for, Unix seconds
	q       [2]float64
	ents    []entry
	slots   []slot
	mask    uint64
	xslots  []xslot // crossed: the effect levels
	xmask   uint64
	labels  [][]byte // label arenas (shared with the live model: append-only)
	camps   []estCamp
	cross   *estCross // nil for the chain
}

// Version returns the table's model version: it grows by one with every
// Refresh (and survives snapshots).
func (e *Estimates) Version() uint64 { return e.version }

// At returns the time (Unix seconds) the table was computed for.
func (e *Estimates) At() int64 { return e.at }

// Quantiles returns the posterior probabilities of Lo and Hi.
func (e *Estimates) Quantiles() [2]float64 { return e.q }

// Len returns the number of nodes in the table.
func (e *Estimates) Len() int { return len(e.ents) }

func (e *Estimates) find(k Key) int {
	if len(e.slots) == 0 {
		return -1
	}
	i := uint64(k) & e.mask
	for {
		s := e.slots[i]
		if s.idx == 0 {
			return -1
		}
		if s.key == k {
			return int(s.idx - 1)
		}
		i = (i + 1) & e.mask
	}
}

func (e *Estimates) estimate(i int) Estimate {
	x := &e.ents[i]
	return Estimate{
		CVR: x.cvr, Lo: x.lo, Hi: x.hi, VTR: x.vtr, NEff: x.neff,
		Conversions: x.conv, Exposures: x.exps, Spend: x.spend,
		Level: int(x.level), Key: x.key, Alpha: x.alpha, Beta: x.beta,
	}
}

// Lookup returns the estimate of the deepest node of path present in the
// table (path as given to Expose: root first). It is false only when not
// even the root is known.
func (e *Estimates) Lookup(path []Key) (Estimate, bool) {
	for i := len(path) - 1; i >= 0; i-- {
		if j := e.find(path[i]); j >= 0 {
			return e.estimate(j), true
		}
	}
	return Estimate{}, false
}

// Get returns the estimate of node k.
func (e *Estimates) Get(k Key) (Estimate, bool) {
	if j := e.find(k); j >= 0 {
		return e.estimate(j), true
	}
	return Estimate{}, false
}

// Name appends the readable name of node k to dst: the labels from the
// campaign down, separated by '/', e.g.
// "demo-ctv-purchase/pub-1203/com.example.tv/Sports/501". An unknown key
// appends nothing.
func (e *Estimates) Name(k Key, dst []byte) []byte {
	j := e.find(k)
	if j < 0 {
		return dst
	}
	var chain [MaxLevels]int32
	n := 0
	for i := int32(j); i >= 0 && n < MaxLevels; i = e.ents[i].parent {
		chain[n] = i
		n++
	}
	for c := n - 1; c >= 0; c-- {
		x := &e.ents[chain[c]]
		if c != n-1 {
			dst = append(dst, '/')
		}
		dst = append(dst, e.labels[x.arena][x.labelOff:x.labelOff+uint32(x.labelLen)]...)
	}
	return dst
}

// Label returns the label of node k alone (its level's value), aliased to
// the table's memory: do not modify it.
func (e *Estimates) Label(k Key) []byte {
	j := e.find(k)
	if j < 0 {
		return nil
	}
	x := &e.ents[j]
	return e.labels[x.arena][x.labelOff : x.labelOff+uint32(x.labelLen) : x.labelOff+uint32(x.labelLen)]
}

// Parent returns the key of k's parent; false for a root or an unknown key.
func (e *Estimates) Parent(k Key) (Key, bool) {
	j := e.find(k)
	if j < 0 || e.ents[j].parent < 0 {
		return 0, false
	}
	return e.ents[e.ents[j].parent].key, true
}

func (e *Estimates) campaign(id string) *estCamp {
	j := e.find(RootKey(id))
	if j < 0 {
		return nil
	}
	c := &e.camps[e.ents[j].camp]
	if c.id != id {
		return nil
	}
	return c
}

// Campaign returns the estimate of a campaign's root node: its average CVR
// (the reference of the bid multiplier) and evidence.
func (e *Estimates) Campaign(id string) (Estimate, bool) {
	c := e.campaign(id)
	if c == nil || c.root < 0 {
		return Estimate{}, false
	}
	return e.estimate(int(c.root)), true
}

// CampaignCVR returns the campaign's average CVR (its root's estimate), 0
// and false for an unknown campaign.
func (e *Estimates) CampaignCVR(id string) (float64, bool) {
	c := e.campaign(id)
	if c == nil || c.root < 0 {
		return 0, false
	}
	return e.ents[c.root].cvr, true
}

// Campaigns calls fn with the ID of every campaign in the table until fn
// returns false.
func (e *Estimates) Campaigns(fn func(id string) bool) {
	for i := range e.camps {
		if !fn(e.camps[i].id) {
			return
		}
	}
}

// Segments calls fn with the estimate of every node of the campaign at
// level (all levels, coarse to fine, if level < 0) until fn returns false.
func (e *Estimates) Segments(campaign string, level int, fn func(Estimate) bool) {
	c := e.campaign(campaign)
	if c == nil || level >= MaxLevels {
		return
	}
	lo, hi := c.off[0], c.off[MaxLevels]
	if level >= 0 {
		lo, hi = c.off[level], c.off[level+1]
	}
	for i := lo; i < hi; i++ {
		if !fn(e.estimate(int(i))) {
			return
		}
	}
}
