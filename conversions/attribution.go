package conversions

import (
	"errors"
	"fmt"
	"math"
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
	// oldest is given up early (counted). It also bounds the conversions
	// matched and awaiting their probabilistic credit: beyond it the
	// oldest gets last-touch credit at once (counted). Default 1 000 000.
	MaxPending int `yaml:"max_pending"`

	// Credit is the credit of the campaigns that set none: last_touch,
	// linear or probabilistic (see model.Campaign.Credit). Default
	// last_touch.
	Credit string `yaml:"credit"`
	// Confidence is, per match method, the probability that a match
	// through it links the conversion to the household the exposure was
	// shown to: the first factor of an exposure's weight under
	// probabilistic credit. Methods: ifa, email, phone, external_id, eid,
	// user_id, household_id, household_ip. Defaults (DefaultConfidence):
	// ifa 0.95, email and phone 0.9, external_id 0.85, eid 0.8, user_id
	// 0.5, household_id 0.7, household_ip 0.4 (an IP is shared by the
	// households behind a carrier-grade NAT and changes hands: public
	// figures put IP-to-household linkage far below deterministic ids).
	// A method left out keeps its default; 0 ignores the method's
	// matches for credit (they still count for lift).
	Confidence map[string]float64 `yaml:"confidence"`
	// Temper is γ in (0, 1]: a segment's CVR enters an exposure's weight
	// as p̄·(p/p̄)^γ, p̄ the campaign's average, so that early estimates
	// cannot pull credit, and with it themselves, far from the average
	// (the estimate reinforcing itself). 1 = untempered. Default 0.5.
	Temper float64 `yaml:"temper"`
	// CreditInterval is how often the server journals the probabilistic
	// credits of the conversions matched since (a record of weights
	// computed from the model's current estimates, so that a replay
	// credits exactly what the live server did); it also runs before every
	// model refresh. Default 10s.
	CreditInterval time.Duration `yaml:"credit_interval"`
	// OrganicPrior is the organic rate, in matched conversions per
	// household and day, that probabilistic credit assumes for a campaign
	// until its control arm (holdout) has data; it is the prior the
	// control arm's rate is shrunk toward (2 pseudo-conversions). 0 (the
	// default): no organic term until the control arm has a conversion.
	OrganicPrior float64 `yaml:"organic_prior"`
	// LiftFeature is the bid-request feature whose values make the lift
	// report's coarse cut (hashed into LiftGroups groups). It must be a
	// level of the segment chain (of model.effects for the crossed
	// model); otherwise the report has the campaign total only. Default
	// metro.
	LiftFeature string `yaml:"lift_feature"`
	// LiftGroups is how many groups the values of LiftFeature are hashed
	// into (at most 255). Default 16.
	LiftGroups int `yaml:"lift_groups"`
}

// DefaultConfidence is the default confidence of each match method (see
// AttributionConfig.Confidence).
var DefaultConfidence = map[string]float64{
	"ifa": 0.95, "email": 0.9, "phone": 0.9, "external_id": 0.85, "eid": 0.8,
	"user_id": 0.5, "household_id": 0.7, "household_ip": 0.4,
}

// WithDefaults returns c with zero fields set to their defaults.
func (c AttributionConfig) WithDefaults() AttributionConfig {
	if c.Grace == 0 {
		c.Grace = time.Hour
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1_000_000
	}
	if c.Credit == "" {
		c.Credit = model.CreditLastTouch
	}
	conf := make(map[string]float64, len(DefaultConfidence))
	for k, v := range DefaultConfidence {
		conf[k] = v
	}
	for k, v := range c.Confidence {
		conf[k] = v
	}
	c.Confidence = conf
	if c.Temper == 0 {
		c.Temper = 0.5
	}
	if c.CreditInterval == 0 {
		c.CreditInterval = 10 * time.Second
	}
	if c.LiftFeature == "" {
		c.LiftFeature = "metro"
	}
	if c.LiftGroups == 0 {
		c.LiftGroups = 16
	}
	return c
}

