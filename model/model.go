package model

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// MaxLevels is the deepest segment path the model keeps: levels 0 (the
// campaign) to MaxLevels−1. Longer paths are cut.
const MaxLevels = 16

// maxLabel is the longest label kept for a node (longer ones are cut).
const maxLabel = 1024

// noNode is the parent of a root.
const noNode = ^uint32(0)

// Model holds the live, mutable statistics of every segment node and
// publishes immutable Estimates tables built from them. All methods are
// safe for concurrent use. Writes (Expose, Credit, Video,
// CampaignConversion) lock one shard at a time; Refresh and Refit are
// serialized among themselves and hold each shard's lock only while copying
// that shard's counts. Bid-time reads go through Estimates and take no lock.
type Model struct {
	cfg       Config
	gamma     float64 // ln 2 / HalfLife, per second; 0 without decay
	shardBits uint
	shardMask uint64
	shards    []shard
	cr        *crossed // the crossed model's tables and levels; nil for the chain

	camps atomic.Pointer[campSet]
	fit   atomic.Pointer[fitState]
	est   atomic.Pointer[Estimates]
	ver   atomic.Uint64

	lmu      sync.Mutex // guards learners, defFits and SetCampaigns
	learners map[learnerKey]*learner
	defFits  map[int64]*delayFit

	rmu sync.Mutex // serializes Refresh and Refit; guards rs
	rs  refreshState

	unknownCampaign atomic.Uint64
	unknownLeaf     atomic.Uint64
	badDelay        atomic.Uint64
	cutPaths        atomic.Uint64
	collisions      atomic.Uint64
}

// shard is one lock's share of the node store.
type shard struct {
	mu     sync.Mutex
	index  map[Key]uint32 // key → local index in nodes
	nodes  []node
	labels []byte // append-only arena of node labels
	// lv holds, for the crossed model, the level ids of every node in
	// each effect table (len(tables) per node, noLevel for roots).
	lv []uint32
	_  [64]byte
}

// node is the live state of one segment node. Every count is decayed to
// tRef (lazily: advance brings it forward when it is touched).
type node struct {
	key      Key
	parent   uint32 // node id of the parent, noNode for a root
	labelOff uint32 // label = shard.labels[labelOff : labelOff+labelLen]
	tRef     int64  // time the counts are decayed to, Unix seconds
	camp     uint16 // campaign index
	labelLen uint16
	level    uint8

	n  float64        // exposures Σ w_i, w_i = 2^(−age_i/HalfLife)
	n2 float64        // Σ w_i² (for the Kish effective sample size N²/n2)
	c  float64        // credited conversions Σ weight·w_i, decayed by exposure time
	s  [nComp]float64 // Σ_unconverted w_i·e^{−λ_j age_i}, per delay component

	spend, starts, completes float64 // decayed like n
}

// campState is a campaign as the model keeps it.
type campState struct {
	c      Campaign
	idx    int
	root   Key
	win    int64   // attribution window, seconds
	lam0   float64 // rate of the slowest delay component, per second
	rGamma float64 // decay rate of the recent counts (ln 2 / Control.Window), per second
	l      *learner
	active bool

	// Totals since start, guarded by the lock of the root node's shard;
	// shared by every campState of the same campaign.
	tot *campTotals
}

type campTotals struct {
	exposures                           uint64
	spend, starts, completes, credited  float64
	conversions, attributed, unattribed uint64
	r, long                             recent // for the CPA controller (ControlStats): half-lives Control.Window and longWindows × it
}

// campSet is an immutable view of the campaigns; SetCampaigns swaps it.
type campSet struct {
	list   []*campState
	byRoot map[Key]*campState
	byID   map[string]*campState
}

// fitState is an immutable set of fitted prior strengths (pseudo-conversions).
type fitState struct {
	at         int64
	root       float64 // of every campaign root toward its PriorCVR
	rootFitted bool
	levels     [][MaxLevels]float64 // [campaign][level]; level 0 unused
	fitted     [][MaxLevels]bool    // the campaign had MinSiblings informative nodes at the level
	// pooled[l] is level l's strength over every campaign (the default of a
	// campaign added after the fit).
	pooled       [MaxLevels]float64
	pooledFitted [MaxLevels]bool
	// shared[t+1] is the strength of the multipliers of effect table t's
	// values over an advertiser's campaigns (Config.SharedEffects), pooled
	// over advertisers.
	shared       [MaxLevels]float64
	sharedFitted [MaxLevels]bool
}

// sharedStrength is the shared strength of effect table l−1.
func (f *fitState) sharedStrength(l int, def float64) float64 {
	if s := f.shared[l]; s > 0 {
		return s
	}
	return def
}

