package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A second synthetic market with known truth, to compare the two
// structures (chain and crossed) on the same exposures: one whose truth is
// crossed (each feature multiplies the CVR the same way whatever the
// others are), one whose truth is nested (the tree of market_test.go: a
// genre's effect differs in every app, a metro's in every genre of every
// app). The models (chain, crossed, crossed with shared effects) see the
// same stream; they are scored on held-out traffic drawn from the same law: traffic-weighted RMSE of ln CVR,
// correlation of ln estimate with ln truth, and calibration by decile of
// the estimate.

// xDim is one feature of the market.
type xDim struct {
	name  string
	n     int     // values (per parent value when nested)
	zipf  float64 // traffic law over the values
	sigma float64 // crossed truth: sd of the log effect
	// shared is the share of an effect's variance common to every
	// campaign (the rest is the campaign's own).
	shared float64
	nested bool // a value is drawn within the previous dimension's value
}

type xMarketCfg struct {
	seed      uint64
	campaigns int
	perDay    float64
	days      int
	campSigma float64
	medianCVR float64
	dims      []xDim
	crossed   bool // the truth: crossed effects (dims' sigma), else the nested tree (treeSigma)
	treeSigma []float64
}

// crossedTruth has the features a CTV buyer segments on, each acting on
// its own: publisher, its app, genre, metro, daypart, device type.
func crossedTruth() xMarketCfg {
	c := xMarketCfg{
		seed: 1, campaigns: 6, perDay: 150_000, days: 14, campSigma: 0.6, medianCVR: 0.004, crossed: true,
		dims: []xDim{
			{name: "publisher", n: 40, zipf: 1.1, sigma: 0.4, shared: 0.7},
			{name: "bundle", n: 4, zipf: 1.1, sigma: 0.25, shared: 0.7, nested: true},
			{name: "genre", n: 12, zipf: 1.0, sigma: 0.4, shared: 0.7},
			{name: "metro", n: 60, zipf: 1.1, sigma: 0.3, shared: 0.7},
			{name: "daypart", n: 6, zipf: 0.5, sigma: 0.3, shared: 0.7},
			{name: "devicetype", n: 3, zipf: 0.8, sigma: 0.2, shared: 0.7},
		},
	}
	return c.scaled()
}

// nestedTruth is the tree of market_test.go (spreads 0.5, 0.4, 0.3, 0.3
// from publisher to metro), with fewer publishers to fit the test's time.
func nestedTruth() xMarketCfg {
	c := xMarketCfg{
		seed: 1, campaigns: 6, perDay: 150_000, days: 14, campSigma: 0.6, medianCVR: 0.004,
		dims: []xDim{
			{name: "publisher", n: 40, zipf: 1.1},
			{name: "bundle", n: 4, zipf: 1.1, nested: true},
			{name: "genre", n: 12, zipf: 1.1},
			{name: "metro", n: 60, zipf: 1.1},
		},
		treeSigma: []float64{0.5, 0.4, 0.3, 0.3},
	}
	return c.scaled()
}

// scaled applies SEED and MARKET_PER_DAY, and shrinks the market under the
// race detector (then the checks only log).
func (c xMarketCfg) scaled() xMarketCfg {
	if raceEnabled {
		c.perDay /= 20
	}
	if v := os.Getenv("SEED"); v != "" {
		c.seed, _ = strconv.ParseUint(v, 10, 64)
	}
	if v := os.Getenv("MARKET_PER_DAY"); v != "" {
		c.perDay, _ = strconv.ParseFloat(v, 64)
	}
	return c
}

type xMarket struct {
	cfg    xMarketCfg
	r      *rand.Rand
	camps  []mCamp
	wsum   float64
	cdf    [][]float64
	labels [][][]byte // [dim][value index (×parent for nested)]
	vals   []int      // scratch: the value index of each dimension
	lbl    [][]byte   // scratch: labels of a path, [0] the root's
	keys   []Key      // scratch: the path
}

