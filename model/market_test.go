package model

import (
	"container/heap"
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

// A synthetic CTV market with known true CVRs, to prove the estimator.
//
// Segments form a tree campaign → publisher → bundle → genre → metro. A
// campaign's CVR is medianCVR·e^{σ_c Z}; a child's CVR is its parent's times
// e^{σ_l Z − σ_l²/2} (mean-preserving log-normal spread), each Z drawn from
// the node's key so the tree is fixed by the seed however it is visited.
// Traffic picks a campaign (weights 1/(i+1), so one campaign is large) and
// then each level's child from a Zipf(1.1) law, so that most segments are
// sparse. Each exposure converts with its leaf's CVR, after a delay drawn
// from trueDelay truncated to the window. Exposures and conversions stream
// through Expose and Credit in time order.

type marketCfg struct {
	seed      uint64
	campaigns int
	perDay    float64    // exposures per day with every campaign active
	fanout    [4]int     // children per node: publishers, bundles, genres, metros
	sigma     [4]float64 // log-normal spread of a child's CVR around its parent's
	campSigma float64    // spread of campaign CVRs around medianCVR
	medianCVR float64
	zipf      float64
	window    int64 // seconds
}

// defaultMarket follows the evaluation protocol of the estimation
// reference, section (d): spreads 0.6 (campaign), 0.5, 0.4, 0.3, 0.3; Zipf
// 1.1 traffic; a median CVR of 0.4%. Under the race detector the market has
// a twentieth of the traffic, to keep the suite fast: too little for the
// statistical requirements (the young and dense segments and the lowest
// deciles then hold a few hundred conversions, whose noise alone exceeds
// the tolerances), so under -race those checks only log; the full-size run
// (go test ./model, without -race) asserts them.
func defaultMarket() marketCfg {
	c := marketCfg{
		seed: 1, campaigns: 8, perDay: 600_000,
		fanout: [4]int{50, 6, 12, 60}, sigma: [4]float64{0.5, 0.4, 0.3, 0.3},
		campSigma: 0.6, medianCVR: 0.004, zipf: 1.1, window: 7 * 86400,
	}
	if raceEnabled {
		c.perDay = 30_000
	}
	if v := os.Getenv("SEED"); v != "" {
		c.seed, _ = strconv.ParseUint(v, 10, 64)
	}
	if v := os.Getenv("MARKET_PER_DAY"); v != "" {
		c.perDay, _ = strconv.ParseFloat(v, 64)
	}
	return c
}

type mCamp struct {
	id      string
	root    Key
	p       float64
	weight  float64
	startAt int64
}

type seg struct {
	path  [5]Key
	p     float64
	pPar  float64 // true CVR of the parent node (before the leaf's own factor)
	camp  int
	first int64
	n     int                    // exposures
	k     int                    // eventual conversions of those exposures
	heldN int                    // held-out exposures
	byAge [len(expAges)][2]int32 // exposures and eventual conversions by exposure age at market.evalAt
}

// expAges are the upper bounds of the exposure-age buckets (seconds).
var expAges = [...]int64{3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, math.MaxInt64}

type market struct {
	cfg    marketCfg
	r      *rand.Rand
	camps  []mCamp
	wsum   float64
	cdf    [4][]float64
	labels [4][][]byte
	segs   map[Key]*seg
	order  []*seg // in creation order
	keyBuf [5]Key
	lblBuf [][]byte
	evalAt int64 // when set, run fills seg.byAge
}

func newMarket(c marketCfg) *market {
	mk := &market{cfg: c, r: rand.New(rand.NewPCG(c.seed, 0xc7f)), segs: make(map[Key]*seg), lblBuf: make([][]byte, 5)}
	names := [4]string{"pub", "bundle", "genre", "metro"}
	for l := range 4 {
		var acc float64
		for i := range c.fanout[l] {
			acc += math.Pow(float64(i+1), -c.zipf)
			mk.cdf[l] = append(mk.cdf[l], acc)
			mk.labels[l] = append(mk.labels[l], fmt.Appendf(nil, "%s-%d", names[l], i))
		}
		for i := range mk.cdf[l] {
			mk.cdf[l][i] /= acc
		}
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

// nodeZ is the standard normal draw of node k.
func nodeZ(k Key, seed uint64) float64 {
	return rand.New(rand.NewPCG(uint64(k), seed^0x5eed)).NormFloat64()
}

func (mk *market) campaignConfigs() []Campaign {
	var cs []Campaign
	for i, c := range mk.camps {
		cs = append(cs, Campaign{
			ID: c.id, Advertiser: fmt.Sprintf("adv-%d", i%3), Event: "Purchase",
			TargetCPA: 40, Window: time.Duration(mk.cfg.window) * time.Second,
			// The operator's prior is the market's typical CVR, not the
			// campaign's own (which varies by a factor e^{±0.6}).
			PriorCVR: mk.cfg.medianCVR,
		})
	}
	return cs
}

// draw picks a segment by traffic: campaign, then each level's child. It
// returns nil when the campaign is not active at ts (thinning).
func (mk *market) draw(ts int64) *seg {
	u := mk.r.Float64() * mk.wsum
	ci := 0
	for ci < len(mk.camps)-1 && u >= mk.camps[ci].weight {
		u -= mk.camps[ci].weight
		ci++
	}
	if ts < mk.camps[ci].startAt {
		return nil
	}
	k := mk.camps[ci].root
	mk.keyBuf[0] = k
	for l := range 4 {
		i := sort.SearchFloat64s(mk.cdf[l], mk.r.Float64())
		i = min(i, len(mk.cdf[l])-1)
		k = k.Child(mk.labels[l][i])
		mk.keyBuf[l+1] = k
		mk.lblBuf[l+1] = mk.labels[l][i]
	}
	s := mk.segs[k]
	if s == nil {
		s = &seg{path: mk.keyBuf, camp: ci, first: ts}
		p := mk.camps[ci].p
		for l := range 4 {
			sg := mk.cfg.sigma[l]
			p *= math.Exp(sg*nodeZ(mk.keyBuf[l+1], mk.cfg.seed) - sg*sg/2)
		}
		s.pPar = p / math.Exp(mk.cfg.sigma[3]*nodeZ(mk.keyBuf[4], mk.cfg.seed)-mk.cfg.sigma[3]*mk.cfg.sigma[3]/2)
		s.p = math.Min(p, 0.5)
		mk.segs[k] = s
		mk.order = append(mk.order, s)
	}
	return s
}

// drawDelayTrue draws a conversion delay, seconds.
func (mk *market) drawDelayTrue() int64 {
	return int64(drawDelay(mk.r, trueDelay, float64(mk.cfg.window)))
}

type pconv struct {
	exp, conv int64
	leaf      Key
}

type convHeap []pconv

func (h convHeap) Len() int           { return len(h) }
func (h convHeap) Less(i, j int) bool { return h[i].conv < h[j].conv }
func (h convHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *convHeap) Push(x any)        { *h = append(*h, x.(pconv)) }
func (h *convHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// run streams exposures from start to stop and the conversions they cause
// up to end (later ones are drawn, counted in seg.k, but never delivered),
// calling Refit on every model every refitEvery seconds.
func (mk *market) run(models []*Model, start, stop, end, refitEvery int64) (exposures, delivered int) {
	var pending convHeap
	rate := mk.cfg.perDay / 86400
	t := float64(start)
	nextRefit := start + refitEvery
	flush := func(upTo int64) {
		for len(pending) > 0 && pending[0].conv <= upTo {
			c := heap.Pop(&pending).(pconv)
			for _, m := range models {
				m.Credit(c.exp, c.conv, c.leaf, 1)
			}
			delivered++
		}
	}
	for {
		t += mk.r.ExpFloat64() / rate
		ts := int64(t)
		if ts >= stop {
			break
		}
		for ts >= nextRefit {
			flush(nextRefit)
			for _, m := range models {
				m.Refit(nextRefit)
			}
			nextRefit += refitEvery
		}
		flush(ts)
		s := mk.draw(ts)
		if s == nil {
			continue
		}
		exposures++
		s.n++
		for _, m := range models {
			m.Expose(ts, s.path[:], mk.lblBuf, 0.03)
		}
		conv := mk.r.Float64() < s.p
		if conv {
			s.k++
			heap.Push(&pending, pconv{exp: ts, conv: ts + mk.drawDelayTrue(), leaf: s.path[4]})
		}
		if mk.evalAt > 0 {
			b := 0
			for mk.evalAt-ts >= expAges[b] {
				b++
			}
			s.byAge[b][0]++
			if conv {
				s.byAge[b][1]++
			}
		}
	}
	for nextRefit <= end {
		flush(nextRefit)
		for _, m := range models {
			m.Refit(nextRefit)
		}
		nextRefit += refitEvery
	}
	flush(end)
	return exposures, delivered
}

// heldOut draws n exposures from the traffic law (all campaigns active)
// into seg.heldN, creating segments never seen in training.
func (mk *market) heldOut(n int) {
	for range n {
		mk.draw(math.MaxInt64).heldN++
	}
}

// bucketOf names the expected-conversion bucket of a training segment.
var ecBuckets = []struct {
	name   string
	lo, hi float64
}{{"<1", 0, 1}, {"1-10", 1, 10}, {"10-30", 10, 30}, {">=30", 30, math.Inf(1)}}

type errAcc struct {
	segs                        int
	w, se, seRaw, seBayes       float64 // traffic weight, squared errors (weighted)
	bias, biasRaw               float64 // Σ w (estimate − p)/p
	h, ll, llRaw, llOracle      float64 // held-out exposures, log losses (weighted)
	relAbs, relAbsRaw, trueMean float64
}

func logLoss(p, q float64) float64 {
	q = math.Min(math.Max(q, 1e-7), 1-1e-7)
	return -(p*math.Log(q) + (1-p)*math.Log1p(-q))
}

// TestMarketHierarchy proves requirement 1 (hierarchical estimates beat raw
// per-segment c/n on sparse segments and are no worse on dense ones) and 3
// (calibration by decile of predicted CVR) on matured data: exposures over
// 14 days, every conversion delivered, evaluated a window later. Decay is
// off here (HalfLife < 0): under a stationary truth it only discards data,
// and the raw baseline keeps all of it.
func TestMarketHierarchy(t *testing.T) {
	mc := defaultMarket()
	mk := newMarket(mc)
	m := New(Config{Structure: StructureChain, HalfLife: -1}, mk.campaignConfigs())
	start := t0
	stop := start + 14*86400
	end := stop + mc.window
	began := time.Now()
	nexp, nconv := mk.run([]*Model{m}, start, stop, end, 7*86400)
	e := m.Refit(end)
	t.Logf("market: %d campaigns, %d exposures, %d conversions, %d leaf segments, %d nodes (streamed in %v)",
		mc.campaigns, nexp, nconv, len(mk.order), e.Len(), time.Since(began).Round(time.Millisecond))
	logStrengths(t, m, mk)
	trained := len(mk.order)
	mk.heldOut(nexp)

	// The Bayes posterior mean under the true prior (the leaf's parent's
	// true CVR and the leaf level's true strength) is the best any
	// hierarchical estimator can do: a reference column.
	st := 1 / math.Expm1(mc.sigma[3]*mc.sigma[3])
	eval := func(title string, ecOf func(*seg) float64) (sparse, dense errAcc, denseSegs []errAcc) {
		accs := make([]errAcc, len(ecBuckets))
		var all errAcc
		under1 := 0
		for _, s := range mk.order[:trained] {
			est, _ := e.Lookup(s.path[:])
			raw := float64(s.k) / float64(s.n)
			bayes := (float64(s.k) + st) / (float64(s.n) + st/s.pPar)
			ec := ecOf(s)
			b := 0
			for b < len(ecBuckets)-1 && ec >= ecBuckets[b].hi {
				b++
			}
			if ec < 1 {
				under1++
			}
			w, h := float64(s.n), float64(s.heldN)
			var one errAcc
			for _, a := range []*errAcc{&accs[b], &all, &sparse, &one} {
				if a == &sparse && ec >= 30 {
					continue
				}
				a.segs++
				a.w += w
				a.se += w * (est.CVR - s.p) * (est.CVR - s.p)
				a.seRaw += w * (raw - s.p) * (raw - s.p)
				a.seBayes += w * (bayes - s.p) * (bayes - s.p)
				a.bias += w * (est.CVR - s.p) / s.p
				a.biasRaw += w * (raw - s.p) / s.p
				a.h += h
				a.ll += h * logLoss(s.p, est.CVR)
				a.llRaw += h * logLoss(s.p, raw)
				a.llOracle += h * logLoss(s.p, s.p)
			}
			if ec >= 30 {
				denseSegs = append(denseSegs, one)
			}
		}
		t.Logf("%s (%.1f%% of segments below 1):", title, 100*float64(under1)/float64(trained))
		t.Logf("  %-8s %8s %9s %10s %10s %6s %10s %8s %8s %9s %9s %9s", "bucket", "segments", "traffic", "RMSE hier", "RMSE raw", "ratio",
			"RMSE bayes", "bias h", "bias raw", "LL hier", "LL raw", "LL oracle")
		row := func(name string, a errAcc) {
			t.Logf("  %-8s %8d %9.0f %10.3g %10.3g %6.3f %10.3g %+8.3f %+8.3f %9.5f %9.5f %9.5f", name, a.segs, a.w,
				math.Sqrt(a.se/a.w), math.Sqrt(a.seRaw/a.w), math.Sqrt(a.se/a.seRaw), math.Sqrt(a.seBayes/a.w),
				a.bias/a.w, a.biasRaw/a.w, a.ll/a.h, a.llRaw/a.h, a.llOracle/a.h)
		}
		for i, b := range ecBuckets {
			if accs[i].segs > 0 {
				row(b.name, accs[i])
			}
		}
		row("<30", sparse)
		row("all", all)
		return sparse, accs[len(accs)-1], denseSegs
	}
	// Buckets by expected conversions n·p select on the true p (a bucket of
	// "dense" segments holds the lucky high-CVR ones, which any shrinkage
	// pulls down); buckets by support n·p_campaign do not. Both are shown;
	// the requirements are checked on the first, the literal one.
	sparse, dense, denseSegs := eval("by expected conversions n·p (true p)", func(s *seg) float64 { return float64(s.n) * s.p })
	_, denseS, denseSegsS := eval("by support n·p_campaign", func(s *seg) float64 { return float64(s.n) * mk.camps[s.camp].p })
	if r := math.Sqrt(sparse.se / sparse.seRaw); r > 0.6 {
		t.Errorf("sparse segments: RMSE hier/raw = %.3f, want ≤ 0.6", r)
	}
	if sparse.ll >= sparse.llRaw {
		t.Errorf("sparse segments: log loss hier %.5f ≥ raw %.5f", sparse.ll/sparse.h, sparse.llRaw/sparse.h)
	}
	// Dense segments are few (tens): "never worse" is checked as "not
	// significantly worse", the 95% bootstrap interval of hier/raw (over
	// segments) must reach 1 or below. Under -race the market is too small
	// to have dense segments worth the name.
	for _, c := range []struct {
		name string
		a    errAcc
		segs []errAcc
	}{{"n·p", dense, denseSegs}, {"n·p_campaign", denseS, denseSegsS}} {
		if c.a.segs < 10 {
			t.Logf("dense (%s ≥ 30): only %d segments, no comparison", c.name, c.a.segs)
			continue
		}
		rl, rh := bootRatio(c.segs, func(a *errAcc) (float64, float64) { return a.se, a.seRaw }, true)
		ll, lh := bootRatio(c.segs, func(a *errAcc) (float64, float64) { return a.ll, a.llRaw }, false)
		t.Logf("dense (%s ≥ 30), %d segments: RMSE hier/raw %.3f [95%% %.3f-%.3f], log loss hier/raw %.5f [%.5f-%.5f]",
			c.name, c.a.segs, math.Sqrt(c.a.se/c.a.seRaw), rl, rh, c.a.ll/c.a.llRaw, ll, lh)
		if c.name == "n·p" && !raceEnabled && (rl > 1 || ll > 1) {
			t.Errorf("dense segments: hierarchical estimates significantly worse than raw (RMSE ratio ≥ %.3f or log-loss ratio ≥ %.5f)", rl, ll)
		}
	}

	// Requirement 3: calibration by decile of predicted CVR over held-out
	// traffic (segments never seen in training included, at their deepest
	// known ancestor). "Expected" sums the true CVRs of the held-out
	// exposures; "sampled" draws their labels.
	type hs struct {
		q, p float64
		h    int
	}
	var rows []hs
	var tot float64
	for _, s := range mk.order {
		if s.heldN == 0 {
			continue
		}
		est, _ := e.Lookup(s.path[:])
		rows = append(rows, hs{est.CVR, s.p, s.heldN})
		tot += float64(s.heldN)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].q < rows[j].q })
	t.Logf("%-7s %9s %11s %11s %9s %9s", "decile", "held-out", "mean pred", "mean true", "pred/exp", "pred/smp")
	var cum float64
	d := 0
	var sq, sp, sy, sh float64
	for i, x := range rows {
		sq += float64(x.h) * x.q
		sp += float64(x.h) * x.p
		sh += float64(x.h)
		for range x.h {
			if mk.r.Float64() < x.p {
				sy++
			}
		}
		cum += float64(x.h)
		if cum >= tot*float64(d+1)/10 || i == len(rows)-1 {
			t.Logf("%-7d %9.0f %11.3g %11.3g %9.3f %9.3f", d+1, sh, sq/sh, sp/sh, sq/sp, sq/sy)
			if r := sq / sp; (r < 0.85 || r > 1.15) && !raceEnabled {
				t.Errorf("decile %d: predicted/expected %.3f outside ±15%%", d+1, r)
			}
			d++
			sq, sp, sy, sh = 0, 0, 0, 0
		}
	}
}

func logStrengths(t *testing.T, m *Model, mk *market) {
	var b strings.Builder
	for _, c := range mk.camps[:min(3, len(mk.camps))] {
		st, _ := m.CampaignStats(c.id)
		fmt.Fprintf(&b, " %s:", c.id)
		for l := 1; l <= 4; l++ {
			fmt.Fprintf(&b, " %.3g", st.Strengths[l])
			if !st.Fitted[l] {
				b.WriteString("*")
			}
		}
	}
	var want []string
	for _, s := range mk.cfg.sigma {
		want = append(want, fmt.Sprintf("%.3g", 1/math.Expm1(s*s)))
	}
	t.Logf("fitted strengths (pseudo-conversions, levels 1-4; * = inherited):%s; generator 1/CV² = %s", b.String(), strings.Join(want, " "))
}

// TestMarketDelay proves requirement 2: with the delay correction,
// predicted eventual conversions over actual stay within 0.9-1.1 for
// segments of every age, including those opened in the last day, while
// the uncorrected estimate is biased low on young segments. The market
// streams for 14 days with campaigns opening along the way (the largest
// 0.8 days before the evaluation) and is evaluated mid-stream: at T, with
// the conversions of the last week still arriving. Both models see the
// same stream under the default config (168 h half-life); one has the
// correction off. "Expected" is Σ n·p over the exposures before T (the
// estimand; the realized count adds label noise and is logged beside it).
func TestMarketDelay(t *testing.T) {
	mc := defaultMarket()
	mk := newMarket(mc)
	start := t0
	T := start + 14*86400
	opens := []float64{13.2, 12, 9, 0, 6, 3, 0, 11} // days after start, by campaign
	for i := range mk.camps {
		mk.camps[i].startAt = start + int64(opens[i%len(opens)]*86400)
	}
	mk.evalAt = T
	corrected := New(Config{Structure: StructureChain}, mk.campaignConfigs())
	naive := New(Config{Structure: StructureChain, NoDelayCorrection: true}, mk.campaignConfigs())
	began := time.Now()
	refitEvery := int64(2 * 86400)
	if raceEnabled {
		refitEvery = 7 * 86400
	}
	nexp, nconv := mk.run([]*Model{corrected, naive}, start, T, T, refitEvery)
	ec, en := corrected.Refit(T), naive.Refit(T)
	t.Logf("market: %d campaigns, %d exposures, %d conversions delivered by T, %d leaf segments (streamed in %v)",
		mc.campaigns, nexp, nconv, len(mk.order), time.Since(began).Round(time.Millisecond))
	for _, c := range mk.camps[:min(3, len(mk.camps))] {
		st, _ := corrected.CampaignStats(c.id)
		t.Logf("delay fit of %s: F(1h) %.3f (true %.3f), F(24h) %.3f (true %.3f), median %v, p90 %v, fitted %v on %d delays",
			c.id, st.DelayF1h, mixCDF(trueDelay, float64(mc.window), 3600), st.DelayF24h, mixCDF(trueDelay, float64(mc.window), 86400),
			st.DelayP50.Round(time.Minute), st.DelayP90.Round(time.Minute), st.DelayFitted, st.DelaySamples)
	}

	// By segment (leaf) age at T.
	segAges := []struct {
		name   string
		lo, hi int64
	}{{"<1d", 0, 86400}, {"1-3d", 86400, 3 * 86400}, {"3-7d", 3 * 86400, 7 * 86400}, {">=7d", 7 * 86400, math.MaxInt64}}
	type acc struct{ segs, n, k, exp, pc, pn float64 }
	seg := make([]acc, len(segAges))
	age := make([]acc, len(expAges))
	for _, s := range mk.order {
		c, _ := ec.Lookup(s.path[:])
		u, _ := en.Lookup(s.path[:])
		b := 0
		for T-s.first >= segAges[b].hi {
			b++
		}
		a := &seg[b]
		n := float64(s.n)
		a.segs++
		a.n += n
		a.k += float64(s.k)
		a.exp += n * s.p
		a.pc += n * c.CVR
		a.pn += n * u.CVR
		for i := range expAges {
			n := float64(s.byAge[i][0])
			x := &age[i]
			x.n += n
			x.k += float64(s.byAge[i][1])
			x.exp += n * s.p
			x.pc += n * c.CVR
			x.pn += n * u.CVR
		}
	}
	head := func(what string) {
		t.Logf("  %-8s %9s %10s %10s %10s %13s %13s %13s", what, "segments", "exposures", "expected", "realized", "corrected/exp", "corrected/real", "uncorrected/exp")
	}
	line := func(name string, a acc) {
		t.Logf("  %-8s %9.0f %10.0f %10.1f %10.0f %13.3f %13.3f %13.3f", name, a.segs, a.n, a.exp, a.k, a.pc/a.exp, a.pc/a.k, a.pn/a.exp)
	}
	t.Logf("predicted / actual eventual conversions of the exposures before T, by segment age (expected = Σ n·p, realized = drawn):")
	head("seg age")
	for i, b := range segAges {
		line(b.name, seg[i])
		if r := seg[i].pc / seg[i].exp; (r < 0.9 || r > 1.1) && !raceEnabled {
			t.Errorf("segments aged %s: corrected predicted/expected %.3f outside 0.9-1.1", b.name, r)
		}
	}
	t.Logf("by exposure age (all segments):")
	head("exp age")
	names := []string{"<1h", "1-6h", "6h-1d", "1-3d", "3-7d", ">=7d"}
	for i := range expAges {
		line(names[i], age[i])
	}
	if r := seg[0].pn / seg[0].exp; r >= 0.9 || r >= seg[0].pc/seg[0].exp {
		t.Errorf("segments opened in the last day: uncorrected predicted/expected %.3f, expected a low bias", r)
	}

	// Per campaign, at the root: the young campaigns are where the
	// uncorrected estimate is most biased.
	t.Logf("per campaign (root CVR / traffic-weighted true CVR of its exposures):")
	for i, c := range mk.camps {
		var n, np float64
		for _, s := range mk.order {
			if s.camp == i {
				n += float64(s.n)
				np += float64(s.n) * s.p
			}
		}
		rc, _ := ec.Campaign(c.id)
		rn, _ := en.Campaign(c.id)
		t.Logf("  %-7s opened %5.1f days before T: %8.0f exposures, corrected %.3f, uncorrected %.3f",
			c.id, float64(T-c.startAt)/86400, n, rc.CVR/(np/n), rn.CVR/(np/n))
	}
}

// bootRatio returns the 2.5% and 97.5% quantiles, over 2000 bootstrap
// resamples of xs (fixed seed), of Σa/Σb (its square root with sqrt) where
// a, b = f(x).
func bootRatio(xs []errAcc, f func(*errAcc) (float64, float64), sqrt bool) (lo, hi float64) {
	r := rand.New(rand.NewPCG(11, 12))
	rs := make([]float64, 2000)
	for i := range rs {
		var a, b float64
		for range xs {
			x := &xs[r.IntN(len(xs))]
			u, v := f(x)
			a += u
			b += v
		}
		rs[i] = a / b
		if sqrt {
			rs[i] = math.Sqrt(rs[i])
		}
	}
	sort.Float64s(rs)
	return rs[len(rs)/40], rs[len(rs)-1-len(rs)/40]
}
