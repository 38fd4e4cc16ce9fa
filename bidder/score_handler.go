package bidder

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

var (
	scoredImps    = metrics.NewCounter(`cpafeed_bidder_scored_imps_total`)
	scoredPairs   = metrics.NewCounter(`cpafeed_bidder_scores_total`)
	thompsonDraws = metrics.NewCounter(`cpafeed_bidder_thompson_draws_total`)
)

// Estimator publishes estimates; *model.Model implements it.
type Estimator interface {
	Estimates() *model.Estimates
}

// Rememberer keeps the imps of a scored request for their win notices and
// returns how many it kept; *signals.Exposures implements it.
type Rememberer interface {
	Remember(req *signals.Request, bidder string, now int64) int
}

// Service serves the bidder endpoints of a cpafeed server: POST and GET
// /v1/score and GET /v1/model/snapshot. It is safe for concurrent use.
type Service struct {
	cfg   Config
	rules *Rules
	model Estimator
	mem   Rememberer
	now   func() time.Time
	rng   *rand.Rand
	tab   atomic.Pointer[table]
	pool  sync.Pool // *scratch
	snaps snapCache
	steer Steering // nil: multipliers 1, no shading
}

// scratch is one request's reusable state.
type scratch struct {
	ex    *signals.Extractor
	res   Result
	camps []int
	out   []byte
	imp   signals.Imp
}

// NewService serves scoring with rules on the estimates m publishes; mem,
// when not nil, remembers every scored bid request for its win notice. cfg
// is taken WithDefaults.
func NewService(cfg Config, rules *Rules, m Estimator, mem Rememberer) *Service {
	s := &Service{cfg: cfg.WithDefaults(), rules: rules, model: m, mem: mem, now: time.Now, rng: newRand()}
	s.pool.New = func() any {
		ex := signals.NewExtractor()
		ex.SetMaxImps(s.cfg.MaxImps)
		return &scratch{ex: ex}
	}
	return s
}

// SetSteering gives the closed loop's state (CPA controllers, win-rate
// curves) that bids are steered with; without it every multiplier is 1 and
// nothing is shaded. Call it before serving.
func (s *Service) SetSteering(st Steering) { s.steer = st }

// SetClock replaces time.Now (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// SetHoldout makes scoring assign households to the arms of the
// campaigns that have a holdout (see Arm, Rules.SetHoldout); snapshots
// carry the holdout to embedded scorers. Call it before serving.
func (s *Service) SetHoldout(cfg HoldoutConfig) { s.rules.SetHoldout(cfg) }

// SetRand replaces the generator of Thompson draws (by default the
// runtime's, safe for concurrent use): a seeded one makes draws repeatable
// (simulations, tests). r must be safe for the service's concurrency.
func (s *Service) SetRand(r *rand.Rand) { s.rng = r }

// Rules returns the service's rules.
func (s *Service) Rules() *Rules { return s.rules }

// table returns the latest estimates with their per-campaign constants,
// rebuilding those once per model version. The table takes the closed
// loop's multipliers and curves as they are when it is built: they change
// with the next model version (the server steps the controllers and refits
// the curves just before a model refresh).
func (s *Service) table() *table {
	est := s.model.Estimates()
	if t := s.tab.Load(); t != nil && t.est == est {
		return t
	}
	t := newTable(s.rules, est, s.steer)
	s.tab.Store(t) // a racing older table is replaced on the next call
	return t
}

// explore reads the explore parameter: the generator of Thompson draws, or
// nil.
func (s *Service) explore(v []byte) (*rand.Rand, error) {
	switch string(v) {
	case "":
		return nil, nil
	case "thompson":
		return s.rng, nil
	}
	return nil, apierr.BadRequest("explore: %q is not supported (thompson)", v)
}

// pace reads the pace parameter: a budget pacer's multiplier in (0, 1]
// (absent: 1).
func pace(v []byte) (float64, error) {
	if len(v) == 0 {
		return 1, nil
	}
	p, err := strconv.ParseFloat(string(v), 64)
	if err != nil || !(p > 0 && p <= 1) {
		return 0, apierr.BadRequest("pace: %q is not a multiplier in (0, 1] (a budget pacer may only lower bids)", v)
	}
	return p, nil
}