func newXMarket(c xMarketCfg) *xMarket {
	mk := &xMarket{cfg: c, r: rand.New(rand.NewPCG(c.seed, 0xc805)), vals: make([]int, len(c.dims)), lbl: make([][]byte, len(c.dims)+1)}
	for d, dm := range c.dims {
		var acc float64
		var cdf []float64
		for i := range dm.n {
			acc += math.Pow(float64(i+1), -dm.zipf)
			cdf = append(cdf, acc)
		}
		for i := range cdf {
			cdf[i] /= acc
		}
		mk.cdf = append(mk.cdf, cdf)
		parents := 1
		if dm.nested {
			parents = c.dims[d-1].n
		}
		var ls [][]byte
		for p := range parents {
			for i := range dm.n {
				if dm.nested {
					ls = append(ls, fmt.Appendf(nil, "%s-%d-%d", dm.name, p, i))
				} else {
					ls = append(ls, fmt.Appendf(nil, "%s-%d", dm.name, i))
				}
			}
		}
		mk.labels = append(mk.labels, ls)
	}
	for i := range c.campaigns {
		id := fmt.Sprintf("camp-%d", i)
		cm := mCamp{id: id, root: RootKey(id), weight: 1 / float64(i+1)}
		cm.p = c.medianCVR * math.Exp(c.campSigma*nodeZ(cm.root, c.seed))
		mk.camps = append(mk.camps, cm)
		mk.wsum += cm.weight
	}
	return mk
}

func (mk *xMarket) campaignConfigs() []Campaign {
	var cs []Campaign
	for i, c := range mk.camps {
		// Two advertisers: campaigns 0, 2, 4 and 1, 3, 5.
		cs = append(cs, Campaign{ID: c.id, Advertiser: fmt.Sprintf("adv-%d", i%2), Event: "Purchase", TargetCPA: 40, PriorCVR: mk.cfg.medianCVR})
	}
	return cs
}

// draw picks an impression: its campaign and the value of every dimension
// (mk.vals, mk.lbl, mk.keys), and returns the campaign and the true CVR.
func (mk *xMarket) draw() (int, float64) {
	u := mk.r.Float64() * mk.wsum
	ci := 0
	for ci < len(mk.camps)-1 && u >= mk.camps[ci].weight {
		u -= mk.camps[ci].weight
		ci++
	}
	cm := &mk.camps[ci]
	mk.keys = append(mk.keys[:0], cm.root)
	mk.lbl[0] = nil
	lp := math.Log(cm.p)
	for d, dm := range mk.cfg.dims {
		i := min(sort.SearchFloat64s(mk.cdf[d], mk.r.Float64()), dm.n-1)
		if dm.nested {
			i += mk.vals[d-1] * dm.n
		}
		mk.vals[d] = i
		l := mk.labels[d][i]
		mk.lbl[d+1] = l
		k := mk.keys[d].Child(l)
		mk.keys = append(mk.keys, k)
		if mk.cfg.crossed {
			// The shared part is the value's, the campaign's own part the
			// (campaign, value)'s; both mean-preserving.
			vk := RootKey(dm.name).Child(l)
			z := math.Sqrt(dm.shared)*nodeZ(vk, mk.cfg.seed) + math.Sqrt(1-dm.shared)*nodeZ(cm.root.Child(l), mk.cfg.seed^0xca)
			lp += dm.sigma*z - dm.sigma*dm.sigma/2
		} else {
			sg := mk.cfg.treeSigma[d]
			lp += sg*nodeZ(k, mk.cfg.seed) - sg*sg/2
		}
	}
	return ci, math.Min(math.Exp(lp), 0.5)
}

// xScore is one model's accuracy on held-out traffic.
type xScore struct {
	name          string
	rmse, corr    float64
	deciles       [10]float64 // Σ estimate / Σ truth by decile of the estimate
	mean, meanLog float64     // Σ estimate / Σ truth; mean ln(estimate/truth)
}

