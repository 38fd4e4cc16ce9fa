package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
)

// Result is the outcome of Run. Its JSON form (WriteJSON) is
//
//	{"scenario": ..., "seed": N, "days": D,
//	 "uplift_capture": U, "cpa_over_oracle": R, "vtr_gain": G, "oracle_vtr_gain": O,
//	 "by_campaign": {"<id>": {"uplift_capture", "cpa_over_oracle", ...}},
//	 "strategies": {"<name>": {"spend", "impressions", "vtr", "true_conversions",
//	   "attributed", "cpa", "cpa_vs_oracle", "budget_used", ...}},
//	 "estimator": {"rmse_log_cvr", "calibration_ratio", "log_cvr_correlation", ...}, ...}
//
// with null for a ratio whose denominator is 0. It is a function of the
// options (scenario, seed, days, config): the same options give the same
// bytes. Wall and CPU are not part of it.
type Result struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	Days     int    `json:"days"`
	// Headline is cpafeed against VTR bidding and the oracle, every
	// campaign together; ByCampaign the same per campaign.
	Headline
	ByCampaign map[string]Headline        `json:"by_campaign"`
	Strategies map[string]*StrategyResult `json:"strategies"`
	// Estimator is the cpafeed strategy's model at the end of the run,
	// judged on a held-out day (see EstimatorResult).
	Estimator EstimatorResult `json:"estimator"`
	// Lift is, per campaign, the cpafeed strategy's lift measurement (its
	// holdout) against the market's truth, and its credit accuracy.
	Lift map[string]LiftResult `json:"lift,omitempty"`
	// Credit is the credit of the simulated campaigns (attribution.credit).
	Credit string `json:"credit"`

	Auction   string                `json:"auction"`
	Campaigns []market.CampaignSpec `json:"-"`
	Settings  Settings              `json:"settings"`
	// Order lists the strategies played, in report order.
	Order []string `json:"order"`
	// decileBins and scatterPts are the cpafeed model's calibration plot (per
	// campaign, 10 bins of equal traffic by estimate) and its estimate vs
	// truth per leaf segment (the most trafficked, per campaign).
	decileBins [][]decile
	scatterPts [][]evalPoint

	Wall time.Duration `json:"-"` // elapsed
	CPU  time.Duration `json:"-"` // user + system CPU of the process
}

// Headline are the figures that say how much of the way from VTR bidding to
// the oracle cpafeed goes, at equal spend: conversions are compared per
// dollar (true conversions ÷ spend), which is the count at equal spend when
// the budgets are spent. null when a strategy it needs was not played or
// bought nothing.
type Headline struct {
	// UpliftCapture U = (k_cpafeed − k_vtr) ÷ (k_oracle − k_vtr), k = true
	// conversions per dollar: 0 is no better than VTR bidding, 1 is the
	// oracle, below 0 worse than VTR.
	UpliftCapture Ratio `json:"uplift_capture"`
	// CPAOverOracle is cpafeed's CPA ÷ the oracle's (true conversions).
	CPAOverOracle Ratio `json:"cpa_over_oracle"`
	// VTRGain is k_cpafeed ÷ k_vtr − 1: how many more true conversions
	// cpafeed buys than VTR bidding for the same spend.
	VTRGain Ratio `json:"vtr_gain"`
	// OracleVTRGain is k_oracle ÷ k_vtr − 1: what there is to gain.
	OracleVTRGain Ratio `json:"oracle_vtr_gain"`
}

// text is the headline in one line.
func (h Headline) text() string {
	return fmt.Sprintf("uplift capture U %s, CPA ÷ oracle %s, %s true conversions over VTR (the oracle %s)",
		fmtNum(h.UpliftCapture, 2), fmtNum(h.CPAOverOracle, 2), fmtGain(h.VTRGain), fmtGain(h.OracleVTRGain))
}

// fmtGain formats a relative gain as a signed percentage.
func fmtGain(g Ratio) string {
	v := float64(g)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%+.1f %%", 100*v)
}