// auctionType reads the at parameter of GET /v1/score: 1 first price
// (shade), 2 second price; absent: 2.
func auctionType(v []byte) (first bool, err error) {
	switch string(v) {
	case "", "2":
		return false, nil
	case "1":
		return true, nil
	}
	return false, apierr.BadRequest("at: %q is not an auction type (1 first price, 2 second price)", v)
}

// HandleScore serves POST /v1/score?campaigns=a,b[&explore=thompson]
// [&pace=m] with an OpenRTB 2.5/2.6 BidRequest as body (decompressed), for
// bidder b: every imp is scored for every campaign asked (all b may score
// when campaigns is absent) and, when b sends win notices, remembered for
// them. The request's at says the auction type (1: bids are shaded). A
// malformed request is a 400 naming the JSON path; a campaign unknown or
// not b's a 404, alike.
func (s *Service) HandleScore(ctx *fasthttp.RequestCtx, body []byte, b signals.Bidder) error {
	args := ctx.QueryArgs()
	rng, err := s.explore(args.Peek("explore"))
	if err != nil {
		return err
	}
	pc, err := pace(args.Peek("pace"))
	if err != nil {
		return err
	}
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	allow := func(i int) bool { return b.MayUse(s.rules.camps[i].ID) }
	if sc.camps, err = s.rules.pickList(args.Peek("campaigns"), allow, sc.camps[:0]); err != nil {
		return err
	}
	now := s.now().Unix()
	req, err := sc.ex.Extract(body, now)
	if err != nil {
		return err
	}
	s.rules.scoreRequest(s.table(), req, sc.camps, rng, pc, &sc.res)
	s.write(ctx, sc, rng != nil)
	if s.mem != nil && b.SendsWins() {
		s.mem.Remember(req, b.BidderName(), now)
	}
	return nil
}

// HandleScoreFeatures serves GET /v1/score?campaign=ID&publisher=...: one
// imp given by its features (any feature name of signals.FeatureNames; an
// unknown parameter is a 400), scored for the campaigns of campaign= or
// campaigns= (repeatable, comma-separated; absent: all b may score), with
// explore=, pace= and at= (the auction type, 1 first price: shade; default
// 2). Answer: {"campaigns":[...],"model_version":N}. Nothing is remembered.
func (s *Service) HandleScoreFeatures(ctx *fasthttp.RequestCtx, b signals.Bidder) error {
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	sc.imp = signals.Imp{}
	sc.camps = sc.camps[:0]
	allow := func(i int) bool { return b.MayUse(s.rules.camps[i].ID) }
	var rng *rand.Rand
	var err error
	listed, first, pc := false, false, 1.0
	for k, v := range ctx.QueryArgs().All() {
		switch string(k) {
		case "campaign", "campaigns":
			if len(v) == 0 {
				return apierr.BadRequest("%s: empty campaign id", k)
			}
			listed = true
			sc.camps, err = s.rules.pickList(v, allow, sc.camps)
		case "explore":
			rng, err = s.explore(v)
		case "pace":
			pc, err = pace(v)
		case "at":
			first, err = auctionType(v)
		default:
			f, ok := s.rules.feature(k)
			if !ok {
				return apierr.BadRequest("%s: unknown feature (want campaign, campaigns, explore, pace, at or one of %s)", k, s.rules.featureList)
			}
			sc.imp.SetFeature(f, v)
		}
		if err != nil {
			return err
		}
	}
	if !listed {
		sc.camps = s.rules.pickAll(allow, sc.camps)
	}
	s.rules.scoreImp(s.table(), &sc.imp, sc.camps, rng, first, pc, &sc.res)
	s.write(ctx, sc, rng != nil)
	return nil
}

func (s *Service) write(ctx *fasthttp.RequestCtx, sc *scratch, sampled bool) {
	sc.out = sc.res.AppendJSON(sc.out[:0])
	ctx.SetContentType("application/json")
	ctx.SetBody(sc.out)
	scoredImps.Add(len(sc.res.Imps))
	scoredPairs.Add(len(sc.res.scores))
	if sampled {
		thompsonDraws.Add(len(sc.res.scores))
	}
}
