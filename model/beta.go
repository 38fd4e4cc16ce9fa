package model

import (
	"math"
	"math/rand/v2"
)

// This file holds the Beta-distribution numerics the model needs: the
// regularized incomplete beta function I_x(a, b), its inverse (posterior
// quantiles, computed at Refresh, never on the bid path) and a Beta sampler
// for Thompson sampling (on the bid path: no allocation).
//
// Written here rather than imported (gonum's mathext has InvRegIncBeta) to
// keep the module's dependency list short; accuracy is checked against
// closed forms and numeric integration in beta_test.go.

// lbeta returns ln B(a, b) = lnΓ(a) + lnΓ(b) − lnΓ(a+b). When one shape is
// large, lnΓ(a+b) − lnΓ(b) is taken from the Stirling series rather than as a
// difference of two huge numbers (at b = 1e9 the plain difference loses six
// digits).
func lbeta(a, b float64) float64 {
	if a > b {
		a, b = b, a
	}
	la, _ := math.Lgamma(a)
	if b < 100 {
		lb, _ := math.Lgamma(b)
		lab, _ := math.Lgamma(a + b)
		return la + lb - lab
	}
	// lnΓ(z) = (z−½)ln z − z + ½ln 2π + Σ B_2k/(2k(2k−1)z^(2k−1)); the
	// difference at z = a+b and z = b, rearranged to avoid cancellation.
	ab := a + b
	d := (b-0.5)*math.Log1p(a/b) + a*math.Log(ab) - a
	d += stirlingTail(ab) - stirlingTail(b)
	return la - d
}

// stirlingTail is the series part of Stirling's formula for lnΓ(z), z ≥ 100:
// 1/(12z) − 1/(360z³) + 1/(1260z⁵) (next term below 1e-17).
func stirlingTail(z float64) float64 {
	r := 1 / z
	r2 := r * r
	return r * (1.0/12 - r2*(1.0/360-r2/1260))
}

// regIncBeta returns the regularized incomplete beta function I_x(a, b) for
// a, b > 0 and x in [0, 1].
func regIncBeta(a, b, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	return regIncBetaL(a, b, x, lbeta(a, b))
}

// regIncBetaL is regIncBeta with ln B(a, b) precomputed.
func regIncBetaL(a, b, x, lnB float64) float64 {
	cdf, _ := betaCDFPDF(a, b, x, lnB)
	return cdf
}

