package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/server"
	"github.com/cpafeed/cpafeed/signals"
)

// player is one strategy with its own cpafeed: engine, journal, clock, the
// advertiser's reporter, its pacers and its tallies. One goroutine at a time
// plays it.
type player struct {
	sim  *simulation
	name string
	eng  *server.Engine
	log  simLog
	now  int64 // the simulated clock, Unix seconds
	rep  *market.Reporter

	scores    bool // the strategy bids on cpafeed's scores
	usesModel bool // refresh the model on schedule (else only at the end)
	opts      bidder.ScoreOptions
	bidRules  []bidder.CampaignRule // explore=thompson: each campaign's bid rule, for its draws
	res       bidder.Result
	slots     []bidder.Score // the opportunity's scores, slot × campaign (see score)
	leaves    []model.Key    // the segment leaf of each slot (first campaign)
	rootVTR   []float64      // per campaign, the model's average VTR (vtr)

	pace []pacer
	day  int // the day being played, −1 before the first

	loop closedLoop // the CPA strategies' controller and shading (simulate_control.go)

	nextRefresh, nextRefit, nextSweep int64

	tot   []campTally   // per campaign, whole run
	daily [][]campTally // per day, per campaign

	// Bid-time calibration on won impressions (strategies that score):
	// Σ the model's CVR and Σ the true CVR of what was bought, and the
	// correlation of their logs.
	wonPred, wonTrue float64
	wonCorr          []corrSums // per campaign

	eval evalTally // the held-out day

	refreshWall time.Duration // wall time spent in Refresh and Refit
	refreshes   int

	prog     *dayProgress
	index    int  // in the players
	finished bool // the last day was closed (finish)

	hold *holdoutTally // the holdout's arms, ghosts and truth (simulate_lift.go)
}

// campTally is what a strategy bought for one campaign.
type campTally struct {
	Spend       float64
	Impressions int64
	Completes   int64   // impressions whose video completed (truth)
	Converted   int64   // impressions that caused a conversion (truth, eventual)
	Expected    float64 // Σ true CVR of the impressions bought
	Multiplier  float64 // average pacing multiplier over the day's steps (daily only)
	CPAControl  float64 // cpafeed's cpa_control multiplier at the day's end (daily only; 1 for strategies outside the loop)
}

// pacer spreads one campaign's daily budget over the day: every 1/Steps of
// the day's traffic it compares the spend of the last step with the spend
// rate that would use the remaining budget over the remaining traffic, and
// moves the bid multiplier m by (wanted ÷ actual)^Gain (at most ×2 or ÷2 per
// step), within [Min, Max]. The traffic of a day (its number of bid
// requests) is known in advance, as a DSP forecasts it. A bid is placed only
// if the remaining budget covers it, so spend never exceeds the budget. A
// new day starts from the average multiplier of the previous one.
type pacer struct {
	m         float64
	spent     float64 // today
	stepSpent float64
	stepStart int // opportunity index where the step began
	nextStep  int
	mSum      float64
	steps     int
}

func newPlayer(sim *simulation, name string) (*player, error) {
	p := &player{sim: sim, name: name, day: -1, rep: sim.m.NewReporter()}
	p.now = sim.m.DayStart(0)
	var err error
	cfg := sim.cfg
	if name == StrategyCPARaw {
		// c/n of the exact segment needs the chain's leaves: under the
		// crossed structure the table holds effects, not cells, and
		// cpa_raw would bid every impression on the campaign's prior.
		cfg.Model.Structure = model.StructureChain
	}
	if p.eng, err = server.NewEngine(cfg, &p.log, p.clock); err != nil {
		return nil, err
	}
	switch name {
	case StrategyVTR, StrategyCPARaw, StrategyCPAfeed:
		p.scores, p.usesModel = true, true
	}
	for _, c := range sim.camps {
		p.opts.Campaigns = append(p.opts.Campaigns, c.id)
	}
	if name == StrategyCPAfeed && sim.opts.Explore == ExploreThompson {
		// Seeded draws: the run stays a function of the seed (the player
		// scores on one goroutine).
		p.opts.Thompson = true
		p.eng.Bidder.SetRand(rand.New(rand.NewPCG(sim.opts.Seed, 0x74686f6d70736f6e)))
		for _, c := range sim.camps {
			rule, _ := p.eng.Bidder.Rules().Campaign(c.id)
			p.bidRules = append(p.bidRules, rule)
		}
	}
	p.rootVTR = make([]float64, len(sim.camps))
	p.pace = make([]pacer, len(sim.camps))
	for i := range p.pace {
		p.pace[i].m = 1
	}
	p.tot = make([]campTally, len(sim.camps))
	p.wonCorr = make([]corrSums, len(sim.camps))
	p.hold = newHoldoutTally(p)
	p.loop = newClosedLoop(p)
	p.refresh(false) // the campaigns' priors
	p.nextRefresh = p.now + int64(sim.opts.RefreshEvery/time.Second)
	p.nextRefit = p.now + int64(sim.opts.RefitEvery/time.Second)
	p.nextSweep = p.now + sweepEvery
	return p, nil
}