// Validate reports every problem of c (after WithDefaults), each naming
// its field.
func (c AttributionConfig) Validate() []error {
	var errs []error
	switch c.Credit {
	case model.CreditLastTouch, model.CreditLinear, model.CreditProbabilistic:
	default:
		errs = append(errs, fmt.Errorf("credit: must be last_touch, linear or probabilistic, not %q", c.Credit))
	}
	for k, v := range c.Confidence {
		if _, ok := DefaultConfidence[k]; !ok {
			errs = append(errs, fmt.Errorf("confidence.%s: unknown match method (known: ifa, email, phone, external_id, eid, user_id, household_id, household_ip)", k))
		} else if !(v >= 0 && v <= 1) {
			errs = append(errs, fmt.Errorf("confidence.%s: %g, must be in [0, 1]", k, v))
		}
	}
	if !(c.Temper > 0 && c.Temper <= 1) {
		errs = append(errs, fmt.Errorf("temper: %g, must be in (0, 1]", c.Temper))
	}
	if c.CreditInterval < 0 {
		errs = append(errs, errors.New("credit_interval: must be > 0"))
	}
	if !(c.OrganicPrior >= 0) || math.IsInf(c.OrganicPrior, 0) {
		errs = append(errs, fmt.Errorf("organic_prior: %g, must be >= 0", c.OrganicPrior))
	}
	if c.LiftGroups < 1 || c.LiftGroups > 255 {
		errs = append(errs, fmt.Errorf("lift_groups: %d, must be 1 to 255", c.LiftGroups))
	}
	if c.Grace < 0 || c.MaxPending < 0 {
		errs = append(errs, errors.New("grace and max_pending: must be > 0"))
	}
	return errs
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

// methodByName is the method of a name of methodNames.
func methodByName(name string) (Method, bool) {
	for m := MethodIFA; m < numMethods; m++ {
		if methodNames[m] == name {
			return m, true
		}
	}
	return MethodNone, false
}

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
	attrControl      = metrics.NewCounter(`cpafeed_attribution_control_total`)
	attrGivenUp      = metrics.NewCounter(`cpafeed_attribution_pending_given_up_total`)
	attrPending      = metrics.NewGauge(`cpafeed_attribution_pending`, nil)
)

// AttributionStats is one campaign's attribution report: every conversion
// of its event counts once, when final (matched at once, matched late, or
// unattributed after the grace period).
type AttributionStats struct {
	Conversions  uint64            // final conversions of the campaign's event
	Attributed   uint64            // matched to one of its exposures
	Unattributed uint64            // matched none within the grace period
	ByMethod     map[string]uint64 // attributed conversions by match method
	Pending      int               // waiting for late exposures
	// Credited is the credit weight given to exposures (1 a conversion
	// under last touch; shares under linear; under probabilistic credit
	// the probability that an ad caused it, so Attributed − Credited of
	// the credited ones went to "organic").
	Credited float64
	Late     uint64            // of Attributed: matched after waiting
	Excluded map[string]uint64 // not attributable: "ldu", "opt_out", "no_identity"
	// Control counts the conversions matched only to ghost exposures
	// (households held out of the campaign): credited to the control arm
	// of the lift measurement, never to the model.
	Control uint64
	// Organic is the credit given to "organic" by probabilistic credit;
	// CreditByMethod the credit given to exposures, by the method of their
	// match. AwaitingCredit counts the conversions matched and not yet
	// credited (credits are journaled every credit_interval).
	Organic        float64
	CreditByMethod map[string]float64
	AwaitingCredit int

	byMethod [numMethods]uint64  //
	excluded [numExcluded]uint64 //
	credit   [numMethods]float64 //
}

const (
	exLDU = iota
	exOptOut
	exNoIdentity
	numExcluded
)

var excludedNames = [numExcluded]string{"ldu", "opt_out", "no_identity"}

