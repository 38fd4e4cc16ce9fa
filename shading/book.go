package shading

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpafeed/cpafeed/binenc"
)

// Config tunes the win-rate curves. Zero fields take the defaults.
type Config struct {
	// HalfLife is how fast outcomes are forgotten: one of age a weighs
	// 2^(−a/HalfLife). Default 72h.
	HalfLife time.Duration `yaml:"half_life"`
	// MinWins and MinLosses are the (decayed) wins and losses a campaign
	// needs before its bids are shaded. Defaults 50 and 50.
	MinWins   float64 `yaml:"min_wins"`
	MinLosses float64 `yaml:"min_losses"`
	// Strength is how many pseudo-outcomes of its campaign's curve a cut's
	// curve is shrunk with. Default 100.
	Strength float64 `yaml:"strength"`
	// MinCutOutcomes is the least (decayed) outcomes of a cut for a curve
	// of its own; fewer use the campaign's. Default 20.
	MinCutOutcomes float64 `yaml:"min_cut_outcomes"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.HalfLife == 0 {
		c.HalfLife = 72 * time.Hour
	}
	if c.MinWins == 0 {
		c.MinWins = 50
	}
	if c.MinLosses == 0 {
		c.MinLosses = 50
	}
	if c.Strength == 0 {
		c.Strength = 100
	}
	if c.MinCutOutcomes == 0 {
		c.MinCutOutcomes = 20
	}
	return c
}

// Validate reports every problem of c (after WithDefaults).
func (c Config) Validate() []error {
	var errs []error
	if c.HalfLife < time.Minute {
		errs = append(errs, fmt.Errorf("shading.half_life: at least 1m, got %v", c.HalfLife))
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"min_wins", c.MinWins}, {"min_losses", c.MinLosses}, {"strength", c.Strength}, {"min_cut_outcomes", c.MinCutOutcomes}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("shading.%s: must be > 0, got %g", f.name, f.v))
		}
	}
	return errs
}

// Bins of ln(bid CPM): binLo + i·binWidth is the low end of bin i; bids
// outside count in the end bins (0.05 to 2300 CPM inside).
const (
	nBins    = 43
	binLo    = -3.0
	binWidth = 0.25
)

func binOf(bid float64) int {
	i := int(math.Floor((math.Log(bid) - binLo) / binWidth))
	return min(max(i, 0), nBins-1)
}

func binCenter(i int) float64 { return binLo + (float64(i)+0.5)*binWidth }

type cellKey struct{ campaign, cut uint64 }

// cell holds one (campaign, cut)'s outcomes by bid bin, decayed to tRef.
type cell struct {
	tRef      int64
	won, lost [nBins]float64
}

func (c *cell) decay(gamma float64, t int64) {
	if t <= c.tRef {
		return
	}
	h := math.Exp(-gamma * float64(t-c.tRef))
	for i := range c.won {
		c.won[i] *= h
		c.lost[i] *= h
	}
	c.tRef = t
}

// Book counts outcomes and fits the curves. It is safe for concurrent use.
type Book struct {
	cfg   Config
	gamma float64 // per second

	mu     sync.Mutex
	cells  map[cellKey]*cell
	curves atomic.Pointer[Curves]
}

// NewBook returns an empty book under cfg (taken WithDefaults).
func NewBook(cfg Config) *Book {
	cfg = cfg.WithDefaults()
	b := &Book{cfg: cfg, gamma: math.Ln2 / cfg.HalfLife.Seconds(), cells: map[cellKey]*cell{}}
	b.curves.Store(&Curves{})
	return b
}

// Observe counts one outcome: a bid of bid CPM of campaign in cut at ts
// (Unix seconds) that won or lost. Run it where outcomes are applied, in
// log order. A bid that is not a positive number is ignored.
func (b *Book) Observe(campaign, cut uint64, bid float64, won bool, ts int64) {
	if !(bid > 0) || math.IsInf(bid, 0) {
		return
	}
	k := cellKey{campaign, cut}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cells[k]
	if c == nil {
		c = &cell{tRef: ts}
		b.cells[k] = c
	}
	c.decay(b.gamma, ts)
	h := 1.0
	if ts < c.tRef {
		h = math.Exp(-b.gamma * float64(c.tRef-ts))
	}
	i := binOf(bid)
	if won {
		c.won[i] += h
	} else {
		c.lost[i] += h
	}
}

// Lost returns every campaign's lost bids counted so far, decayed to now
// by the book's half-life, in one pass over the cells: whether a campaign
// bids into the market and hears back (the CPA controller raises a
// campaign that wins too little to measure only then).
func (b *Book) Lost(now int64) map[uint64]float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[uint64]float64{}
	for k, c := range b.cells {
		h := 1.0
		if now > c.tRef {
			h = math.Exp(-b.gamma * float64(now-c.tRef))
		}
		var n float64
		for _, l := range c.lost {
			n += l
		}
		out[k.campaign] += h * n
	}
	return out
}

// Curves returns the curves of the last Refit (immutable).
func (b *Book) Curves() *Curves { return b.curves.Load() }

// Refit fits every campaign's and cut's curve on the outcomes decayed to
// now and publishes them. Cells whose outcomes have decayed to nothing are
// dropped.
func (b *Book) Refit(now int64) *Curves {
	type got struct {
		k cellKey
		c cell
	}
	b.mu.Lock()
	cells := make([]got, 0, len(b.cells))
	for k, c := range b.cells {
		c.decay(b.gamma, now)
		var n float64
		for i := range c.won {
			n += c.won[i] + c.lost[i]
		}
		if n < 1e-3 {
			delete(b.cells, k)
			continue
		}
		cells = append(cells, got{k, *c})
	}
	b.mu.Unlock()
	slices.SortFunc(cells, func(x, y got) int { // a deterministic order: fits do not depend on map order
		if x.k.campaign != y.k.campaign {
			return cmpU(x.k.campaign, y.k.campaign)
		}
		return cmpU(x.k.cut, y.k.cut)
	})

	cfg := b.cfg
	var keys, camps []uint64
	var curves []Curve
	for i := 0; i < len(cells); {
		j := i
		var all cell
		for j < len(cells) && cells[j].k.campaign == cells[i].k.campaign {
			for x := range nBins {
				all.won[x] += cells[j].c.won[x]
				all.lost[x] += cells[j].c.lost[x]
			}
			j++
		}
		var w, l float64
		for x := range nBins {
			w += all.won[x]
			l += all.lost[x]
		}
		if w >= cfg.MinWins && l >= cfg.MinLosses {
			camp := fitCampaign(&all)
			keys = append(keys, cells[i].k.campaign)
			camps = append(camps, cells[i].k.campaign)
			curves = append(curves, camp)
			for _, g := range cells[i:j] {
				if g.k.cut == 0 || g.k.cut == g.k.campaign {
					continue
				}
				var n float64
				for x := range nBins {
					n += g.c.won[x] + g.c.lost[x]
				}
				if n >= cfg.MinCutOutcomes {
					keys = append(keys, g.k.cut)
					camps = append(camps, g.k.campaign)
					curves = append(curves, fitCut(&g.c, camp, cfg.Strength))
				}
			}
		}
		i = j
	}
	cv := newCurves(keys, camps, curves)
	b.curves.Store(cv)
	return cv
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Curve bounds: K outside them is a fit gone wrong (a win rate that falls
// with the bid, or a step).
const (
	minK = 0.2
	maxK = 30
)

// fitCampaign fits a campaign's curve with a weak prior: K near 2 and the
// win rate 1/2 at the mean log bid, each worth about one outcome.
func fitCampaign(c *cell) Curve {
	var n, sx float64
	for i := range nBins {
		m := c.won[i] + c.lost[i]
		n += m
		sx += m * binCenter(i)
	}
	const k0 = 2
	prior := Curve{A: -k0 * sx / n, K: k0}
	return fit(c, nil, 0, prior, 1)
}

// fitCut fits a cut's curve shrunk toward its campaign's: strength
// pseudo-outcomes at the cut's own bins, in proportion to its outcomes
// there, winning as often as the campaign's curve says.
func fitCut(c *cell, camp Curve, strength float64) Curve {
	return fit(c, &camp, strength, camp, 1e-3)
}

// fit maximizes the binned logistic log-likelihood of c (plus pseudo
// outcomes of parent, strength of them) minus a ridge of weight lambda
// toward prior, by Newton's method.
func fit(c *cell, parent *Curve, strength float64, prior Curve, lambda float64) Curve {
	var x, n, y [nBins]float64
	var total float64
	for i := range nBins {
		x[i] = binCenter(i)
		n[i] = c.won[i] + c.lost[i]
		y[i] = c.won[i]
		total += n[i]
	}
	if parent != nil && total > 0 {
		for i := range nBins {
			if n[i] > 0 {
				s := strength * n[i] / total
				y[i] += s * sigmoid(parent.A+parent.K*x[i])
				n[i] += s
			}
		}
	}
	a, k := prior.A, prior.K
	for range 50 {
		ga, gk := -lambda*(a-prior.A), -lambda*(k-prior.K)
		haa, hak, hkk := lambda, 0.0, lambda
		for i := range nBins {
			if n[i] == 0 {
				continue
			}
			p := sigmoid(a + k*x[i])
			r := y[i] - n[i]*p
			ga += r
			gk += r * x[i]
			v := n[i] * p * (1 - p)
			haa += v
			hak += v * x[i]
			hkk += v * x[i] * x[i]
		}
		det := haa*hkk - hak*hak
		if !(det > 0) {
			break
		}
		da := (hkk*ga - hak*gk) / det
		dk := (haa*gk - hak*ga) / det
		a += da
		k += dk
		if math.Abs(da) < 1e-9 && math.Abs(dk) < 1e-9 {
			break
		}
	}
	if math.IsNaN(a) || math.IsNaN(k) || math.IsInf(a, 0) || math.IsInf(k, 0) {
		a, k = prior.A, prior.K
	}
	// A slope out of bounds is clamped keeping the win rate at the mean
	// log bid (A + K·x̄).
	if xm := meanX(&x, &n); k < minK {
		a, k = a+(k-minK)*xm, minK
	} else if k > maxK {
		a, k = a+(k-maxK)*xm, maxK
	}
	return Curve{A: a, K: k}
}

func meanX(x, n *[nBins]float64) float64 {
	var s, t float64
	for i := range nBins {
		s += n[i] * x[i]
		t += n[i]
	}
	if t == 0 {
		return 0
	}
	return s / t
}

// Curves is an immutable table of curves by key (a campaign's, and its
// cuts'), open addressing on the key. Safe for concurrent use.
type Curves struct {
	keys   []uint64 // 0 = empty slot
	camps  []uint64 // the campaign of each slot's curve
	curves []Curve
	mask   uint64
	n      int
}

func newCurves(keys, camps []uint64, curves []Curve) *Curves {
	size := 8
	for size < 2*len(keys) {
		size <<= 1
	}
	t := &Curves{keys: make([]uint64, size), camps: make([]uint64, size), curves: make([]Curve, size), mask: uint64(size - 1)}
	for i, k := range keys {
		if k == 0 {
			continue
		}
		t.put(k, camps[i], curves[i])
	}
	return t
}

func (t *Curves) put(k, camp uint64, c Curve) {
	for i := mixKey(k) & t.mask; ; i = (i + 1) & t.mask {
		if t.keys[i] == 0 || t.keys[i] == k {
			if t.keys[i] == 0 {
				t.n++
			}
			t.keys[i], t.camps[i], t.curves[i] = k, camp, c
			return
		}
	}
}

func mixKey(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	return k ^ k>>33
}

func (t *Curves) get(k uint64) (Curve, bool) {
	if t == nil || len(t.keys) == 0 || k == 0 {
		return Curve{}, false
	}
	for i := mixKey(k) & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return t.curves[i], true
		case 0:
			return Curve{}, false
		}
	}
}

// Lookup returns the curve of cut, else of campaign; false when the
// campaign has none (its bids are not shaded). It takes no lock and does
// not allocate.
func (t *Curves) Lookup(campaign, cut uint64) (Curve, bool) {
	if c, ok := t.get(cut); ok {
		return c, true
	}
	return t.get(campaign)
}

// Len returns how many curves the table holds.
func (t *Curves) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Each calls fn with every curve, its key and its campaign's key, in no
// particular order.
func (t *Curves) Each(fn func(campaign, key uint64, c Curve)) {
	if t == nil {
		return
	}
	for i, k := range t.keys {
		if k != 0 {
			fn(t.camps[i], k, t.curves[i])
		}
	}
}

// NewCurves builds a table from keys, their campaigns' keys and their
// curves (a decoded bidder snapshot); keys must be non-zero.
func NewCurves(campaigns, keys []uint64, curves []Curve) (*Curves, error) {
	if len(keys) != len(curves) || len(campaigns) != len(keys) {
		return nil, errors.New("shading: keys, campaigns and curves differ in number")
	}
	for i, k := range keys {
		c := curves[i]
		if k == 0 || !(c.K >= minK && c.K <= maxK) || math.IsNaN(c.A) || math.IsInf(c.A, 0) {
			return nil, fmt.Errorf("shading: curve %d: key %d, A %g, K %g out of range", i, k, c.A, c.K)
		}
	}
	return newCurves(keys, campaigns, curves), nil
}

const snapTag = "shading1"

// WriteSnapshot writes the outcome counts: tag "shading1", uvarint cells,
// then per cell u64 campaign, u64 cut, varint tRef, uvarint bins used and
// per bin u8 index, f64 won, f64 lost; cells in key order. Run it where no
// Observe runs (the journal's checkpoint).
func (b *Book) WriteSnapshot(w *binenc.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ks := make([]cellKey, 0, len(b.cells))
	for k := range b.cells {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(x, y cellKey) int {
		if x.campaign != y.campaign {
			return cmpU(x.campaign, y.campaign)
		}
		return cmpU(x.cut, y.cut)
	})
	w.Tag(snapTag)
	w.Uvarint(uint64(len(ks)))
	for _, k := range ks {
		c := b.cells[k]
		w.U64(k.campaign)
		w.U64(k.cut)
		w.Varint(c.tRef)
		used := 0
		for i := range nBins {
			if c.won[i] != 0 || c.lost[i] != 0 {
				used++
			}
		}
		w.Uvarint(uint64(used))
		for i := range nBins {
			if c.won[i] != 0 || c.lost[i] != 0 {
				w.Byte(byte(i))
				w.F64(c.won[i])
				w.F64(c.lost[i])
			}
		}
	}
}

// ReadSnapshot restores what WriteSnapshot wrote into an empty book; call
// Refit to publish curves.
func (b *Book) ReadSnapshot(r *binenc.Reader) error {
	r.Tag(snapTag)
	n := r.Len(1 << 26)
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := 0; i < n && r.Err() == nil; i++ {
		k := cellKey{campaign: r.U64(), cut: r.U64()}
		c := &cell{tRef: r.Varint()}
		used := r.Len(nBins)
		for range used {
			x := int(r.Byte())
			won, lost := r.F64(), r.F64()
			if r.Err() != nil {
				break
			}
			if x >= nBins || !(won >= 0) || !(lost >= 0) || math.IsInf(won+lost, 0) {
				return fmt.Errorf("shading: cell %d: bin %d: %g won, %g lost", i, x, won, lost)
			}
			c.won[x], c.lost[x] = won, lost
		}
		b.cells[k] = c
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("shading: %w", err)
	}
	return nil
}
