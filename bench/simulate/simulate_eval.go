package simulate

import (
	"cmp"
	"math"
	"slices"

	"github.com/cpafeed/cpafeed/model"
)

// The estimator is judged at the end of the run on a held-out day (the day
// after the last one played): for every opportunity of that day and every
// campaign, the estimate a bid would have used (the deepest segment the
// table knows) against the true CVR, each weighted by the opportunity's
// slots (its traffic).

// rawFloor is the smallest CVR the raw estimator's log is taken of (its c/n
// is 0 for most segments).
const rawFloor = 1e-7

// evalTally accumulates one model's evaluation.
type evalTally struct {
	all    evalSums
	byCamp []evalSums
	// For the report's charts (the cpafeed strategy only): every (estimate,
	// truth, weight) per campaign, and per leaf segment (its estimate, its
	// Σ weight × truth and Σ weight).
	points [][]evalPoint
	segs   []map[model.Key]*evalPoint
	err    error
}

type evalSums struct {
	w, sqLog, pred, truth float64
	rawSqLog, rawPred     float64 // the raw per-leaf c/n (prior when unseen)
	corr                  corrSums
}

func (s *evalSums) add(pred, truth, raw, w float64) {
	d := math.Log(pred) - math.Log(truth)
	r := math.Log(max(raw, rawFloor)) - math.Log(truth)
	s.w += w
	s.sqLog += w * d * d
	s.pred += w * pred
	s.truth += w * truth
	s.rawSqLog += w * r * r
	s.rawPred += w * raw
	s.corr.add(math.Log(pred), math.Log(truth), w)
}

// corrSums accumulate a weighted Pearson correlation.
type corrSums struct{ w, x, y, xx, yy, xy float64 }

func (s *corrSums) add(x, y, w float64) {
	s.w += w
	s.x += w * x
	s.y += w * y
	s.xx += w * x * x
	s.yy += w * y * y
	s.xy += w * x * y
}

// value is the correlation, NaN when either side does not vary.
func (s *corrSums) value() float64 { return withinCorr([]corrSums{*s}) }

// withinCorr is the pooled within-group correlation of several groups
// (campaigns): each group's covariance and variances about its own means,
// summed. The campaigns' different base rates, which any model knows from
// its priors, do not count as ranking.
func withinCorr(groups []corrSums) float64 {
	var cxy, cxx, cyy float64
	for _, s := range groups {
		if s.w == 0 {
			continue
		}
		cxy += s.xy - s.x*s.y/s.w
		cxx += s.xx - s.x*s.x/s.w
		cyy += s.yy - s.y*s.y/s.w
	}
	if !(cxx > 0 && cyy > 0) {
		return math.NaN()
	}
	return cxy / math.Sqrt(cxx*cyy)
}

// evalPoint is an estimate and its truth.
type evalPoint struct{ Pred, True, W float64 }

// evaluate scores one opportunity of the held-out day with the final model.
func (p *player) evaluate(so *simOpp) {
	if p.eval.err != nil {
		return
	}
	if p.eval.byCamp == nil {
		p.eval.byCamp = make([]evalSums, len(p.sim.camps))
		if p.name == StrategyCPAfeed {
			p.eval.points = make([][]evalPoint, len(p.sim.camps))
			p.eval.segs = make([]map[model.Key]*evalPoint, len(p.sim.camps))
			for i := range p.eval.segs {
				p.eval.segs[i] = map[model.Key]*evalPoint{}
			}
		}
	}
	req := so.req.View() // shared with the other players
	if err := p.eng.Bidder.ScoreRequest(&req, p.opts, &p.res); err != nil {
		p.eval.err = err
		return
	}
	est := p.eng.Model.Estimates()
	chain := p.eng.Bidder.Rules().Chain()
	var buf [model.MaxLevels]model.Key
	o := &so.o
	for c := range p.sim.camps {
		camp := &p.sim.camps[c]
		sc := &p.res.Imps[0].Scores[c] // the segment (request features) of every slot
		pred := sc.CVR
		if sc.Level < 0 || !(pred > 0) {
			pred = camp.baseCVR // no estimate at all: the prior
		}
		path := chain.Keys(camp.root, &req.Imps[0], buf[:0])
		leaf := path[len(path)-1]
		raw := camp.baseCVR
		if e, ok := est.Get(leaf); ok && e.Exposures > 0 {
			raw = e.Conversions / e.Exposures
		}
		// Each slot weighs one; consecutive slots with the same truth are
		// counted together.
		for s := 0; s < len(o.Slots); {
			truth := o.Truth(s, c).CVR
			n := 1
			for s+n < len(o.Slots) && o.Truth(s+n, c).CVR == truth {
				n++
			}
			s += n
			w := float64(n)
			p.eval.all.add(pred, truth, raw, w)
			p.eval.byCamp[c].add(pred, truth, raw, w)
			if p.eval.points != nil {
				p.eval.points[c] = append(p.eval.points[c], evalPoint{pred, truth, w})
				sp := p.eval.segs[c][leaf]
				if sp == nil {
					sp = &evalPoint{}
					p.eval.segs[c][leaf] = sp
				}
				sp.Pred = pred // the same for every opportunity of the leaf
				sp.True += w * truth
				sp.W += w
			}
		}
	}
}

