package simulate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/server"
	"github.com/cpafeed/cpafeed/signals"
)

// The strategies of `cpafeed simulate`, in report order.
const (
	StrategyFlat    = "flat"    // a constant CPM
	StrategyVTR     = "vtr"     // CPM ∝ the segment's measured completion rate
	StrategyCPARaw  = "cpa_raw" // CPA bidding on the segment's raw c/n
	StrategyCPAfeed = "cpafeed" // CPA bidding on cpafeed's estimates
	StrategyOracle  = "oracle"  // CPA bidding on the true CVR
)

// Strategies returns the names of every strategy, in report order.
func Strategies() []string {
	return []string{StrategyFlat, StrategyVTR, StrategyCPARaw, StrategyCPAfeed, StrategyOracle}
}

// ExploreThompson makes the cpafeed strategy bid on posterior draws
// (Options.Explore).
const ExploreThompson = "thompson"

// Options configures Run.
type Options struct {
	// Scenario and Seed make the market (see market.NewMarket).
	Scenario market.Scenario
	Seed     uint64
	// Days is the number of simulated days. Default 14.
	Days int
	// Config is the cpafeed configuration every simulated instance runs
	// (segments, model, attribution, exposures); its tenants and campaigns
	// are replaced by the scenario's. Nil: the embedded default
	// (configs/cpafeed.yaml).
	Config *server.Config
	// Explore is how the cpafeed strategy explores: "" bids on the
	// posterior mean (the scoring core's bid_cpm), ExploreThompson on a
	// draw from each segment's posterior (cvr_sample of explore=thompson).
	Explore string
	// RefreshEvery is the simulated time between two model refreshes (a
	// server refreshes every model.refresh_interval, 2s by default). A
	// rebuild recomputes every segment node's estimate and credible
	// interval, about 0.25 s of a core for the ~200 000 nodes a strategy's
	// model reaches in 14 default days: every 6 h, the three strategies
	// that bid on the model spend about 45 CPU seconds in rebuilds, a
	// third of the run. Default 6h.
	RefreshEvery time.Duration
	// RefitEvery is the simulated time between two refits (empirical-Bayes
	// strengths, delay weights; a refit also refreshes). Default 6h.
	RefitEvery time.Duration
	// Strategies to play; nil: all (Strategies()). The oracle is always
	// played (CPA ÷ oracle CPA needs it).
	Strategies []string
	// Pacing tunes the budget pacer every strategy uses.
	Pacing PacingConfig
	// ControlEvery is the simulated time between two steps of the CPA
	// controllers (and refits of the first-price curves) of the strategies
	// in cpafeed's closed loop (cpa_raw, cpafeed, oracle; see closedLoop).
	// A server steps them every control.interval (1 min); an hour is
	// fine against a reaction time of two days. Default 1h.
	ControlEvery time.Duration
	// CPAControl plays cpa_raw, cpafeed and the oracle through cpafeed's
	// closed loop (see closedLoop): the CPA controller on for every
	// campaign (campaigns' control.cpa), first-price shading, the pacer
	// capped at 1. Off, they bid as flat and vtr do: their value times the
	// pacer's multiplier (the product's default: the controller is opt-in).
	CPAControl bool
	// NoShading turns first-price shading off inside the closed loop
	// (campaigns' disable_shading): to measure what it brings.
	NoShading bool
	// ControlCount is what the controllers count (campaigns'
	// control.count): "" or model.CountAttributed, or
	// model.CountIncremental.
	ControlCount string
	// CapFactor caps every bid at CapFactor × the campaign's average value
	// CPM (1000 × target CPA × base CVR). Default 5.
	CapFactor float64
	// Workers is how many strategies are played at once (each by its own
	// goroutine; results do not depend on it). Default GOMAXPROCS.
	Workers int
	// Group is how many strategies are in memory at once: the strategies
	// are played in groups of Group, in report order, each group on the
	// market generated anew (results do not depend on it). Each strategy's
	// cpafeed holds its exposures and segment nodes, about 200 MB at the
	// end of 14 default days: in groups of 2 a run stays under 1 GB, at the
	// cost of generating the market ⌈strategies ÷ 2⌉ times (about 10 % of
	// a run's CPU each). Default 2.
	Group int
	// Progress, when set, receives one line per simulated day.
	Progress io.Writer
	// Holdout, when set, is the share of households every campaign holds
	// out (holdout.share; 0 = none); nil: the config's (5 % by default).
	// Every strategy's cpafeed has it: a held-out household is not bid
	// on, the auctions the bidder held back are reported as ghost
	// exposures.
	Holdout *float64
	// Credit, when set, is the credit of the campaigns
	// (attribution.credit: last_touch, linear or probabilistic); "": the
	// config's.
	Credit string
}

