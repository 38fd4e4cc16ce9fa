package shading

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cpafeed/cpafeed/binenc"
)

// TestShadeClosedForm: for W(b) = b/(c + b) (K = 1, A = −ln c) the optimum
// is √(c² + c·v) − c (the reference's b.7).
func TestShadeClosedForm(t *testing.T) {
	f := func(c, v float64) {
		t.Helper()
		got := Curve{A: -math.Log(c), K: 1}.Shade(v)
		want := math.Sqrt(c*c+c*v) - c
		if math.Abs(got-want) > 1e-5*want {
			t.Errorf("c %g, v %g: %g, want %g", c, v, got, want)
		}
	}
	f(18, 16)
	f(18, 200)
	f(1, 0.01)
	f(50, 5)
}

// TestShadeMaximizesSurplus: against a grid search of (v − b)·W(b).
func TestShadeMaximizesSurplus(t *testing.T) {
	for _, c := range []Curve{{A: -8, K: 3}, {A: -2.9 * 2.5, K: 2.5}, {A: -40, K: 14}, {A: 1, K: 0.5}} {
		for _, v := range []float64{2, 16, 40, 300} {
			b := c.Shade(v)
			best, bestB := 0.0, 0.0
			for i := 1; i <= 20000; i++ {
				x := v * float64(i) / 20000
				if s := (v - x) * c.WinRate(x); s > best {
					best, bestB = s, x
				}
			}
			if got := (v - b) * c.WinRate(b); got < best*(1-1e-6) || !(b > 0 && b <= v) {
				t.Errorf("%+v, v %g: shaded %g earns %g, the grid's %g at %g", c, v, b, got, best, bestB)
			}
		}
	}
	if got := (Curve{A: -8, K: 3}).Shade(0); got != 0 {
		t.Errorf("Shade(0) = %g", got)
	}
	if a := testing.AllocsPerRun(100, func() { Curve{A: -8, K: 3}.Shade(16) }); a != 0 {
		t.Errorf("Shade allocates %g", a)
	}
}

// market draws the highest competing bid of a cut: lognormal.
type market struct{ mu, sigma float64 }

func (m market) winRate(b float64) float64 {
	return 0.5 * math.Erfc(-(math.Log(b)-m.mu)/(m.sigma*math.Sqrt2))
}

// observe plays n bids spread log-uniformly over [lo, hi] CPM against m.
func observe(b *Book, campaign, cut uint64, m market, n int, lo, hi float64, r *rand.Rand, ts int64) {
	for range n {
		bid := lo * math.Exp(r.Float64()*math.Log(hi/lo))
		comp := math.Exp(m.mu + m.sigma*r.NormFloat64())
		b.Observe(campaign, cut, bid, bid > comp, ts)
	}
}

// TestBookKnownTruth: on a lognormal competition (median 18 CPM, σ 0.5,
// the synthetic market's), the fitted curve is within 0.04 of the true
// win rate over the bids seen, and the shaded bid earns at least 97 % of
// the best surplus the true curve allows (the log-logistic curve is not
// the lognormal truth: its tails differ).
func TestBookKnownTruth(t *testing.T) {
	m := market{mu: 2.9, sigma: 0.5}
	b := NewBook(Config{})
	r := rand.New(rand.NewPCG(1, 2))
	const ts = 1_750_000_000
	observe(b, 1, 11, m, 20000, 5, 60, r, ts)
	cv := b.Refit(ts)
	c, ok := cv.Lookup(1, 11)
	if !ok {
		t.Fatal("no curve")
	}
	for bid := 5.0; bid <= 60; bid *= 1.2 {
		if d := math.Abs(c.WinRate(bid) - m.winRate(bid)); d > 0.04 {
			t.Errorf("bid %.1f: fitted win rate %.3f, true %.3f", bid, c.WinRate(bid), m.winRate(bid))
		}
	}
	for _, v := range []float64{10, 16, 30, 60} {
		shaded := c.Shade(v)
		got := (v - shaded) * m.winRate(shaded)
		var best float64
		for x := 0.01; x < v; x += v / 5000 {
			best = math.Max(best, (v-x)*m.winRate(x))
		}
		if got < 0.97*best {
			t.Errorf("v %g: shaded bid %.2f earns %.4f of the best %.4f", v, shaded, got, best)
		}
		if v == 16 {
			truthful := 0.0 // first price at the value earns nothing: (v − v)·W
			t.Logf("v 16: shaded to %.2f (%.0f %%), surplus %.3f (truthful %g), win rate %.2f", shaded, 100*shaded/v, got, truthful, m.winRate(shaded))
		}
	}
}

