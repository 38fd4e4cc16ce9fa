package conversions

import (
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

type attrHarness struct {
	t     *testing.T
	m     *model.Model
	index *signals.Index
	a     *Attributor
	nums  map[string]uint16
}

var attrCampaigns = []model.Campaign{
	{ID: "buy", Advertiser: "demo", Event: "Purchase", TargetCPA: 40},
	{ID: "buy-linear", Advertiser: "demo", Event: "Lead", TargetCPA: 5, Credit: model.CreditLinear},
	{ID: "other-buy", Advertiser: "other", Event: "Purchase", TargetCPA: 30},
	{ID: "prob", Advertiser: "demo", Event: "Subscribe", TargetCPA: 10, Credit: model.CreditProbabilistic, PriorCVR: 0.2},
}

func newAttrHarness(t *testing.T) *attrHarness { return newAttrHarnessSized(t, 1000) }

func newAttrHarnessSized(t *testing.T, exposures int) *attrHarness {
	h := &attrHarness{t: t, m: model.New(model.Config{Structure: model.StructureChain}, attrCampaigns), index: signals.NewIndex(signals.IndexConfig{MaxExposures: exposures}), nums: map[string]uint16{}}
	for i, c := range attrCampaigns {
		h.nums[c.ID] = uint16(i)
	}
	h.a = NewAttributor(AttributionConfig{}, AttributorDeps{
		Index: h.index, Model: h.m, Datasets: map[string]string{"ds1": "demo", "ds2": "other"}, Campaigns: attrCampaigns,
		CampaignNumber: func(id string) (uint16, bool) { n, ok := h.nums[id]; return n, ok },
	})
	return h
}

// expose adds an exposure of campaign on publisher pub at ts (ingested at
// ingest) under ids, as the exposure side does, and returns its leaf.
func (h *attrHarness) expose(ingest, ts int64, campaign, pub string, ids ...signals.ID) model.Key {
	path := []model.Key{model.RootKey(campaign)}
	path = append(path, path[0].Child([]byte(pub)))
	h.m.Expose(ts, path, [][]byte{[]byte(pub)}, 0.02)
	e := signals.IndexedExposure{TS: ts, Leaf: path[1], Cost: 0.02, Campaign: h.nums[campaign]}
	h.index.Add(e, ids)
	h.a.OnIndexed(ingest, e, ids)
	return path[1]
}

// exposeGhost adds a ghost exposure (an auction held back for the
// holdout) of campaign on publisher pub at ts under ids.
func (h *attrHarness) exposeGhost(ingest, ts int64, campaign, pub string, ids ...signals.ID) {
	path := []model.Key{model.RootKey(campaign)}
	path = append(path, path[0].Child([]byte(pub)))
	e := signals.IndexedExposure{TS: ts, Leaf: path[1], Campaign: h.nums[campaign]}
	e.SetGhost(true)
	h.index.Add(e, ids)
	h.a.OnIndexed(ingest, e, ids)
}

func (h *attrHarness) convert(receivedS, eventTS int64, ds, name string, flags Flags, ids ...signals.ID) {
	h.a.OnStored([]StoredEvent{{Dataset: ds, EventName: name, EventTime: eventTS, Received: receivedS * 1000, Flags: flags, IDs: ids}})
}

func (h *attrHarness) stats(c string) AttributionStats {
	s, ok := h.a.Stats(c)
	if !ok {
		h.t.Fatalf("no stats for %s", c)
	}
	return s
}

// credited returns the conversions credited to a node (undecayed enough at
// these time scales to compare with 0 / 1).
func (h *attrHarness) credited(now int64, leaf model.Key) float64 {
	e, ok := h.m.Refresh(now).Get(leaf)
	if !ok {
		h.t.Fatalf("no node %x", uint64(leaf))
	}
	return e.Conversions
}

var (
	ip    = signals.ID{Kind: signals.IDIP, Key: 101}
	ifa   = signals.ID{Kind: signals.IDIFA, Key: 202}
	email = signals.ID{Kind: signals.IDEmail, Key: 303}
	hh    = signals.ID{Kind: signals.IDHousehold, Key: 404}
)

const t0 = int64(1_795_000_000)

func TestLastTouchLatestExposureWins(t *testing.T) {
	h := newAttrHarness(t)
	a := h.expose(t0, t0, "buy", "pub-a", ip)
	b := h.expose(t0+100, t0+100, "buy", "pub-b", ip)
	h.convert(t0+200, t0+200, "ds1", "Purchase", 0, ip)
	if got := h.credited(t0+300, b); got < 0.99 || got > 1.01 {
		t.Fatalf("latest exposure got %v", got)
	}
	if got := h.credited(t0+300, a); got != 0 {
		t.Fatalf("earlier exposure got %v", got)
	}
	s := h.stats("buy")
	if s.Attributed != 1 || s.ByMethod["household_ip"] != 1 || s.Conversions != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDeterministicBeatsHouseholdIP(t *testing.T) {
	h := newAttrHarness(t)
	byIFA := h.expose(t0, t0, "buy", "pub-ifa", ifa)
	byIP := h.expose(t0+100, t0+100, "buy", "pub-ip", ip)
	byHH := h.expose(t0+150, t0+150, "buy", "pub-hh", hh)
	h.convert(t0+200, t0+200, "ds1", "Purchase", 0, ip, ifa, hh)
	if h.credited(t0+300, byIFA) < 0.99 || h.credited(t0+300, byIP) != 0 || h.credited(t0+300, byHH) != 0 {
		t.Fatal("the IFA match did not win over the later household matches")
	}
	if s := h.stats("buy"); s.ByMethod["ifa"] != 1 {
		t.Fatalf("method %+v", s.ByMethod)
	}
	// Without a deterministic match, a household id beats an IP.
	h2 := newAttrHarness(t)
	byHH = h2.expose(t0, t0, "buy", "pub-hh", hh)
	byIP = h2.expose(t0+100, t0+100, "buy", "pub-ip", ip)
	h2.convert(t0+200, t0+200, "ds1", "Purchase", 0, ip, hh)
	if h2.credited(t0+300, byHH) < 0.99 || h2.credited(t0+300, byIP) != 0 {
		t.Fatal("household id did not beat the IP")
	}
}

func TestLinearCreditSplitsEvenly(t *testing.T) {
	h := newAttrHarness(t)
	a := h.expose(t0, t0, "buy-linear", "pub-a", email)
	b := h.expose(t0+10, t0+10, "buy-linear", "pub-b", email, ip)
	h.convert(t0+20, t0+20, "ds1", "Lead", 0, email, ip)
	ca, cb := h.credited(t0+30, a), h.credited(t0+30, b)
	if ca < 0.49 || ca > 0.51 || cb < 0.49 || cb > 0.51 {
		t.Fatalf("linear credit %v / %v", ca, cb)
	}
	if s := h.stats("buy-linear"); s.Attributed != 1 || s.Credited != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWindowCampaignAndTenantBoundaries(t *testing.T) {
	h := newAttrHarness(t)
	week := int64(7 * 24 * 3600)
	old := h.expose(t0, t0, "buy", "pub-old", ip)
	after := h.expose(t0+week+500, t0+week+500, "buy", "pub-after", ip)       // after the conversion
	other := h.expose(t0+week, t0+week, "other-buy", "pub-other", ip)         // another advertiser's campaign
	h.convert(t0+week+200, t0+week+200, "ds1", "Purchase", 0, ip)             // 7 days + 200 s after "old"
	h.convert(t0+week+200, t0+week+200, "ds1", "CompleteRegistration", 0, ip) // no campaign optimizes it
	for _, leaf := range []model.Key{old, after, other} {
		if h.credited(t0+week+600, leaf) != 0 {
			t.Fatalf("exposure %x credited across a boundary", uint64(leaf))
		}
	}
	if s := h.stats("buy"); s.Attributed != 0 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
	if s := h.stats("other-buy"); s.Conversions != 0 || s.Pending != 0 {
		t.Fatalf("other tenant saw the conversion: %+v", s)
	}
}

func TestLateExposureMatchesWithinGrace(t *testing.T) {
	h := newAttrHarness(t)
	h.convert(t0+100, t0+100, "ds1", "Purchase", 0, ifa)
	if s := h.stats("buy"); s.Pending != 1 || s.Conversions != 0 {
		t.Fatalf("not pending: %+v", s)
	}
	// The exposure (at t0, before the conversion) is reported 30 min later.
	leaf := h.expose(t0+1900, t0, "buy", "pub-late", ifa)
	if h.credited(t0+2000, leaf) < 0.99 {
		t.Fatal("late exposure not credited")
	}
	s := h.stats("buy")
	if s.Pending != 0 || s.Attributed != 1 || s.Late != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Another conversion whose exposure comes after the grace period stays
	// unattributed.
	h.convert(t0+5000, t0+5000, "ds1", "Purchase", 0, email)
	h.a.Expire(time.Unix(t0+5000+3600+61, 0))
	leaf = h.expose(t0+5000+3600+120, t0+4000, "buy", "pub-too-late", email)
	if h.credited(t0+9000, leaf) != 0 {
		t.Fatal("exposure after the grace period credited")
	}
	if s := h.stats("buy"); s.Unattributed != 1 || s.Conversions != 2 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestExpiryByIngestTimeIsDeterministic(t *testing.T) {
	// Without any timer, a record ingested after deadline+margin gives the
	// pending conversion up, as a replay would.
	h := newAttrHarness(t)
	h.convert(t0, t0, "ds1", "Purchase", 0, ifa)
	h.convert(t0+3600+61, t0+3600+61, "ds1", "Purchase", 0, email)
	if s := h.stats("buy"); s.Unattributed != 1 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestExcludedConversionsCountUnattributed(t *testing.T) {
	h := newAttrHarness(t)
	leaf := h.expose(t0, t0, "buy", "pub", ip)
	h.convert(t0+10, t0+10, "ds1", "Purchase", FlagLDU)
	h.convert(t0+10, t0+10, "ds1", "Purchase", FlagOptOut, ip)
	if h.credited(t0+20, leaf) != 0 {
		t.Fatal("LDU or opt-out conversion credited")
	}
	s := h.stats("buy")
	if s.Unattributed != 2 || s.Excluded["ldu"] != 1 || s.Excluded["opt_out"] != 1 {
		t.Fatalf("stats %+v", s)
	}
	cs, _ := h.m.CampaignStats("buy")
	if cs.Conversions != 2 || cs.Unattributed != 2 {
		t.Fatalf("campaign-level conversions %+v", cs)
	}
}

func TestMaxPendingGivesUpOldest(t *testing.T) {
	h := newAttrHarness(t)
	h.a.cfg.MaxPending = 2
	for i := range 3 {
		h.convert(t0+int64(i), t0+int64(i), "ds1", "Purchase", 0, signals.ID{Kind: signals.IDIFA, Key: uint64(900 + i)})
	}
	if s := h.stats("buy"); s.Pending != 2 || s.Unattributed != 1 {
		t.Fatalf("stats %+v", s)
	}
}
