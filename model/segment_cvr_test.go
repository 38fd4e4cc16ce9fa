package model

import (
	"math"
	"testing"
)

// TestSegmentCVRMatchesLookups checks that SegmentCVR, given an
// exposure's leaf, answers what the bid-time lookups answer for its
// segment: LookupCell for a crossed cell, the deepest known node for the
// chain (also for a leaf created after the last refresh), and false for a
// leaf the model never saw.
func TestSegmentCVRMatchesLookups(t *testing.T) {
	t.Run("crossed", func(t *testing.T) {
		m := New(crossedConfig(), testCampaigns())
		for i := range 4000 {
			g, mt := "Sports", "501"
			if i%2 == 0 {
				g = "News"
			}
			if i%3 == 0 {
				mt = "502"
			}
			path, labels := testPath("demo-ctv-purchase", g, mt)
			ts := t0 + int64(i)
			m.Expose(ts, path, labels, 0.01)
			if i%50 == 0 && g == "Sports" {
				m.Credit(ts, ts+60, path[2], 1)
			}
		}
		est := m.Refit(t0 + 86400)
		for _, c := range [][2]string{{"Sports", "501"}, {"News", "502"}, {"Sports", "502"}} {
			path, _ := testPath("demo-ctv-purchase", c[0], c[1])
			got, ok := m.SegmentCVR(path[len(path)-1])
			want, ok2 := est.LookupCell(path[0], cellOf(c[0], c[1]))
			if !ok || !ok2 || math.Abs(got/want.CVR-1) > 1e-5 {
				t.Errorf("%v: SegmentCVR %g, %v; LookupCell %g, %v", c, got, ok, want.CVR, ok2)
			}
		}
		if _, ok := m.SegmentCVR(Key(12345)); ok {
			t.Error("an unknown leaf has a CVR")
		}
	})
	t.Run("chain", func(t *testing.T) {
		m := New(Config{HalfLife: -1, Structure: StructureChain}, testCampaigns())
		path, labels := testPath("demo-ctv-purchase", "Sports", "501")
		for i := range 1000 {
			m.Expose(t0+int64(i), path, labels, 0.01)
			if i%100 == 0 {
				m.Credit(t0+int64(i), t0+int64(i)+60, path[len(path)-1], 1)
			}
		}
		est := m.Refresh(t0 + 86400)
		leaf := path[len(path)-1]
		want, _ := est.Get(leaf)
		if got, ok := m.SegmentCVR(leaf); !ok || got != want.CVR {
			t.Errorf("leaf: %g, %v, want %g", got, ok, want.CVR)
		}
		// A new leaf under the same parent, not yet in the table: its
		// deepest known ancestor's CVR.
		other, olabels := testPath("demo-ctv-purchase", "Sports", "502")
		m.Expose(t0+90000, other, olabels, 0.01)
		parent, _ := est.Get(other[len(other)-2])
		if got, ok := m.SegmentCVR(other[len(other)-1]); !ok || got != parent.CVR {
			t.Errorf("new leaf: %g, %v, want the parent's %g", got, ok, parent.CVR)
		}
	})
}

// TestDelayDensityIntegratesToOne checks the density against the CDF:
// it integrates to 1 over the window and is 0 outside it.
func TestDelayDensityIntegratesToOne(t *testing.T) {
	m := New(Config{HalfLife: -1, Structure: StructureChain}, testCampaigns())
	const w = 7 * 86400
	var sum float64
	const step = 60
	for lag := int64(0); lag < w; lag += step {
		d, ok := m.DelayDensity("demo-ctv-purchase", lag+step/2)
		if !ok || !(d > 0) {
			t.Fatalf("density at %d: %g, %v", lag, d, ok)
		}
		sum += d * step
	}
	if math.Abs(sum-1) > 0.01 {
		t.Errorf("∫ density = %.4f, want 1", sum)
	}
	if d, _ := m.DelayDensity("demo-ctv-purchase", w+1); d != 0 {
		t.Errorf("density past the window: %g", d)
	}
	if _, ok := m.DelayDensity("nope", 10); ok {
		t.Error("unknown campaign has a density")
	}
}
