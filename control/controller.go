package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/cpafeed/cpafeed/binenc"
)

// RecordType is the first byte of this package's journal records: one
// Update, every configured campaign's new State.
const RecordType byte = 0x20

const recordVersion = 1

var (
	updates      = metrics.NewCounter(`cpafeed_control_updates_total`)
	updateErrors = metrics.NewCounter(`cpafeed_control_update_errors_total`)
)

// Config tunes the controller's schedule. Zero fields take the defaults.
type Config struct {
	// Interval is how often the server steps every campaign's controller
	// (one journal record each time, about 50 bytes a campaign), just
	// before a model refresh so that the new multipliers reach the bid
	// table and the embedded scorers' snapshots with the next model
	// version. Default 1m.
	Interval time.Duration `yaml:"interval"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	return c
}

// Validate reports every problem of c (after WithDefaults).
func (c Config) Validate() []error {
	if c.Interval < time.Second {
		return []error{fmt.Errorf("control.interval: at least 1s, got %v", c.Interval)}
	}
	return nil
}

// Log is the durable log the controller writes through (*journal.Journal,
// or an in-memory log with the same contract): apply runs in log order
// with every other record's, before Wait returns.
type Log interface {
	AppendApply(rec []byte, undo, apply func()) (lsn, epoch uint64, err error)
	Wait(lsn, epoch uint64) error
}

// Campaign is a configured campaign as the controller needs it.
type Campaign struct {
	ID     string
	Params Params
	// Window is the half-life of the explored-spend counts, seconds (the
	// campaign's control window).
	Window float64
}

// Entry is what bidding needs of one campaign's controller.
type Entry struct {
	U float64 // cpa_control, the multiplier in force
	Q float64 // the probability that a score asking for exploration explores
}

// Table is an immutable view of every campaign's Entry.
type Table struct {
	ents map[string]Entry
}

// NewTable returns a table of the given entries (copied): for tests and
// for bidders that steer without a controller of their own.
func NewTable(entries map[string]Entry) *Table {
	t := &Table{ents: make(map[string]Entry, len(entries))}
	for id, e := range entries {
		t.ents[id] = e
	}
	return t
}

// Get returns campaign's entry; a campaign without state answers U 1 and
// Q 0 with false.
func (t *Table) Get(campaign string) (Entry, bool) {
	if t == nil {
		return Entry{U: 1}, false
	}
	e, ok := t.ents[campaign]
	if !ok {
		return Entry{U: 1}, false
	}
	return e, true
}

// Controller holds every campaign's controller state. It is safe for
// concurrent use.
type Controller struct {
	log Log
	umu sync.Mutex // serializes Update

	mu    sync.Mutex
	camps map[string]*camp
	order []string // the configured campaigns, in configuration order
	tab   atomic.Pointer[Table]
}

type camp struct {
	p          Params
	gamma      float64 // decay of the explored counts, per second
	seed       uint64
	configured bool
	st         State
	// Explored spend, decayed by 2^(−age/window) to xRef (Unix s).
	xRef          int64
	xSpend, xExpl float64
}

// New returns a controller of campaigns writing through log; every
// campaign starts at multiplier 1 (Start).
func New(log Log, campaigns []Campaign) *Controller {
	c := &Controller{log: log, camps: map[string]*camp{}}
	c.SetCampaigns(campaigns)
	return c
}

// SetCampaigns replaces the configured campaigns: a campaign keeps its
// state when its ID stays (with the new parameters), new ones start, and
// those gone keep their state but are stepped no more.
func (c *Controller) SetCampaigns(campaigns []Campaign) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.camps {
		k.configured = false
	}
	c.order = c.order[:0]
	for _, cp := range campaigns {
		k := c.camps[cp.ID]
		if k == nil {
			k = &camp{st: Start(cp.Params), seed: Seed(cp.ID)}
			c.camps[cp.ID] = k
		}
		k.p, k.configured = cp.Params, true
		k.gamma = math.Ln2 / cp.Window
		if !cp.Params.Enabled {
			k.st.I, k.st.LogU = 0, 0
		}
		c.order = append(c.order, cp.ID)
	}
	c.publishLocked()
}

// publishLocked publishes the table of the current states (c.mu held).
func (c *Controller) publishLocked() {
	t := &Table{ents: make(map[string]Entry, len(c.camps))}
	for id, k := range c.camps {
		u := k.st.U()
		if !k.p.Enabled {
			u = 1
		}
		t.ents[id] = Entry{U: u, Q: k.st.Q}
	}
	c.tab.Store(t)
}

// Table returns the published entries (immutable).
func (c *Controller) Table() *Table { return c.tab.Load() }

// State returns campaign's state, for reports.
func (c *Controller) State(campaign string) (State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.camps[campaign]
	if k == nil {
		return State{}, false
	}
	return k.st, true
}

// decayLocked brings k's explored counts to t.
func (k *camp) decayLocked(t int64) {
	if t <= k.xRef {
		return
	}
	if k.xRef != 0 {
		h := math.Exp(-k.gamma * float64(t-k.xRef))
		k.xSpend *= h
		k.xExpl *= h
	}
	k.xRef = t
}

// OnExposed counts an exposure of campaign at ts costing cost (currency
// units) in auction's imp: explored when its Draw falls under the
// campaign's current Q. It must be called where the exposure is applied
// (in log order: the journal's applier, or replay).
func (c *Controller) OnExposed(campaign string, ts int64, cost float64, auction, imp []byte) {
	if !(cost > 0) || math.IsInf(cost, 0) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.camps[campaign]
	if k == nil || !(k.gamma > 0) {
		return
	}
	k.decayLocked(ts)
	h := 1.0
	if ts < k.xRef {
		h = math.Exp(-k.gamma * float64(k.xRef-ts))
	}
	k.xSpend += h * cost
	if len(auction) > 0 && Draw(k.seed, auction, imp) < k.st.Q {
		k.xExpl += h * cost
	}
}

// stepped is one campaign's new state in an Update.
type stepped struct {
	id string
	st State
}

// Update steps every configured campaign's controller at now on its
// measure (false, or a nil measure: the campaign is not measured, its
// state only takes the time) and journals the new states; they are in force once it returns
// nil. measure is called without the controller's lock, with the
// campaign's parameters (what to measure depends on them: Params.Incremental).
func (c *Controller) Update(now int64, measure func(campaign string, p Params) (Measure, bool)) error {
	c.umu.Lock()
	defer c.umu.Unlock()
	type input struct {
		id string
		p  Params
		st State
		x  Explored
	}
	c.mu.Lock()
	ins := make([]input, 0, len(c.order))
	for _, id := range c.order {
		k := c.camps[id]
		k.decayLocked(now)
		ins = append(ins, input{id: id, p: k.p, st: k.st, x: Explored{Spend: k.xSpend, Explored: k.xExpl}})
	}
	c.mu.Unlock()
	out := make([]stepped, len(ins))
	for i, in := range ins {
		var m Measure
		if measure != nil {
			if mm, ok := measure(in.id, in.p); ok {
				m = mm
			}
		}
		out[i] = stepped{id: in.id, st: Step(in.p, in.st, m, in.x, now)}
	}
	rec := appendUpdate(nil, now, out)
	lsn, epoch, err := c.log.AppendApply(rec, nil, func() { c.apply(out) })
	if err == nil {
		err = c.log.Wait(lsn, epoch)
	}
	if err != nil {
		updateErrors.Inc()
		return fmt.Errorf("control: update not journaled: %w", err)
	}
	updates.Inc()
	return nil
}

// apply sets the states of an update (in log order) and publishes them.
func (c *Controller) apply(out []stepped) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range out {
		k := c.camps[s.id]
		if k == nil { // a campaign no longer configured (replay)
			k = &camp{seed: Seed(s.id)}
			c.camps[s.id] = k
		}
		k.st = s.st
	}
	c.publishLocked()
}

var errRecord = errors.New("control: malformed record")

// appendUpdate encodes an update: type, version, varint time, uvarint n,
// then per campaign bytes id, f64 I, LogU, Q, CPA, Share.
func appendUpdate(b []byte, now int64, out []stepped) []byte {
	b = append(b, RecordType, recordVersion)
	b = binary.AppendVarint(b, now)
	b = binary.AppendUvarint(b, uint64(len(out)))
	for _, s := range out {
		b = binary.AppendUvarint(b, uint64(len(s.id)))
		b = append(b, s.id...)
		for _, f := range [...]float64{s.st.I, s.st.LogU, s.st.Q, s.st.CPA, s.st.Share} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	return b
}

// decodeUpdate decodes an update record; every number must be finite.
func decodeUpdate(rec []byte) ([]stepped, error) {
	r := binenc.NewSlice(rec, errRecord)
	if r.Byte("type") != RecordType || r.Byte("version") != recordVersion {
		return nil, fmt.Errorf("%w: not a control update v%d", errRecord, recordVersion)
	}
	now := r.Varint("time")
	n := r.Count(1+5*8, "campaigns")
	out := make([]stepped, 0, n)
	for range n {
		s := stepped{id: string(r.Bytes("campaign"))}
		s.st = State{I: r.F64("I"), LogU: r.F64("LogU"), Q: r.F64("Q"), CPA: r.F64("CPA"), Share: r.F64("share"), At: now}
		if r.Err() != nil {
			break
		}
		if !s.st.valid() {
			r.Fail("campaign "+s.id, "state out of range")
			break
		}
		out = append(out, s)
	}
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("update", "%d bytes after it", r.Len())
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	return out, nil
}

// valid reports whether a state read from disk can be used.
func (s State) valid() bool {
	fin := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	return fin(s.I) && fin(s.LogU) && math.Abs(s.LogU) < 50 && math.Abs(s.I) < 50 &&
		s.Q >= 0 && s.Q <= 1 && s.CPA >= 0 && fin(s.CPA) && s.Share >= 0 && fin(s.Share)
}

// Replay applies a record of this package at start.
func (c *Controller) Replay(rec []byte) error {
	out, err := decodeUpdate(rec)
	if err != nil {
		return err
	}
	c.apply(out)
	return nil
}