// New returns a model of campaigns (each taken WithDefaults) under cfg
// (taken WithDefaults). It panics if cfg is invalid or a campaign is refused
// (see SetCampaigns): to report problems instead, call cfg.Validate, then
// New(cfg, nil) and SetCampaigns(campaigns).
func New(cfg Config, campaigns []Campaign) *Model {
	cfg = cfg.WithDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		panic(fmt.Sprintf("model.New: invalid config: %v", errors.Join(errs...)))
	}
	m := &Model{
		cfg:      cfg,
		learners: make(map[learnerKey]*learner),
		defFits:  make(map[int64]*delayFit),
	}
	if cfg.HalfLife > 0 {
		m.gamma = math.Ln2 / cfg.HalfLife.Seconds()
	}
	for 1<<m.shardBits < cfg.Shards {
		m.shardBits++
	}
	m.shardMask = uint64(cfg.Shards - 1)
	if cfg.Structure == StructureCrossed {
		m.cr = newCrossed(cfg)
	}
	m.shards = make([]shard, cfg.Shards)
	for i := range m.shards {
		m.shards[i].index = make(map[Key]uint32)
	}
	m.camps.Store(&campSet{byRoot: map[Key]*campState{}, byID: map[string]*campState{}})
	m.fit.Store(&fitState{root: cfg.PriorConversions})
	if err := m.SetCampaigns(campaigns); err != nil {
		panic("model.New: " + err.Error())
	}
	m.rmu.Lock()
	m.rebuild(0, false)
	m.rmu.Unlock()
	return m
}

// Config returns the model's configuration (with defaults filled in).
func (m *Model) Config() Config { return m.cfg }

// SetCampaigns replaces the campaign configuration at run time. A campaign
// keeps its state when its ID stays; new IDs start empty; campaigns that
// disappear keep their nodes (still looked up) but take no new writes. A
// campaign's Window cannot change while it has state (the delay
// accumulators are built on it): that is an error and nothing changes.
// Duplicate IDs are an error.
func (m *Model) SetCampaigns(campaigns []Campaign) error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	old := m.camps.Load()
	next := &campSet{byRoot: make(map[Key]*campState), byID: make(map[string]*campState)}
	seen := make(map[string]bool)
	var adds []Campaign
	for _, c := range campaigns {
		c = c.WithDefaults()
		if c.ID == "" {
			return errors.New("campaign with an empty id")
		}
		if seen[c.ID] {
			return fmt.Errorf("campaign %q: duplicate id", c.ID)
		}
		seen[c.ID] = true
		if c.Window < time.Second {
			return fmt.Errorf("campaign %q: window %v shorter than a second", c.ID, c.Window)
		}
		if c.Control.Window < time.Second {
			return fmt.Errorf("campaign %q: control.window %v shorter than a second", c.ID, c.Control.Window)
		}
		if !(c.PriorCVR > 0 && c.PriorCVR < 1) {
			return fmt.Errorf("campaign %q: prior_cvr %g not in (0, 1)", c.ID, c.PriorCVR)
		}
		if o := old.byID[c.ID]; o != nil && int64(c.Window/time.Second) != o.win {
			return fmt.Errorf("campaign %q: window changed from %v to %v; the model must be reset", c.ID, time.Duration(o.win)*time.Second, c.Window)
		}
		adds = append(adds, c)
	}
	if len(old.list)+len(adds) > math.MaxUint16 {
		return errors.New("too many campaigns")
	}
	// Existing campaigns keep their index (nodes store it) and their
	// totals (shared by pointer, so a writer still holding the old set
	// loses nothing); the config is replaced by a fresh campState.
	list := make([]*campState, len(old.list))
	for i, o := range old.list {
		cp := *o
		list[i] = &cp
	}
	for _, c := range adds {
		if o := old.byID[c.ID]; o != nil {
			cs := list[o.idx]
			cs.c, cs.active = c, true
			cs.rGamma = math.Ln2 / c.Control.Window.Seconds()
			cs.l = m.learnerFor(learnerKey{c.Advertiser, c.Event, cs.win})
			continue
		}
		win := int64(c.Window / time.Second)
		cs := &campState{c: c, idx: len(list), root: RootKey(c.ID), win: win, lam0: slowestDiv / float64(win), active: true, tot: new(campTotals),
			rGamma: math.Ln2 / c.Control.Window.Seconds()}
		cs.l = m.learnerFor(learnerKey{c.Advertiser, c.Event, win})
		list = append(list, cs)
	}
	for _, cs := range list {
		if !seen[cs.c.ID] {
			cs.active = false
		}
		next.byID[cs.c.ID] = cs
		if cs.active {
			next.byRoot[cs.root] = cs
		}
	}
	next.list = list
	m.camps.Store(next)
	for _, cs := range list[len(old.list):] {
		m.ensureRoot(cs)
	}
	return nil
}