// headline computes the figures from each strategy's true conversions and
// spend (absent strategies: nil).
func headline(feed, vtr, oracle *[2]float64) Headline {
	k := func(x *[2]float64) float64 {
		if x == nil {
			return math.NaN()
		}
		return ratio(x[0], x[1])
	}
	kf, kv, ko := k(feed), k(vtr), k(oracle)
	return Headline{
		UpliftCapture: Ratio(ratio(kf-kv, ko-kv)),
		CPAOverOracle: Ratio(ratio(ko, kf)),
		VTRGain:       Ratio(ratio(kf, kv) - 1),
		OracleVTRGain: Ratio(ratio(ko, kv) - 1),
	}
}

// Settings records the simulation's own knobs.
type Settings struct {
	RefreshEvery string       `json:"refresh_every"`
	RefitEvery   string       `json:"refit_every"`
	CapFactor    float64      `json:"cap_factor"`
	Pacing       PacingConfig `json:"pacing"`
	Explore      string       `json:"explore,omitempty"` // how the cpafeed strategy bids: "" (posterior mean) or "thompson"
	ControlEvery string       `json:"control_every"`
	CPAControl   bool         `json:"cpa_control,omitempty"`
	NoShading    bool         `json:"no_shading,omitempty"`
	ControlCount string       `json:"control_count,omitempty"`
}

// StrategyResult is one strategy's run. CPA is spend ÷ true conversions
// (eventual conversions caused by the impressions bought, known from the
// market's truth); attributed conversions are what its cpafeed attributed
// (organic conversions included), after every conversion of the run was
// delivered.
type StrategyResult struct {
	Spend                 float64 `json:"spend"`
	Impressions           int64   `json:"impressions"`
	VTR                   Ratio   `json:"vtr"`
	TrueConversions       int64   `json:"true_conversions"`
	AttributedConversions int64   `json:"attributed"`
	CPA                   Ratio   `json:"cpa"`
	CPAVsOracle           Ratio   `json:"cpa_vs_oracle"`
	BudgetUsed            Ratio   `json:"budget_used"`

	// ExpectedConversions is Σ true CVR of the impressions bought (the
	// noiseless count); ExpectedCPA is spend over it.
	ExpectedConversions float64 `json:"expected_conversions"`
	ExpectedCPA         Ratio   `json:"expected_cpa"`
	Budget              float64 `json:"budget"`
	// StoredConversions are the conversions its cpafeed stored once
	// deduplicated (caused and organic, every campaign);
	// Unattributed those that matched no exposure.
	StoredConversions int64 `json:"stored_conversions"`
	Unattributed      int64 `json:"unattributed_conversions"`
	// AttributedBy counts attributed conversions by match method.
	AttributedBy map[string]uint64 `json:"attributed_by"`
	// Journal counts the records and bytes its cpafeed journaled.
	JournalRecords uint64 `json:"journal_records"`
	JournalBytes   uint64 `json:"journal_bytes"`
	// GhostExposures are the auctions it held back for its campaigns'
	// holdouts (would-be wins); ConversionsForgone the conversions those
	// impressions would have caused (Σ true CVR): the holdout's cost.
	GhostExposures     int64   `json:"ghost_exposures"`
	ConversionsForgone float64 `json:"conversions_forgone"`

	Campaigns map[string]*CampaignResult `json:"campaigns"`
	// Daily has one entry per day: spend, true conversions and CPA of the
	// impressions bought that day.
	Daily []DayResult `json:"daily"`
	// Model is how well this strategy's own cpafeed estimated the CVRs by
	// the end (its data depends on what the strategy bought).
	Model EstimatorResult `json:"model"`
	// Curves is how many first-price win-rate curves its cpafeed had
	// fitted by the end (campaigns and publishers; 0 in a second-price
	// market or outside the closed loop).
	Curves int `json:"curves"`
}

// CampaignResult is one campaign of one strategy.
type CampaignResult struct {
	Spend                 float64 `json:"spend"`
	Impressions           int64   `json:"impressions"`
	VTR                   Ratio   `json:"vtr"`
	TrueConversions       int64   `json:"true_conversions"`
	ExpectedConversions   float64 `json:"expected_conversions"`
	AttributedConversions int64   `json:"attributed"`
	CPA                   Ratio   `json:"cpa"`
	TargetCPA             float64 `json:"target_cpa"`
	CPAVsOracle           Ratio   `json:"cpa_vs_oracle"`
	BudgetUsed            Ratio   `json:"budget_used"`
	// Multipliers is the day's average pacing multiplier, per day.
	Multipliers []float64 `json:"multipliers"`
	// Days is the campaign's delivery day by day, with its realized CPA
	// against the target and the constraint that bound.
	Days []CampaignDay `json:"days"`
	// CPAOverTargetFrom4 is the true CPA of the days from day 4 on ÷ the
	// target CPA; BudgetFrom4 the share of their budget spent. BudgetDays
	// and CPADays count those days whose binding constraint was the budget
	// or the CPA target (see CampaignDay.Bound).
	CPAOverTargetFrom4  Ratio `json:"cpa_over_target_from_day4"`
	BudgetFrom4         Ratio `json:"budget_used_from_day4"`
	BudgetDays, CPADays int   `json:"-"`
}

