package signals

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/model"
)

// ExposureConfig configures the exposure side: remembered bids, idempotency
// and the identity index.
type ExposureConfig struct {
	// BidTTL is how long a bid request seen by /v1/score or /v1/bids is
	// remembered for its win notice, and a won exposure for its VAST events.
	// Default 15m.
	BidTTL time.Duration `yaml:"bid_ttl"`
	// BidMemoryBytes bounds the memory of remembered bids and won exposures,
	// in bytes: three quarters for the bids (about 340 bytes each for a
	// 3-imp CTV pod, oldest pushed out first when full, counted and logged),
	// a quarter for the won exposures (about 48 bytes each). Keeping every
	// bid for BidTTL takes scored requests/s × BidTTL × bytes per bid × 4/3.
	// Default 256 MiB.
	BidMemoryBytes int64 `yaml:"bid_memory_bytes"`
	// MaxBatch is the most exposures in one POST /v1/exposures. Default 10000.
	MaxBatch int `yaml:"max_batch"`
	// MaxImps is the most imps of one bid request (POST /v1/score,
	// /v1/bids, and each request of POST /v1/exposures); a request with
	// more is a 400 naming imp. A CTV request carries one ad pod, a
	// handful of imps at most (see DefaultMaxImps). Default (0) 32.
	MaxImps int `yaml:"max_imps"`
	// MaxWinPriceCPM is the highest price a win notice may carry, in the
	// campaign's currency per mille; a win above it is booked at price 0
	// and counted (cpafeed_wins_price_over_cap_total), as a price that
	// cannot be read is: its exposure happened, its price is not
	// believed (an attack, or a price macro in another unit). CTV CPMs
	// are tens of dollars. Default (0) 1000, a dollar an impression.
	MaxWinPriceCPM float64 `yaml:"max_win_price_cpm"`
	// IdempotencyWindow is how long (request id, imp id, campaign) is
	// remembered so a retried exposure or a second win notice is not counted
	// twice. Default 1h.
	IdempotencyWindow time.Duration `yaml:"idempotency_window"`
	// MaxIdempotencyKeys bounds that memory (~38 bytes a key); beyond it the
	// oldest generation is forgotten early (counted). Default 20 000 000.
	MaxIdempotencyKeys int `yaml:"max_idempotency_keys"`
	// MaxAge refuses exposures whose ts is older than this. Default 168h.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxFuture refuses exposures whose ts is further ahead than this.
	// Default 10m.
	MaxFuture time.Duration `yaml:"max_future"`
	// Index bounds the identity index.
	Index IndexConfig `yaml:"index"`
	// TCFVendorID is the identity config's TCF vendor id (see Gate).
	TCFVendorID int `yaml:"-"`
	// LiftLevel is the level of the segment path (1 = the first below the
	// campaign) whose value is the lift feature (attribution.lift_feature),
	// and LiftGroups how many groups its values are hashed into (at most
	// 255): an indexed exposure carries its group (IndexedExposure.Group)
	// for the lift report's coarse cut. Set by the server; 0: no groups.
	LiftLevel  int `yaml:"-"`
	LiftGroups int `yaml:"-"`
	// Logger receives the bid memory's warnings. Nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ExposureConfig) WithDefaults() ExposureConfig {
	if c.BidTTL == 0 {
		c.BidTTL = 15 * time.Minute
	}
	if c.BidMemoryBytes == 0 {
		c.BidMemoryBytes = 256 << 20
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 10000
	}
	if c.MaxImps == 0 {
		c.MaxImps = DefaultMaxImps
	}
	if c.MaxWinPriceCPM == 0 {
		c.MaxWinPriceCPM = 1000
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = time.Hour
	}
	if c.MaxIdempotencyKeys == 0 {
		c.MaxIdempotencyKeys = 20_000_000
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Index = c.Index.WithDefaults()
	return c
}

// Counter receives segment counts; *model.Model implements it.
type Counter interface {
	Expose(ts int64, path []model.Key, labels [][]byte, cost float64) bool
	Video(ts int64, leaf model.Key, starts, completes float64) bool
}

// Log is the durable journal; *journal.Journal implements it. An apply runs
// after its record is durable, in log order, and Wait returns after it ran.
type Log interface {
	AppendApply(rec []byte, undo, apply func()) (lsn, epoch uint64, err error)
	Wait(lsn, epoch uint64) error
}

// Bidders says which bidders a win notice or VAST beacon of a campaign
// may be for: they come without a token, so what they may book is decided
// by the bidder that remembered the bid, which must be one that may use
// the campaign.
type Bidders interface {
	// CampaignBidders returns the bidders that may use campaign, each with
	// the signer its beacons must be signed with (nil: none needed). The
	// slice is shared: do not modify it.
	CampaignBidders(campaign string) []CampaignBidder
	// BidderNames returns the names of every bidder (shared, read-only).
	BidderNames() []string
}

// CampaignBidder is a bidder that may use a campaign, by the name its
// remembered bids carry.
type CampaignBidder struct {
	Name   string
	Signer *WinSigner // nil: its win notices are not signed
}

// Bidder is the authenticated caller of a bidder endpoint.
type Bidder interface {
	BidderName() string
	MayUse(campaign string) bool
	// SendsWins reports whether the bidder sends win notices to cpafeed:
	// only then are the requests it scores remembered.
	SendsWins() bool
}

var (
	exposuresReceived   = metrics.NewCounter(`cpafeed_exposures_received_total`)
	exposuresStored     = metrics.NewCounter(`cpafeed_exposures_stored_total`)
	exposuresDuplicate  = metrics.NewCounter(`cpafeed_exposures_deduplicated_total`)
	exposuresRejected   = metrics.NewCounter(`cpafeed_exposures_rejected_total`)
	exposuresNotIndexed = metrics.NewCounter(`cpafeed_exposures_not_indexed_total`)
	exposuresGhost      = metrics.NewCounter(`cpafeed_exposures_ghost_total`)
	idemForgotten       = metrics.NewCounter(`cpafeed_exposures_idempotency_forgotten_total`)
	bidsRemembered      = metrics.NewCounter(`cpafeed_bids_remembered_total`)
	bidsTooLarge        = metrics.NewCounter(`cpafeed_bids_not_remembered_total{reason="too_large"}`)
	winsUnknown         = metrics.NewCounter(`cpafeed_wins_unknown_total`)
	winsBadPrice        = metrics.NewCounter(`cpafeed_wins_bad_price_total`)
	winsPriceOverCap    = metrics.NewCounter(`cpafeed_wins_price_over_cap_total`)
	winsRefusedCampaign = metrics.NewCounter(`cpafeed_wins_refused_total{reason="campaign"}`)
	winsRefusedSig      = metrics.NewCounter(`cpafeed_wins_refused_total{reason="signature"}`)
	vastRefusedSig      = metrics.NewCounter(`cpafeed_vast_refused_total{reason="signature"}`)
	vastEvents          = metrics.NewCounter(`cpafeed_vast_events_total`)
	vastUnknown         = metrics.NewCounter(`cpafeed_vast_unknown_total`)
)

// Exposures is the exposure side of cpafeed: remembered bids, win notices,
// posted exposures and VAST events, each journaled before it is
// acknowledged, then counted in the model and (privacy permitting) added to
// the identity index. It is safe for concurrent use.
type Exposures struct {
	cfg     ExposureConfig
	chain   *Chain
	hasher  *Hasher
	index   *Index
	counter Counter
	log     Log
	now     func() time.Time

	campaigns map[string]uint16 // campaign id -> its number in the index
	ids       []string          // number -> campaign id
	roots     []model.Key       // number -> root key

	bids *bidMemory
	won  *wonMemory

	mu   sync.Mutex // guards seen and inflight
	seen dedup.Set  // idempotency keys
	// inflight are the keys seen holds ahead of their records' applies:
	// a snapshot at a checkpoint leaves out those of records it does not
	// cover (see WriteSnapshot).
	inflight []*idemReservation

	onIndexed func(ingest int64, e IndexedExposure, ids []ID)                                          // called on the applier goroutine
	onExposed func(campaign string, ts int64, cost, pred float64, auction, imp []byte)                 // likewise (OnExposed)
	predict   func(campaign string, imp *Imp) float64                                                  // SetPredictor
	onOutcome func(campaign string, root, cut model.Key, bidCPM, priceCPM float64, won bool, ts int64) // likewise (OnOutcome)
	bidders   Bidders                                                                                  // nil: every win notice is refused

	extractors sync.Pool // *Extractor
	sums       sync.Pool // *keyHasher
	recBufs    sync.Pool // *[]byte: remembered bids being encoded
}

// ExposureDeps are the components the exposure side works with.
type ExposureDeps struct {
	Chain   *Chain  // the segment chain of an imp
	Hasher  *Hasher // keyed identity hashes
	Index   *Index  // the exposure index, shared with attribution
	Counter Counter // the model, counting exposures, spend and VAST events
	Log     Log     // the journal
	// Campaigns are the configured campaigns; their order numbers them in
	// the index.
	Campaigns []model.Campaign
}

// NewExposures builds the exposure side from cfg and its components.
func NewExposures(cfg ExposureConfig, deps ExposureDeps) (*Exposures, error) {
	cfg = cfg.WithDefaults()
	if len(deps.Campaigns) > 1<<16 {
		return nil, fmt.Errorf("signals: %d campaigns, at most 65536", len(deps.Campaigns))
	}
	x := &Exposures{
		cfg: cfg, chain: deps.Chain, hasher: deps.Hasher, index: deps.Index, counter: deps.Counter, log: deps.Log,
		now:       time.Now,
		campaigns: map[string]uint16{},
		bids:      newBidMemory(cfg.BidTTL, cfg.BidMemoryBytes*3/4, cfg.BidMemoryBytes, cfg.Logger),
		won:       newWonMemory(int64(cfg.BidTTL/time.Second), cfg.BidMemoryBytes/4),
		seen:      dedup.New(cfg.IdempotencyWindow.Milliseconds(), 6),
	}
	for i, c := range deps.Campaigns {
		x.campaigns[c.ID] = uint16(i)
		x.ids = append(x.ids, c.ID)
		x.roots = append(x.roots, model.RootKey(c.ID))
	}
	x.extractors.New = func() any {
		ex := NewExtractor()
		ex.SetMaxImps(cfg.MaxImps)
		return ex
	}
	x.sums.New = func() any { return &keyHasher{h: sha256.New()} }
	x.recBufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return x, nil
}

// SetClock replaces time.Now (tests).
func (x *Exposures) SetClock(now func() time.Time) { x.now = now }

// SetBidders sets how win notices and VAST beacons find the bidder that
// remembered their bid (see HandleWin). Until it is set, every win notice
// is refused. Call it before serving.
func (x *Exposures) SetBidders(b Bidders) { x.bidders = b }

// OnIndexed sets the function called, on the journal's applier goroutine and
// in log order (and during replay), with every exposure that enters the
// index, its identities and the Unix second it was ingested: attribution
// re-matches its pending conversions there. ids is valid during the call.
func (x *Exposures) OnIndexed(fn func(ingest int64, e IndexedExposure, ids []ID)) { x.onIndexed = fn }

// Index is the identity index the exposures feed.
func (x *Exposures) Index() *Index { return x.index }

// CampaignNumber is the number of a campaign in the index.
func (x *Exposures) CampaignNumber(id string) (uint16, bool) {
	n, ok := x.campaigns[id]
	return n, ok
}

// CampaignIDs returns the configured campaign ids by number (the index's
// numbering). The slice is shared: do not modify it.
func (x *Exposures) CampaignIDs() []string { return x.ids }

// Close releases the bid memory; no bid is remembered after.
func (x *Exposures) Close() { x.bids.close() }

// keyHasher makes idempotency keys: the first 16 bytes of the SHA-256 of
// the length-prefixed parts (stable: keys are journaled).
type keyHasher struct {
	h   hash.Hash
	sum [sha256.Size]byte
	n   [8]byte
}

func (x *Exposures) idemKey(kind byte, parts ...[]byte) dedup.Key {
	kh := x.sums.Get().(*keyHasher)
	kh.h.Reset()
	kh.h.Write([]byte{kind})
	for _, p := range parts {
		n := len(p)
		for i := range kh.n {
			kh.n[i] = byte(n >> (8 * i))
		}
		kh.h.Write(kh.n[:])
		kh.h.Write(p)
	}
	var k dedup.Key
	copy(k[:], kh.h.Sum(kh.sum[:0]))
	x.sums.Put(kh)
	return k
}

// idemReservation is the idempotency keys one record inserted into seen
// before it was durable.
type idemReservation struct {
	lsn, epoch uint64
	keys       []dedup.Key
	done       bool // undone: the keys left seen (guarded by Exposures.mu)
}

// reserveLocked records that the keys of the record at lsn (appended in
// epoch) are in seen ahead of its apply. x.mu held.
func (x *Exposures) reserveLocked(lsn, epoch uint64, keys []dedup.Key) *idemReservation {
	r := &idemReservation{lsn: lsn, epoch: epoch, keys: keys}
	x.inflight = append(x.inflight, r)
	return r
}

// awaitSeenLocked returns the record a duplicate of the seen keys dups
// must wait for: the newest in-flight record that reserved one of them
// (its Wait has not returned), or lsn 0 when none is in flight (their
// records are durable and applied: a record that failed had its keys
// removed by its undo before its Wait returned). Never the journal's
// tail: a later, unrelated record whose flush fails would fail the wait
// of a duplicate whose original is durable, and the client's retry would
// be answered 503 for nothing. x.mu held.
func (x *Exposures) awaitSeenLocked(dups []dedup.Key) (lsn, epoch uint64) {
	if len(x.inflight) == 0 {
		return 0, 0
	}
	has := func(k dedup.Key) bool { return slices.Contains(dups, k) }
	if len(dups) > 8 { // a batch of duplicates: a set, not dups × in-flight keys comparisons
		set := make(map[dedup.Key]struct{}, len(dups))
		for _, k := range dups {
			set[k] = struct{}{}
		}
		has = func(k dedup.Key) bool { _, ok := set[k]; return ok }
	}
	for _, r := range x.inflight {
		if r.done || r.lsn <= lsn {
			continue
		}
		if slices.ContainsFunc(r.keys, has) {
			lsn, epoch = r.lsn, r.epoch
		}
	}
	return lsn, epoch
}

// release forgets r once its record's Wait returned.
func (x *Exposures) release(r *idemReservation) {
	x.mu.Lock()
	for i, v := range x.inflight {
		if v == r {
			last := len(x.inflight) - 1
			x.inflight[i] = x.inflight[last]
			x.inflight[last] = nil
			x.inflight = x.inflight[:last]
			break
		}
	}
	x.mu.Unlock()
}

// unappliedKeysLocked are the idempotency keys of records >= next still in
// flight: a checkpoint at next has not applied them. x.mu held.
func (x *Exposures) unappliedKeysLocked(next uint64) map[dedup.Key]struct{} {
	var skip map[dedup.Key]struct{}
	for _, r := range x.inflight {
		if r.done || r.lsn < next {
			continue
		}
		if skip == nil {
			skip = make(map[dedup.Key]struct{})
		}
		for _, k := range r.keys {
			skip[k] = struct{}{}
		}
	}
	return skip
}

// commit journals the exposures not seen before and waits until they are
// applied. It returns how many were new.
func (x *Exposures) commit(es []exposure) (stored int, err error) {
	now := x.now()
	ingest := now.Unix()
	fresh := make([]exposure, 0, len(es))
	x.mu.Lock()
	x.advanceLocked(now.UnixMilli())
	g := x.seen.Gen(now.UnixMilli())
	var dups []dedup.Key
	for i := range es {
		if x.seen.Contains(es[i].key) {
			dups = append(dups, es[i].key)
			continue
		}
		x.seen.Insert(es[i].key, g) // a reservation until the record is durable
		fresh = append(fresh, es[i])
	}
	var lsn, epoch uint64
	var res *idemReservation
	if len(fresh) > 0 {
		rec := appendExposures(nil, ingest, fresh)
		keys := make([]dedup.Key, len(fresh))
		for i := range fresh {
			keys[i] = fresh[i].key
		}
		undo := func() {
			x.mu.Lock()
			for _, k := range keys {
				x.seen.Remove(k, g)
			}
			if res != nil {
				res.done = true
			}
			x.mu.Unlock()
		}
		apply := func() { x.apply(ingest, fresh) }
		lsn, epoch, err = x.log.AppendApply(rec, undo, apply)
		if err != nil {
			for _, k := range keys {
				x.seen.Remove(k, g)
			}
			x.mu.Unlock()
			return 0, err
		}
		res = x.reserveLocked(lsn, epoch, keys)
	} else if len(dups) > 0 {
		// Only duplicates: wait for the originals still in flight. With a
		// record of our own, waiting for it is enough: every reservation
		// we matched was appended before it (under x.mu), and a failed
		// flush drops every record after the failed one.
		lsn, epoch = x.awaitSeenLocked(dups)
	}
	x.mu.Unlock()
	if lsn > 0 {
		err := x.log.Wait(lsn, epoch)
		if res != nil {
			x.release(res)
		}
		if err != nil {
			return 0, err
		}
	}
	exposuresStored.Add(len(fresh))
	exposuresDuplicate.Add(len(es) - len(fresh))
	return len(fresh), nil
}

// advanceLocked expires idempotency keys, early when over the bound.
func (x *Exposures) advanceLocked(nowMs int64) {
	x.seen.Advance(nowMs)
	for x.seen.Len() > x.cfg.MaxIdempotencyKeys {
		n := x.seen.DropOldest()
		if n == 0 {
			break
		}
		idemForgotten.Add(n)
	}
}

// apply counts exposures in the model and adds the permitted ones to the
// index. A ghost exposure is not counted in the model (it was not shown)
// and not remembered for VAST events; it is indexed, marked, like a real
// one. It runs on the applier goroutine (live) or during replay.
func (x *Exposures) apply(ingest int64, es []exposure) {
	for i := range es {
		e := &es[i]
		if e.ghost {
			exposuresGhost.Inc() // not shown: neither the model nor the controller counts it
		} else {
			x.counter.Expose(e.ts, e.path, e.labels, e.cost)
			if x.onExposed != nil {
				x.onExposed(e.campaign, e.ts, e.cost, e.pred, e.auction, e.imp)
			}
		}
		leaf := e.path[len(e.path)-1]
		num, ok := x.campaigns[e.campaign]
		if e.indexed && ok && len(e.ids) > 0 {
			ie := IndexedExposure{TS: e.ts, Leaf: leaf, Cost: float32(e.cost), Campaign: num, Group: x.liftGroup(e.labels)}
			ie.SetGhost(e.ghost)
			x.index.Add(ie, e.ids)
			if x.onIndexed != nil {
				x.onIndexed(ingest, ie, e.ids)
			}
		} else if !e.indexed {
			exposuresNotIndexed.Inc()
		}
		if !e.ghost && len(e.auction) > 0 && ingest+int64(x.cfg.BidTTL/time.Second) > x.now().Unix() {
			x.rememberWon(e, leaf, ingest)
		}
	}
}

// liftGroup is the lift group of an exposure's labels (see
// ExposureConfig.LiftLevel): 1 + its value's hash modulo LiftGroups, 0 for
// an unknown value or without groups.
func (x *Exposures) liftGroup(labels [][]byte) uint8 {
	if l := x.cfg.LiftLevel; l > 0 && l < len(labels) {
		return LiftGroup(labels[l], x.cfg.LiftGroups)
	}
	return 0
}

// LiftGroup is the lift group of value (a value of the lift feature), as
// exposures carry it: 1 + its hash modulo groups (at most 255).
func LiftGroup(value []byte, groups int) uint8 {
	if groups <= 0 || len(value) == 0 || string(value) == Unknown {
		return 0
	}
	return uint8(1 + model.ValueHash(value)%uint64(min(groups, 255)))
}

// Replay applies a record of this package at start. It reports whether the
// record was one of its types.
func (x *Exposures) Replay(rec []byte) (bool, error) {
	if len(rec) == 0 {
		return false, nil
	}
	switch rec[0] {
	case RecordExposures:
		ingest, es, err := decodeExposures(rec)
		if err != nil {
			return true, err
		}
		x.mu.Lock()
		x.advanceLocked(x.now().UnixMilli())
		g := x.seen.Gen(ingest * 1000)
		for i := range es {
			x.seen.Insert(es[i].key, g)
		}
		x.mu.Unlock()
		x.apply(ingest, es)
		return true, nil
	case RecordVideo:
		v, err := decodeVideo(rec)
		if err != nil {
			return true, err
		}
		x.mu.Lock()
		x.seen.Insert(v.key, x.seen.Gen(v.ts*1000))
		x.mu.Unlock()
		x.counter.Video(v.ts, v.leaf, v.starts, v.complete)
		return true, nil
	case RecordOutcome:
		return true, x.replayOutcome(rec)
	}
	return false, nil
}
