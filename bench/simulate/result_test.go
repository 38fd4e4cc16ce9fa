package simulate

import (
	"math"
	"testing"
)

// TestCampaignDays: the day-by-day CPA against target, the binding
// constraint of each day, and the figures from day 4 on, on a hand-made
// delivery.
func TestCampaignDays(t *testing.T) {
	p := &player{sim: &simulation{camps: []simCampaign{{id: "c", target: 40, budget: 100}}}}
	day := func(spend float64, conv int64, pacing float64) []campTally {
		return []campTally{{Spend: spend, Converted: conv, Multiplier: pacing, CPAControl: 1.5}}
	}
	p.daily = [][]campTally{
		day(100, 1, 1),  // day 1, before the figures
		day(50, 2, 1),   // day 2
		day(99, 3, 1),   // day 3
		day(99, 2, 1),   // day 4: 99 % spent, budget
		day(60, 2, 0.8), // day 5: the pacer held bids under CPA control: budget
		day(40, 1, 1),   // day 6: budget left, CPA control held: cpa
		day(30, 0, 1),   // day 7: no conversion: cpa, CPA undefined
	}
	for _, on := range []bool{true, false} {
		p.loop.on = on
		var cr CampaignResult
		p.campaignDays(&cr, 0)
		if len(cr.Days) != 7 {
			t.Fatalf("%d days", len(cr.Days))
		}
		want := []string{"budget", "cpa", "budget", "budget", "budget", "cpa", "cpa"}
		if !on {
			want = []string{"budget", "", "budget", "budget", "", "", ""}
		}
		for d, w := range want {
			if got := cr.Days[d].Bound; got != w {
				t.Errorf("loop %v day %d: bound %q, want %q", on, d+1, got, w)
			}
		}
		if on && (cr.BudgetDays != 2 || cr.CPADays != 2) {
			t.Errorf("loop: %d budget days, %d cpa days from day 4, want 2 and 2", cr.BudgetDays, cr.CPADays)
		}
		if !on && (cr.BudgetDays != 1 || cr.CPADays != 0) {
			t.Errorf("no loop: %d budget days, %d cpa days from day 4, want 1 and 0", cr.BudgetDays, cr.CPADays)
		}
		// Days 4–7: 229 USD, 5 conversions: CPA 45.8, ÷ 40; budget 229 of 400.
		if got := float64(cr.CPAOverTargetFrom4); math.Abs(got-45.8/40) > 1e-12 {
			t.Errorf("CPA ÷ target from day 4: %g, want %g", got, 45.8/40)
		}
		if got := float64(cr.BudgetFrom4); math.Abs(got-229.0/400) > 1e-12 {
			t.Errorf("budget from day 4: %g, want %g", got, 229.0/400)
		}
		if d := cr.Days[1]; float64(d.CPAOverTarget) != 25.0/40 || float64(d.BudgetUsed) != 0.5 || d.CPAControl != 1.5 {
			t.Errorf("day 2: %+v", d)
		}
		if d := cr.Days[6]; !math.IsNaN(float64(d.CPA)) {
			t.Errorf("day 7 without a conversion: CPA %v, want undefined", d.CPA)
		}
	}
}
