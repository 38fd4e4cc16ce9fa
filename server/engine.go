package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/conversions"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/shading"
	"github.com/cpafeed/cpafeed/signals"
)

// EngineLog is the durable log an Engine writes through: *journal.Journal,
// or an in-memory log with the same contract (apply runs in log order
// before Wait returns) for simulations. It is the log the conversions and
// exposure sides already declare (conversions.Log, signals.Log).
type EngineLog = conversions.Log

// Engine is cpafeed's in-memory state wired exactly as a server wires it
// (conversions → attribution → model, exposures → index → attribution,
// scoring on the model's estimates), without HTTP, disk or background work:
// the caller gives the log and the clock, and runs the periodic work
// (Model.Refresh, Model.Refit, Sweep) on its own schedule. It is for in-process drivers such as
// the market simulation of package bench/simulate. Its components are safe for
// concurrent use as documented in their packages.
type Engine struct {
	Model       *model.Model
	Hasher      *signals.Hasher
	Index       *signals.Index
	Exposures   *signals.Exposures
	Conversions *conversions.Service
	Attributor  *conversions.Attributor
	Eraser      *conversions.Eraser
	Bidder      *bidder.Service
	Chain       *signals.Chain
	// LiftLevel is the segment level of the lift feature (1 = the first
	// below the campaign; 0: it is not a level).
	LiftLevel int
	// Control holds every campaign's CPA controller; Shading the bid
	// outcomes and the first-price win-rate curves. Steer steps and refits
	// them.
	Control *control.Controller
	Shading *shading.Book

	now func() time.Time
}

// NewEngine builds the components of cfg (taken WithDefaults and
// validated) over log, reading time only from now.
func NewEngine(cfg Config, log EngineLog, now func() time.Time) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return newEngine(cfg, log, now, newTenants(cfg))
}

// newEngine wires the components of a validated cfg; the server passes its
// own tenants.
func newEngine(cfg Config, log EngineLog, now func() time.Time, t *tenants) (*Engine, error) {
	cfg.Conversions.Now = now
	chain, err := signals.NewChain(cfg.SegmentLevels())
	if err != nil {
		return nil, err
	}
	e := &Engine{now: now, Chain: chain, Hasher: signals.NewHasher([]byte(cfg.Identity.Secret), cfg.Identity.HouseholdEIDSources...)}
	e.LiftLevel = conversions.LiftLevel(cfg.SegmentLevels(), cfg.Attribution.LiftFeature)
	cfg.Exposures.LiftLevel, cfg.Exposures.LiftGroups = e.LiftLevel, cfg.Attribution.LiftGroups
	e.Model = model.New(cfg.Model, cfg.Campaigns)
	e.Index = signals.NewIndex(cfg.Exposures.Index)
	if e.Exposures, err = signals.NewExposures(cfg.Exposures, signals.ExposureDeps{
		Chain: chain, Hasher: e.Hasher, Index: e.Index, Counter: e.Model, Log: log, Campaigns: cfg.Campaigns,
	}); err != nil {
		return nil, err
	}
	e.Exposures.SetClock(now)
	e.Exposures.SetBidders(t)
	if e.Conversions, err = conversions.NewService(cfg.Conversions, log, e.Hasher, t); err != nil {
		e.Exposures.Close()
		return nil, err
	}
	e.Attributor = conversions.NewAttributor(cfg.Attribution, conversions.AttributorDeps{
		Index: e.Index, Model: e.Model, Datasets: cfg.Conversions.Datasets,
		Campaigns: cfg.Campaigns, CampaignNumber: e.Exposures.CampaignNumber,
	})
	e.Attributor.SetLog(log)
	e.Eraser = conversions.NewEraser(e.Conversions, e.Attributor, e.Index)
	e.Conversions.SetStoredHook(e.Attributor.OnStored)
	e.Exposures.OnIndexed(e.Attributor.OnIndexed)
	rules, err := bidder.NewRules(cfg.SegmentLevels(), cfg.Campaigns)
	if err != nil {
		e.Exposures.Close()
		return nil, fmt.Errorf("bidder rules: %w", err)
	}
	e.Bidder = bidder.NewService(cfg.Bidder, rules, e.Model, e.Exposures)
	e.Bidder.SetClock(now)
	e.Bidder.SetHoldout(bidder.HoldoutConfig{Key: holdoutKey(cfg.Identity.Secret), HouseholdSources: cfg.Identity.HouseholdEIDSources,
		TCFVendorID: cfg.Identity.TCFVendorID, HouseholdCache: cfg.Holdout.HouseholdCache})
	e.Control = control.New(log, controlCampaigns(cfg.Campaigns))
	e.Shading = shading.NewBook(cfg.Shading)
	e.Exposures.OnExposed(func(campaign string, ts int64, cost, pred float64, auction, imp []byte) {
		e.Model.Predicted(campaign, ts, pred)
		e.Control.OnExposed(campaign, ts, cost, auction, imp)
	})
	e.Exposures.SetPredictor(e.Bidder.Predict)
	e.Exposures.OnOutcome(func(_ string, root, cut model.Key, bid, _ float64, won bool, ts int64) {
		e.Shading.Observe(uint64(root), uint64(cut), bid, won, ts)
	})
	e.Bidder.SetSteering(steering{e.Control, e.Shading})
	return e, nil
}

