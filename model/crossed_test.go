package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// crossedConfig is a crossed model over genre and metro, without decay.
func crossedConfig() Config {
	return Config{HalfLife: -1, Structure: StructureCrossed, Effects: [][]string{{"genre"}, {"metro"}}}
}

// cellOf fills a Cell with values (the dimensions in order).
func cellOf(values ...string) *Cell {
	var c Cell
	c.Reset(len(values))
	for d, v := range values {
		c.SetValue(d, []byte(v))
	}
	return &c
}

// TestCrossedRecoversEffects streams a truth where genre and metro act
// multiplicatively (Sports ×2 over News, metro 501 ×1.5 over 502) through
// Expose and Credit, and checks the fitted multipliers, the cell
// estimates (also of a cell never seen), the evidence fields and the
// reports.
func TestCrossedRecoversEffects(t *testing.T) {
	m := New(crossedConfig(), testCampaigns())
	r := rand.New(rand.NewPCG(3, 4))
	genres := map[string]float64{"Sports": 2, "News": 1}
	metros := map[string]float64{"501": 1.5, "502": 1, "503": 1}
	const base = 0.01
	n := map[[2]string]int{}
	for i := range 200_000 {
		g, mt := "Sports", "501"
		if r.IntN(2) == 0 {
			g = "News"
		}
		switch r.IntN(3) {
		case 1:
			mt = "502"
		case 2:
			mt = "503"
		}
		if g == "Sports" && mt == "503" {
			continue // a cell never seen
		}
		n[[2]string{g, mt}]++
		path, labels := testPath("demo-ctv-purchase", g, mt)
		ts := t0 + int64(i)
		m.Expose(ts, path, labels, 0.01)
		if r.Float64() < base*genres[g]*metros[mt] {
			m.Credit(ts, ts+60, path[2], 1)
		}
	}
	e := m.Refit(t0 + 30*86400)
	if !e.Crossed() {
		t.Fatal("not a crossed table")
	}
	mult := map[string]float64{}
	for _, key := range e.EffectKeys() {
		s, ok := e.Effects("demo-ctv-purchase", key, func(ef Effect) bool {
			mult[key+"="+string(ef.Value)] = ef.Multiplier
			if !(ef.Lo < ef.Multiplier && ef.Multiplier < ef.Hi) || ef.NEff <= 0 || ef.Conversions <= 0 {
				t.Errorf("%s=%s: %+v", key, ef.Value, ef)
			}
			return true
		})
		if !ok || !(s > 0) {
			t.Fatalf("Effects(%s) = %g, %v", key, s, ok)
		}
	}
	ratio := func(a, b string, want float64) {
		t.Helper()
		if got := mult[a] / mult[b]; math.Abs(math.Log(got/want)) > 0.15 {
			t.Errorf("%s / %s = %.3f, want %.3f", a, b, got, want)
		}
	}
	ratio("genre=Sports", "genre=News", 2)
	ratio("metro=501", "metro=502", 1.5)
	ratio("metro=503", "metro=502", 1)
	root := RootKey("demo-ctv-purchase")
	cell := func(g, mt string) Estimate {
		t.Helper()
		est, ok := e.LookupCell(root, cellOf(g, mt))
		if !ok {
			t.Fatalf("LookupCell(%s, %s) failed", g, mt)
		}
		return est
	}
	for _, g := range []string{"Sports", "News"} {
		for _, mt := range []string{"501", "502", "503"} {
			est := cell(g, mt)
			want := base * genres[g] * metros[mt]
			if math.Abs(math.Log(est.CVR/want)) > 0.15 || !(est.Lo < est.CVR && est.CVR < est.Hi) || est.Level != 2 {
				t.Errorf("cell %s/%s: %+v, want CVR %.4f", g, mt, est, want)
			}
			path, _ := testPath("demo-ctv-purchase", g, mt)
			if est.Key != path[2] {
				t.Errorf("cell %s/%s: key %x, want the path's leaf %x", g, mt, est.Key, path[2])
			}
		}
	}
	// Sports/503 was never seen, and is estimated from its two effects.
	if est := cell("Sports", "503"); est.NEff <= 0 {
		t.Errorf("unseen cell: evidence %+v", est)
	}
	// A genre never seen: one table knows the cell; the genre prior widens
	// the interval.
	known, unknown := cell("News", "501"), cell("Cartoons", "501")
	if unknown.Level != 1 || !(unknown.LogSD > known.LogSD) {
		t.Errorf("unknown genre: level %d sd %.3f (known: sd %.3f)", unknown.Level, unknown.LogSD, known.LogSD)
	}
	// The campaign's average is the traffic-weighted fitted CVR.
	var sn, sp float64
	for c, k := range n {
		sn += float64(k)
		sp += float64(k) * base * genres[c[0]] * metros[c[1]]
	}
	if avg, _ := e.CampaignCVR("demo-ctv-purchase"); math.Abs(avg/(sp/sn)-1) > 0.05 {
		t.Errorf("campaign CVR %.5f, want %.5f", avg, sp/sn)
	}
	// Segments: the root, then the levels of each table, named after it.
	var names []string
	e.Segments("demo-ctv-purchase", -1, func(x Estimate) bool {
		names = append(names, string(e.Name(x.Key, nil)))
		return true
	})
	want := []string{"demo-ctv-purchase", "demo-ctv-purchase/genre=Sports", "demo-ctv-purchase/genre=News",
		"demo-ctv-purchase/metro=501", "demo-ctv-purchase/metro=502", "demo-ctv-purchase/metro=503"}
	if len(names) != len(want) {
		t.Fatalf("segments %q, want %q", names, want)
	}
	for _, w := range want {
		found := false
		for _, n := range names {
			found = found || n == w
		}
		if !found {
			t.Errorf("segment %q missing from %q", w, names)
		}
	}
	// Thompson draws average to about the mean.
	est := cell("Sports", "501")
	var s float64
	for range 20000 {
		s += est.Sample(r)
	}
	if math.Abs(s/20000/est.CVR-1) > 0.02 {
		t.Errorf("draws average %.5f, CVR %.5f", s/20000, est.CVR)
	}
}