// CampaignDay is one campaign's day.
type CampaignDay struct {
	Spend           float64 `json:"spend"`
	TrueConversions int64   `json:"true_conversions"`
	CPA             Ratio   `json:"cpa"`
	CPAOverTarget   Ratio   `json:"cpa_over_target"`
	BudgetUsed      Ratio   `json:"budget_used"`
	Pacing          float64 `json:"pacing"`      // the pacer's average multiplier
	CPAControl      float64 `json:"cpa_control"` // cpafeed's multiplier at the day's end
	// Bound is the constraint that bound: "budget" when the day's budget
	// was spent (98 %) or the pacer held bids below what CPA control
	// allows (its average multiplier under 0.95), "cpa" when the CPA
	// controller held them with budget left, "" for a strategy outside
	// the closed loop that did not spend its budget.
	Bound string `json:"bound"`
}

// firstLoopDay is the first day (0-based) of the figures "from day 4 on":
// the controller has had three days to find the multiplier.
const firstLoopDay = 3

// campaignDays fills cr's days and the figures from day 4 on.
func (p *player) campaignDays(cr *CampaignResult, c int) {
	camp := &p.sim.camps[c]
	var s4 float64
	var k4, n4 int64
	for d, day := range p.daily {
		t := day[c]
		cd := CampaignDay{Spend: t.Spend, TrueConversions: t.Converted, CPA: Ratio(ratio(t.Spend, float64(t.Converted))),
			BudgetUsed: Ratio(ratio(t.Spend, camp.budget)), Pacing: t.Multiplier, CPAControl: t.CPAControl}
		cd.CPAOverTarget = Ratio(float64(cd.CPA) / camp.target)
		switch {
		case t.Spend >= 0.98*camp.budget || p.loop.on && t.Multiplier < 0.95:
			cd.Bound = "budget"
		case p.loop.on:
			cd.Bound = "cpa"
		}
		cr.Days = append(cr.Days, cd)
		if d >= firstLoopDay {
			s4 += t.Spend
			k4 += t.Converted
			n4++
			switch cd.Bound {
			case "budget":
				cr.BudgetDays++
			case "cpa":
				cr.CPADays++
			}
		}
	}
	cr.CPAOverTargetFrom4 = Ratio(ratio(s4, float64(k4)) / camp.target)
	cr.BudgetFrom4 = Ratio(ratio(s4, camp.budget*float64(n4)))
}

// DayResult is one day of one strategy (every campaign).
type DayResult struct {
	Spend           float64 `json:"spend"`
	Impressions     int64   `json:"impressions"`
	TrueConversions int64   `json:"true_conversions"`
	CPA             Ratio   `json:"cpa"`
}

// played is what remains of a player once its engine is closed: its
// strategy's result and, for cpafeed, the report's charts.
type played struct {
	name       string
	res        *StrategyResult
	lift       map[string]LiftResult
	decileBins [][]decile
	scatterPts [][]evalPoint
}