// Credit modes of a campaign.
const (
	creditLastTouch = iota
	creditLinear
	creditProbabilistic
)

// attrCampaign is a campaign as attribution sees it.
type attrCampaign struct {
	id     string
	num    uint16 // its number in the exposure index
	window int64  // seconds
	credit int    // creditLastTouch, creditLinear, creditProbabilistic
	stats  AttributionStats
	lift   *liftState
}

// pendingConv is a conversion of one campaign that matched nothing yet.
type pendingConv struct {
	camp     *attrCampaign
	convTS   int64 // event_time, Unix s
	deadline int64 // Unix s of ingest + grace; exposures ingested later do not match
	key      DedupKey
	ids      []signals.ID
	done     bool
}

// Attributor matches stored conversions to the exposures that preceded them
// and credits their segments in the model. Live, it runs on the journal's
// applier goroutine (through the stored-events hook and the exposures'
// OnIndexed), so it sees conversions and exposures in log order, exactly as
// a replay does; its lock only guards reports read concurrently.
//
// Probabilistic credit needs the model's current estimates, which are not
// in log order: a match only queues the conversion (awaiting credit), and
// FlushCredits, on the server's background schedule, computes the weights
// and journals them (RecordTypeCredits); the record's apply credits the
// model. A replay applies the same weights, so live and replay agree.
//
// Every match also feeds the campaign's lift measurement (liftState): the
// households its real and ghost exposures reached, and the conversions
// matched to each arm.
type Attributor struct {
	cfg      AttributionConfig
	index    *signals.Index
	model    Crediter
	weigher  Weigher                       // nil: probabilistic credit falls back to last touch
	log      Log                           // journals credit records; nil: FlushCredits fails
	datasets map[string]string             // dataset -> advertiser
	byEvent  map[[2]string][]*attrCampaign // (advertiser, event) -> campaigns
	byID     map[string]*attrCampaign      //
	grace    int64                         // seconds
	margin   int64                         // seconds: apply lag tolerated before giving up
	conf     [numMethods]float64           // match confidence per method
	mu       sync.Mutex                    //
	pending  []*pendingConv                // FIFO by deadline (ingest order)
	head     int                           // first live entry of pending
	byKey    map[uint64][]*pendingConv     // identity key -> pending conversions
	live     int                           // pending entries not done
	scratch  []candidate                   //
	byNumber []*attrCampaign               // by index number (nil: not attributed)
	credits  creditQueue                   // matched, awaiting probabilistic credit
	observer func(CreditNote)              // tests and simulations: every credit given
}

type candidate struct {
	seq    uint64
	e      signals.IndexedExposure
	method Method
}

// Weigher gives probabilistic credit the model's current estimates;
// *model.Model implements it.
type Weigher interface {
	SegmentCVR(leaf model.Key) (float64, bool)
	DelayDensity(campaign string, lag int64) (float64, bool)
	Estimates() *model.Estimates
}

// CreditNote is one credit given: to an exposure (its sequence number in
// the identity index) or, with Exposure 0, to "organic". For tests and
// simulations that know the truth (SetObserver).
type CreditNote struct {
	Campaign   string
	Conversion DedupKey
	ConvTS     int64
	Exposure   uint64 // index sequence number; 0: organic (no ad)
	ExposureTS int64
	Method     Method
	Weight     float64
}

// AttributorDeps are the components and tables attribution works with.
type AttributorDeps struct {
	Index *signals.Index // the exposure index, shared with the exposure side
	// Model receives the credit; when it also implements Weigher (the
	// model does), probabilistic credit uses it.
	Model    Crediter
	Datasets map[string]string // dataset id → advertiser
	// Campaigns are the configured campaigns, numbered in the index by
	// CampaignNumber (the exposure side's signals.Exposures.CampaignNumber);
	// a campaign it does not know is left out.
	Campaigns      []model.Campaign
	CampaignNumber func(id string) (uint16, bool)
}

