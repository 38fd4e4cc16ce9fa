package conversions

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// TestGhostOnlyConversionCountsForControl: a conversion matched only to a
// ghost exposure belongs to the control arm (counted, never credited); one
// matched to a real exposure to the treatment arm.
func TestGhostOnlyConversionCountsForControl(t *testing.T) {
	h := newAttrHarness(t)
	ghostIFA := signals.ID{Kind: signals.IDIFA, Key: 555}
	h.exposeGhost(t0, t0, "buy", "pub-a", ghostIFA)
	leaf := h.expose(t0, t0, "buy", "pub-b", ifa)
	h.convert(t0+100, t0+100, "ds1", "Purchase", 0, ghostIFA)
	h.convert(t0+100, t0+100, "ds1", "Purchase", 0, ifa)
	s := h.stats("buy")
	if s.Control != 1 || s.Attributed != 1 || s.Conversions != 2 || s.Credited != 1 {
		t.Fatalf("stats %+v", s)
	}
	if h.credited(t0+200, leaf) < 0.99 {
		t.Fatal("the real exposure was not credited")
	}
	r, ok := h.a.Lift("buy", time.Unix(t0+200, 0), nil)
	if !ok {
		t.Fatal("no lift report")
	}
	if r.Total.Treatment.Households != 1 || r.Total.Control.Households != 1 || r.Total.Treatment.Conversions != 1 || r.Total.Control.Conversions != 1 {
		t.Fatalf("lift %+v", r.Total)
	}
	if r.OrganicRate == nil || *r.OrganicRate <= 0 {
		t.Fatalf("organic rate %v", r.OrganicRate)
	}
	// One household per arm, each converting once: the control arm's rate
	// predicts the treated conversion as organic.
	tr, org, ctl, ok := h.a.Incrementality("buy")
	if !ok || tr != 1 || math.Abs(org-1) > 0.05 || ctl != 1 {
		t.Fatalf("incrementality %g treated, %g organic, %g control, %v", tr, org, ctl, ok)
	}
	if _, _, _, ok := h.a.Incrementality("nope"); ok {
		t.Fatal("an unknown campaign has an incrementality")
	}
}

// TestLiftIntervalCoversTruth simulates many holdout experiments with a
// known lift (treatment households convert at twice the control rate,
// some of them several times) and checks that the 90 % interval holds the
// truth about 90 % of the time and that the point estimate is unbiased.
func TestLiftIntervalCoversTruth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const (
		reps       = 300
		hT, hC     = 4000, 400
		lamC, lift = 0.05, 1.0
	)
	covered := 0
	var sumLog float64
	for range reps {
		l := newLiftState(4)
		key := uint64(1)
		for arm, n := range [2]int{hT, hC} {
			lam := lamC
			if arm == armTreatment {
				lam *= 1 + lift
			}
			for range n {
				key++
				ids := []signals.ID{{Kind: signals.IDIFA, Key: key}}
				e := signals.IndexedExposure{TS: t0, Group: uint8(1 + key%4)}
				e.SetGhost(arm == armControl)
				l.exposure(e, ids, 86400)
				// A household converts Poisson(λ) times, half of them
				// in bursts of two (overdispersion).
				for range poisson(r, lam/1.5) {
					l.conversion(arm, e.Group, ids)
					if r.IntN(2) == 0 {
						l.conversion(arm, e.Group, ids)
					}
				}
			}
		}
		est := l.figures(nil, l.matchable(t0, 86400)).estimate()
		if est.lo <= lift && lift <= est.hi {
			covered++
		}
		sumLog += math.Log1p(est.lift)
	}
	t.Logf("coverage %d of %d", covered, reps)
	if c := float64(covered) / reps; c < 0.85 || c > 0.96 {
		t.Errorf("the 90%% interval covered the true lift in %.1f%% of %d experiments", 100*c, reps)
	}
	if g := math.Expm1(sumLog / reps); math.Abs(g-lift) > 0.1 {
		t.Errorf("geometric mean of the lift estimates %.3f, truth %.1f", g, lift)
	}
}

