package simulate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
)

// MatrixOptions configures RunMatrix: every scenario is played with every
// seed.
type MatrixOptions struct {
	Scenarios []market.Scenario
	Seeds     []uint64
	// Jobs is how many runs are played at once (each run is independent;
	// results do not depend on it). Default 1.
	Jobs int
	// Base holds everything else of a run (days, config, strategies, ...);
	// its Scenario, Seed and Progress are ignored. Its Workers default to
	// GOMAXPROCS ÷ Jobs (at least 1).
	Base Options
	// Progress, when set, receives one line per finished run.
	Progress io.Writer
}

// MatrixRun is one (scenario, seed) of a matrix: its headline figures and
// its whole result.
type MatrixRun struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	Headline
	ByCampaign map[string]Headline `json:"by_campaign"`
	// WonLogCVRCorrelation is the correlation of cpafeed's estimated with
	// the true log CVR over the impressions it bought (see EstimatorResult).
	WonLogCVRCorrelation Ratio `json:"won_log_cvr_correlation"`
	// Lift is the cpafeed strategy's lift measurement per campaign
	// against the truth (see LiftResult).
	Lift map[string]LiftResult `json:"lift,omitempty"`
	// CPA is cpafeed's cost per true conversion, every campaign together;
	// Loop its campaigns' realized CPA against the target from day 4 on.
	CPA    Ratio                  `json:"cpafeed_cpa"`
	Loop   map[string]LoopFigures `json:"loop"`
	Result *Result                `json:"result"`
}

// LoopFigures are one campaign's figures of the closed loop in a run (the
// cpafeed strategy's): true CPA ÷ target and the budget used, from day 4
// on, and on how many of those days the budget or the CPA target bound.
type LoopFigures struct {
	CPAOverTarget Ratio `json:"cpa_over_target_from_day4"`
	BudgetUsed    Ratio `json:"budget_used_from_day4"`
	BudgetDays    int   `json:"budget_days"`
	CPADays       int   `json:"cpa_days"`
}

// loopFigures are cpafeed's (nil when it was not played).
func loopFigures(r *Result) (Ratio, map[string]LoopFigures) {
	cf := r.Strategies[StrategyCPAfeed]
	if cf == nil {
		return Ratio(math.NaN()), nil
	}
	out := map[string]LoopFigures{}
	for id, c := range cf.Campaigns {
		out[id] = LoopFigures{CPAOverTarget: c.CPAOverTargetFrom4, BudgetUsed: c.BudgetFrom4, BudgetDays: c.BudgetDays, CPADays: c.CPADays}
	}
	return cf.CPA, out
}

// MatrixMean is the mean of a scenario's runs over its seeds.
type MatrixMean struct {
	Scenario string `json:"scenario"`
	Seeds    int    `json:"seeds"`
	Headline
	WonLogCVRCorrelation Ratio `json:"won_log_cvr_correlation"`
	// Over the campaign × seed cases with a lift estimate: the share whose
	// true lift is in the 90 % interval, the mean |estimate − truth| ÷
	// truth, and the mean credit accuracy; Cases counts them.
	LiftCovered     Ratio `json:"lift_covered"`
	LiftAbsRelError Ratio `json:"lift_abs_rel_error"`
	CreditAccuracy  Ratio `json:"credit_accuracy"`
	LiftCases       int   `json:"lift_cases"`
	CPA             Ratio `json:"cpafeed_cpa"`
	// Loop is each campaign's mean over the seeds (days summed).
	Loop map[string]LoopFigures `json:"loop"`
}

// MatrixResult is the outcome of RunMatrix, runs in scenario-major order.
// Like a Result, it is a function of the options: the same options give
// the same JSON, whatever Jobs is.
type MatrixResult struct {
	Days  int          `json:"days"`
	Runs  []MatrixRun  `json:"runs"`
	Means []MatrixMean `json:"means"`

	Wall time.Duration `json:"-"`
}

// ParseSeeds reads a list of seeds: comma-separated numbers and inclusive
// ranges, e.g. "1-4" or "1,3,10-12".
func ParseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seed %q: want a number or a range like 1-4", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("seed range %q: want lo-hi with lo ≤ hi", part)
			}
		}
		if b-a >= 10000 || len(out) > 10000 {
			return nil, fmt.Errorf("seed range %q: at most 10000 seeds", part)
		}
		for x := a; ; x++ {
			out = append(out, x)
			if x == b {
				break
			}
		}
	}
	return out, nil
}

