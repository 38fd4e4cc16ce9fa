package simulate

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/bench/market"
)

func TestParseSeeds(t *testing.T) {
	f := func(in string, want []uint64, wantErr string) {
		t.Helper()
		got, err := ParseSeeds(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%q: error %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	f("1-4", []uint64{1, 2, 3, 4}, "")
	f("7", []uint64{7}, "")
	f("1,3, 10-11", []uint64{1, 3, 10, 11}, "")
	f("5-5", []uint64{5}, "")
	f("4-1", nil, "want lo-hi with lo ≤ hi")
	f("a", nil, "want a number or a range")
	f("", nil, "want a number or a range")
	f("1-99999", nil, "at most 10000 seeds")
}

func TestRunMatrixRefusesAmbiguousNames(t *testing.T) {
	sc := simScenario(t)
	if _, err := RunMatrix(MatrixOptions{Scenarios: []market.Scenario{sc, sc}, Seeds: []uint64{1}}); err == nil || !strings.Contains(err.Error(), `two scenarios are named "sim-small"`) {
		t.Fatalf("err %v", err)
	}
}

// The within-campaign correlation ignores the campaigns' different levels.
func TestWithinCorr(t *testing.T) {
	var a, b corrSums
	for i := range 100 {
		x := float64(i % 10)
		a.add(x, x+0.5*float64(i%3), 1)    // campaign a: correlated
		b.add(x+50, 100-x+float64(i%3), 1) // campaign b: anti-correlated, far away
	}
	if r := withinCorr([]corrSums{a}); !(r > 0.9) {
		t.Errorf("a alone: %v", r)
	}
	if r := withinCorr([]corrSums{b}); !(r < -0.9) {
		t.Errorf("b alone: %v", r)
	}
	if r := withinCorr([]corrSums{a, b}); math.Abs(r) > 0.05 {
		t.Errorf("a and b pooled within: %v, want about 0 (the levels must not count)", r)
	}
	if r := withinCorr(nil); !math.IsNaN(r) {
		t.Errorf("empty: %v", r)
	}
}