// TestCrossedNoEffect: a table whose feature does not change the CVR gets
// a large fitted strength and multipliers near 1.
func TestCrossedNoEffect(t *testing.T) {
	cfg := crossedConfig()
	cfg.MinSiblings = 5
	m := New(cfg, testCampaigns())
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 300_000 {
		g := string(rune('A' + r.IntN(4)))
		mt := string(rune('a' + r.IntN(30)))
		path, labels := testPath("demo-ctv-purchase", g, mt)
		ts := t0 + int64(i)
		m.Expose(ts, path, labels, 0.01)
		p := 0.01
		if g == "A" {
			p = 0.02
		}
		if r.Float64() < p {
			m.Credit(ts, ts+60, path[2], 1)
		}
	}
	e := m.Refit(t0 + 30*86400)
	st, _ := m.CampaignStats("demo-ctv-purchase")
	if !(st.Strengths[2] > 10*st.Strengths[1]) {
		t.Errorf("strengths genre %.3g, metro %.3g: want metro (no effect) far above genre", st.Strengths[1], st.Strengths[2])
	}
	// The metros' multipliers spread much less than their raw rates.
	var sm, sr, n float64
	e.Effects("demo-ctv-purchase", "metro", func(ef Effect) bool {
		raw := ef.Conversions / ef.NEff / 0.0125 // the average CVR: (0.02 + 3×0.01)/4
		sm += math.Log(ef.Multiplier) * math.Log(ef.Multiplier)
		sr += math.Log(raw) * math.Log(raw)
		n++
		return true
	})
	if n != 30 || !(math.Sqrt(sm/n) < 0.5*math.Sqrt(sr/n)) {
		t.Errorf("%g metros: log-sd of multipliers %.3f, of raw rates %.3f", n, math.Sqrt(sm/n), math.Sqrt(sr/n))
	}
}

// TestCrossedForeignPath: an exposure whose path does not have the
// dimensions' depth (a journal written under another configuration) is
// counted in the campaign's base, and its conversions are credited.
func TestCrossedForeignPath(t *testing.T) {
	m := New(crossedConfig(), testCampaigns())
	path, labels := testPath("demo-ctv-purchase", "pub-1", "bundle", "Sports", "501")
	for i := range 10000 {
		m.Expose(t0+int64(i), path, labels, 0.01)
	}
	for i := range 200 {
		if !m.Credit(t0+int64(i), t0+int64(i)+60, path[4], 1) {
			t.Fatal("credit of a foreign cell refused")
		}
	}
	e := m.Refresh(t0 + 30*86400)
	root, _ := e.Campaign("demo-ctv-purchase")
	// The base's prior (2 conversions at 0.002) weighs a tenth of the data.
	if root.Exposures != 10000 || root.Conversions != 200 || math.Abs(root.CVR/0.0182-1) > 0.01 {
		t.Fatalf("root %+v", root)
	}
	if n := len(e.ents); n != 2 { // the two roots, no effect level
		t.Fatalf("%d entries", n)
	}
	est, ok := e.LookupCell(RootKey("demo-ctv-purchase"), cellOf("Sports", "501"))
	if !ok || est.Level != 0 || math.Abs(est.CVR/0.0182-1) > 0.01 {
		t.Fatalf("LookupCell = %+v, %v", est, ok)
	}
}