// betaCDFPDF returns I_x(a, b) and the Beta(a, b) density at x in (0, 1),
// given lnB = ln B(a, b): the front factor x^a (1−x)^b / B(a, b) times the
// continued fraction in the half where it converges fast, the symmetry
// relation otherwise.
func betaCDFPDF(a, b, x, lnB float64) (cdf, pdf float64) {
	front := math.Exp(a*math.Log(x) + b*math.Log1p(-x) - lnB)
	pdf = front / (x * (1 - x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a, pdf
	}
	return 1 - front*betaCF(b, a, 1-x)/b, pdf
}

// betaCF evaluates the continued fraction of I_x(a, b) by the modified
// Lentz method (the even/odd recurrences of Abramowitz & Stegun 26.5.8).
func betaCF(a, b, x float64) float64 {
	const (
		maxIter = 10000
		eps     = 1e-14
		tiny    = 1e-300
	)
	qab, qap, qam := a+b, a+1, a-1
	c := 1.0
	d := 1 - qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// betaQuantile returns x with I_x(a, b) = q: the q-quantile of Beta(a, b),
// for a, b > 0 and q in (0, 1). Relative accuracy is about 1e-9.
func betaQuantile(a, b, q float64) float64 {
	if q <= 0 {
		return 0
	}
	if q >= 1 {
		return 1
	}
	if a > 2000 && b > 2000 {
		return betaQuantileLarge(a, b, q)
	}
	lnB := lbeta(a, b)
	return betaQuantileFrom(a, b, q, betaQuantileGuess(a, b, q, lnB), lnB)
}

// betaQuantileFrom refines a guess x of the q-quantile of Beta(a, b) by
// Halley's method on I_x(a, b) − q, bracketed so that a wild step can never
// leave (lo, hi). Halley's method converges cubically: once a step is below
// 1e-3 of min(x, 1−x), the point it lands on is within ~1e-9 (relative), so
// a guess within 0.1% costs one evaluation of I_x. lnB = ln B(a, b).
func betaQuantileFrom(a, b, q, x, lnB float64) float64 {
	lo, hi := 0.0, 1.0
	a1, b1 := a-1, b-1
	for i := 0; i < 60; i++ {
		if x <= lo || x >= hi {
			x = 0.5 * (lo + hi)
		}
		cdf, dens := betaCDFPDF(a, b, x, lnB)
		f := cdf - q
		if f < 0 {
			lo = x
		} else {
			hi = x
		}
		if dens == 0 || math.IsInf(dens, 0) || math.IsNaN(dens) {
			x = 0.5 * (lo + hi)
			continue
		}
		u := f / dens
		corr := u * (a1/x - b1/(1-x))
		step := u / (1 - 0.5*math.Min(1, corr))
		if !(corr < 1) { // plain Newton when Halley's denominator is unsafe
			step = u
		}
		nx := x - step
		if math.Abs(step) <= 1e-3*math.Min(x, 1-x) || f == 0 {
			return nx
		}
		if nx <= lo || nx >= hi {
			nx = 0.5 * (lo + hi) // the step left the bracket: bisect
		}
		if hi-lo <= 1e-12*hi {
			return nx
		}
		x = nx
	}
	return x
}

// qmemo remembers recent intervals by alpha, to start the next interval
// with the same alpha (every node of a level without conversions has
// alpha = the level's strength) close to the answer: for b ≫ a the
// quantiles of Beta(a, b) scale as 1/(a+b), to within O(a/b²).
type qmemo [64]struct{ a, b, lo, hi float64 }

// betaInterval returns the q[0] and q[1] quantiles of Beta(a, b), using and
// updating memo.
func betaInterval(a, b float64, q [2]float64, memo *qmemo) (lo, hi float64) {
	if a > 2000 && b > 2000 {
		return betaQuantileLarge(a, b, q[0]), betaQuantileLarge(a, b, q[1])
	}
	lnB := lbeta(a, b)
	bits := math.Float64bits(a)
	me := &memo[(bits^bits>>29^bits>>47)&63]
	var g0, g1 float64
	if me.a == a && me.b > 0 && b > 4*a {
		r := (a + me.b) / (a + b)
		g0, g1 = me.lo*r, me.hi*r
	} else {
		g0, g1 = betaQuantileGuess(a, b, q[0], lnB), betaQuantileGuess(a, b, q[1], lnB)
	}
	lo = betaQuantileFrom(a, b, q[0], g0, lnB)
	hi = betaQuantileFrom(a, b, q[1], g1, lnB)
	me.a, me.b, me.lo, me.hi = a, b, lo, hi
	return lo, hi
}

// betaQuantileGuess is a starting point for the Halley iteration: the
// Abramowitz & Stegun 26.5.22 normal approximation when both shapes exceed
// one, the power-law tails of the density otherwise.
func betaQuantileGuess(a, b, q, lnB float64) float64 {
	if a >= 1 && b >= 1 {
		z := -normalQuantile(q) // A&S use the upper-tail deviate
		lam := (z*z - 3) / 6
		h := 2 / (1/(2*a-1) + 1/(2*b-1))
		w := z*math.Sqrt(h+lam)/h - (1/(2*b-1)-1/(2*a-1))*(lam+5.0/6-2/(3*h))
		return a / (a + b*math.Exp(2*w))
	}
	// I_x ≈ x^a/(a B) near 0 and 1 − (1−x)^b/(b B) near 1.
	lna := math.Log(a / (a + b))
	lnb := math.Log(b / (a + b))
	t := math.Exp(a*lna-lnB) / a
	u := math.Exp(b*lnb-lnB) / b
	w := t + u
	if q < t/w {
		return math.Exp((math.Log(q) + math.Log(a) + lnB) / a)
	}
	return -math.Expm1((math.Log1p(-q) + math.Log(b) + lnB) / b)
}

// betaQuantileLarge approximates the quantile of Beta(a, b) for large a and
// b by the Cornish-Fisher expansion with skewness: at a, b > 2000 its
// relative error is below 1e-5.
func betaQuantileLarge(a, b, q float64) float64 {
	s := a + b
	mean := a / s
	sd := math.Sqrt(a * b / (s * s * (s + 1)))
	skew := 2 * (b - a) * math.Sqrt(s+1) / ((s + 2) * math.Sqrt(a*b))
	z := normalQuantile(q)
	z += (z*z - 1) * skew / 6
	x := mean + z*sd
	return math.Min(math.Max(x, 0), 1)
}

// normalQuantile returns the q-quantile of the standard normal distribution.
func normalQuantile(q float64) float64 {
	return -math.Sqrt2 * math.Erfcinv(2*q)
}

// SampleBeta draws from Beta(alpha, beta) with r, for Thompson sampling: bid
// with a draw from an Estimate's posterior, SampleBeta(e.Alpha, e.Beta, r).
// It does not allocate. alpha and beta must be > 0; otherwise it returns
// alpha/(alpha+beta) clamped to [0, 1] (0 for 0/0).
func SampleBeta(alpha, beta float64, r *rand.Rand) float64 {
	if !(alpha > 0) || !(beta > 0) || math.IsInf(alpha, 0) || math.IsInf(beta, 0) {
		if !(alpha+beta > 0) {
			return 0
		}
		return math.Min(math.Max(alpha/(alpha+beta), 0), 1)
	}
	// X/(X+Y) with X ~ Gamma(alpha), Y ~ Gamma(beta), in logs so that tiny
	// shapes (whose draws underflow) still give the right answer.
	lx := logGamma(alpha, r)
	ly := logGamma(beta, r)
	return 1 / (1 + math.Exp(ly-lx))
}

// logGamma returns the logarithm of a Gamma(shape, 1) draw (Marsaglia and
// Tsang 2000; shapes below one are boosted by U^(1/shape)).
func logGamma(shape float64, r *rand.Rand) float64 {
	boost := 0.0
	if shape < 1 {
		u := r.Float64()
		for u == 0 {
			u = r.Float64()
		}
		boost = math.Log(u) / shape
		shape++
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x {
			return math.Log(d*v) + boost
		}
		if u > 0 && math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return math.Log(d*v) + boost
		}
	}
}