// result sums up a player after its run (its engine still open).
func (p *player) result() played {
	sim := p.sim
	days := float64(sim.opts.Days)
	sr := &StrategyResult{Campaigns: map[string]*CampaignResult{}, AttributedBy: map[string]uint64{},
		JournalRecords: p.log.records, JournalBytes: p.log.bytes, Model: p.estimator(), Curves: p.eng.Shading.Curves().Len()}
	var completes int64
	for c, camp := range sim.camps {
		t := p.tot[c]
		st, _ := p.eng.Attributor.Stats(camp.id)
		cr := &CampaignResult{
			Spend: t.Spend, Impressions: t.Impressions, VTR: Ratio(ratio(float64(t.Completes), float64(t.Impressions))),
			TrueConversions: t.Converted, ExpectedConversions: t.Expected, AttributedConversions: int64(st.Attributed),
			CPA: Ratio(ratio(t.Spend, float64(t.Converted))), TargetCPA: camp.target,
			BudgetUsed: Ratio(ratio(t.Spend, camp.budget*days)),
		}
		for _, d := range p.daily {
			cr.Multipliers = append(cr.Multipliers, d[c].Multiplier)
		}
		p.campaignDays(cr, c)
		sr.Campaigns[camp.id] = cr
		sr.Spend += t.Spend
		sr.Impressions += t.Impressions
		sr.TrueConversions += t.Converted
		sr.ExpectedConversions += t.Expected
		sr.AttributedConversions += int64(st.Attributed)
		sr.StoredConversions += int64(st.Conversions) + int64(st.Pending)
		sr.Unattributed += int64(st.Unattributed)
		sr.Budget += camp.budget * days
		completes += t.Completes
		for k, v := range st.ByMethod {
			sr.AttributedBy[k] += v
		}
	}
	for c := range sim.camps {
		sr.GhostExposures += p.hold.ghosts[c]
		sr.ConversionsForgone += p.hold.ghostCVR[c]
	}
	sr.VTR = Ratio(ratio(float64(completes), float64(sr.Impressions)))
	sr.CPA = Ratio(ratio(sr.Spend, float64(sr.TrueConversions)))
	sr.ExpectedCPA = Ratio(ratio(sr.Spend, sr.ExpectedConversions))
	sr.BudgetUsed = Ratio(ratio(sr.Spend, sr.Budget))
	for _, d := range p.daily {
		var dr DayResult
		for _, t := range d {
			dr.Spend += t.Spend
			dr.Impressions += t.Impressions
			dr.TrueConversions += t.Converted
		}
		dr.CPA = Ratio(ratio(dr.Spend, float64(dr.TrueConversions)))
		sr.Daily = append(sr.Daily, dr)
	}
	out := played{name: p.name, res: sr}
	if p.name == StrategyCPAfeed {
		out.lift = p.liftResults(p.now)
		for c := range sim.camps {
			out.decileBins = append(out.decileBins, deciles(p.eval.points[c]))
			out.scatterPts = append(out.scatterPts, scatter(p.eval.segs[c], 1500))
		}
	}
	return out
}