// runXMarket streams the market into models (matured: every conversion is
// credited a minute after its exposure; no decay), refits them at the end
// and scores each with est on held-out traffic.
func runXMarket(t *testing.T, mc xMarketCfg, models []*Model, est []func(e *Estimates, mk *xMarket) float64) []xScore {
	mk := newXMarket(mc)
	rate := mc.perDay / 86400
	stop := t0 + int64(mc.days)*86400
	n, k := 0, 0
	began := time.Now()
	for ts := float64(t0); ; {
		ts += mk.r.ExpFloat64() / rate
		if int64(ts) >= stop {
			break
		}
		_, p := mk.draw()
		n++
		conv := mk.r.Float64() < p
		for _, m := range models {
			m.Expose(int64(ts), mk.keys, mk.lbl, 0.03)
			if conv {
				m.Credit(int64(ts), int64(ts)+60, mk.keys[len(mk.keys)-1], 1)
			}
		}
		if conv {
			k++
		}
	}
	streamed := time.Since(began)
	var tabs []*Estimates
	for _, m := range models {
		at := time.Now()
		tabs = append(tabs, m.Refit(stop+30*86400))
		t.Logf("%s: refit in %v (%d entries)", m.cfg.Structure, time.Since(at).Round(time.Millisecond), tabs[len(tabs)-1].Len())
	}
	t.Logf("market: %d exposures, %d conversions (streamed into %d models in %v)", n, k, len(models), streamed.Round(time.Millisecond))
	// Held-out traffic.
	const held = 200_000
	type obs struct{ pred, truth float64 }
	scores := make([]xScore, len(models))
	for mi := range models {
		scores[mi].name = models[mi].cfg.Structure
		if models[mi].cfg.SharedEffects {
			scores[mi].name += "+shared"
		}
	}
	all := make([][]obs, len(models))
	hr := rand.New(rand.NewPCG(mc.seed, 0x4e1d))
	mk.r = hr
	for range held {
		_, p := mk.draw()
		for mi := range models {
			all[mi] = append(all[mi], obs{est[mi](tabs[mi], mk), p})
		}
	}
	for mi, os := range all {
		s := &scores[mi]
		var se, sx, sy, sxx, syy, sxy, sp, st float64
		for _, o := range os {
			x, y := math.Log(o.pred), math.Log(o.truth)
			se += (x - y) * (x - y)
			sx += x
			sy += y
			sxx += x * x
			syy += y * y
			sxy += x * y
			sp += o.pred
			st += o.truth
		}
		nn := float64(len(os))
		s.rmse = math.Sqrt(se / nn)
		s.corr = (sxy/nn - sx/nn*sy/nn) / math.Sqrt((sxx/nn-sx*sx/nn/nn)*(syy/nn-sy*sy/nn/nn))
		s.mean, s.meanLog = sp/st, (sx-sy)/nn
		sort.Slice(os, func(i, j int) bool { return os[i].pred < os[j].pred })
		for d := range 10 {
			var a, b float64
			for _, o := range os[d*len(os)/10 : (d+1)*len(os)/10] {
				a += o.pred
				b += o.truth
			}
			s.deciles[d] = a / b
		}
		var dec []string
		for _, v := range s.deciles {
			dec = append(dec, fmt.Sprintf("%.2f", v))
		}
		t.Logf("%-8s RMSE ln CVR %.3f, correlation %.3f, Σest/Σtrue %.3f; by decile of the estimate: %s", s.name, s.rmse, s.corr, s.mean, strings.Join(dec, " "))
	}
	return scores
}

// lookups of the two structures.
func chainEstimate(e *Estimates, mk *xMarket) float64 {
	x, _ := e.Lookup(mk.keys)
	return x.CVR
}

func crossedEstimate(e *Estimates, mk *xMarket) float64 {
	var c Cell
	c.Reset(len(mk.keys) - 1)
	for d := 1; d < len(mk.lbl); d++ {
		c.SetValue(d-1, mk.lbl[d])
	}
	x, _ := e.LookupCell(mk.keys[0], &c)
	return x.CVR
}