// TestBookCuts: a cut with its own competition and many outcomes gets its
// own curve; one with a handful stays with its campaign's.
func TestBookCuts(t *testing.T) {
	b := NewBook(Config{})
	r := rand.New(rand.NewPCG(3, 4))
	const ts = 1_750_000_000
	observe(b, 1, 11, market{2.9, 0.5}, 5000, 5, 60, r, ts)
	observe(b, 1, 12, market{2.2, 0.4}, 5000, 3, 30, r, ts) // cheaper
	observe(b, 1, 13, market{3.5, 0.4}, 10, 3, 30, r, ts)   // dearer, but seen ten times
	cv := b.Refit(ts)
	c11, _ := cv.Lookup(1, 11)
	c12, _ := cv.Lookup(1, 12)
	if !(c12.WinRate(10) > c11.WinRate(10)+0.2) {
		t.Errorf("cheap cut wins %.2f at 10 CPM, dear %.2f", c12.WinRate(10), c11.WinRate(10))
	}
	c13, ok13 := cv.Lookup(1, 13)
	camp, _ := cv.Lookup(1, 0)
	if !ok13 || c13 != camp {
		t.Errorf("a cut of 10 outcomes has its own curve %+v (campaign's %+v)", c13, camp)
	}
	if _, ok := cv.Lookup(2, 21); ok {
		t.Error("a campaign without outcomes has a curve")
	}
}

func TestBookMinOutcomes(t *testing.T) {
	b := NewBook(Config{})
	r := rand.New(rand.NewPCG(5, 6))
	observe(b, 1, 11, market{2.9, 0.5}, 60, 5, 60, r, 1000) // about 30 wins, 30 losses
	if _, ok := b.Refit(1000).Lookup(1, 11); ok {
		t.Error("shading with fewer outcomes than min_wins and min_losses")
	}
	// Decay: a week later they weigh 2^−(168/72).
	observe(b, 1, 11, market{2.9, 0.5}, 400, 5, 60, r, 1000)
	if _, ok := b.Refit(1000).Lookup(1, 11); !ok {
		t.Fatal("no curve with 460 outcomes")
	}
	if _, ok := b.Refit(1000+7*86400).Lookup(1, 11); ok {
		t.Error("outcomes of a week ago weigh as much as today's")
	}
}

func TestBookSnapshot(t *testing.T) {
	b := NewBook(Config{})
	r := rand.New(rand.NewPCG(7, 8))
	observe(b, 1, 11, market{2.9, 0.5}, 3000, 5, 60, r, 1000)
	observe(b, 1, 12, market{2.2, 0.4}, 3000, 3, 30, r, 2000)
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	b.WriteSnapshot(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	n := NewBook(Config{})
	if err := n.ReadSnapshot(binenc.NewReader(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want, got := b.Refit(3000), n.Refit(3000)
	if want.Len() != got.Len() || want.Len() != 3 {
		t.Fatalf("%d curves restored, %d live (want 3)", got.Len(), want.Len())
	}
	want.Each(func(_, k uint64, c Curve) {
		if g, ok := got.get(k); !ok || g != c {
			t.Errorf("key %d: restored %+v, live %+v", k, g, c)
		}
	})
	if _, err := NewCurves([]uint64{1}, []uint64{1}, []Curve{{A: 1, K: 0}}); err == nil {
		t.Error("NewCurves accepted K 0")
	}
}

func BenchmarkShade(b *testing.B) {
	c := Curve{A: -2.9 * 2.5, K: 2.5}
	b.ReportAllocs()
	v := 16.0
	for b.Loop() {
		v = 16 + c.Shade(v)*1e-9
	}
}

// TestBookLost: a campaign's lost bids over all its cuts, decayed by the
// half-life; wins are not counted, nor another campaign's losses.
func TestBookLost(t *testing.T) {
	b := NewBook(Config{})
	t0 := int64(1_750_000_000)
	for i := range 10 {
		b.Observe(1, uint64(i%3), 5+float64(i), false, t0)
		b.Observe(1, 7, 20, true, t0)
	}
	b.Observe(2, 0, 5, false, t0)
	got := b.Lost(t0)
	if got[1] != 10 || got[2] != 1 || len(got) != 2 {
		t.Fatalf("lost %v, want 10 for campaign 1 and 1 for 2", got)
	}
	half := t0 + int64(b.cfg.HalfLife.Seconds())
	if l := b.Lost(half)[1]; math.Abs(l-5) > 1e-9 {
		t.Fatalf("one half-life later: %g lost, want 5", l)
	}
}