// PacingConfig tunes the budget pacer (see pacer). Zero fields take the
// defaults.
type PacingConfig struct {
	// Steps is how many times a day the multiplier is updated, at equal
	// shares of the day's traffic. Default 96.
	Steps int `json:"steps"`
	// Gain is the exponent of the multiplicative update m ← m ×
	// (wanted rate ÷ actual rate)^Gain. Default 0.5.
	Gain float64 `json:"gain"`
	// Min and Max bound the multiplier. Defaults 0.05 and 4.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

func (p PacingConfig) withDefaults() PacingConfig {
	if p.Steps <= 0 {
		p.Steps = 96
	}
	if p.Gain <= 0 {
		p.Gain = 0.5
	}
	if p.Min <= 0 {
		p.Min = 0.05
	}
	if p.Max <= 0 {
		p.Max = 4
	}
	return p
}

func (o Options) withDefaults() Options {
	if o.Days <= 0 {
		o.Days = 14
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = 6 * time.Hour
	}
	if o.RefitEvery <= 0 {
		o.RefitEvery = 6 * time.Hour
	}
	if o.ControlEvery <= 0 {
		o.ControlEvery = time.Hour
	}
	if len(o.Strategies) == 0 {
		o.Strategies = Strategies()
	}
	if o.CapFactor <= 0 {
		o.CapFactor = 5
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Group <= 0 {
		o.Group = 2
	}
	o.Pacing = o.Pacing.withDefaults()
	return o
}

// simCampaign is a scenario campaign with what the strategies derive from it.
type simCampaign struct {
	id       string
	target   float64 // USD per conversion
	baseCVR  float64
	budget   float64 // USD per day
	valueCPM float64 // 1000 × target × base CVR: the value of an average impression
	capCPM   float64
	root     model.Key
}

// simulation is what every player shares, read-only.
type simulation struct {
	opts  Options
	m     *market.Market
	camps []simCampaign
	cfg   server.Config
	depth int // levels of the segment chain below the campaign
}

// simOpp is one opportunity of a chunk: a copy of the market's, and its bid
// request extracted once for every player.
type simOpp struct {
	o     market.Opportunity
	req   *signals.Request
	index int // in its day
	n     int // opportunities of its day
}

// chunk is a run of opportunities prepared by the producer.
type chunk struct {
	opps    []simOpp
	ex      []*signals.Extractor
	body    []byte
	eval    bool         // the held-out day of the estimator evaluation
	pending atomic.Int32 // players yet to play it
}

const chunkSize = 256

// Run plays the market of opts.Scenario and opts.Seed for opts.Days
// days, once per strategy, on identical traffic, and judges cpafeed's model
// on the day after (see EstimatorResult).
//
// Every strategy has its own cpafeed: server.NewEngine (the server's wiring
// of model, exposures with their privacy gates, identity index,
// conversions with deduplication, attribution and scoring) over an
// in-memory journal (simLog: records go through AppendApply and their
// applies run in log order, as with package journal), on a simulated clock.
// Each bid request is rendered and extracted once and shared; a strategy
// bids on every slot with each campaign's bid (see player.bid), capped at
// CapFactor × the campaign's average value CPM; the bidder enters its
// highest campaign bid that the remaining daily budget covers. flat and
// vtr bid their base bid (player.base) times the campaign's pacing
// multiplier (see pacer), which may rise to PacingConfig.Max to spend the
// budget. The CPA strategies (cpa_raw, cpafeed, oracle) bid through their
// cpafeed's closed loop, the same for the three (closedLoop): their
// conversion rate × target CPA × the CPA controller's multiplier × the
// pacer's, which may only lower bids (at most 1), shaded in a first-price
// auction on the win-rate curves learned from their bids' outcomes; the
// controllers step every ControlEvery. Before issue 16 the pacer alone
// steered every strategy up to 4× its value, and in a first-price auction
// its multiplier was the only shading (the concave b = √(c²+cv) − c of the
// reference, tried then, compressed value differences and, its win-rate
// model b/(b+c) being far flatter than a log-normal competition, left
// cpafeed unable to spend 40% of its budget; the curves are now fitted,
// logit W linear in ln b, per campaign and publisher). What it wins is
// reported in process as an exposure
// (signals.Exposures.Expose, with the request's features and identities)
// and its VAST start and complete (VideoEvent); the impression's outcome
// is the market's (market.Market.Outcome: the same for every strategy), and a
// conversion it causes is queued, with the day's organic conversions, on
// the strategy's advertiser Reporter (package market), whose CAPI batches, pixel copies and
// retries are posted through conversions.Service.Ingest at their send
// times. The model is rebuilt every RefreshEvery (strategies that bid on
// it) and at the end. After the last day every strategy's conversions are
// delivered for one attribution window more, without bidding, so that its
// attributed conversions cover the same eventual conversions as the truth.
func Run(opts Options) (*Result, error) {
	opts = opts.withDefaults()
	m, err := market.NewMarket(opts.Scenario, opts.Seed)
	if err != nil {
		return nil, err
	}
	sim := &simulation{opts: opts, m: m}
	if sim.cfg, err = simConfig(opts, m); err != nil {
		return nil, err
	}
	sim.depth = len(sim.cfg.Segments)
	for _, cs := range m.Scenario().Campaigns {
		v := 1000 * cs.TargetCPA * cs.BaseCVR
		sim.camps = append(sim.camps, simCampaign{
			id: cs.ID, target: cs.TargetCPA, baseCVR: cs.BaseCVR, budget: cs.DailyBudget,
			valueCPM: v, capCPM: opts.CapFactor * v, root: model.RootKey(cs.ID),
		})
	}
	names, err := strategyList(opts.Strategies)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cpu0 := processCPU()
	var done []played
	for g := 0; g < len(names); g += opts.Group {
		group, err := sim.playGroup(names[g:min(g+opts.Group, len(names))])
		if err != nil {
			return nil, err
		}
		done = append(done, group...)
	}
	res := buildResult(sim, done)
	res.Wall, res.CPU = time.Since(start), processCPU()-cpu0
	return res, nil
}

// playGroup plays some strategies to the end and sums them up; their
// engines are closed when it returns.
func (sim *simulation) playGroup(names []string) ([]played, error) {
	players := make([]*player, 0, len(names))
	defer func() {
		for _, p := range players {
			p.eng.Close()
		}
	}()
	for _, name := range names {
		p, err := newPlayer(sim, name)
		if err != nil {
			return nil, err
		}
		players = append(players, p)
	}
	if err := sim.run(players); err != nil {
		return nil, err
	}
	out := make([]played, len(players))
	for i, p := range players {
		if w := sim.opts.Progress; w != nil {
			fmt.Fprintf(w, "%s: %d model rebuilds in %v, %d segment nodes, %d journal records (%.0f MB)\n",
				p.name, p.refreshes, p.refreshWall.Round(time.Millisecond), p.eng.Model.Estimates().Len(), p.log.records, float64(p.log.bytes)/1e6)
		}
		out[i] = p.result()
	}
	return out, nil
}

func strategyList(asked []string) ([]string, error) {
	known := map[string]bool{}
	for _, s := range Strategies() {
		known[s] = true
	}
	want := map[string]bool{StrategyOracle: true}
	for _, s := range asked {
		if !known[s] {
			return nil, fmt.Errorf("unknown strategy %q (known: %v)", s, Strategies())
		}
		want[s] = true
	}
	var out []string
	for _, s := range Strategies() {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// simConfig is the configuration of every simulated cpafeed: opts.Config
// (or the embedded default) with the scenario's advertiser, datasets and
// campaigns.
func simConfig(opts Options, m *market.Market) (server.Config, error) {
	var cfg server.Config
	if opts.Config != nil {
		cfg = *opts.Config
	} else {
		var err error
		if cfg, err = server.ParseConfig(configs.Default); err != nil {
			return cfg, err
		}
	}
	const adv = "simulated-advertiser"
	seen := map[string]bool{}
	var datasets []string
	for _, c := range m.Scenario().Campaigns {
		if !seen[c.Dataset] {
			seen[c.Dataset] = true
			datasets = append(datasets, c.Dataset)
		}
	}
	cfg.Advertisers = []server.Advertiser{{Name: adv, Token: "simulated-advertiser-token", Datasets: datasets}}
	cfg.Bidders = []server.Bidder{{Name: "simulated-bidder", Token: "simulated-bidder-token"}}
	cfg.Campaigns = nil
	for _, c := range m.Scenario().Campaigns {
		cfg.Campaigns = append(cfg.Campaigns, model.Campaign{
			ID: c.ID, Advertiser: adv, Event: c.Event, TargetCPA: c.TargetCPA,
			// The advertiser's average CVR is its prior: flat and vtr
			// are scaled by it too. No floor, no cap, pacing 1 in the
			// scoring core: the simulation's pacer multiplies and caps
			// every strategy's bid the same way (inside the closed
			// loop, after the CPA controller's multiplier).
			PriorCVR: c.BaseCVR,
			Control:  model.Control{CPA: opts.CPAControl, DisableShading: opts.NoShading, Count: opts.ControlCount},
		})
	}
	// Remembered bids serve win notices and VAST beacons over HTTP; the
	// simulation reports exposures and VAST events in process, so it
	// remembers nothing: a TTL under a second makes exposures skip it.
	cfg.Exposures.BidMemoryBytes = 1 << 20
	cfg.Exposures.BidTTL = time.Millisecond
	// The simulated bidder never resends an exposure or a beacon, so the
	// idempotency window only costs: with the default hour, each of the
	// ~2 lookups per impression probed 7 generation maps (10% of a run).
	cfg.Exposures.IdempotencyWindow = time.Second
	// The market's household graph comes in user.eids, as a DSP would
	// configure its graph vendor.
	cfg.Identity.HouseholdEIDSources = []string{market.HouseholdEIDSource}
	cfg.Exposures.Index.Window = 0 // derived from the campaigns again
	if opts.Holdout != nil {
		share := *opts.Holdout
		cfg.Holdout.Share = &share
	}
	if opts.Credit != "" {
		cfg.Attribution.Credit = opts.Credit
	}
	cfg = cfg.WithDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	return cfg, nil
}

// pipelineDepth is how many chunks may be in flight: prepared by the
// producer and not yet played by every player. Each chunk holds chunkSize
// extractors of about 17 KB: at 32 chunks they were 136 MB of a run's live
// heap; 8 keep the players busy as well (they share GOMAXPROCS cores).
const pipelineDepth = 8

// run streams the opportunities of every day, then of the held-out day, to
// the players: one producer goroutine renders and extracts each bid request
// once into chunks, and every player plays each chunk in order on its own
// goroutine (at most opts.Workers at a time), without waiting for the
// others; a chunk is reused once every player is done with it. Results do
// not depend on the scheduling: a player only ever touches its own state
// and read-only chunks. Then each player delivers its last conversions
// (drain).
func (sim *simulation) run(players []*player) error {
	opts := sim.opts
	free := make(chan *chunk, pipelineDepth)
	for range pipelineDepth {
		c := &chunk{opps: make([]simOpp, chunkSize), ex: make([]*signals.Extractor, chunkSize)}
		for j := range c.ex {
			c.ex[j] = signals.NewExtractor()
		}
		free <- c
	}
	ins := make([]chan *chunk, len(players))
	for i := range ins {
		ins[i] = make(chan *chunk, pipelineDepth)
	}
	sem := make(chan struct{}, opts.Workers)
	prog := newDayProgress(opts, len(players))
	end := sim.m.DayStart(opts.Days)
	errs := make([]error, len(players))
	var failed atomic.Bool
	var wg sync.WaitGroup
	for i, p := range players {
		p.prog, p.index = prog, i
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ins[i] {
				if errs[i] == nil {
					sem <- struct{}{}
					errs[i] = p.playChunk(c, end)
					<-sem
					if errs[i] != nil {
						errs[i] = fmt.Errorf("%s: %w", p.name, errs[i])
						failed.Store(true)
					}
				}
				if c.pending.Add(-1) == 0 {
					free <- c
				}
			}
			if errs[i] == nil {
				sem <- struct{}{}
				if errs[i] = p.drain(end); errs[i] != nil {
					errs[i] = fmt.Errorf("%s: %w", p.name, errs[i])
				}
				<-sem
			}
		}()
	}
	send := func(c *chunk) {
		c.pending.Store(int32(len(players)))
		for _, in := range ins {
			in <- c
		}
	}
	var perr error
	for d := 0; d <= opts.Days && perr == nil && !failed.Load(); d++ {
		perr = produceDay(sim.m, d, d == opts.Days, free, send)
	}
	for _, in := range ins {
		close(in)
	}
	wg.Wait()
	return errors.Join(perr, errors.Join(errs...))
}

// playChunk plays (or, on the held-out day, evaluates) one chunk.
func (p *player) playChunk(c *chunk, end int64) error {
	if c.eval && !p.finished {
		p.finished = true
		if err := p.finish(end); err != nil {
			return err
		}
	}
	for i := range c.opps {
		if c.eval {
			p.evaluate(&c.opps[i])
			continue
		}
		if err := p.play(&c.opps[i]); err != nil {
			return err
		}
	}
	return p.eval.err
}

// produceDay renders and extracts the opportunities of day d into chunks
// taken from free and hands each to send.
func produceDay(m *market.Market, d int, eval bool, free <-chan *chunk, send func(*chunk)) error {
	it := m.Day(d)
	n := it.Len()
	for index := 0; index < n; {
		c := <-free
		c.opps, c.eval = c.opps[:cap(c.opps)], eval
		k := 0
		for ; k < len(c.opps); k++ {
			o := it.Next()
			if o == nil {
				break
			}
			so := &c.opps[k]
			o.CopyTo(&so.o)
			c.body = m.AppendBidRequest(c.body[:0], o)
			req, err := c.ex[k].Extract(c.body, o.Time)
			if err != nil {
				return fmt.Errorf("day %d opportunity %d: %w", d, index, err)
			}
			so.req, so.index, so.n = req, index, n
			index++
		}
		c.opps = c.opps[:k]
		send(c)
	}
	return nil
}

// dayProgress prints a line per day once every player has played it.
type dayProgress struct {
	w     io.Writer
	days  int
	names []string
	mu    sync.Mutex
	done  map[int][]string // day → each player's summary, by player index
}

func newDayProgress(opts Options, players int) *dayProgress {
	return &dayProgress{w: opts.Progress, days: opts.Days, names: make([]string, players), done: map[int][]string{}}
}

// dayDone records player i's summary of day d and prints the day when it
// is the last.
func (pr *dayProgress) dayDone(i, d int, summary string) {
	if pr == nil || pr.w == nil {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	sums := pr.done[d]
	if sums == nil {
		sums = make([]string, len(pr.names))
		pr.done[d] = sums
	}
	sums[i] = summary
	for _, s := range sums {
		if s == "" {
			return
		}
	}
	fmt.Fprintf(pr.w, "day %d/%d %s\n", d+1, pr.days, strings.Join(sums, " | "))
	delete(pr.done, d)
}

// ratio is a/b, NaN when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}