// xModels returns a chain, a crossed and a crossed model with shared
// effects of the market's campaigns (the chain's path is the dimensions in
// order; the crossed models have one table per dimension, the nested ones
// keyed with their parent, and the extra keys).
func xModels(mc xMarketCfg, mk *xMarket, extra ...[]string) []*Model {
	var effects [][]string
	for d, dm := range mc.dims {
		if dm.nested {
			effects = append(effects, []string{mc.dims[d-1].name, dm.name})
		} else {
			effects = append(effects, []string{dm.name})
		}
	}
	effects = append(effects, extra...)
	chain := New(Config{Structure: StructureChain, HalfLife: -1}, mk.campaignConfigs())
	crossed := New(Config{HalfLife: -1, Structure: StructureCrossed, Effects: effects}, mk.campaignConfigs())
	shared := New(Config{HalfLife: -1, Structure: StructureCrossed, Effects: effects, SharedEffects: true}, mk.campaignConfigs())
	return []*Model{chain, crossed, shared}
}

// TestMarketCrossedTruth: where the truth is crossed, the crossed model's
// estimates are much closer to it than the chain's, and calibrated.
func TestMarketCrossedTruth(t *testing.T) {
	mc := crossedTruth()
	models := xModels(mc, newXMarket(mc))
	s := runXMarket(t, mc, models, []func(*Estimates, *xMarket) float64{chainEstimate, crossedEstimate, crossedEstimate})
	chain, crossed := s[0], s[1]
	if raceEnabled {
		return
	}
	if !(crossed.rmse < 0.75*chain.rmse) {
		t.Errorf("RMSE of ln CVR: crossed %.3f, chain %.3f; want crossed below 0.75× the chain's", crossed.rmse, chain.rmse)
	}
	if !(crossed.corr > chain.corr+0.1) {
		t.Errorf("correlation: crossed %.3f, chain %.3f; want crossed above the chain's by 0.1", crossed.corr, chain.corr)
	}
	checkCalibration(t, crossed, 0.15)
	// Shared effects: the truth's effects are 70% common to the campaigns.
	if shared := s[2]; !(shared.rmse < crossed.rmse) {
		t.Errorf("RMSE of ln CVR with shared effects %.3f, without %.3f; want it lower", shared.rmse, crossed.rmse)
	}
}

// TestMarketNestedTruth: where the truth is the chain's own tree, the
// crossed model (main effects, the app within its publisher, and the
// nested crosses a buyer would add) is not far behind the chain.
func TestMarketNestedTruth(t *testing.T) {
	mc := nestedTruth()
	models := xModels(mc, newXMarket(mc), []string{"publisher", "bundle", "genre"})
	s := runXMarket(t, mc, models, []func(*Estimates, *xMarket) float64{chainEstimate, crossedEstimate, crossedEstimate})
	chain, crossed := s[0], s[1]
	if raceEnabled {
		return
	}
	if shared := s[2]; !(shared.rmse < 1.1*chain.rmse) {
		t.Errorf("RMSE of ln CVR with shared effects %.3f, chain %.3f; want within 1.1× the chain's", shared.rmse, chain.rmse)
	}
	if !(crossed.rmse < 1.1*chain.rmse) {
		t.Errorf("RMSE of ln CVR: crossed %.3f, chain %.3f; want crossed within 1.1× the chain's", crossed.rmse, chain.rmse)
	}
	if !(crossed.corr > chain.corr-0.05) {
		t.Errorf("correlation: crossed %.3f, chain %.3f; want crossed no more than 0.05 below", crossed.corr, chain.corr)
	}
	checkCalibration(t, crossed, 0.15)
}

// checkCalibration wants the estimate's total within tol of the truth's,
// and every decile but the lowest (whose estimates are selected for being
// low) within 2·tol.
func checkCalibration(t *testing.T, s xScore, tol float64) {
	t.Helper()
	if math.Abs(s.mean-1) > tol {
		t.Errorf("%s: Σ estimate / Σ truth %.3f, want within ±%.0f%%", s.name, s.mean, 100*tol)
	}
	for d, v := range s.deciles[1:] {
		if math.Abs(v-1) > 2*tol {
			t.Errorf("%s: decile %d: Σ estimate / Σ truth %.3f, want within ±%.0f%%", s.name, d+2, v, 200*tol)
		}
	}
}
