package shading

import "math"

// Curve is a win-rate curve W(b) = 1/(1 + e^−(A + K·ln b)), b in CPM.
type Curve struct {
	A, K float64
}

// WinRate returns W(bid), the probability that a bid of bid CPM wins.
func (c Curve) WinRate(bid float64) float64 {
	if !(bid > 0) {
		return 0
	}
	return sigmoid(c.A + c.K*math.Log(bid))
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// MinShade is the least a shaded bid is of its value (bidder: bid_cpm ≥
// MinShade × bid_unshaded_cpm). A curve is fitted on the bids a campaign
// placed; far below them it is an extrapolation, and a flat one (a win
// rate that hardly depends on the bid, as when competition varies more
// between impressions than the bids do) puts the optimum there: in the
// simulation's first-price market a campaign shaded that far stopped
// winning, and its later outcomes, all losses at those bids, kept the
// curve where it was. 0.5 is the optimum of the reference's K = 1 curve
// (b/(c + b)) at a bid of the competition's median.
const MinShade = 0.5

// Shade returns the bid that maximizes the expected surplus (value − b)·W(b)
// for a bid worth value CPM. The first-order condition b = (value − b)·K·
// (1 − W(b)) is solved in u = ln b, where
//
//	h(u) = u − ln(value − e^u) − ln K + softplus(A + K·u)
//
// rises strictly from −∞ to +∞ on u < ln value (h' = 1 + b/(v−b) + K·W):
// Newton steps from b = value·K/(1+K), kept inside the bracket (bisection
// when a step leaves it), until a step moves b by less than 1e-5 of it
// (usually 3 to 6 steps; at most 40). It does not allocate.
func (c Curve) Shade(value float64) float64 {
	if !(value > 0) || !(c.K > 0) || math.IsInf(value, 0) {
		return value
	}
	lv, lk := math.Log(value), math.Log(c.K)
	lo, hi := lv-30, lv // h(lo) < 0 for any sane curve
	u := lv + lk - math.Log1p(c.K)
	for range 40 {
		b := math.Exp(u)
		z := c.A + c.K*u
		ez := math.Exp(-math.Abs(z))
		sp := math.Max(z, 0) + math.Log1p(ez) // softplus(z) = −ln(1 − W)
		w := 1 / (1 + ez)                     // sigmoid(|z|)
		if z < 0 {
			w = 1 - w
		}
		h := u - math.Log(value-b) - lk + sp
		if h > 0 {
			hi = u
		} else {
			lo = u
		}
		next := u - h/(1+b/(value-b)+c.K*w)
		if !(next > lo && next < hi) {
			next = 0.5 * (lo + hi)
		}
		if math.Abs(next-u) <= 1e-5 {
			return math.Exp(next)
		}
		u = next
	}
	return math.Exp(u)
}
