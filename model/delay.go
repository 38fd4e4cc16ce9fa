package model

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Delay model. F(τ) = P(delay ≤ τ | the exposure converts within the window
// W) is a mixture over a fixed grid of nComp exponential components whose
// means are W/4, W/12, ..., W/972 (for W = 7 days: 42 h, 14 h, 4.7 h, 93 min,
// 31 min, 10.4 min), each truncated to [0, W]:
//
//	F(τ) = Σ_j π_j (1 − e^{−λ_j τ}) / Z_j,  Z_j = 1 − e^{−λ_j W},  τ ≤ W
//	     = A − Σ_j b_j e^{−λ_j τ},          A = Σ_j π_j/Z_j, b_j = π_j/Z_j
//
// Only the weights π are learned, per (advertiser, event, window). Because
// the rates are fixed, a node can keep Σ_unconverted e^{−λ_j·age} as one
// decaying accumulator per component, and the read-time weights can change
// at every refit without touching the nodes.
//
// The accumulator form cannot switch an exposure off when its age passes W:
// an unconverted exposure older than the window counts A − Σ b_j e^{−λ_j a}
// instead of 1, an excess of at most A − 1 = Σ_j π_j e^{−λ_j W}/Z_j ≤
// π_slowest·e^{−4}/(1 − e^{−4}) ≈ 1.9%·π_slowest of its weight (≈ 0.9% when
// half the conversions are slow). Under the default 168 h half-life at most
// half of a node's decayed weight is older than a 7-day window, so n_eff is
// over-counted by well under 1% in steady state; a delay tail slower than
// W/4 is represented only approximately (the price of the fixed grid); on
// the synthetic market's delays (35% mean 15 min, 15% 8 h, 50% 1.75 days)
// the best fit on the grid is within 0.025 of the true F at every age
// (F(1 day) 0.69 for 0.714), however many delays are seen.
const (
	nComp      = 6
	slowestDiv = 4.0 // slowest component mean = W/slowestDiv
	compRatio  = 3.0 // successive component means differ by this factor (x_{j+1} = x_j³)
)

// grid holds the component rates of one window (per second).
type grid struct {
	w   float64 // window, seconds
	lam [nComp]float64
	z   [nComp]float64 // 1 − e^{−λ_j W}
}

func newGrid(windowSec float64) grid {
	g := grid{w: windowSec}
	l := slowestDiv / windowSec
	for j := range nComp {
		g.lam[j] = l
		g.z[j] = -math.Expm1(-l * windowSec)
		l *= compRatio
	}
	return g
}

// delayFit is an immutable set of mixture weights with the read-time
// constants derived from them.
type delayFit struct {
	pi      [nComp]float64
	a       float64        // A = Σ π_j / Z_j
	b       [nComp]float64 // b_j = π_j / Z_j
	fitted  bool           // learned from data (false: the default)
	samples int            // delays the fit used
	iters   int            // EM iterations
}

func newDelayFit(g *grid, pi [nComp]float64) *delayFit {
	f := &delayFit{pi: pi}
	for j := range nComp {
		f.b[j] = pi[j] / g.z[j]
		f.a += f.b[j]
	}
	return f
}

// cdf returns F(tau) (tau in seconds).
func (f *delayFit) cdf(g *grid, tau float64) float64 {
	if tau <= 0 {
		return 0
	}
	if tau >= g.w {
		return 1
	}
	v := f.a
	for j := range nComp {
		v -= f.b[j] * math.Exp(-g.lam[j]*tau)
	}
	return math.Min(math.Max(v, 0), 1)
}

// quantile returns F⁻¹(q) in seconds, by bisection.
func (f *delayFit) quantile(g *grid, q float64) float64 {
	lo, hi := 0.0, g.w
	for range 60 {
		mid := 0.5 * (lo + hi)
		if f.cdf(g, mid) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return 0.5 * (lo + hi)
}

// Reference delay shape used until enough delays are seen, after Chapelle
// (KDD 2014, Fig. 1: ~35% within an hour, ~50% within a day, a long tail):
// 35% with mean 15 min, 15% with mean 6 h, 50% with mean W/2, each truncated
// to the window. Its projection on the grid gives F(1 h) ≈ 0.35 and
// F(24 h) ≈ 0.67 at W = 7 days (the grid's slowest mean, W/4, caps how much
// of the tail can wait beyond a day).
var refDelay = [3][2]float64{{0.35, 900}, {0.15, 6 * 3600}, {0.50, -2}} // a negative mean is W/−mean

// defaultWeights projects the reference shape onto the grid of g: the EM
// fit (maximum likelihood) to 200 evenly spaced quantiles of it. It costs a
// few milliseconds; the model caches it per window.
func defaultWeights(g *grid) [nComp]float64 {
	refCDF := func(t float64) float64 {
		var v float64
		for _, c := range refDelay {
			mean := c[1]
			if mean < 0 {
				mean = g.w / -mean
			}
			v += c[0] * -math.Expm1(-t/mean) / -math.Expm1(-g.w/mean)
		}
		return v
	}
	const n = 200
	obs := make([]delayObs, n)
	for i := range obs {
		q := (float64(i) + 0.5) / n
		lo, hi := 0.0, g.w
		for range 60 {
			mid := 0.5 * (lo + hi)
			if refCDF(mid) < q {
				lo = mid
			} else {
				hi = mid
			}
		}
		obs[i] = delayObs{d: 0.5 * (lo + hi), tau: g.w, w: 1}
	}
	var uniform [nComp]float64
	for j := range uniform {
		uniform[j] = 1.0 / nComp
	}
	pi, _ := emWeights(g, obs, uniform, 0, 1000, nil)
	return pi
}

// delayObs is one credited conversion for the EM fit: delay d (seconds)
// observed because d ≤ tau = min(W, now − exposure time), with weight w.
type delayObs struct {
	d, tau, w float64
}

// emWeights fits the mixture weights to right-truncated delays by EM
// (maximum a posteriori with a Dirichlet prior of strength priorW centred on
// prior). An observation with horizon tau stands for itself plus the
// conversions that would have come later than tau: each E-step adds their
// expected component counts π_j (1 − G_j(tau)) / P(tau), where
// G_j(tau) = (1 − e^{−λ_j tau})/Z_j and P(tau) = Σ π_k G_k(tau). scratch,
// when long enough, is reused for the per-observation component terms.
func emWeights(g *grid, obs []delayObs, prior [nComp]float64, priorW float64, maxIter int, scratch []float64) ([nComp]float64, int) {
	return emWeightsFrom(g, obs, prior, prior, priorW, maxIter, scratch)
}

// emWeightsFrom is emWeights starting the iteration from start.
func emWeightsFrom(g *grid, obs []delayObs, start, prior [nComp]float64, priorW float64, maxIter int, scratch []float64) ([nComp]float64, int) {
	need := 2 * nComp * len(obs)
	if cap(scratch) < need {
		scratch = make([]float64, need)
	}
	gd := scratch[:nComp*len(obs)]       // truncated density of component j at d_i
	gt := scratch[nComp*len(obs) : need] // G_j(tau_i)
	var sumW float64
	for i, o := range obs {
		for j := range nComp {
			d := math.Min(o.d, g.w)
			gd[i*nComp+j] = g.lam[j] * math.Exp(-g.lam[j]*d) / g.z[j]
			gt[i*nComp+j] = -math.Expm1(-g.lam[j]*math.Min(o.tau, g.w)) / g.z[j]
		}
		sumW += o.w
	}
	pi := start
	if sumW == 0 {
		return pi, 0
	}
	it := 0
	for it = 1; it <= maxIter; it++ {
		var acc [nComp]float64
		for i, o := range obs {
			var q, p float64
			for j := range nComp {
				q += pi[j] * gd[i*nComp+j]
				p += pi[j] * gt[i*nComp+j]
			}
			if q <= 0 || p <= 0 {
				continue
			}
			for j := range nComp {
				acc[j] += o.w * pi[j] * (gd[i*nComp+j]/q + (1-gt[i*nComp+j])/p)
			}
		}
		var tot float64
		for j := range nComp {
			acc[j] += priorW * prior[j]
			tot += acc[j]
		}
		var change float64
		for j := range nComp {
			v := acc[j] / tot
			change = math.Max(change, math.Abs(v-pi[j]))
			pi[j] = v
		}
		if change < 1e-6 {
			break
		}
	}
	return pi, it
}

// delaySample is one credited conversion kept in a learner's reservoir.
type delaySample struct {
	exp, conv int64   // exposure and conversion times, Unix seconds
	w         float64 // credit weight
	key       float64 // sampling key (larger is kept)
}

// learner learns the delay weights of one (advertiser, event, window).
//
// Its reservoir keeps a weighted sample without replacement of every
// credited conversion (Efraimidis-Spirakis: the samples with the largest
// key = exp/recency + ln w + Gumbel noise), so a conversion's chance to be
// kept grows with its exposure time and credit weight but never depends on
// its delay: the only selection on the delay is the right truncation
// d ≤ min(W, now − exp) that emWeights models.
type learner struct {
	advertiser, event string
	g                 grid
	def               *delayFit // the default (reference) weights
	fit               atomic.Pointer[delayFit]

	mu      sync.Mutex
	heap    []delaySample // min-heap on key, len ≤ cap
	max     int
	rng     *rand.Rand
	pcg     *rand.PCG
	recency float64 // seconds per unit of key
	seen    uint64  // delays offered
	scratch []float64
	obs     []delayObs
}

type learnerKey struct {
	advertiser, event string
	window            int64
}

// newLearner makes the learner of k; def is the default fit of its window
// (newDelayFit(&g, defaultWeights(&g)), shared by learners of that window).
func newLearner(k learnerKey, def *delayFit, max int, recency float64) *learner {
	l := &learner{advertiser: k.advertiser, event: k.event, g: newGrid(float64(k.window)), max: max, recency: recency}
	l.def = def
	l.fit.Store(l.def)
	h := fnv64(k.advertiser) ^ fnv64(k.event)*31 ^ uint64(k.window)
	l.pcg = rand.NewPCG(h, h^0x9e3779b97f4a7c15)
	l.rng = rand.New(l.pcg)
	return l
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// add offers one credited delay to the reservoir.
func (l *learner) add(exp, conv int64, w float64) {
	if w <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen++
	u := l.rng.Float64()
	for u == 0 {
		u = l.rng.Float64()
	}
	key := float64(exp)/l.recency + math.Log(w) - math.Log(-math.Log(u))
	s := delaySample{exp: exp, conv: conv, w: w, key: key}
	if len(l.heap) < l.max {
		l.heap = append(l.heap, s)
		heapUp(l.heap, len(l.heap)-1)
		return
	}
	if key <= l.heap[0].key {
		return
	}
	l.heap[0] = s
	heapDown(l.heap, 0)
}

func heapUp(h []delaySample, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].key <= h[i].key {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func heapDown(h []delaySample, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].key < h[l].key {
			m = r
		}
		if h[i].key <= h[m].key {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// refit refits the weights from the reservoir at time now and publishes
// them; below minSamples delays the default stays.
func (l *learner) refit(now int64, minSamples int, priorW float64) {
	l.mu.Lock()
	l.obs = l.obs[:0]
	for _, s := range l.heap {
		d := float64(s.conv - s.exp)
		tau := math.Min(float64(now-s.exp), l.g.w)
		if d < 0 || d > l.g.w {
			continue
		}
		l.obs = append(l.obs, delayObs{d: d, tau: math.Max(tau, d), w: 1})
	}
	obs := l.obs
	l.mu.Unlock()
	// The EM runs outside the lock on l.obs, which only refit touches
	// (Refit calls are serialized by the model).
	if len(obs) < minSamples {
		l.fit.Store(l.def)
		return
	}
	if need := 2 * nComp * len(obs); cap(l.scratch) < need {
		l.scratch = make([]float64, need)
	}
	// The Dirichlet prior is centred on the default weights; the iteration
	// starts from the last fit, which converges in a few dozen iterations.
	pi, it := emWeightsFrom(&l.g, obs, l.fit.Load().pi, l.def.pi, priorW, 500, l.scratch)
	f := newDelayFit(&l.g, pi)
	f.fitted, f.samples, f.iters = true, len(obs), it
	l.fit.Store(f)
}
