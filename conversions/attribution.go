package conversions

import (
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// AttributionConfig configures how conversions are matched to exposures.
type AttributionConfig struct {
	// Grace is how long a conversion that matched no exposure waits for late
	// exposures of its identities before it counts as unattributed.
	// Default 1h.
	Grace time.Duration `yaml:"grace"`
	// MaxPending bounds the conversions waiting (per campaign); beyond it the
	// oldest is given up early (counted). Default 1 000 000.
	MaxPending int `yaml:"max_pending"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c AttributionConfig) WithDefaults() AttributionConfig {
	if c.Grace == 0 {
		c.Grace = time.Hour
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1_000_000
	}
	return c
}

// Crediter is what attribution tells the model; *model.Model implements it.
type Crediter interface {
	Credit(expTS, convTS int64, leaf model.Key, weight float64) bool
	CampaignConversion(convTS int64, campaign string, attributed bool) bool
}

// Match methods, most to least precise. A deterministic match (the same
// device or person) beats a household id, which beats a household IP.
type Method uint8

const (
	MethodNone Method = iota
	MethodIFA
	MethodEmail
	MethodPhone
	MethodExternalID
	MethodEID
	MethodUserID
	MethodHousehold
	MethodIP
	numMethods
)

var methodNames = [numMethods]string{"none", "ifa", "email", "phone", "external_id", "eid", "user_id", "household_id", "household_ip"}

func (m Method) String() string { return methodNames[m] }

// methodOf is the method of a match through an identity of kind k.
func methodOf(k signals.IDKind) Method {
	switch k {
	case signals.IDIFA:
		return MethodIFA
	case signals.IDEmail:
		return MethodEmail
	case signals.IDPhone:
		return MethodPhone
	case signals.IDExternalID:
		return MethodExternalID
	case signals.IDEID:
		return MethodEID
	case signals.IDUserID:
		return MethodUserID
	case signals.IDHousehold:
		return MethodHousehold
	case signals.IDIP:
		return MethodIP
	}
	return MethodNone
}

// tier ranks methods: only the exposures found through the best tier that
// found any are credited.
func (m Method) tier() int {
	switch m {
	case MethodHousehold:
		return 1
	case MethodIP:
		return 0
	}
	return 2
}

var (
	attrAttributed   = metrics.NewCounter(`cpafeed_attribution_attributed_total`)
	attrLate         = metrics.NewCounter(`cpafeed_attribution_late_matched_total`)
	attrUnattributed = metrics.NewCounter(`cpafeed_attribution_unattributed_total`)
	attrGivenUp      = metrics.NewCounter(`cpafeed_attribution_pending_given_up_total`)
	attrPending      = metrics.NewGauge(`cpafeed_attribution_pending`, nil)
)

// AttributionStats is one campaign's attribution report: every conversion
// of its event counts once, when final (matched at once, matched late, or
// unattributed after the grace period).
type AttributionStats struct {
	Conversions  uint64              // final conversions of the campaign's event
	Attributed   uint64              // matched to one of its exposures
	Unattributed uint64              // matched none within the grace period
	ByMethod     map[string]uint64   // attributed conversions by match method
	Pending      int                 // waiting for late exposures
	Credited     float64             // credit weight given (1 a conversion; linear splits it)
	Late         uint64              // of Attributed: matched after waiting
	Excluded     map[string]uint64   // not attributable: "ldu", "opt_out", "no_identity"
	byMethod     [numMethods]uint64  //
	excluded     [numExcluded]uint64 //
}

const (
	exLDU = iota
	exOptOut
	exNoIdentity
	numExcluded
)

var excludedNames = [numExcluded]string{"ldu", "opt_out", "no_identity"}

// attrCampaign is a campaign as attribution sees it.
type attrCampaign struct {
	id     string
	num    uint16 // its number in the exposure index
	window int64  // seconds
	linear bool
	stats  AttributionStats
}

// pendingConv is a conversion of one campaign that matched nothing yet.
type pendingConv struct {
	camp     *attrCampaign
	convTS   int64 // event_time, Unix s
	deadline int64 // Unix s of ingest + grace; exposures ingested later do not match
	ids      []signals.ID
	done     bool
}

// Attributor matches stored conversions to the exposures that preceded them
// and credits their segments in the model. Live, it runs on the journal's
// applier goroutine (through the stored-events hook and the exposures'
// OnIndexed), so it sees conversions and exposures in log order, exactly as
// a replay does; its lock only guards reports read concurrently.
type Attributor struct {
	cfg      AttributionConfig
	index    *signals.Index
	model    Crediter
	datasets map[string]string             // dataset -> advertiser
	byEvent  map[[2]string][]*attrCampaign // (advertiser, event) -> campaigns
	byID     map[string]*attrCampaign      //
	grace    int64                         // seconds
	margin   int64                         // seconds: apply lag tolerated before giving up
	mu       sync.Mutex                    //
	pending  []*pendingConv                // FIFO by deadline (ingest order)
	head     int                           // first live entry of pending
	byKey    map[uint64][]*pendingConv     // identity key -> pending conversions
	live     int                           // pending entries not done
	scratch  []candidate                   //
}

type candidate struct {
	seq    uint64
	e      signals.IndexedExposure
	method Method
}

// NewAttributor builds the matcher. campaigns are numbered in the index by
// exposures (x.CampaignNumber); datasets maps dataset ids to advertisers.
func NewAttributor(cfg AttributionConfig, index *signals.Index, m Crediter, datasets map[string]string, campaigns []model.Campaign, number func(id string) (uint16, bool)) *Attributor {
	cfg = cfg.WithDefaults()
	a := &Attributor{
		cfg: cfg, index: index, model: m, datasets: datasets,
		byEvent: map[[2]string][]*attrCampaign{},
		byID:    map[string]*attrCampaign{},
		grace:   int64(cfg.Grace / time.Second),
		margin:  60,
		byKey:   map[uint64][]*pendingConv{},
	}
	for _, c := range campaigns {
		c = c.WithDefaults()
		num, ok := number(c.ID)
		if !ok {
			continue
		}
		ac := &attrCampaign{id: c.ID, num: num, window: int64(c.Window / time.Second), linear: c.Credit == model.CreditLinear}
		a.byEvent[[2]string{c.Advertiser, c.Event}] = append(a.byEvent[[2]string{c.Advertiser, c.Event}], ac)
		a.byID[c.ID] = ac
	}
	return a
}

// OnStored attributes the stored conversions of one batch (the conversions
// Service's stored-events hook).
func (a *Attributor) OnStored(events []StoredEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range events {
		ev := &events[i]
		ingest := ev.Received / 1000
		a.expireLocked(ingest - a.margin)
		camps := a.byEvent[[2]string{a.datasets[ev.Dataset], ev.EventName}]
		for _, c := range camps {
			switch {
			case ev.Flags&FlagLDU != 0:
				a.finalLocked(c, ev.EventTime, exLDU)
			case ev.Flags&FlagOptOut != 0:
				a.finalLocked(c, ev.EventTime, exOptOut)
			case len(ev.IDs) == 0:
				a.finalLocked(c, ev.EventTime, exNoIdentity)
			case a.matchLocked(c, ev.EventTime, ev.IDs):
			default:
				a.waitLocked(c, ev.EventTime, ingest+a.grace, ev.IDs)
			}
		}
	}
}

// finalLocked counts a conversion that cannot be attributed.
func (a *Attributor) finalLocked(c *attrCampaign, convTS int64, why int) {
	c.stats.Conversions++
	c.stats.Unattributed++
	c.stats.excluded[why]++
	attrUnattributed.Inc()
	a.model.CampaignConversion(convTS, c.id, false)
}

// matchLocked looks up every identity of a conversion in the index, takes
// the campaign's exposures within its window before the conversion, keeps
// those found through the best tier of methods, and credits them (the
// latest for last touch, all evenly for linear). It reports whether any was
// found.
func (a *Attributor) matchLocked(c *attrCampaign, convTS int64, ids []signals.ID) bool {
	cands := a.scratch[:0]
	for _, id := range ids {
		m := methodOf(id.Kind)
		a.index.Visit(id.Key, convTS-c.window, convTS, func(seq uint64, e signals.IndexedExposure) bool {
			if e.Campaign == c.num {
				cands = append(cands, candidate{seq: seq, e: e, method: m})
			}
			return true
		})
	}
	a.scratch = cands[:0]
	if len(cands) == 0 {
		return false
	}
	best := -1
	for _, cd := range cands {
		best = max(best, cd.method.tier())
	}
	// Keep the best tier, one candidate per exposure (the most precise
	// method that found it), newest first.
	cands = slices.DeleteFunc(cands, func(cd candidate) bool { return cd.method.tier() != best })
	slices.SortFunc(cands, func(x, y candidate) int {
		if x.seq != y.seq {
			if x.e.TS != y.e.TS {
				if x.e.TS > y.e.TS {
					return -1
				}
				return 1
			}
			if x.seq > y.seq {
				return -1
			}
			return 1
		}
		return int(x.method) - int(y.method)
	})
	cands = slices.CompactFunc(cands, func(x, y candidate) bool { return x.seq == y.seq })
	method := cands[0].method
	if c.linear {
		w := 1 / float64(len(cands))
		for _, cd := range cands {
			a.model.Credit(cd.e.TS, convTS, cd.e.Leaf, w)
			method = min(method, cd.method)
		}
	} else {
		a.model.Credit(cands[0].e.TS, convTS, cands[0].e.Leaf, 1)
	}
	c.stats.Credited++
	c.stats.Conversions++
	c.stats.Attributed++
	c.stats.byMethod[method]++
	attrAttributed.Inc()
	a.model.CampaignConversion(convTS, c.id, true)
	return true
}

// waitLocked keeps a conversion that matched nothing until deadline, for
// exposures reported late.
func (a *Attributor) waitLocked(c *attrCampaign, convTS, deadline int64, ids []signals.ID) {
	if a.live >= a.cfg.MaxPending {
		a.giveUpOldestLocked()
	}
	p := &pendingConv{camp: c, convTS: convTS, deadline: deadline, ids: slices.Clone(ids)}
	a.pending = append(a.pending, p)
	for _, id := range p.ids {
		a.byKey[id.Key] = append(a.byKey[id.Key], p)
	}
	a.live++
	c.stats.Pending++
	attrPending.Inc()
}

// OnIndexed re-matches the pending conversions that share an identity with
// an exposure just added to the index (signals.Exposures.OnIndexed).
func (a *Attributor) OnIndexed(ingest int64, e signals.IndexedExposure, ids []signals.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(ingest - a.margin)
	if a.live == 0 {
		return
	}
	for _, id := range ids {
		waiting := a.byKey[id.Key]
		if len(waiting) == 0 {
			continue
		}
		for _, p := range slices.Clone(waiting) { // matching edits the list
			if p.done || p.camp.num != e.Campaign || ingest > p.deadline ||
				e.TS > p.convTS || e.TS < p.convTS-p.camp.window {
				continue
			}
			if a.matchLocked(p.camp, p.convTS, p.ids) {
				p.camp.stats.Late++
				attrLate.Inc()
				a.doneLocked(p)
			}
		}
	}
}

// doneLocked takes p out of the waiting conversions.
func (a *Attributor) doneLocked(p *pendingConv) {
	p.done = true
	a.live--
	p.camp.stats.Pending--
	attrPending.Dec()
	for _, id := range p.ids {
		l := a.byKey[id.Key]
		l = slices.DeleteFunc(l, func(q *pendingConv) bool { return q == p })
		if len(l) == 0 {
			delete(a.byKey, id.Key)
		} else {
			a.byKey[id.Key] = l
		}
	}
}

// expireLocked gives up the pending conversions whose deadline is before
// cutoff: they count as unattributed.
func (a *Attributor) expireLocked(cutoff int64) {
	for a.head < len(a.pending) {
		p := a.pending[a.head]
		if !p.done {
			if p.deadline >= cutoff {
				break
			}
			a.doneLocked(p)
			a.unattributedLocked(p)
		}
		a.pending[a.head] = nil
		a.head++
	}
	if a.head > 1024 && a.head*2 > len(a.pending) {
		a.pending = append(a.pending[:0], a.pending[a.head:]...)
		a.head = 0
	}
}

func (a *Attributor) unattributedLocked(p *pendingConv) {
	c := p.camp
	c.stats.Conversions++
	c.stats.Unattributed++
	attrUnattributed.Inc()
	a.model.CampaignConversion(p.convTS, c.id, false)
}

func (a *Attributor) giveUpOldestLocked() {
	for a.head < len(a.pending) {
		p := a.pending[a.head]
		a.pending[a.head] = nil
		a.head++
		if !p.done {
			a.doneLocked(p)
			a.unattributedLocked(p)
			attrGivenUp.Inc()
			return
		}
	}
}

// Expire gives up the conversions whose grace period ended before now
// (minus a minute of tolerated apply lag). The server calls it periodically.
func (a *Attributor) Expire(now time.Time) {
	a.mu.Lock()
	a.expireLocked(now.Unix() - a.margin)
	a.mu.Unlock()
}

// Stats returns a campaign's attribution report.
func (a *Attributor) Stats(campaign string) (AttributionStats, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.byID[campaign]
	if c == nil {
		return AttributionStats{}, false
	}
	s := c.stats
	s.ByMethod = map[string]uint64{}
	for m := MethodIFA; m < numMethods; m++ {
		if n := s.byMethod[m]; n > 0 {
			s.ByMethod[m.String()] = n
		}
	}
	s.Excluded = map[string]uint64{}
	for i, n := range s.excluded {
		if n > 0 {
			s.Excluded[excludedNames[i]] = n
		}
	}
	return s, true
}

// forgetIdentities drops the pending conversions of the advertiser's
// campaigns that carry any of the identity keys (deletion requests). They
// are not counted as unattributed: they are gone. It returns how many.
func (a *Attributor) forgetIdentities(advertiser string, keys []uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, k := range keys {
		for _, p := range slices.Clone(a.byKey[k]) {
			if p.done || a.advertiserOf(p.camp) != advertiser {
				continue
			}
			a.doneLocked(p)
			n++
		}
	}
	return n
}

// advertiserOf is the advertiser of a campaign.
func (a *Attributor) advertiserOf(c *attrCampaign) string {
	for k, cs := range a.byEvent {
		for _, x := range cs {
			if x == c {
				return k[0]
			}
		}
	}
	return ""
}

// campaignNumbers returns the index numbers of an advertiser's campaigns.
func (a *Attributor) campaignNumbers(advertiser string) map[uint16]bool {
	out := map[uint16]bool{}
	for k, cs := range a.byEvent {
		if k[0] != advertiser {
			continue
		}
		for _, c := range cs {
			out[c.num] = true
		}
	}
	return out
}
