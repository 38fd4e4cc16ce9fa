package control

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/cpafeed/cpafeed/binenc"
)

// recLog keeps every record and applies it at once.
type recLog struct {
	recs [][]byte
	fail bool
}

func (l *recLog) AppendApply(rec []byte, undo, apply func()) (uint64, uint64, error) {
	if l.fail {
		return 0, 0, errors.New("disk full")
	}
	l.recs = append(l.recs, append([]byte(nil), rec...))
	apply()
	return uint64(len(l.recs)), 0, nil
}

func (l *recLog) Wait(lsn, epoch uint64) error { return nil }

func testParams() Params {
	return Params{Enabled: true, Target: 40, Min: 0.2, Max: 4, ReactionTime: 24 * 3600, ExploreShare: 0.05}
}

func testCampaigns() []Campaign {
	off := testParams()
	off.Enabled = false
	return []Campaign{{ID: "a", Params: testParams(), Window: 86400}, {ID: "b", Params: off, Window: 86400}}
}

// measureAt answers a CPA of cpa for every campaign.
func measureAt(cpa float64) func(string, Params) (Measure, bool) {
	return func(string, Params) (Measure, bool) {
		// Calibrated predictions: Expected = Predicted.
		m := Measure{Exposures: 10000, NEff: 10000, Conversions: 10, Predicted: 10}
		m.Spend = cpa * m.Expected()
		return m, true
	}
}