func buildResult(sim *simulation, players []played) *Result {
	o := sim.opts
	res := &Result{
		Scenario: o.Scenario.Name, Seed: o.Seed, Days: o.Days,
		Strategies: map[string]*StrategyResult{},
		Auction:    sim.m.Scenario().Market.Auction,
		Credit:     sim.cfg.Attribution.Credit,
		Campaigns:  sim.m.Scenario().Campaigns,
		Settings: Settings{RefreshEvery: o.RefreshEvery.String(), RefitEvery: o.RefitEvery.String(),
			CapFactor: o.CapFactor, Pacing: o.Pacing, Explore: o.Explore,
			ControlEvery: o.ControlEvery.String(), CPAControl: o.CPAControl, NoShading: o.NoShading, ControlCount: o.ControlCount},
	}
	if res.Scenario == "" {
		res.Scenario = sim.m.Scenario().Name
	}
	for _, p := range players {
		res.Order = append(res.Order, p.name)
		res.Strategies[p.name] = p.res
		if p.name == StrategyCPAfeed {
			res.Estimator = p.res.Model
			res.Lift = p.lift
			res.decileBins, res.scatterPts = p.decileBins, p.scatterPts
		}
	}
	if or := res.Strategies[StrategyOracle]; or != nil {
		for _, sr := range res.Strategies {
			sr.CPAVsOracle = Ratio(ratio(float64(sr.CPA), float64(or.CPA)))
			for id, cr := range sr.Campaigns {
				cr.CPAVsOracle = Ratio(ratio(float64(cr.CPA), float64(or.Campaigns[id].CPA)))
			}
		}
	}
	if _, ok := res.Strategies[StrategyCPAfeed]; !ok {
		res.Estimator = res.Strategies[StrategyOracle].Model
	}
	// Headline figures: (true conversions, spend) of cpafeed, vtr, oracle.
	pick := func(name, camp string) *[2]float64 {
		sr := res.Strategies[name]
		if sr == nil {
			return nil
		}
		if camp == "" {
			return &[2]float64{float64(sr.TrueConversions), sr.Spend}
		}
		cr := sr.Campaigns[camp]
		return &[2]float64{float64(cr.TrueConversions), cr.Spend}
	}
	res.Headline = headline(pick(StrategyCPAfeed, ""), pick(StrategyVTR, ""), pick(StrategyOracle, ""))
	res.ByCampaign = map[string]Headline{}
	for _, c := range sim.camps {
		res.ByCampaign[c.id] = headline(pick(StrategyCPAfeed, c.id), pick(StrategyVTR, c.id), pick(StrategyOracle, c.id))
	}
	return res
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// Ratio is a float64 that encodes to JSON as null when it is not finite (a
// ratio whose denominator is 0).
type Ratio float64

// MarshalJSON implements json.Marshaler.
func (r Ratio) MarshalJSON() ([]byte, error) {
	f := float64(r)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// fmtNum formats a number for the table: "—" when not finite.
func fmtNum[F ~float64](x F, prec int) string {
	v := float64(x)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func fmtInt(v int64) string {
	s := strconv.FormatInt(v, 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func fmtMoney[F ~float64](x F) string {
	v := float64(x)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmtInt(int64(math.Floor(v))) + "." + fmt.Sprintf("%02d", int64(math.Round((v-math.Floor(v))*100))%100)
}

func fmtPct[F ~float64](x F) string {
	v := float64(x)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}

// WriteTable writes the per-strategy table, the per-campaign breakdown and
// the estimator's figures.
func (r *Result) WriteTable(w io.Writer) error {
	explore := ""
	if r.Settings.Explore != "" {
		explore = ", cpafeed explores (" + r.Settings.Explore + ")"
	}
	loop := ""
	if r.Settings.CPAControl {
		loop += ", CPA control"
	}
	if r.Settings.NoShading {
		loop += ", no shading"
	}
	if r.Settings.CPAControl && r.Settings.ControlCount != "" {
		loop += ", counting " + r.Settings.ControlCount + " conversions"
	}
	fmt.Fprintf(w, "scenario %s, seed %d, %d days, %s-price auction%s%s\n\n", r.Scenario, r.Seed, r.Days, r.Auction, explore, loop)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tspend\timpressions\tVTR\ttrue conv\tattributed\tCPA\tCPA÷oracle\tbudget used\t")
	for _, name := range r.Order {
		s := r.Strategies[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, fmtMoney(s.Spend), fmtInt(s.Impressions),
			fmtNum(s.VTR, 3), fmtInt(s.TrueConversions), fmtInt(s.AttributedConversions), fmtMoney(s.CPA),
			fmtNum(s.CPAVsOracle, 2), fmtPct(s.BudgetUsed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tcampaign\tspend\ttrue conv\tattributed\tCPA\ttarget\tCPA÷oracle\tbudget used\tpacing (first→last day)\tcpa_control\tCPA÷target, day 4+\tbudget, day 4+\tbound days 4+ (budget/cpa)\t")
	for _, name := range r.Order {
		s := r.Strategies[name]
		for _, c := range r.Campaigns {
			cr := s.Campaigns[c.ID]
			ms := "—"
			if n := len(cr.Multipliers); n > 0 {
				ms = fmtNum(cr.Multipliers[0], 2) + "→" + fmtNum(cr.Multipliers[n-1], 2)
			}
			us := "—"
			if n := len(cr.Days); n > 0 && cr.Days[n-1].CPAControl != 1 {
				us = fmtNum(cr.Days[0].CPAControl, 2) + "→" + fmtNum(cr.Days[n-1].CPAControl, 2)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t\n", name, c.ID, fmtMoney(cr.Spend), fmtInt(cr.TrueConversions),
				fmtInt(cr.AttributedConversions), fmtMoney(cr.CPA), fmtMoney(cr.TargetCPA), fmtNum(cr.CPAVsOracle, 2), fmtPct(cr.BudgetUsed), ms,
				us, fmtNum(cr.CPAOverTargetFrom4, 2), fmtPct(cr.BudgetFrom4), cr.BudgetDays, cr.CPADays)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if cf := r.Strategies[StrategyCPAfeed]; cf != nil {
		fmt.Fprintf(w, "\ncpafeed's true CPA ÷ target by day (b: the budget bound, c: the CPA target):\n")
		for _, c := range r.Campaigns {
			var b strings.Builder
			for _, d := range cf.Campaigns[c.ID].Days {
				fmt.Fprintf(&b, " %s%s", fmtNum(d.CPAOverTarget, 2), d.Bound[:min(len(d.Bound), 1)])
			}
			fmt.Fprintf(w, "  %s:%s\n", c.ID, b.String())
		}
	}
	fmt.Fprintf(w, "\ncpafeed against VTR bidding and the oracle, at equal spend (true conversions per dollar):\n")
	fmt.Fprintf(w, "  all campaigns: %s\n", r.Headline.text())
	for _, c := range r.Campaigns {
		fmt.Fprintf(w, "  %s: %s\n", c.ID, r.ByCampaign[c.ID].text())
	}
	e := r.Estimator
	fmt.Fprintf(w, "\nestimator (cpafeed's model at the end, on a held-out day's traffic):\n")
	fmt.Fprintf(w, "  RMSE of ln CVR %s, calibration Σ estimate ÷ Σ true %s, correlation of ln estimate and ln true CVR %s (raw per-segment c/n: RMSE %s, calibration %s)\n",
		fmtNum(e.RMSELogCVR, 3), fmtNum(e.CalibrationRatio, 3), fmtNum(e.LogCVRCorrelation, 3), fmtNum(e.RawRMSELogCVR, 3), fmtNum(e.RawCalibrationRatio, 3))
	if e.WonCalibration > 0 {
		fmt.Fprintf(w, "  on the impressions it bought, at bid time: Σ estimate ÷ Σ true %s, correlation of ln estimate and ln true CVR %s\n",
			fmtNum(e.WonCalibration, 3), fmtNum(e.WonLogCVRCorrelation, 3))
	}
	r.writeLift(w)
	if r.Wall > 0 {
		fmt.Fprintf(w, "\n%s wall, %.1f CPU seconds\n", r.Wall.Round(time.Millisecond), r.CPU.Seconds())
	}
	return nil
}

// writeLift writes the lift section: the cpafeed strategy's measurement
// against the truth, the holdout's cost and the credit's accuracy.
func (r *Result) writeLift(w io.Writer) {
	if len(r.Lift) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDid the ads cause it? cpafeed's lift measurement (its holdout), %s credit, against the truth:\n", r.Credit)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "campaign\tholdout\tlift [90% interval]\ttrue lift\tcovered\tincremental\ttrue caused\torganic share (true)\torganic/hh-day (true)\thouseholds T/C\tleakage\tghosts\tconv. forgone\tcredit accuracy\torganic credit\t")
	for _, c := range r.Campaigns {
		l, ok := r.Lift[c.ID]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s [%s, %s]\t%s\t%v\t%s\t%d\t%s (%s)\t%s (%s)\t%.0f/%.0f\t%s\t%d\t%.1f\t%s\t%s\t\n", c.ID, fmtPct(Ratio(l.HoldoutShare)),
			fmtNum(l.Lift, 2), fmtNum(l.LiftLo, 2), fmtNum(l.LiftHi, 2), fmtNum(l.TrueLift, 2), l.Covered,
			fmtNum(l.Incremental, 0), l.TrueCaused, fmtNum(l.OrganicShare, 2), fmtNum(l.TrueOrganicShare, 2),
			fmtNum(l.OrganicRate*1000, 3), fmtNum(l.TrueOrganicRate*1000, 3), l.HouseholdsT, l.HouseholdsC,
			fmtPct(l.Leakage), l.GhostExposures, l.ConversionsForgone, fmtNum(l.CreditAccuracy, 3), fmtNum(l.OrganicCredit, 2))
	}
	tw.Flush()
	fmt.Fprintln(w, "  (organic/hh-day in thousandths; the estimate counts matched conversions only. Credit accuracy: the share of the credit of matched conversions given to their true cause, the exposure or organic; organic credit: Σ credit to organic ÷ organic conversions credited, 1 = calibrated.)")
	for _, name := range r.Order {
		if s := r.Strategies[name]; s.GhostExposures > 0 {
			fmt.Fprintf(w, "  %s: %s auctions held back, %.1f conversions forgone (%.1f%% of its true conversions)\n", name, fmtInt(s.GhostExposures),
				s.ConversionsForgone, 100*ratio(s.ConversionsForgone, float64(s.TrueConversions)))
		}
	}
}