// EstimatorResult is how well a model's estimates match the true CVRs on
// the held-out day's traffic.
type EstimatorResult struct {
	// RMSELogCVR is the traffic-weighted root mean square of
	// ln(estimate) − ln(true CVR).
	RMSELogCVR Ratio `json:"rmse_log_cvr"`
	// CalibrationRatio is Σ estimate ÷ Σ true CVR (traffic-weighted).
	CalibrationRatio Ratio `json:"calibration_ratio"`
	// The same for the raw per-leaf c/n of the same counts (the prior
	// where the leaf was never seen, logs floored at 1e-7): what the
	// hierarchy and the delay correction add.
	RawRMSELogCVR       Ratio `json:"raw_rmse_log_cvr"`
	RawCalibrationRatio Ratio `json:"raw_calibration_ratio"`
	// Campaigns has the same figures per campaign.
	Campaigns map[string]EstimatorFigures `json:"campaigns,omitempty"`
	// LogCVRCorrelation is the traffic-weighted correlation of ln(estimate)
	// with ln(true CVR) on the held-out day, within campaigns (pooled over
	// them; see withinCorr): how well the model ranks a campaign's traffic.
	LogCVRCorrelation Ratio `json:"log_cvr_correlation"`
	// WonCalibration is, for the strategies that bid on the model, Σ the
	// model's CVR ÷ Σ the true CVR over the impressions they bought, at
	// bid time (the winner's curse shows as a ratio above 1). 0 otherwise.
	WonCalibration Ratio `json:"won_calibration,omitempty"`
	// WonLogCVRCorrelation is, for the strategies that bid on the model,
	// the correlation of ln(the model's CVR at bid time) with ln(true CVR)
	// over the impressions they bought, within campaigns. 0 otherwise.
	WonLogCVRCorrelation Ratio `json:"won_log_cvr_correlation,omitempty"`
}

// EstimatorFigures are the estimator's figures on one campaign.
type EstimatorFigures struct {
	RMSELogCVR          Ratio `json:"rmse_log_cvr"`
	CalibrationRatio    Ratio `json:"calibration_ratio"`
	RawRMSELogCVR       Ratio `json:"raw_rmse_log_cvr"`
	RawCalibrationRatio Ratio `json:"raw_calibration_ratio"`
	LogCVRCorrelation   Ratio `json:"log_cvr_correlation"`
}

func (s evalSums) figures() EstimatorFigures {
	return EstimatorFigures{
		RMSELogCVR:          Ratio(math.Sqrt(ratio(s.sqLog, s.w))),
		CalibrationRatio:    Ratio(ratio(s.pred, s.truth)),
		RawRMSELogCVR:       Ratio(math.Sqrt(ratio(s.rawSqLog, s.w))),
		RawCalibrationRatio: Ratio(ratio(s.rawPred, s.truth)),
		LogCVRCorrelation:   Ratio(s.corr.value()),
	}
}

func (p *player) estimator() EstimatorResult {
	f := p.eval.all.figures()
	byCamp := make([]corrSums, len(p.eval.byCamp))
	for c := range p.eval.byCamp {
		byCamp[c] = p.eval.byCamp[c].corr
	}
	r := EstimatorResult{
		RMSELogCVR: f.RMSELogCVR, CalibrationRatio: f.CalibrationRatio,
		RawRMSELogCVR: f.RawRMSELogCVR, RawCalibrationRatio: f.RawCalibrationRatio,
		LogCVRCorrelation: Ratio(withinCorr(byCamp)),
		Campaigns:         map[string]EstimatorFigures{},
	}
	for c, s := range p.eval.byCamp {
		r.Campaigns[p.sim.camps[c].id] = s.figures()
	}
	if p.scores {
		r.WonCalibration = Ratio(ratio(p.wonPred, p.wonTrue))
		r.WonLogCVRCorrelation = Ratio(withinCorr(p.wonCorr))
	}
	return r
}

// decile is one bin of the calibration plot: equal traffic, by estimate.
type decile struct {
	Pred, True float64 // traffic-weighted means
}

// deciles bins points by estimate into 10 bins of equal traffic.
func deciles(pts []evalPoint) []decile {
	pts = slices.Clone(pts)
	slices.SortStableFunc(pts, func(a, b evalPoint) int { return cmp.Compare(a.Pred, b.Pred) })
	var total float64
	for _, p := range pts {
		total += p.W
	}
	out := make([]decile, 0, 10)
	var w, sp, st, seen float64
	bin := 1
	for _, p := range pts {
		w += p.W
		sp += p.W * p.Pred
		st += p.W * p.True
		seen += p.W
		if seen >= total*float64(bin)/10-1e-9 || seen == total {
			if w > 0 {
				out = append(out, decile{Pred: sp / w, True: st / w})
			}
			w, sp, st = 0, 0, 0
			bin++
		}
	}
	return out
}

// scatter returns up to n leaf segments (estimate, truth, traffic), the
// most trafficked first, in a stable order.
func scatter(segs map[model.Key]*evalPoint, n int) []evalPoint {
	type kp struct {
		k model.Key
		p evalPoint
	}
	all := make([]kp, 0, len(segs))
	for k, p := range segs {
		q := *p
		q.True /= q.W // segs sum the weighted truth: its traffic-weighted mean
		all = append(all, kp{k, q})
	}
	slices.SortFunc(all, func(a, b kp) int {
		if c := cmp.Compare(b.p.W, a.p.W); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	out := make([]evalPoint, 0, min(n, len(all)))
	for _, x := range all[:min(n, len(all))] {
		out = append(out, x.p)
	}
	return out
}
