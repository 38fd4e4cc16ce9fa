package simulate

import (
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
