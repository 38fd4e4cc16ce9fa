package signals

import (
	"fmt"
	"math"

	"github.com/cpafeed/cpafeed/model"
)

// In-process producers (the market simulation of package bench/simulate) hold an
// extracted Request already; these entry points take it instead of a body,
// and then run exactly what the HTTP handlers run: the privacy gate, the
// identities, the idempotency key, the journal record and its apply.

// Expose records that campaign's ad was shown in imp i of req at ts (Unix
// seconds) for priceCPM (currency per mille), as POST /v1/exposures does for
// {"request": <req>, "imp_id", "campaign", "price_cpm", "ts"}: it returns once
// the exposure is journaled and applied (counted in the model, indexed when
// the privacy gate allows it). stored is false for a duplicate of (request
// id, imp id, campaign). req is read during the call only.
func (x *Exposures) Expose(req *Request, i int, campaign string, priceCPM float64, ts int64) (stored bool, err error) {
	return x.ExposePredicted(req, i, campaign, priceCPM, -1, ts)
}

// ExposePredicted is Expose with the conversion rate the bid was made on
// (pred, journaled with the exposure for the CPA controller) instead of
// the predictor's (SetPredictor); a negative pred means the predictor's.
func (x *Exposures) ExposePredicted(req *Request, i int, campaign string, priceCPM, pred float64, ts int64) (stored bool, err error) {
	num, ok := x.campaigns[campaign]
	if !ok {
		return false, fmt.Errorf("signals: unknown campaign %q", campaign)
	}
	if i < 0 || i >= len(req.Imps) {
		return false, fmt.Errorf("signals: imp %d of a request with %d", i, len(req.Imps))
	}
	if !(priceCPM >= 0) || math.IsInf(priceCPM, 0) {
		return false, fmt.Errorf("signals: price_cpm %g: must be a number >= 0", priceCPM)
	}
	now := x.now()
	if ts < now.Add(-x.cfg.MaxAge).Unix() || ts > now.Add(x.cfg.MaxFuture).Unix() {
		return false, fmt.Errorf("signals: ts %d outside [now − %s, now + %s]", ts, x.cfg.MaxAge, x.cfg.MaxFuture)
	}
	imp := &req.Imps[i]
	indexed, _ := Gate(req.Privacy(), x.cfg.TCFVendorID)
	var buf [8]ID
	ids := x.impIDs(req, imp, buf[:0])
	e := x.newExposure(num, campaign, imp, req.ID, imp.ID, ts, priceCPM/1000, indexed, ids)
	if pred >= 0 {
		e.pred = validPred(pred)
	}
	n, err := x.commit([]exposure{e})
	return n == 1, err
}

// ExposeGhost records that the bidder held campaign's ad back from imp i
// of req at ts because the household is in the campaign's control arm
// (its holdout), as POST /v1/exposures does for {"request": <req>,
// "imp_id", "campaign", "ghost": true, "bid_cpm", "win_prob", "ts"}: the
// ghost exposure is journaled and indexed for the lift measurement, never
// counted in the model. bidCPM is the bid it would have made, winProb its
// probability of winning (in (0, 1]). It shares the idempotency key of a
// real exposure of the same (request id, imp id, campaign).
func (x *Exposures) ExposeGhost(req *Request, i int, campaign string, bidCPM, winProb float64, ts int64) (stored bool, err error) {
	if !(winProb > 0 && winProb <= 1) {
		return false, fmt.Errorf("signals: win_prob %g: must be in (0, 1]", winProb)
	}
	if !(bidCPM >= 0) || math.IsInf(bidCPM, 0) {
		return false, fmt.Errorf("signals: bid_cpm %g: must be a number >= 0", bidCPM)
	}
	num, ok := x.campaigns[campaign]
	if !ok {
		return false, fmt.Errorf("signals: unknown campaign %q", campaign)
	}
	if i < 0 || i >= len(req.Imps) {
		return false, fmt.Errorf("signals: imp %d of a request with %d", i, len(req.Imps))
	}
	now := x.now()
	if ts < now.Add(-x.cfg.MaxAge).Unix() || ts > now.Add(x.cfg.MaxFuture).Unix() {
		return false, fmt.Errorf("signals: ts %d outside [now − %s, now + %s]", ts, x.cfg.MaxAge, x.cfg.MaxFuture)
	}
	imp := &req.Imps[i]
	indexed, _ := Gate(req.Privacy(), x.cfg.TCFVendorID)
	var buf [8]ID
	ids := x.impIDs(req, imp, buf[:0])
	e := x.newExposure(num, campaign, imp, req.ID, imp.ID, ts, 0, indexed, ids)
	e.ghost, e.bid, e.winProb = true, bidCPM, winProb
	n, err := x.commit([]exposure{e})
	return n == 1, err
}

// VideoEvent records VAST event ev of campaign's ad in imp i of req, as GET
// /v1/vast does for a won exposure: "start" and "complete" are journaled
// and counted on the imp's segment leaf at the current time, once per
// (request id, imp id, campaign, event); every other event is ignored, as
// the beacon only counts it in metrics. req is read during the call only.
func (x *Exposures) VideoEvent(req *Request, i int, campaign, ev string) error {
	if starts, completes, _ := vastCounts(ev); starts+completes == 0 {
		return nil
	}
	num, ok := x.campaigns[campaign]
	if !ok {
		return fmt.Errorf("signals: unknown campaign %q", campaign)
	}
	if i < 0 || i >= len(req.Imps) {
		return fmt.Errorf("signals: imp %d of a request with %d", i, len(req.Imps))
	}
	imp := &req.Imps[i]
	var buf [model.MaxLevels]model.Key
	path := x.chain.Keys(x.roots[num], imp, buf[:0])
	return x.commitVideo(x.videoEventOf(x.now().Unix(), req.ID, imp.ID, campaign, ev, path[len(path)-1]))
}

// View returns a copy of r that shares its bytes (read-only) but not its
// scratch buffer, so that several goroutines may each use their own view of
// one extracted request at once: IDs writes the scratch buffer, nothing
// else of a Request changes after Extract. A view is valid as long as r is.
func (r *Request) View() Request {
	v := *r
	v.scratch = nil
	return v
}
