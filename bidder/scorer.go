package bidder

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpafeed/cpafeed/signals"
)

// ScorerConfig configures a Scorer. Zero fields take the defaults below.
type ScorerConfig struct {
	// Interval is how often Run asks the server for a newer snapshot (GET
	// /v1/model/snapshot?since=N: a 304 costs a round trip, nothing more).
	// Default 2s, the server's default model refresh interval.
	Interval time.Duration `yaml:"interval"`
	// OnError, when set, receives Run's refresh errors; the Scorer keeps
	// scoring with the snapshot it has and retries on the next tick.
	OnError func(error) `yaml:"-"`
	// MaxImps is the most imps of a bid request Score accepts (a 400
	// naming imp beyond), as the server's exposures.max_imps. Default (0)
	// signals.DefaultMaxImps, 32.
	MaxImps int `yaml:"max_imps"`
	// HouseholdCache is how many identities the household cache of the
	// holdout keeps (about 40 bytes each): it keeps a household in one arm
	// across its devices and IP changes (see signals.Households). Default
	// (0) signals.DefaultHouseholdCache.
	HouseholdCache int `yaml:"household_cache"`
}

// Scorer scores bid requests in process, without a network hop, from a
// snapshot of a cpafeed server's model that it keeps fresh. For the same
// model version its answers equal the server's (the same code computes
// them). It is safe for concurrent use; scoring takes no lock and
// allocates nothing in steady state.
type Scorer struct {
	client *Client
	cfg    ScorerConfig
	snap   atomic.Pointer[Snapshot]
	rng    *rand.Rand
	now    func() time.Time // the hour and daypart features
	pool   sync.Pool        // *scorerScratch
	mu     sync.Mutex       // serializes Refresh and adopt
	hold   *holdout         // kept across snapshots while the server's holdout is the same
}

type scorerScratch struct {
	ex    *signals.Extractor
	camps []int
}

// NewScorer downloads the first snapshot with c and returns a Scorer that
// follows the server once Run is started.
func NewScorer(ctx context.Context, c *Client, cfg ScorerConfig) (*Scorer, error) {
	s := newScorer(c, cfg)
	if _, err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// NewScorerFromSnapshot returns a Scorer of a fixed snapshot (e.g. read
// from a file with ParseSnapshot); Refresh and Run need a client and fail.
func NewScorerFromSnapshot(sn *Snapshot) *Scorer {
	s := newScorer(nil, ScorerConfig{})
	s.Use(sn)
	return s
}

// adopt gives sn's rules the Scorer's holdout (its household cache lives
// across snapshots), made anew when the server's holdout changed.
func (s *Scorer) adopt(sn *Snapshot) {
	if len(sn.hold.Key) == 0 {
		return
	}
	h := s.hold
	if h == nil || string(h.cfg.Key) != string(sn.hold.Key) || !slices.Equal(h.cfg.HouseholdSources, sn.hold.HouseholdSources) || h.cfg.TCFVendorID != sn.hold.TCFVendorID {
		cfg := sn.hold
		cfg.HouseholdCache = s.cfg.HouseholdCache
		h = &holdout{cfg: cfg, hh: signals.NewHouseholds(cfg.Key, cfg.HouseholdSources, cfg.TCFVendorID, cfg.HouseholdCache)}
		s.hold = h
	}
	if sn.rules.holdout != h {
		sn.rules.setHoldout(h)
	}
}

func newScorer(c *Client, cfg ScorerConfig) *Scorer {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	s := &Scorer{client: c, cfg: cfg, rng: newRand(), now: time.Now}
	s.pool.New = func() any {
		ex := signals.NewExtractor()
		ex.SetMaxImps(cfg.MaxImps)
		return &scorerScratch{ex: ex}
	}
	return s
}

// Snapshot returns the snapshot in use.
func (s *Scorer) Snapshot() *Snapshot { return s.snap.Load() }

// Version returns the model version in use.
func (s *Scorer) Version() uint64 { return s.snap.Load().Version() }

// Use replaces the snapshot in use (scoring calls already running finish
// with the previous one). The snapshot's rules get the Scorer's holdout.
func (s *Scorer) Use(sn *Snapshot) {
	s.mu.Lock()
	s.adopt(sn)
	s.mu.Unlock()
	s.snap.Store(sn)
}

// Refresh asks the server for a snapshot newer than the one in use and
// swaps it in; changed is false when the server had nothing newer.
func (s *Scorer) Refresh(ctx context.Context) (changed bool, err error) {
	if s.client == nil {
		return false, errors.New("bidder: scorer without a client cannot refresh")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var since uint64
	if cur := s.snap.Load(); cur != nil {
		since = cur.Version()
	}
	sn, err := s.client.Snapshot(ctx, since)
	if err != nil || sn == nil {
		return false, err
	}
	s.adopt(sn)
	s.snap.Store(sn)
	return true, nil
}

// Run refreshes every Interval until ctx ends.
func (s *Scorer) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Refresh(ctx); err != nil && s.cfg.OnError != nil && ctx.Err() == nil {
				s.cfg.OnError(err)
			}
		}
	}
}

// Score scores every imp of an OpenRTB 2.5/2.6 BidRequest (JSON) for the
// campaigns of opts into res, as POST /v1/score would: a household held
// out of a campaign gets ArmControl, BidCPM 0 and the bid it would have
// made in WouldBidCPM (the Scorer's household cache is its own: see
// signals.Households). Errors are the
// server's: *apierr.Error 400 (malformed request, with the JSON path), 404
// (a campaign unknown or not the bidder's, alike). Nothing is
// remembered for win notices (post the bid request to /v1/bids for that).
func (s *Scorer) Score(bidRequest []byte, opts ScoreOptions, res *Result) error {
	sn := s.snap.Load()
	sc := s.pool.Get().(*scorerScratch)
	defer s.pool.Put(sc)
	var err error
	if sc.camps, err = sn.rules.pickIDs(opts.Campaigns, sc.camps[:0]); err != nil {
		return err
	}
	req, err := sc.ex.Extract(bidRequest, s.now().Unix())
	if err != nil {
		return err
	}
	sn.rules.scoreRequest(sn.tab, req, sc.camps, s.explore(opts), opts.Pace, res)
	return nil
}

// ScoreImp scores one imp given by its features (signals.Imp.SetFeature
// or SetFeatureString) for the campaigns of opts into res, as GET
// /v1/score would.
func (s *Scorer) ScoreImp(imp *signals.Imp, opts ScoreOptions, res *Result) error {
	sn := s.snap.Load()
	sc := s.pool.Get().(*scorerScratch)
	defer s.pool.Put(sc)
	var err error
	if sc.camps, err = sn.rules.pickIDs(opts.Campaigns, sc.camps[:0]); err != nil {
		return err
	}
	sn.rules.scoreImp(sn.tab, imp, sc.camps, s.explore(opts), opts.FirstPrice, opts.Pace, res)
	return nil
}

func (s *Scorer) explore(opts ScoreOptions) *rand.Rand {
	if opts.Thompson {
		return s.rng
	}
	return nil
}