// NewAttributor builds the matcher. cfg is taken WithDefaults.
func NewAttributor(cfg AttributionConfig, deps AttributorDeps) *Attributor {
	cfg = cfg.WithDefaults()
	a := &Attributor{
		cfg: cfg, index: deps.Index, model: deps.Model, datasets: deps.Datasets,
		byEvent: map[[2]string][]*attrCampaign{},
		byID:    map[string]*attrCampaign{},
		grace:   int64(cfg.Grace / time.Second),
		margin:  60,
		byKey:   map[uint64][]*pendingConv{},
	}
	a.weigher, _ = deps.Model.(Weigher)
	a.credits.init()
	for name, v := range cfg.Confidence {
		if meth, ok := methodByName(name); ok {
			a.conf[meth] = v
		}
	}
	for _, c := range deps.Campaigns {
		if c.Credit == "" {
			c.Credit = cfg.Credit
		}
		c = c.WithDefaults()
		num, ok := deps.CampaignNumber(c.ID)
		if !ok {
			continue
		}
		ac := &attrCampaign{id: c.ID, num: num, window: int64(c.Window / time.Second), lift: newLiftState(cfg.LiftGroups)}
		switch c.Credit {
		case model.CreditLinear:
			ac.credit = creditLinear
		case model.CreditProbabilistic:
			ac.credit = creditProbabilistic
		}
		a.byEvent[[2]string{c.Advertiser, c.Event}] = append(a.byEvent[[2]string{c.Advertiser, c.Event}], ac)
		a.byID[c.ID] = ac
		for int(num) >= len(a.byNumber) {
			a.byNumber = append(a.byNumber, nil)
		}
		a.byNumber[num] = ac
	}
	return a
}

// SetLog sets the journal FlushCredits writes to. Call it before serving.
func (a *Attributor) SetLog(l Log) { a.log = l }

// SetObserver sets fn to receive every credit given, on the applier
// goroutine (tests and simulations that know which exposure caused a
// conversion). Call it before serving.
func (a *Attributor) SetObserver(fn func(CreditNote)) { a.observer = fn }

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
			case a.matchLocked(c, ev.EventTime, ev.IDs, ev.Key):
			default:
				a.waitLocked(c, ev.EventTime, ingest+a.grace, ev.IDs, ev.Key)
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

// matchLocked looks up every identity of a conversion in the index and
// takes the campaign's exposures within its window before the conversion.
// It reports whether any was found. The conversion counts in the lift
// measurement's arm of its best match (treatment for a real exposure,
// control for a ghost one). Real ones are credited: last touch and linear keep those found
// through the best tier of methods (the latest gets it all, or all share
// evenly); probabilistic credit queues every one (with its method) for
// FlushCredits. A conversion that found only ghost exposures belongs to
// the control arm: counted, never credited.
func (a *Attributor) matchLocked(c *attrCampaign, convTS int64, ids []signals.ID, key DedupKey) bool {
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
	defer func() { a.scratch = cands[:0] }()
	if len(cands) == 0 {
		return false
	}
	// One candidate per exposure (the most precise method that found it),
	// newest first.
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
	// The lift arm: a conversion is one household's, so it counts in one
	// arm, that of its best match (the most precise method, then the
	// newest exposure), with that exposure's group. Counting it in every
	// arm it matched would put the caused conversions of treated
	// households that share an IP with held-out ones into the (20 times
	// smaller) control arm, and take the lift down.
	first := 0
	for i := range cands {
		if cands[i].method < cands[first].method {
			first = i
		}
	}
	arm := armTreatment
	if cands[first].e.Ghost() {
		arm = armControl
	}
	c.lift.conversion(arm, cands[first].e.Group, ids)
	nReal := 0
	for _, cd := range cands {
		if !cd.e.Ghost() {
			cands[nReal] = cd
			nReal++
		}
	}
	reals := cands[:nReal]
	if nReal == 0 {
		c.stats.Conversions++
		c.stats.Control++
		attrControl.Inc()
		a.model.CampaignConversion(convTS, c.id, false)
		return true
	}
	best := -1
	for _, cd := range reals {
		best = max(best, cd.method.tier())
	}
	method := MethodNone
	for _, cd := range reals { // the most precise method of the best tier
		if cd.method.tier() == best && (method == MethodNone || cd.method < method) {
			method = cd.method
		}
	}
	switch {
	case c.credit == creditProbabilistic && a.weigher != nil:
		a.awaitLocked(c, convTS, key, reals)
	case c.credit == creditLinear:
		tier := slices.DeleteFunc(slices.Clone(reals), func(cd candidate) bool { return cd.method.tier() != best })
		w := 1 / float64(len(tier))
		for _, cd := range tier {
			a.creditLocked(c, convTS, key, cd, w)
		}
	default:
		for _, cd := range reals { // newest first: the latest of the best tier
			if cd.method.tier() == best {
				a.creditLocked(c, convTS, key, cd, 1)
				break
			}
		}
	}
	c.stats.Conversions++
	c.stats.Attributed++
	c.stats.byMethod[method]++
	attrAttributed.Inc()
	a.model.CampaignConversion(convTS, c.id, true)
	return true
}