// RunMatrix plays every scenario with every seed, Jobs runs at a time, and
// collects their headline figures.
func RunMatrix(o MatrixOptions) (*MatrixResult, error) {
	if len(o.Scenarios) == 0 || len(o.Seeds) == 0 {
		return nil, errors.New("matrix: give at least one scenario and one seed")
	}
	names := map[string]bool{}
	for _, sc := range o.Scenarios {
		if names[sc.Name] {
			return nil, fmt.Errorf("matrix: two scenarios are named %q (the table would not tell them apart)", sc.Name)
		}
		names[sc.Name] = true
	}
	if o.Jobs <= 0 {
		o.Jobs = 1
	}
	base := o.Base
	base.Progress = nil
	if base.Workers <= 0 {
		base.Workers = max(1, runtime.GOMAXPROCS(0)/o.Jobs)
	}
	type job struct {
		sc   market.Scenario
		seed uint64
	}
	var jobs []job
	for _, sc := range o.Scenarios {
		for _, seed := range o.Seeds {
			jobs = append(jobs, job{sc, seed})
		}
	}
	start := time.Now()
	res := &MatrixResult{Runs: make([]MatrixRun, len(jobs))}
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex // Progress
	for range min(o.Jobs, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				opts := base
				opts.Scenario, opts.Seed = jobs[i].sc, jobs[i].seed
				r, err := Run(opts)
				if err != nil {
					errs[i] = fmt.Errorf("scenario %s, seed %d: %w", jobs[i].sc.Name, jobs[i].seed, err)
					continue
				}
				res.Runs[i] = MatrixRun{Scenario: jobs[i].sc.Name, Seed: jobs[i].seed, Headline: r.Headline,
					ByCampaign: r.ByCampaign, WonLogCVRCorrelation: r.Estimator.WonLogCVRCorrelation, Lift: r.Lift, Result: r}
				res.Runs[i].CPA, res.Runs[i].Loop = loopFigures(r)
				if o.Progress != nil {
					mu.Lock()
					// r.CPU is the process's: with Jobs > 1 it counts the other runs too.
					fmt.Fprintf(o.Progress, "%s seed %d: CPA÷oracle %s, U %s (%v)\n", jobs[i].sc.Name, jobs[i].seed,
						fmtNum(r.CPAOverOracle, 2), fmtNum(r.UpliftCapture, 2), r.Wall.Round(time.Second))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res.Days = res.Runs[0].Result.Days
	for _, sc := range o.Scenarios {
		mean := MatrixMean{Scenario: sc.Name}
		var u, cpa, g, og, corr, cost, covered, relErr, acc meanOf
		loopT, loopB := map[string]*meanOf{}, map[string]*meanOf{}
		mean.Loop = map[string]LoopFigures{}
		for _, r := range res.Runs {
			if r.Scenario != sc.Name {
				continue
			}
			mean.Seeds++
			u.add(r.UpliftCapture)
			cpa.add(r.CPAOverOracle)
			g.add(r.VTRGain)
			og.add(r.OracleVTRGain)
			corr.add(r.WonLogCVRCorrelation)
			cost.add(r.CPA)
			for _, l := range r.Lift {
				if !math.IsNaN(float64(l.Lift)) && !math.IsNaN(float64(l.TrueLift)) {
					mean.LiftCases++
				}
			}
			c, e, a := liftFigures(r.Lift)
			covered.merge(c)
			relErr.merge(e)
			acc.merge(a)
			for id, f := range r.Loop {
				if loopT[id] == nil {
					loopT[id], loopB[id] = &meanOf{}, &meanOf{}
				}
				loopT[id].add(f.CPAOverTarget)
				loopB[id].add(f.BudgetUsed)
				m := mean.Loop[id]
				m.BudgetDays += f.BudgetDays
				m.CPADays += f.CPADays
				mean.Loop[id] = m
			}
		}
		mean.UpliftCapture, mean.CPAOverOracle, mean.VTRGain, mean.OracleVTRGain = u.value(), cpa.value(), g.value(), og.value()
		mean.WonLogCVRCorrelation, mean.CPA = corr.value(), cost.value()
		mean.LiftCovered, mean.LiftAbsRelError, mean.CreditAccuracy = covered.value(), relErr.value(), acc.value()
		for id, m := range mean.Loop {
			m.CPAOverTarget, m.BudgetUsed = loopT[id].value(), loopB[id].value()
			mean.Loop[id] = m
		}
		res.Means = append(res.Means, mean)
	}
	res.Wall = time.Since(start)
	return res, nil
}

// meanOf averages ratios; NaN when any is NaN (a run without the figure).
type meanOf struct{ sum, n float64 }

func (m *meanOf) add(r Ratio) { m.sum += float64(r); m.n++ }

// merge adds o's values to m.
func (m *meanOf) merge(o meanOf) { m.sum += o.sum; m.n += o.n }

func (m meanOf) value() Ratio {
	if m.n == 0 {
		return Ratio(math.NaN())
	}
	return Ratio(m.sum / m.n)
}

// WriteTable writes one row per run and one mean row per scenario.
func (r *MatrixResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%d runs, %d days each; at equal spend: U = (cpafeed − vtr) ÷ (oracle − vtr) in true conversions per dollar,\nVTR gain = cpafeed's conversions over VTR bidding's, oracle gain = the oracle's, corr = ln estimate vs ln true CVR over cpafeed's bought impressions;\ncpafeed's cost per true conversion, and per campaign (in scenario order) its true CPA ÷ target and budget used from day 4 on, and the days 4+ the budget / the CPA target bound\n\n", len(r.Runs), r.Days)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tseed\tCPA÷oracle\tU\tVTR gain\toracle gain\tcorr\tcpafeed CPA\tCPA÷target d4+\tbudget d4+\tbound b/c\t")
	var order []string // campaign ids, in the first run's scenario order
	row := func(name, seed string, h Headline, corr, cost Ratio, loop map[string]LoopFigures) {
		var t, b, d []string
		for _, id := range order {
			f, ok := loop[id]
			if !ok {
				continue
			}
			t, b = append(t, fmtNum(f.CPAOverTarget, 2)), append(b, fmtPct(f.BudgetUsed))
			d = append(d, strconv.Itoa(f.BudgetDays)+"/"+strconv.Itoa(f.CPADays))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, seed, fmtNum(h.CPAOverOracle, 2), fmtNum(h.UpliftCapture, 2),
			fmtGain(h.VTRGain), fmtGain(h.OracleVTRGain), fmtNum(corr, 2), fmtMoney(cost), strings.Join(t, " "), strings.Join(b, " "), strings.Join(d, " "))
	}
	for _, m := range r.Means {
		order = order[:0]
		for _, run := range r.Runs {
			if run.Scenario == m.Scenario && len(order) == 0 {
				for _, c := range run.Result.Campaigns {
					order = append(order, c.ID)
				}
			}
		}
		for _, run := range r.Runs {
			if run.Scenario == m.Scenario {
				row(run.Scenario, strconv.FormatUint(run.Seed, 10), run.Headline, run.WonLogCVRCorrelation, run.CPA, run.Loop)
			}
		}
		if m.Seeds > 1 {
			row(m.Scenario, "mean", m.Headline, m.WonLogCVRCorrelation, m.CPA, m.Loop)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeLiftTable(w); err != nil {
		return err
	}
	if r.Wall > 0 {
		fmt.Fprintf(w, "\n%s wall\n", r.Wall.Round(time.Second))
	}
	return nil
}

// WriteJSON writes the matrix as indented JSON.
func (r *MatrixResult) WriteJSON(w io.Writer) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// liftFigures are a run's lift figures over its campaigns with an
// estimate: the share whose true lift is in the 90 % interval, the mean
// |estimate − truth| ÷ truth and the mean credit accuracy.
func liftFigures(lift map[string]LiftResult) (covered, relErr, acc meanOf) {
	for _, l := range lift {
		if math.IsNaN(float64(l.Lift)) || math.IsNaN(float64(l.TrueLift)) {
			continue
		}
		if l.Covered {
			covered.add(1)
		} else {
			covered.add(0)
		}
		relErr.add(Ratio(math.Abs(float64(l.RelError))))
		acc.add(l.CreditAccuracy)
	}
	return covered, relErr, acc
}

// writeLiftTable writes the lift measurement's figures, one row per run
// and a mean row per scenario (nothing when no run measured a lift).
func (r *MatrixResult) writeLiftTable(w io.Writer) error {
	measured := false
	for _, run := range r.Runs {
		measured = measured || len(run.Lift) > 0
	}
	if !measured {
		return nil
	}
	fmt.Fprintf(w, "\nlift covered = share of campaigns whose true lift is in cpafeed's 90 %% interval, |lift err| = mean |estimate − truth| ÷ truth,\ncredit acc. = share of the credit of matched conversions given to their true cause (the exposure, or organic)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tseed\tlift covered\t|lift err|\tcredit acc.\t")
	row := func(name, seed string, covered, relErr, acc Ratio) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, seed, fmtNum(covered, 2), fmtNum(relErr, 2), fmtNum(acc, 3))
	}
	for _, m := range r.Means {
		for _, run := range r.Runs {
			if run.Scenario == m.Scenario {
				covered, relErr, acc := liftFigures(run.Lift)
				row(run.Scenario, strconv.FormatUint(run.Seed, 10), covered.value(), relErr.value(), acc.value())
			}
		}
		if m.Seeds > 1 {
			row(m.Scenario, "mean", m.LiftCovered, m.LiftAbsRelError, m.CreditAccuracy)
		}
	}
	return tw.Flush()
}
