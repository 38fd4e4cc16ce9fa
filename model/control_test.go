package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestControlStatsDelayCorrected checks the recent counts the CPA
// controller measures on a known truth: three days of exposures converting
// at 1 % after delays of mean 6 h. The spend is decayed with the control
// window exactly, and the delay-corrected conversions (exposures × c ÷
// n_eff) recover the conversions still to come, where the raw count of
// credited conversions misses the fresh exposures' ones.
func TestControlStatsDelayCorrected(t *testing.T) {
	const (
		cvr     = 0.01
		perHour = 2000
		hours   = 72
		cost    = 0.02
	)
	camps := testCampaigns()[:1]
	camps[0].Control.Window = 24 * time.Hour
	m := New(Config{Structure: StructureChain, MinDelaySamples: 50}, camps)
	path, labels := testPath(camps[0].ID, "pub-1")
	r := rand.New(rand.NewPCG(1, 2))
	now := t0 + hours*3600
	type conv struct{ exp, at int64 }
	var convs []conv
	var wantSpend, wantEventual, wantPred float64
	gamma := math.Ln2 / (24 * 3600)
	for h := range int64(hours) {
		ts := t0 + h*3600
		for range perHour {
			m.Expose(ts, path, labels, cost)
			m.Predicted(camps[0].ID, ts, cvr)
			w := math.Exp(-gamma * float64(now-ts))
			wantSpend += w * cost
			wantPred += w * cvr
			if r.Float64() < cvr {
				wantEventual += w
				d := int64(r.ExpFloat64() * 6 * 3600)
				if d < 7*86400 {
					convs = append(convs, conv{ts, ts + d})
				}
			}
		}
	}
	var credited float64
	for _, c := range convs {
		if c.at <= now {
			m.Credit(c.exp, c.at, path[1], 1)
			credited += math.Exp(-gamma * float64(now-c.exp))
		}
	}
	m.Refit(now) // learns the delays
	st, ok := m.ControlStats(camps[0].ID, now)
	if !ok {
		t.Fatal("no stats for a configured campaign")
	}
	if math.Abs(st.Spend-wantSpend) > 1e-6*wantSpend {
		t.Fatalf("recent spend %g, want %g", st.Spend, wantSpend)
	}
	if math.Abs(st.Conversions-credited) > 1e-6*credited {
		t.Fatalf("recent conversions %g, want %g", st.Conversions, credited)
	}
	expected := st.Exposures * st.Conversions / st.NEff
	t.Logf("expected %.1f truth %.1f raw %.1f", expected, wantEventual, st.Conversions)
	if math.Abs(expected/wantEventual-1) > 0.08 {
		t.Fatalf("delay-corrected conversions %.1f, the truth %.1f (raw %.1f)", expected, wantEventual, st.Conversions)
	}
	if st.Conversions/wantEventual > 0.9 {
		t.Fatalf("raw conversions %.1f of %.1f: the test does not need the correction", st.Conversions, wantEventual)
	}
	if math.Abs(st.Predicted-wantPred) > 1e-6*wantPred {
		t.Fatalf("recent predicted conversions %g, want %g", st.Predicted, wantPred)
	}

	// A snapshot keeps the recent counts.
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	n := New(Config{Structure: StructureChain, MinDelaySamples: 50}, camps)
	if _, err := n.ReadSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if got, _ := n.ControlStats(camps[0].ID, now); got != st {
		t.Fatalf("after a snapshot %+v, want %+v", got, st)
	}
	if _, ok := m.ControlStats("nope", now); ok {
		t.Fatal("stats of an unknown campaign")
	}
}