// learnerFor returns the delay learner of k, making it if needed. m.lmu held.
func (m *Model) learnerFor(k learnerKey) *learner {
	if l := m.learners[k]; l != nil {
		return l
	}
	def := m.defFits[k.window]
	g := newGrid(float64(k.window))
	if def == nil {
		def = newDelayFit(&g, defaultWeights(&g))
		m.defFits[k.window] = def
	}
	l := newLearner(k, def, m.cfg.DelaySamples, m.cfg.DelayRecency.Seconds())
	m.learners[k] = l
	return l
}

// ensureRoot creates the root node of cs if it does not exist, so that a
// campaign without traffic still has its prior estimate.
func (m *Model) ensureRoot(cs *campState) {
	si := uint64(cs.root) & m.shardMask
	sh := &m.shards[si]
	sh.mu.Lock()
	if _, ok := sh.index[cs.root]; !ok {
		sh.add(cs.root, noNode, uint16(cs.idx), 0, []byte(cs.c.ID), 0)
		if m.cr != nil {
			sh.lv = m.cr.appendLevels(sh.lv, cs, 0, nil)
		}
	}
	sh.mu.Unlock()
}

// add appends a node to the shard (s.mu held) and returns its local index.
func (s *shard) add(k Key, parent uint32, camp uint16, level int, label []byte, ts int64) uint32 {
	if len(label) > maxLabel {
		label = label[:maxLabel]
	}
	local := uint32(len(s.nodes))
	s.nodes = append(s.nodes, node{
		key: k, parent: parent, camp: camp, level: uint8(level), tRef: ts,
		labelOff: uint32(len(s.labels)), labelLen: uint16(len(label)),
	})
	s.labels = append(s.labels, label...)
	s.index[k] = local
	return local
}

func (m *Model) nodeID(si uint64, local uint32) uint32 { return local<<m.shardBits | uint32(si) }

func (m *Model) splitID(id uint32) (*shard, uint32) {
	return &m.shards[uint64(id)&m.shardMask], id >> m.shardBits
}

// advance decays nd's counts to t (> nd.tRef).
func (m *Model) advance(nd *node, lam0 float64, t int64) {
	dt := float64(t - nd.tRef)
	nd.tRef = t
	h := 1.0
	if m.gamma > 0 {
		h = math.Exp(-m.gamma * dt)
	}
	nd.n *= h
	nd.n2 *= h * h
	nd.c *= h
	nd.spend *= h
	nd.starts *= h
	nd.completes *= h
	decayPending(&nd.s, h, lam0, dt)
}

// decayPending decays the per-delay-component sums of unconverted exposures
// by dt seconds: each by the counts' decay h and by its own component's
// e^{−λ_j dt}, the rates λ_j = lam0·3^j.
func decayPending(s *[nComp]float64, h, lam0, dt float64) {
	x := math.Exp(-lam0 * dt)
	for j := range s {
		s[j] *= h * x
		x = x * x * x
	}
}

// ageFactors returns the half-life weight h and the slowest component's
// factor x of an event age seconds before a node's tRef.
func (m *Model) ageFactors(lam0 float64, age int64) (h, x float64) {
	if age <= 0 {
		return 1, 1
	}
	a := float64(age)
	h = 1
	if m.gamma > 0 {
		h = math.Exp(-m.gamma * a)
	}
	return h, math.Exp(-lam0 * a)
}

// Counters are the model's anomaly counts since New, for metrics.
type Counters struct {
	UnknownCampaign uint64 // writes whose path[0] or campaign is not configured
	UnknownLeaf     uint64 // Credit/Video for a key the model has no node of
	BadDelay        uint64 // credits whose delay is negative or beyond the window (credited, not learned from)
	CutPaths        uint64 // paths longer than MaxLevels
	Collisions      uint64 // a path's key already belongs to another campaign or level (ignored)
}

// Counters returns the anomaly counters.
func (m *Model) Counters() Counters {
	return Counters{
		UnknownCampaign: m.unknownCampaign.Load(),
		UnknownLeaf:     m.unknownLeaf.Load(),
		BadDelay:        m.badDelay.Load(),
		CutPaths:        m.cutPaths.Load(),
		Collisions:      m.collisions.Load(),
	}
}