// creditLocked credits weight of a conversion to one exposure.
func (a *Attributor) creditLocked(c *attrCampaign, convTS int64, key DedupKey, cd candidate, w float64) {
	a.model.Credit(cd.e.TS, convTS, cd.e.Leaf, w)
	c.stats.Credited += w
	c.stats.credit[cd.method] += w
	if a.observer != nil {
		a.observer(CreditNote{Campaign: c.id, Conversion: key, ConvTS: convTS, Exposure: cd.seq, ExposureTS: cd.e.TS, Method: cd.method, Weight: w})
	}
}

// waitLocked keeps a conversion that matched nothing until deadline, for
// exposures reported late.
func (a *Attributor) waitLocked(c *attrCampaign, convTS, deadline int64, ids []signals.ID, key DedupKey) {
	if a.live >= a.cfg.MaxPending {
		a.giveUpOldestLocked()
	}
	p := &pendingConv{camp: c, convTS: convTS, deadline: deadline, key: key, ids: slices.Clone(ids)}
	a.pending = append(a.pending, p)
	for _, id := range p.ids {
		a.byKey[id.Key] = append(a.byKey[id.Key], p)
	}
	a.live++
	c.stats.Pending++
	attrPending.Inc()
}

// OnIndexed counts an exposure just added to the index in its campaign's
// lift measurement (the household it reached, in the arm of a real or a
// ghost exposure) and re-matches the pending conversions that share an
// identity with it (signals.Exposures.OnIndexed).
func (a *Attributor) OnIndexed(ingest int64, e signals.IndexedExposure, ids []signals.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(ingest - a.margin)
	if c := a.byNum(e.Campaign); c != nil {
		c.lift.exposure(e, ids, c.window)
	}
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
			if a.matchLocked(p.camp, p.convTS, p.ids, p.key) {
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
	s.CreditByMethod = map[string]float64{}
	for m := MethodIFA; m < numMethods; m++ {
		if w := s.credit[m]; w > 0 {
			s.CreditByMethod[m.String()] = w
		}
	}
	s.AwaitingCredit = a.credits.count(c)
	return s, true
}

// byNum returns the campaign of an index number (nil: not attributed).
func (a *Attributor) byNum(num uint16) *attrCampaign {
	if int(num) < len(a.byNumber) {
		return a.byNumber[num]
	}
	return nil
}

// forgetIdentities drops the pending conversions of the advertiser's
// campaigns that carry any of the identity keys (deletion requests). They
// are not counted as unattributed: they are gone. It returns how many.
func (a *Attributor) forgetIdentities(advertiser string, keys []uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.byID {
		if a.advertiserOf(c) == advertiser {
			c.lift.forget(keys)
		}
	}
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