func poisson(r *rand.Rand, lam float64) int {
	l, k, p := math.Exp(-lam), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestHLLEstimates checks the household sketch against exact counts.
func TestHLLEstimates(t *testing.T) {
	for _, n := range []int{10, 1000, 50_000, 1_000_000} {
		var h hll
		for i := range n {
			h.add(uint64(i)*0x9e3779b97f4a7c15 + 7)
			h.add(uint64(i)*0x9e3779b97f4a7c15 + 7) // duplicates do not count
		}
		if got := h.estimate(); math.Abs(got/float64(n)-1) > 0.05 {
			t.Errorf("%d keys: estimate %.0f", n, got)
		}
	}
}

// probWorld is a synthetic campaign with known truth for probabilistic
// credit: treatment households see two exposures each, a share causes a
// conversion after a delay drawn from the model's delay density, and every
// household converts organically at a known rate; control households get
// ghost exposures only.
type probWorld struct {
	h                         *attrHarness
	log                       *memLog
	truthExp                  map[DedupKey]uint64 // conversion -> causing exposure's index seq (0: organic)
	credit                    map[DedupKey]map[uint64]float64
	organicTrue, organicGiven float64
	oracleOrganic             float64 // Σ over matched conversions of the true posterior of organic
}

func runProbWorld(t *testing.T, campaign, event string, seed uint64) *probWorld {
	t.Helper()
	w := &probWorld{h: newAttrHarnessSized(t, 100_000), log: newMemLog(), truthExp: map[DedupKey]uint64{}, credit: map[DedupKey]map[uint64]float64{}}
	h := w.h
	h.a.conf[MethodIFA] = 1 // every match of this world is right
	h.a.SetLog(w.log)
	h.a.SetObserver(func(n CreditNote) {
		if n.Campaign != campaign {
			return
		}
		if w.credit[n.Conversion] == nil {
			w.credit[n.Conversion] = map[uint64]float64{}
		}
		w.credit[n.Conversion][n.Exposure] += n.Weight
	})
	r := rand.New(rand.NewPCG(seed, 9))
	const (
		nT, nC = 3000, 1500
		day    = 86400
		week   = 7 * day
		pCause = 0.2
	)
	lam := 1.0 / (30 * day) // organic conversions per household-second
	h.m.Refresh(t0)
	// The model's delay density, for drawing caused delays (rejection).
	g0, _ := h.m.DelayDensity(campaign, 0)
	drawDelay := func() int64 {
		for {
			d := r.Int64N(week)
			if g, _ := h.m.DelayDensity(campaign, d); r.Float64()*g0 < g {
				return d
			}
		}
	}
	// Events in time order: exposures (real or ghost) and conversions.
	type worldEvent struct {
		ts    int64
		id    signals.ID
		ghost bool
		exp   bool
		cause int // conversion: the causing exposure's event index + 1 (0: organic)
		key   DedupKey
	}
	var evs []worldEvent
	nextKey := uint64(0)
	newKey := func() (k DedupKey) {
		nextKey++
		k[0], k[1], k[2] = byte(nextKey), byte(nextKey>>8), byte(nextKey>>16)
		return k
	}
	expTimes := map[uint64][2]int64{}
	for i := range nT + nC {
		id := signals.ID{Kind: signals.IDIFA, Key: uint64(10_000 + i)}
		ghost := i >= nT
		t1 := t0 + r.Int64N(week)
		t2 := t1 + r.Int64N(2*day)
		for _, ts := range [2]int64{t1, t2} {
			evs = append(evs, worldEvent{ts: ts, id: id, ghost: ghost, exp: true})
			if !ghost && r.Float64() < pCause {
				evs = append(evs, worldEvent{ts: ts + drawDelay(), id: id, cause: len(evs), key: newKey()})
			}
		}
		if !ghost {
			expTimes[id.Key] = [2]int64{t1, t2}
		}
		// Organic conversions over the windows after the first exposure.
		for range poisson(r, lam*float64(week+2*day)) {
			evs = append(evs, worldEvent{ts: t1 + r.Int64N(week+2*day), id: id, key: newKey()})
		}
	}
	order := make([]int, len(evs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(evs[a].ts, evs[b].ts) })
	seqOf := make([]uint64, len(evs))
	// Credits are flushed and the model refreshed every 6 hours, as a
	// server does (more often).
	next := t0 + 6*3600
	for _, i := range order {
		ev := &evs[i]
		for ev.ts > next {
			if _, err := h.a.FlushCredits(time.Unix(next, 0)); err != nil {
				t.Fatal(err)
			}
			h.m.Refresh(next)
			next += 6 * 3600
		}
		if ev.exp {
			if ev.ghost {
				h.exposeGhost(ev.ts, ev.ts, campaign, "pub", ev.id)
			} else {
				h.expose(ev.ts, ev.ts, campaign, "pub", ev.id)
			}
			seqOf[i] = h.index.Last()
			continue
		}
		var cause uint64
		if ev.cause > 0 {
			cause = seqOf[ev.cause-1]
		}
		w.truthExp[ev.key] = cause
		if cause == 0 {
			w.organicTrue++
		}
		if et, ok := expTimes[ev.id.Key]; ok && ev.ts >= et[0] && ev.ts-et[0] <= week {
			var sum float64
			for _, e := range et {
				if ev.ts >= e && ev.ts-e <= week {
					g, _ := h.m.DelayDensity(campaign, ev.ts-e)
					sum += pCause * g
				}
			}
			w.oracleOrganic += lam / (lam + sum)
		}
		h.a.OnStored([]StoredEvent{{Dataset: "ds1", EventName: event, EventTime: ev.ts, Received: ev.ts * 1000, Key: ev.key, IDs: []signals.ID{ev.id}}})
	}
	if _, err := h.a.FlushCredits(time.Unix(next, 0)); err != nil {
		t.Fatal(err)
	}
	return w
}

// accuracy is the share of the credit of the treatment arm's conversions
// that went to their true cause (the exposure, or organic), and the
// organic credit given to them.
func (w *probWorld) accuracy() (acc, organic float64, n int) {
	for key, cr := range w.credit {
		truth := w.truthExp[key]
		acc += cr[truth]
		organic += cr[0]
		n++
	}
	return acc / float64(n), organic, n
}

// TestProbabilisticCreditKnowsTheOrganicBaseline runs the same synthetic
// campaign under last touch and under probabilistic credit: with the
// control arm's organic rate, probabilistic credit gives "organic" about
// as much as there truly was, and more of the credit goes to the true
// cause than under last touch.
func TestProbabilisticCreditKnowsTheOrganicBaseline(t *testing.T) {
	prob := runProbWorld(t, "prob", "Subscribe", 3)
	last := runProbWorld(t, "buy", "Purchase", 3)
	accP, orgP, nP := prob.accuracy()
	accL, orgL, nL := last.accuracy()
	if nP < 1000 || nL < 1000 {
		t.Fatalf("%d and %d conversions credited", nP, nL)
	}
	// The organic conversions that matched a real exposure: the truth to
	// compare the organic credit with.
	var orgMatched float64
	for key := range prob.credit {
		if prob.truthExp[key] == 0 {
			orgMatched++
		}
	}
	t.Logf("probabilistic: accuracy %.3f, organic credit %.0f (true organic conversions among those credited %.0f); last touch: accuracy %.3f, organic %.0f",
		accP, orgP, orgMatched, accL, orgL)
	if orgL != 0 {
		t.Errorf("last touch gave organic %.1f", orgL)
	}
	if math.Abs(orgP/orgMatched-1) > 0.15 {
		t.Errorf("organic credit %.0f for %.0f organic conversions of the treatment arm (of %d credited)", orgP, orgMatched, nP)
	}
	if accP < accL+0.05 {
		t.Errorf("probabilistic credit accuracy %.3f is not above last touch's %.3f", accP, accL)
	}
	st := prob.h.stats("prob")
	if st.AwaitingCredit != 0 || math.Abs(st.Credited+st.Organic-float64(st.Attributed)) > 1e-6*float64(st.Attributed) {
		t.Errorf("credits do not add up: %+v", st)
	}
}

// TestAttributionSnapshotKeepsLiftAndCredit runs a probabilistic campaign,
// checks its journal holds credit records, and reads a snapshot of its
// attributor back: the stats and the lift measurement survive.
func TestAttributionSnapshotKeepsLiftAndCredit(t *testing.T) {
	live := runProbWorld(t, "prob", "Subscribe", 5)
	var records int
	for _, rec := range live.log.durable {
		if rec[0] != RecordTypeCredits {
			continue
		}
		records++
		if _, _, err := decodeCredits(rec); err != nil {
			t.Fatal(err)
		}
	}
	if records == 0 {
		t.Fatal("no credit record journaled")
	}
	// Snapshot the live attributor and read it back: the awaiting queue
	// is empty, the stats and the lift survive.
	var buf bytes.Buffer
	bw := binenc.NewWriter(&buf)
	live.h.a.WriteSnapshot(bw)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	h2 := newAttrHarness(t)
	if err := h2.a.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	a, b := live.h.stats("prob"), h2.stats("prob")
	if a.Credited != b.Credited || a.Organic != b.Organic || a.Control != b.Control || a.Attributed != b.Attributed {
		t.Fatalf("snapshot: %+v, want %+v", b, a)
	}
	ra, _ := live.h.a.Lift("prob", time.Unix(t0+30*86400, 0), nil)
	rb, _ := h2.a.Lift("prob", time.Unix(t0+30*86400, 0), nil)
	if *ra.Total.Lift != *rb.Total.Lift || ra.Total.Control.Households != rb.Total.Control.Households || *ra.OrganicRate != *rb.OrganicRate {
		t.Fatalf("lift after snapshot %+v, want %+v", rb.Total, ra.Total)
	}
}

// TestCreditRecordAppliesExactly checks replay directly: the same matches
// in two attributors, credits flushed in one and its record replayed in
// the other, give identical model credits and stats.
func TestCreditRecordAppliesExactly(t *testing.T) {
	build := func() *attrHarness {
		h := newAttrHarness(t)
		h.m.Refresh(t0)
		a := h.expose(t0, t0, "prob", "pub-a", ifa)
		b := h.expose(t0+3600, t0+3600, "prob", "pub-b", ifa, ip)
		_, _ = a, b
		h.exposeGhost(t0, t0, "prob", "pub-a", email)
		h.convert(t0+7200, t0+7200, "ds1", "Subscribe", 0, email) // control: the organic rate
		h.convert(t0+7200, t0+7200, "ds1", "Subscribe", 0, ifa, ip)
		return h
	}
	live, replay := build(), build()
	log := newMemLog()
	live.a.SetLog(log)
	if n, err := live.a.FlushCredits(time.Unix(t0+8000, 0)); n != 1 || err != nil {
		t.Fatalf("flush: %d, %v", n, err)
	}
	if st := replay.stats("prob"); st.AwaitingCredit != 1 {
		t.Fatalf("before replay: %+v", st)
	}
	for _, rec := range log.durable {
		if err := replay.a.ReplayCredits(rec); err != nil {
			t.Fatal(err)
		}
	}
	// Replaying again changes nothing (the conversion is credited).
	for _, rec := range log.durable {
		if err := replay.a.ReplayCredits(rec); err != nil {
			t.Fatal(err)
		}
	}
	sl, sr := live.stats("prob"), replay.stats("prob")
	if sl.Credited != sr.Credited || sl.Organic != sr.Organic || sr.AwaitingCredit != 0 || !(sl.Organic > 0 && sl.Credited > 0) {
		t.Fatalf("live %+v, replay %+v", sl, sr)
	}
	if math.Abs(sl.Credited+sl.Organic-1) > 1e-12 {
		t.Fatalf("credits sum to %v", sl.Credited+sl.Organic)
	}
	for _, pub := range []string{"pub-a", "pub-b"} {
		leaf := model.RootKey("prob").Child([]byte(pub))
		if cl, cr := live.credited(t0+9000, leaf), replay.credited(t0+9000, leaf); cl != cr || !(cl > 0) {
			t.Fatalf("%s: live %v, replay %v", pub, cl, cr)
		}
	}
	if _, _, err := decodeCredits(log.durable[0][:len(log.durable[0])-1]); err == nil {
		t.Fatal("a truncated credit record decoded")
	}
}

// TestConversionCountsInOneArm: a conversion matched to a real exposure
// through its IFA and to a ghost exposure of another household through a
// shared IP counts in the treatment arm only (its best match), and one
// matched to both through the IP only in the arm of the newest exposure.
func TestConversionCountsInOneArm(t *testing.T) {
	h := newAttrHarness(t)
	shared := signals.ID{Kind: signals.IDIP, Key: 777}
	h.expose(t0, t0, "buy", "pub-a", ifa, shared)
	h.exposeGhost(t0+50, t0+50, "buy", "pub-a", signals.ID{Kind: signals.IDIFA, Key: 888}, shared)
	h.convert(t0+100, t0+100, "ds1", "Purchase", 0, ifa, shared)
	r, _ := h.a.Lift("buy", time.Unix(t0+200, 0), nil)
	if r.Total.Treatment.Conversions != 1 || r.Total.Control.Conversions != 0 {
		t.Fatalf("IFA and shared IP: %+v", r.Total)
	}
	h.convert(t0+150, t0+150, "ds1", "Purchase", 0, shared) // the IP alone: the ghost is newer
	r, _ = h.a.Lift("buy", time.Unix(t0+200, 0), nil)
	if r.Total.Treatment.Conversions != 1 || r.Total.Control.Conversions != 1 {
		t.Fatalf("shared IP alone: %+v", r.Total)
	}
}