// controlCampaigns maps the campaigns' control settings (taken
// WithDefaults) to the controller's.
func controlCampaigns(campaigns []model.Campaign) []control.Campaign {
	out := make([]control.Campaign, len(campaigns))
	for i, c := range campaigns {
		c = c.WithDefaults()
		k := c.Control
		out[i] = control.Campaign{ID: c.ID, Window: k.Window.Seconds(), Params: control.Params{
			Enabled: k.CPA, Target: c.TargetCPA, Min: k.Min, Max: k.Max,
			ReactionTime: k.ReactionTime.Seconds(), ExploreShare: k.ExploreShare, Incremental: k.Count == model.CountIncremental,
		}}
	}
	return out
}

// steering is the bidder's view of the closed loop.
type steering struct {
	c *control.Controller
	b *shading.Book
}

func (s steering) Controls() *control.Table { return s.c.Table() }
func (s steering) Curves() *shading.Curves  { return s.b.Curves() }

// Steer steps every campaign's CPA controller at now, on its recent
// delivery (model.ControlStats; the new multipliers are journaled), and
// refits the first-price win-rate curves. Their new values reach bids with
// the next model version (Model.Refresh): a server runs it every
// control.interval just before a refresh.
func (e *Engine) Steer(now int64) error {
	e.Shading.Refit(now)
	lost := e.Shading.Lost(now)
	return e.Control.Update(now, func(id string, p control.Params) (control.Measure, bool) {
		st, ok := e.Model.ControlStats(id, now)
		m := control.Measure{Spend: st.Spend, Exposures: st.Exposures, Conversions: st.Conversions, NEff: st.NEff, Predicted: st.Predicted, Long: st.Long,
			Lost: lost[uint64(model.RootKey(id))]}
		if p.Enabled && p.Incremental { // only the incremental count reads the lift (under the attribution lock)
			m.Lift.Treated, m.Lift.Organic, m.Lift.Control, _ = e.Attributor.Incrementality(id)
		}
		return m, ok
	})
}

// FlushCredits journals the probabilistic credits of the conversions
// matched since the last call (conversions.Attributor.FlushCredits): a
// server does it every attribution.credit_interval and before each
// refresh of the estimates.
func (e *Engine) FlushCredits() (int, error) { return e.Attributor.FlushCredits(e.now()) }

// Sweep runs the expiries a server runs every minute (background): dedup
// keys, pending conversions past their grace, index keys past the window.
func (e *Engine) Sweep() {
	now := e.now()
	e.Conversions.Expire()
	e.Attributor.Expire(now)
	e.Index.Sweep(now.Unix())
}

// Close releases the exposures' bid memory.
func (e *Engine) Close() { e.Exposures.Close() }
