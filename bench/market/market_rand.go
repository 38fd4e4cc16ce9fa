package market

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// The generator draws from two kinds of randomness, both derived from the
// scenario seed:
//   - sequential math/rand/v2 PCG streams for what is generated in order
//     (inventory, households, a day's opportunities);
//   - stateless hashes (splitmix64 of the seed and a position) for anything a
//     caller may ask for in any order or several times: the truth of a
//     segment node, the outcome of an impression. They give every strategy of
//     a simulation the same outcome for the same impression.

// mix64 is the splitmix64 finalizer, a bijection on uint64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hash3 combines a seed, a domain tag and a value into 64 random bits.
func hash3(seed, tag, v uint64) uint64 {
	return mix64(mix64(seed^tag*0x9e3779b97f4a7c15) + v*0xd1342543de82ef95 + 0x2545f4914f6cdd1d)
}

// splitmix is a tiny stateless-seeded stream for hashed draws.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// float returns a uniform float64 in [0, 1).
func (r *splitmix) float() float64 { return unitFloat(r.next()) }

// unitFloat maps 64 random bits to [0, 1).
func unitFloat(u uint64) float64 { return float64(u>>11) * (1.0 / (1 << 53)) }

// normalFromBits turns two 64-bit random words into a standard normal draw
// (Box-Muller).
func normalFromBits(a, b uint64) float64 {
	u1 := (float64(a>>11) + 0.5) * (1.0 / (1 << 53))
	u2 := float64(b>>11) * (1.0 / (1 << 53))
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// hashNormal is a standard normal draw determined by (seed, tag, v).
func hashNormal(seed, tag, v uint64) float64 {
	h := hash3(seed, tag, v)
	return normalFromBits(h, mix64(h^0x5851f42d4c957f2d))
}

// alias is Vose's alias table: O(1) draws from a discrete distribution.
type alias struct {
	prob  []float64
	alias []int32
}

func newAlias(w []float64) alias {
	n := len(w)
	a := alias{prob: make([]float64, n), alias: make([]int32, n)}
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	scaled := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, x := range w {
		scaled[i] = x * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s] = scaled[s]
		a.alias[s] = l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, l := range large {
		a.prob[l] = 1
		a.alias[l] = l
	}
	for _, s := range small {
		a.prob[s] = 1
		a.alias[s] = s
	}
	return a
}

// draw picks an index with one 64-bit random word.
func (a *alias) draw(u uint64) int {
	hi, lo := bits.Mul64(u, uint64(len(a.prob)))
	i := int(hi)
	if unitFloat(lo) < a.prob[i] {
		return i
	}
	return int(a.alias[i])
}

func (a *alias) drawRand(r *rand.Rand) int { return a.draw(r.Uint64()) }

// zipfWeights are k^-s for k = 1..n.
func zipfWeights(n int, s float64) []float64 {
	w := make([]float64, n)
	for k := range w {
		w[k] = math.Pow(float64(k+1), -s)
	}
	return w
}

// drawExpMixture draws one delay (seconds) from a mixture of exponentials,
// redrawing anything above max (0 = no limit).
func drawExpMixture(r *splitmix, comp *alias, means []float64, max float64) float64 {
	for range 64 {
		i := comp.draw(r.next())
		d := -means[i] * math.Log(1-r.float())
		if max <= 0 || d <= max {
			return d
		}
	}
	return max
}

// poisson draws a Poisson count with mean lambda.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 64 {
		n := int(math.Round(lambda + math.Sqrt(lambda)*r.NormFloat64()))
		return max(n, 0)
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