// TestCrossedSharedEffects: with shared effects, a campaign with little
// data borrows its advertiser's other campaign's effect of a value, even
// of a value it never saw (its table holds the value with the sibling's
// multiplier and no evidence of its own).
func TestCrossedSharedEffects(t *testing.T) {
	genres := map[string]float64{"Sports": 2, "News": 1, "Drama": 0.5}
	run := func(shared bool) *Estimates {
		cfg := Config{HalfLife: -1, Structure: StructureCrossed, Effects: [][]string{{"genre"}}, SharedEffects: shared}
		m := New(cfg, testCampaigns()) // both campaigns are the advertiser demo's
		r := rand.New(rand.NewPCG(7, 8))
		for i := range 300_000 {
			c, g := "demo-ctv-purchase", []string{"Sports", "News", "Drama"}[r.IntN(3)]
			if i%20 == 0 { // the small campaign never shows Drama
				c, g = "demo-ctv-signup", []string{"Sports", "News"}[r.IntN(2)]
			}
			path, labels := testPath(c, g)
			ts := t0 + int64(i)
			m.Expose(ts, path, labels, 0.01)
			if r.Float64() < 0.01*genres[g] {
				m.Credit(ts, ts+60, path[1], 1)
			}
		}
		return m.Refit(t0 + 30*86400)
	}
	mult := func(e *Estimates, c, v string) (float64, float64, bool) {
		var m, n float64
		var ok bool
		e.Effects(c, "genre", func(ef Effect) bool {
			if string(ef.Value) == v {
				m, n, ok = ef.Multiplier, ef.NEff, true
			}
			return true
		})
		return m, n, ok
	}
	with, without := run(true), run(false)
	if _, _, ok := mult(without, "demo-ctv-signup", "Drama"); ok {
		t.Fatal("without shared effects the small campaign has a Drama level")
	}
	drama, n, ok := mult(with, "demo-ctv-signup", "Drama")
	big, _, _ := mult(with, "demo-ctv-purchase", "Drama")
	if !ok || n != 0 || math.Abs(math.Log(drama/big)) > 0.2 || drama > 0.85 {
		t.Fatalf("the small campaign's Drama: multiplier %.3f (evidence %g, ok %v), the big one's %.3f", drama, n, ok, big)
	}
	root := RootKey("demo-ctv-signup")
	if a, _ := with.LookupCell(root, cellOf("Drama")); a.Level != 1 {
		t.Fatalf("LookupCell of the borrowed value: %+v", a)
	}
	if a, _ := without.LookupCell(root, cellOf("Drama")); a.Level != 0 {
		t.Fatalf("LookupCell without shared effects: %+v", a)
	}
	// Sports over News: the small campaign's own estimate is noisier than
	// the borrowed one.
	sw, _, _ := mult(with, "demo-ctv-signup", "Sports")
	nw, _, _ := mult(with, "demo-ctv-signup", "News")
	if r := sw / nw; math.Abs(math.Log(r/2)) > 0.25 {
		t.Errorf("small campaign, shared effects: Sports/News %.3f, want about 2", r)
	}
}

// TestCrossedConcurrent: writers create cells (and effect levels) while
// Refresh and Refit run and readers look cells up; every table built in
// the meantime keeps its invariants (run with -race).
func TestCrossedConcurrent(t *testing.T) {
	cfg := crossedConfig()
	cfg.SharedEffects = true
	m := New(cfg, testCampaigns())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				c := testCampaigns()[(i+g)%2].ID
				path, labels := testPath(c, fmt.Sprint("g", i%17), fmt.Sprint(g, "-", i%101))
				ts := t0 + int64(i)
				m.Expose(ts, path, labels, 0.01)
				if i%7 == 0 {
					m.Credit(ts, ts+60, path[2], 1)
					m.Video(ts, path[2], 1, 1)
				}
				switch i % 500 {
				case 100:
					e := m.Refresh(ts)
					data, err := e.MarshalBinary()
					if err == nil {
						_, err = UnmarshalEstimates(data)
					}
					if err != nil {
						t.Error(err)
					}
				case 300:
					m.Refit(ts)
				}
				if i%50 == 0 {
					m.Estimates().LookupCell(RootKey(c), cellOf(fmt.Sprint("g", i%17), "x"))
				}
			}
		}()
	}
	wg.Wait()
	e := m.Refit(t0 + 4000)
	root, _ := e.Campaign("demo-ctv-purchase")
	if root.Exposures != 6000 {
		t.Fatalf("root exposures %g, want 6000", root.Exposures)
	}
}