func (p *player) clock() time.Time { return time.Unix(p.now, 0) }

// refresh publishes new estimates (and refits) at the current time.
func (p *player) refresh(refit bool) {
	t0 := time.Now()
	defer func() { p.refreshWall += time.Since(t0); p.refreshes++ }()
	if _, err := p.eng.FlushCredits(); err != nil { // the estimates see every credit so far
		panic(err) // the simulated journal does not fail
	}
	var est *model.Estimates
	if refit {
		est = p.eng.Model.Refit(p.now)
	} else {
		est = p.eng.Model.Refresh(p.now)
	}
	for i, c := range p.sim.camps {
		if e, ok := est.Campaign(c.id); ok {
			p.rootVTR[i] = e.VTR
		}
	}
}

// advance moves the clock to t: the advertiser's batches due by then are
// ingested at their send times, and the periodic work (refresh, refit,
// expiry sweep) runs at its times, in time order.
func (p *player) advance(t int64) error {
	for {
		next := p.nextSweep
		if p.usesModel {
			next = min(next, p.nextRefresh, p.nextRefit)
		}
		next = min(next, p.loop.next)
		if next > t {
			break
		}
		if err := p.ingest(next); err != nil {
			return err
		}
		p.now = next
		if err := p.loop.step(p, next); err != nil {
			return err
		}
		if p.usesModel && next == p.nextRefit {
			p.refresh(true)
			p.nextRefit += int64(p.sim.opts.RefitEvery / time.Second)
			if next == p.nextRefresh {
				p.nextRefresh += int64(p.sim.opts.RefreshEvery / time.Second)
			}
		} else if p.usesModel && next == p.nextRefresh {
			p.refresh(false)
			p.nextRefresh += int64(p.sim.opts.RefreshEvery / time.Second)
		}
		if next == p.nextSweep {
			p.eng.Sweep()
			p.nextSweep += sweepEvery
		}
	}
	if err := p.ingest(t); err != nil {
		return err
	}
	p.now = t
	return nil
}

// sweepEvery is the simulated time between two expiry sweeps (Engine.Sweep).
// A server sweeps every minute of wall time to give memory back; here a
// sweep of the index walks every identity key (it was the costliest call of
// a run at one every 15 simulated minutes) and nothing depends on finer
// expiry: ingest expires dedup keys and pending conversions as it goes.
const sweepEvery = 24 * 3600

// ingest posts every batch due by t through the Conversions API, each at its
// send time.
func (p *player) ingest(t int64) error {
	for _, b := range p.rep.Flush(t) {
		p.now = max(p.now, b.SendAt)
		if _, _, err := p.eng.Conversions.Ingest(b.Dataset, b.Body, "application/json"); err != nil {
			return fmt.Errorf("conversion batch at %d: %w", b.SendAt, err)
		}
	}
	return nil
}

// startDay opens day d: the day's organic conversions are queued, the
// pacers start again from the previous day's average multiplier.
func (p *player) startDay(d int) {
	p.day = d
	for _, c := range p.sim.m.Organic(d) {
		p.rep.Add(c)
		p.recordOrganic(&c)
	}
	for i := range p.pace {
		pc := &p.pace[i]
		if pc.steps > 0 {
			pc.m = pc.mSum / float64(pc.steps)
		}
		*pc = pacer{m: pc.m}
	}
	p.daily = append(p.daily, make([]campTally, len(p.sim.camps)))
}

