package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// trueDelay is the delay mixture of the synthetic market: 35% mean 15 min,
// 15% mean 8 h, 50% mean 1.75 days, each truncated to the window.
var trueDelay = [3][2]float64{{0.35, 900}, {0.15, 8 * 3600}, {0.50, 1.75 * 86400}}

func mixCDF(mix [3][2]float64, w, t float64) float64 {
	if t >= w {
		return 1
	}
	var v float64
	for _, c := range mix {
		v += c[0] * -math.Expm1(-t/c[1]) / -math.Expm1(-w/c[1])
	}
	return v
}

// drawDelay draws from mix truncated to w.
func drawDelay(r *rand.Rand, mix [3][2]float64, w float64) float64 {
	u := r.Float64()
	for _, c := range mix {
		if u < c[0] {
			z := -math.Expm1(-w / c[1])
			return -c[1] * math.Log1p(-r.Float64()*z)
		}
		u -= c[0]
	}
	return 0
}

func TestDefaultDelayShape(t *testing.T) {
	g := newGrid(7 * 86400)
	f := newDelayFit(&g, defaultWeights(&g))
	f1h, f24h := f.cdf(&g, 3600), f.cdf(&g, 86400)
	t.Logf("default F(1h)=%.3f F(24h)=%.3f F(W/2)=%.3f weights=%.3f", f1h, f24h, f.cdf(&g, g.w/2), f.pi)
	if f1h < 0.3 || f1h > 0.42 || f24h < 0.5 || f24h > 0.7 {
		t.Fatalf("default shape F(1h)=%.3f F(24h)=%.3f, want ≈0.35 and ≈0.5", f1h, f24h)
	}
	if excess := f.a - 1; excess > 0.0187*f.pi[0] {
		t.Fatalf("truncation excess A−1 = %g", excess)
	}
}

func TestLearnerRecoversDelay(t *testing.T) {
	const w = 7 * 86400
	r := rand.New(rand.NewPCG(7, 7))
	g := newGrid(w)
	l := newLearner(learnerKey{"adv", "Purchase", w}, newDelayFit(&g, defaultWeights(&g)), 4096, 7*86400)
	now := int64(1_700_000_000)
	start := now - 21*86400
	// 200k conversions of exposures spread over three weeks; only those
	// whose conversion has happened by now are observed.
	for i := 0; i < 200000; i++ {
		exp := start + int64(r.Float64()*float64(now-start))
		d := drawDelay(r, trueDelay, w)
		if conv := exp + int64(d); conv <= now {
			l.add(exp, conv, 1)
		}
	}
	l.refit(now, 100, 20)
	f := l.fit.Load()
	if !f.fitted {
		t.Fatal("not fitted")
	}
	for _, tau := range []float64{600, 3600, 6 * 3600, 86400, 3 * 86400, 5 * 86400} {
		got, want := f.cdf(&l.g, tau), mixCDF(trueDelay, w, tau)
		t.Logf("F(%6.0fs) fitted %.3f true %.3f", tau, got, want)
		if math.Abs(got-want) > 0.03 {
			t.Errorf("F(%gs) = %.3f, true %.3f", tau, got, want)
		}
	}
	t.Logf("EM iterations %d on %d samples", f.iters, f.samples)
	// Ignoring the truncation (every horizon = W) must be visibly worse on
	// the long tail: that is what the censoring term is for.
	var obs []delayObs
	for _, s := range l.heap {
		obs = append(obs, delayObs{d: float64(s.conv - s.exp), tau: w, w: 1})
	}
	naive, _ := emWeights(&l.g, obs, l.def.pi, 20, 500, nil)
	nf := newDelayFit(&l.g, naive)
	t.Logf("without censoring: F(1d) %.3f (true %.3f)", nf.cdf(&l.g, 86400), mixCDF(trueDelay, w, 86400))
}