// TestReplayFollowsLive: states rebuilt from the journal's records, and
// from a snapshot, equal the live ones; explored spend counted in log
// order is the same too.
func TestReplayFollowsLive(t *testing.T) {
	log := &recLog{}
	c := New(log, testCampaigns())
	now := int64(1_750_000_000)
	c.Update(now, nil)
	for i, cpa := range []float64{60, 55, 30, 20} {
		now += 3600
		c.OnExposed("a", now-10, 0.02, []byte{byte(i)}, []byte("1"))
		if err := c.Update(now, measureAt(cpa)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := c.State("a")
	if a.U() == 1 || a.CPA != 20 {
		t.Fatalf("live state %+v: the controller did not step", a)
	}
	if b, _ := c.Table().Get("b"); b.U != 1 {
		t.Fatalf("disabled campaign: multiplier %g", b.U)
	}

	r := New(&recLog{}, testCampaigns())
	for _, rec := range log.recs {
		if err := r.Replay(rec); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := r.State("a"); got != a {
		t.Fatalf("replayed %+v, live %+v", got, a)
	}

	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	c.WriteSnapshot(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	s := New(&recLog{}, testCampaigns())
	if err := s.ReadSnapshot(binenc.NewReader(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.State("a"); got != a {
		t.Fatalf("restored %+v, live %+v", got, a)
	}
	if got, want := s.Table().ents["a"], c.Table().ents["a"]; got != want {
		t.Fatalf("restored table %+v, live %+v", got, want)
	}
	if s.camps["a"].xSpend != c.camps["a"].xSpend || s.camps["a"].xRef != c.camps["a"].xRef {
		t.Fatal("explored counts not restored")
	}
}

func TestUpdateNotJournaled(t *testing.T) {
	log := &recLog{}
	c := New(log, testCampaigns())
	c.Update(1000, nil)
	before, _ := c.State("a")
	log.fail = true
	if err := c.Update(5000, measureAt(80)); err == nil {
		t.Fatal("an update the journal refused reported success")
	}
	if got, _ := c.State("a"); got != before {
		t.Fatalf("state moved without its record: %+v, was %+v", got, before)
	}
}

// TestExploredShare: wins whose draw falls under Q count as explored; Q
// falls when they take more than the share.
func TestExploredShare(t *testing.T) {
	c := New(&recLog{}, testCampaigns()[:1])
	k := c.camps["a"]
	k.st.Q = 0.5
	now := int64(1_750_000_000)
	for i := range 4000 {
		c.OnExposed("a", now, 0.01, []byte{byte(i), byte(i >> 8)}, []byte("1"))
	}
	if share := k.xExpl / k.xSpend; math.Abs(share-0.5) > 0.03 {
		t.Fatalf("explored share %.3f of wins drawn under Q 0.5", share)
	}
	c.Update(now, nil)
	if err := c.Update(now+int64(testParams().ReactionTime), nil); err != nil {
		t.Fatal(err)
	}
	st, _ := c.State("a")
	if !(st.Q < 0.5*0.2) || math.Abs(st.Share-0.5) > 0.03 {
		t.Fatalf("after a reaction time at a 50 %% share: %+v, want Q ≤ 0.1", st)
	}
	c.OnExposed("nope", now, 1, nil, nil) // unknown campaigns are ignored
	c.OnExposed("a", now, math.NaN(), nil, nil)
}

func FuzzControlRecord(f *testing.F) {
	f.Add(appendUpdate(nil, 1_750_000_000, []stepped{{id: "a", st: State{I: -0.2, LogU: -0.3, Q: 0.05, CPA: 42, Share: 0.01}}}))
	f.Add([]byte{RecordType, recordVersion})
	f.Fuzz(func(t *testing.T, rec []byte) {
		out, err := decodeUpdate(rec)
		if err != nil {
			return
		}
		for _, s := range out {
			if !s.st.valid() {
				t.Fatalf("accepted an invalid state %+v", s.st)
			}
		}
		again, err := decodeUpdate(appendUpdate(nil, out0At(out), out))
		if err != nil || len(again) != len(out) {
			t.Fatalf("re-encoding: %v, %d of %d", err, len(again), len(out))
		}
	})
}

func out0At(out []stepped) int64 {
	if len(out) == 0 {
		return 0
	}
	return out[0].st.At
}

// TestSilentCampaignHolds: a campaign whose bids never come back to
// cpafeed (no win, no reported loss) holds its multiplier for days; one
// that wins a little, or reports losses, without enough evidence to
// measure its CPA raises it.
func TestSilentCampaignHolds(t *testing.T) {
	p := testParams()
	day := int64(86400)
	run := func(m Measure) float64 {
		s := Step(p, State{}, m, Explored{}, 1_750_000_000)
		for i := int64(1); i <= 10; i++ {
			s = Step(p, s, m, Explored{}, 1_750_000_000+i*day)
		}
		return s.U()
	}
	if u := run(Measure{}); u != 1 {
		t.Fatalf("silent campaign: cpa_control %.3g after 10 days, want 1", u)
	}
	won := Measure{Spend: 2, Exposures: 100, NEff: 10, Predicted: 0.05}
	won.Long.Exposures, won.Long.NEff, won.Long.Predicted = 300, 30, 0.15
	if u := run(won); u != p.Max {
		t.Fatalf("campaign winning too little to measure: cpa_control %.3g after 10 days, want Max %g", u, p.Max)
	}
	if u := run(Measure{Lost: 50}); u != p.Max {
		t.Fatalf("campaign losing every reported bid: cpa_control %.3g after 10 days, want Max %g", u, p.Max)
	}
}

// TestIncrementalCount: with Incremental the realized CPA is the
// attributed one over the holdout's caused share, which counts by the
// control arm's evidence; without control conversions it is the
// attributed CPA.
func TestIncrementalCount(t *testing.T) {
	m := Measure{Exposures: 10000, NEff: 10000, Conversions: 10, Predicted: 10}
	m.Spend = 40 * m.Expected() // attributed CPA at the target
	if s := m.CausedShare(); s != 1 {
		t.Fatalf("no holdout: caused share %g", s)
	}
	m.Lift.Treated, m.Lift.Organic, m.Lift.Control = 100, 60, 6 // 6 control conversions stand for 60 organic
	want := 1 - 6.0/8*0.6
	if s := m.CausedShare(); math.Abs(s-want) > 1e-12 {
		t.Fatalf("caused share %g, want %g", s, want)
	}
	p := testParams()
	p.Incremental = true
	s := Step(p, State{At: 1}, m, Explored{}, 3601)
	if math.Abs(s.CPA-40/want) > 1e-9 || !(s.U() < 1) {
		t.Fatalf("incremental: CPA %g, want %g, and a lower multiplier (got %g)", s.CPA, 40/want, s.U())
	}
	p.Incremental = false
	if s := Step(p, State{At: 1}, m, Explored{}, 3601); math.Abs(s.CPA-40) > 1e-9 {
		t.Fatalf("attributed: CPA %g, want 40", s.CPA)
	}
	m.Lift.Organic = 500 // the control arm converts more than the treated one
	if s := m.CausedShare(); s != minCausedShare {
		t.Fatalf("caused share %g, want the floor %g", s, minCausedShare)
	}
}

// TestStaleErrorFades: a campaign that measured a CPA over its target and
// then stopped winning does not keep lowering its multiplier on that
// stale measure: once its recent delivery expects under one conversion,
// it is a campaign that wins too little and raises its bids again.
func TestStaleErrorFades(t *testing.T) {
	p := testParams()
	at := func(h float64) Measure { // the recent counts decayed by h, the long ones by √h
		m := Measure{Spend: 400 * h, Exposures: 10000 * h, NEff: 10000 * h, Conversions: 5 * h, Predicted: 5 * h}
		m.Long.Exposures, m.Long.NEff, m.Long.Conversions, m.Long.Predicted = 20000*math.Sqrt(h), 20000*math.Sqrt(h), 10*math.Sqrt(h), 10*math.Sqrt(h)
		return m
	}
	if cpa, _ := at(1).CPA(); math.Abs(cpa-80) > 1e-9 {
		t.Fatalf("measured CPA %g, want 80", cpa)
	}
	day := int64(86400)
	s := Step(p, State{}, at(1), Explored{}, day)
	var low float64 = 1
	for d := int64(1); d <= 12; d++ { // no win after the first day: half-life one day
		s = Step(p, s, at(math.Pow(0.5, float64(d))), Explored{}, day+d*day)
		low = min(low, s.U())
	}
	if !(low > 1.2*p.Min) || !(s.U() > 2*low) {
		t.Fatalf("after 12 days without a win: lowest cpa_control %.3g, last %.3g; want it to stop falling and rise again", low, s.U())
	}
}