// endDay closes the day's tallies.
func (p *player) endDay() {
	if p.day < 0 {
		return
	}
	var spend float64
	var conv int64
	for i := range p.pace {
		t := &p.daily[p.day][i]
		if pc := &p.pace[i]; pc.steps > 0 {
			t.Multiplier = pc.mSum / float64(pc.steps)
		}
		t.CPAControl = p.loop.multiplier(p, i)
		spend += t.Spend
		conv += t.Converted
	}
	p.prog.dayDone(p.index, p.day, fmt.Sprintf("%s %.0f$ %d conv", p.name, spend, conv))
}

// step updates the pacers at opportunity index i of a day of n.
func (p *player) step(i, n int) {
	cfg := p.sim.opts.Pacing
	every := max(n/cfg.Steps, 1)
	for c := range p.pace {
		pc := &p.pace[c]
		if i < pc.nextStep {
			continue
		}
		if i > 0 && i > pc.stepStart {
			left := p.sim.camps[c].budget - pc.spent
			want := left / float64(n-i) * float64(i-pc.stepStart) // spend wanted over a step like the last
			floor := p.sim.camps[c].budget / float64(n) * float64(i-pc.stepStart) * 0.02
			r := math.Pow((want+floor)/(pc.stepSpent+floor), cfg.Gain)
			pc.m = min(max(pc.m*min(max(r, 0.5), 2), cfg.Min), p.loop.paceMax(cfg.Max))
		}
		pc.mSum += pc.m
		pc.steps++
		pc.stepSpent, pc.stepStart, pc.nextStep = 0, i, i+every
	}
}

// play bids on every slot of one opportunity and reports what was won.
func (p *player) play(so *simOpp) error {
	o := &so.o
	if o.Day != p.day {
		p.endDay()
		p.startDay(o.Day)
	}
	if err := p.advance(o.Time); err != nil {
		return err
	}
	p.step(so.index, so.n)
	// The request is shared with the other players: use a view of it.
	req := so.req.View()
	if p.scores {
		if err := p.score(&req); err != nil {
			return err
		}
	}
	if err := p.holdoutArms(&req); err != nil {
		return err
	}
	m := p.sim.m
	for s := range o.Slots {
		best, bid := -1, 0.0
		for c := range p.sim.camps {
			camp := &p.sim.camps[c]
			b := p.bid(so, &req, s, c)
			if p.held(c, b) { // a control household: the bid is held back
				continue
			}
			if !(b > 0) || p.pace[c].spent+b/1000 > camp.budget {
				continue
			}
			if b > bid || b == bid && p.pace[c].spent/camp.budget < p.pace[best].spent/p.sim.camps[best].budget {
				best, bid = c, b // ties go to the campaign furthest behind its budget
			}
		}
		if err := p.reportGhost(so, &req, s, bid); err != nil {
			return err
		}
		if best < 0 {
			continue
		}
		won, price := m.Auction(o.Slots[s], bid)
		if err := p.loop.outcome(p, &req, s, best, bid, price, won, o.Time); err != nil {
			return err
		}
		if !won {
			continue
		}
		if err := p.won(so, &req, s, best, price); err != nil {
			return err
		}
	}
	return nil
}

// score fills p.slots with every slot's scores (slot s, campaign c at
// s×campaigns+c). The imps of a pod usually share their segment (the chain
// reads request-level features): an imp whose segment path equals an
// earlier one's reuses its scores, the others are scored alone, as a
// request of that one imp.
func (p *player) score(req *signals.Request) error {
	nc := len(p.sim.camps)
	p.slots = p.slots[:0]
	p.leaves = p.leaves[:0]
	chain := p.eng.Bidder.Rules().Chain()
	var buf [model.MaxLevels]model.Key
	for i := range req.Imps {
		path := chain.Keys(p.sim.camps[0].root, &req.Imps[i], buf[:0])
		leaf := path[len(path)-1]
		same := slices.Index(p.leaves, leaf)
		p.leaves = append(p.leaves, leaf)
		if same >= 0 {
			p.slots = append(p.slots, p.slots[same*nc:(same+1)*nc]...)
			continue
		}
		one := *req
		one.Imps = req.Imps[i : i+1]
		if err := p.eng.Bidder.ScoreRequest(&one, p.opts, &p.res); err != nil {
			return err
		}
		p.slots = append(p.slots, p.res.Imps[0].Scores...)
	}
	return nil
}

// won reports an impression of campaign c in slot s of so (req: the
// player's view of its request) bought at price (CPM).
func (p *player) won(so *simOpp, req *signals.Request, s, c int, price float64) error {
	o := &so.o
	m := p.sim.m
	camp := &p.sim.camps[c]
	cost := price / 1000
	pc := &p.pace[c]
	pc.spent += cost
	pc.stepSpent += cost
	if _, err := p.eng.Exposures.ExposePredicted(req, s, camp.id, price, p.loop.pred(p, so, s, c), o.Time); err != nil {
		return err
	}
	out := m.Outcome(o, s, c)
	for lvl := 1; lvl <= out.Played; lvl++ {
		if err := p.eng.Exposures.VideoEvent(req, s, camp.id, market.VASTEvent(lvl)); err != nil {
			return err
		}
	}
	t := o.Truth(s, c)
	for _, tl := range [2]*campTally{&p.tot[c], &p.daily[p.day][c]} {
		tl.Spend += cost
		tl.Impressions++
		tl.Expected += t.CVR
		if out.Played == 5 {
			tl.Completes++
		}
		if out.Converted {
			tl.Converted++
		}
	}
	if p.scores {
		sc := &p.slots[s*len(p.sim.camps)+c]
		p.wonPred += sc.CVR
		p.wonTrue += t.CVR
		if sc.CVR > 0 {
			p.wonCorr[c].add(math.Log(sc.CVR), math.Log(t.CVR), 1)
		}
	}
	var cv *market.Conversion
	if out.Converted {
		conv := m.Conversion(o, s, c, out)
		p.rep.Add(conv)
		cv = &conv
	}
	p.recordExposure(so, s, c, out, cv)
	return nil
}

// base is the strategy's bid (USD CPM) for campaign c in slot s, before
// pacing and the cap.
func (p *player) base(so *simOpp, s, c int) float64 {
	camp := &p.sim.camps[c]
	switch p.name {
	case StrategyFlat:
		return camp.valueCPM
	case StrategyOracle:
		return 1000 * camp.target * so.o.Truth(s, c).CVR
	}

	sc := &p.slots[s*len(p.sim.camps)+c]
	switch p.name {
	case StrategyVTR:
		if sc.Level < 0 || !(p.rootVTR[c] > 0) {
			return camp.valueCPM
		}
		return camp.valueCPM * sc.VTR / p.rootVTR[c]
	case StrategyCPARaw:
		cvr := camp.baseCVR // a segment never seen: the campaign's prior
		if sc.Level == p.sim.depth {
			if e, ok := p.eng.Model.Estimates().Get(sc.Key); ok && e.Exposures > 0 {
				cvr = e.Conversions / e.Exposures
			}
		}
		return 1000 * camp.target * cvr
	}
	if sc.Sampled && sc.Level >= 0 {
		return p.bidRules[c].Bid(sc.Sample) // explore=thompson: the bid rule on the draw
	}
	if sc.Arm == bidder.ArmControl {
		return sc.WouldBidCPM // held back: what it would have bid
	}
	return sc.BidCPM // cpafeed: the scoring core's bid
}

// finish ends the last day and refits the model at end (every strategy's,
// so that the held-out evaluation sees all the data).
func (p *player) finish(end int64) error {
	p.endDay()
	if err := p.advance(end); err != nil {
		return err
	}
	p.refresh(true)
	return nil
}

// drain delivers the conversions still to come from the impressions bought
// (delays up to the attribution window) without buying more, so that the
// attributed conversions cover the same eventual conversions as the truth.
func (p *player) drain(end int64) error {
	until := end + int64(p.sim.cfg.Exposures.Index.Window/time.Second) + 2*3600
	p.usesModel = false
	p.nextSweep = math.MaxInt64 // nothing left to give back
	if err := p.advance(until); err != nil {
		return err
	}
	p.eng.Attributor.Expire(p.clock()) // the last conversions' grace is over
	_, err := p.eng.FlushCredits()
	return err
}
