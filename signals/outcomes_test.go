package signals

import (
	"math"
	"testing"

	"github.com/cpafeed/cpafeed/model"
)

// outcomeRec records what OnOutcome and OnExposed receive.
type outcomeRec struct {
	outcomes []recordedOutcome
	exposed  []string // "campaign auction/imp"
}

type recordedOutcome struct {
	campaign   string
	root, cut  model.Key
	bid, price float64
	won        bool
}

func (r *outcomeRec) attach(x *Exposures) {
	x.OnOutcome(func(campaign string, root, cut model.Key, bid, price float64, won bool, ts int64) {
		r.outcomes = append(r.outcomes, recordedOutcome{campaign, root, cut, bid, price, won})
	})
	x.OnExposed(func(campaign string, ts int64, cost, pred float64, auction, imp []byte) {
		r.exposed = append(r.exposed, campaign+" "+string(auction)+"/"+string(imp))
	})
}

// TestLossAndWinOutcomes: a loss notice of a remembered bid books a lost
// outcome at the bid it names, once; reasons that say nothing of the price,
// unknown auctions and unreadable bids book nothing; a win notice with
// bid= books a won outcome beside its exposure; a replay of the journal
// gives the same outcomes.
func TestLossAndWinOutcomes(t *testing.T) {
	dir := t.TempDir()
	h := openHarness(t, dir)
	var rec outcomeRec
	rec.attach(h.x)
	rememberAs(t, h, demoBidder, "a-1")
	notPrice, bad, unknown := lossesNotPrice.Get(), lossesBadBid.Get(), lossesUnknown.Get()
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=a-1&imp=1&campaign=demo-ctv-purchase&bid=12.5&reason=102")
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=a-1&imp=1&campaign=demo-ctv-purchase&bid=12.5&reason=102") // the exchange's retry
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=a-1&imp=2&campaign=demo-ctv-purchase&bid=12.5&reason=4")   // invalid deal id
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=a-1&imp=2&campaign=demo-ctv-purchase&bid=${AUCTION_BID}")
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=zz&imp=2&campaign=demo-ctv-purchase&bid=3")
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=a-1&imp=2&campaign=other-ctv-purchase&bid=3") // not the bidder's
	if len(rec.outcomes) != 1 || lossesNotPrice.Get()-notPrice != 1 || lossesBadBid.Get()-bad != 1 || lossesUnknown.Get()-unknown != 2 {
		t.Fatalf("outcomes %+v; not price +%d, bad bid +%d, unknown +%d", rec.outcomes, lossesNotPrice.Get()-notPrice, lossesBadBid.Get()-bad, lossesUnknown.Get()-unknown)
	}
	lost := rec.outcomes[0]
	root := model.RootKey("demo-ctv-purchase")
	if lost.won || lost.bid != 12.5 || lost.price != 0 || lost.root != root || lost.cut != root.Child([]byte("pub-1203")) {
		t.Fatalf("loss %+v", lost)
	}
	beacon(t, h.x.HandleWin, "/v1/win?auction=a-1&imp=2&campaign=demo-ctv-purchase&price=9.5&bid=10")
	beacon(t, h.x.HandleWin, "/v1/win?auction=a-1&imp=3&campaign=demo-ctv-purchase&price=9.5") // no bid: an exposure only
	if len(rec.outcomes) != 2 || h.c.exposures != 2 || len(rec.exposed) != 2 || rec.exposed[0] != "demo-ctv-purchase a-1/2" {
		t.Fatalf("wins: outcomes %+v, %d exposures, exposed %v", rec.outcomes, h.c.exposures, rec.exposed)
	}
	if won := rec.outcomes[1]; !won.won || won.bid != 10 || won.price != 9.5 {
		t.Fatalf("won %+v", won)
	}
	live := rec.outcomes
	h.x.Close()
	h.j.Close()

	openHarness2(t, dir, &rec)
	if len(rec.outcomes) != 4 || rec.outcomes[2] != live[0] || rec.outcomes[3] != live[1] {
		t.Fatalf("replayed outcomes %+v, live %+v", rec.outcomes[2:], live)
	}
}

// openHarness2 opens a harness whose replay feeds rec.
func openHarness2(t *testing.T, dir string, rec *outcomeRec) *expHarness {
	t.Helper()
	pre := func(x *Exposures) { rec.attach(x) }
	return openHarnessHook(t, dir, ExposureConfig{}, pre)
}

// TestLossSigned: a bidder with a win_secret must sign its loss notices as
// its win notices.
func TestLossSigned(t *testing.T) {
	h := openHarness(t, t.TempDir())
	var rec outcomeRec
	rec.attach(h.x)
	rememberAs(t, h, signingBidder, "s-1")
	refused := lossesRefusedSig.Get()
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=s-1&imp=1&campaign=demo-ctv-purchase&bid=5")
	if len(rec.outcomes) != 0 || lossesRefusedSig.Get()-refused != 1 {
		t.Fatalf("an unsigned loss: %+v", rec.outcomes)
	}
	sig := string(NewWinSigner(testWinSecret).AppendSig(nil, "s-1", "1", "demo-ctv-purchase"))
	beacon(t, h.x.HandleLoss, "/v1/loss?auction=s-1&imp=1&campaign=demo-ctv-purchase&bid=5&sig="+sig)
	if len(rec.outcomes) != 1 {
		t.Fatalf("a signed loss: %+v", rec.outcomes)
	}
}

func TestOutcomeInProcess(t *testing.T) {
	h := openHarness(t, t.TempDir())
	var rec outcomeRec
	rec.attach(h.x)
	ex := NewExtractor()
	req, err := ex.Extract(fixture(t, "roku-ctv-pod-gpp.json"), h.now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.x.Outcome(req, 0, "demo-ctv-signup", 7, 99, false, h.now.Unix()); err != nil {
		t.Fatal(err)
	}
	if err := h.x.Outcome(req, 0, "demo-ctv-signup", 7, 0, false, h.now.Unix()); err != nil { // a duplicate
		t.Fatal(err)
	}
	if len(rec.outcomes) != 1 || rec.outcomes[0].price != 0 || rec.outcomes[0].won {
		t.Fatalf("%+v", rec.outcomes)
	}
	for _, bad := range []error{
		h.x.Outcome(req, 0, "nope", 7, 0, false, 1),
		h.x.Outcome(req, 9, "demo-ctv-signup", 7, 0, false, 1),
		h.x.Outcome(req, 1, "demo-ctv-signup", math.NaN(), 0, false, 1),
	} {
		if bad == nil {
			t.Fatal("a bad outcome was accepted")
		}
	}
}

func TestOutcomeRecordRoundTrip(t *testing.T) {
	o := outcome{ts: 7, campaign: "c", cut: 11, bid: 12.5, price: 9, won: true}
	o.key[2] = 5
	rec := appendOutcome(nil, &o)
	got, err := decodeOutcome(rec)
	if err != nil || got != o {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range rec {
		if _, err := decodeOutcome(rec[:i]); err == nil {
			t.Fatalf("truncated record at %d decoded", i)
		}
	}
}

func FuzzOutcomeRecord(f *testing.F) {
	f.Add(appendOutcome(nil, &outcome{ts: 7, campaign: "c", cut: 11, bid: 12.5, price: 9, won: true}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		o, err := decodeOutcome(rec)
		if err != nil {
			return
		}
		if !(o.bid > 0) || !(o.price >= 0) || math.IsInf(o.bid+o.price, 0) {
			t.Fatalf("accepted %+v", o)
		}
	})
}

// TestExposureRecordPredicted: version 2 carries each exposure's predicted
// conversion rate; a version-1 batch (before it) still decodes, with none.
func TestExposureRecordPredicted(t *testing.T) {
	es := []exposure{{ts: 5, campaign: "c", cost: 0.02, path: []model.Key{1, 2}, labels: [][]byte{nil, []byte("x")}, pred: 0.0025}}
	rec := appendExposures(nil, 42, es)
	if _, got, err := decodeExposures(rec); err != nil || got[0].pred != 0.0025 {
		t.Fatalf("v2: %+v, %v", got, err)
	}
	v1 := append([]byte{RecordExposures, 1}, rec[2:len(rec)-8]...)
	if _, got, err := decodeExposures(v1); err != nil || len(got) != 1 || got[0].pred != 0 || got[0].cost != 0.02 {
		t.Fatalf("v1: %+v, %v", got, err)
	}
	bad := appendExposures(nil, 42, []exposure{{ts: 5, campaign: "c", path: []model.Key{1}, labels: [][]byte{nil}, pred: 2}})
	if _, _, err := decodeExposures(bad); err == nil {
		t.Fatal("a predicted rate of 2 decoded")
	}
}

// TestExposePredicted: an exposure carries the predictor's rate, or the one
// given in process, to OnExposed, and through a replay.
func TestExposePredicted(t *testing.T) {
	dir := t.TempDir()
	h := openHarness(t, dir)
	var got []float64
	h.x.SetPredictor(func(campaign string, imp *Imp) float64 { return 0.004 })
	h.x.OnExposed(func(_ string, _ int64, _, pred float64, _, _ []byte) { got = append(got, pred) })
	req, err := NewExtractor().Extract(fixture(t, "roku-ctv-pod-gpp.json"), h.now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.x.Expose(req, 0, "demo-ctv-purchase", 20, h.now.Unix()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.x.ExposePredicted(req, 1, "demo-ctv-purchase", 20, 0.0007, h.now.Unix()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 0.004 || got[1] != 0.0007 {
		t.Fatalf("predicted %v", got)
	}
	h.x.Close()
	h.j.Close()
	var replayed []float64
	openHarnessHook(t, dir, ExposureConfig{}, func(x *Exposures) {
		x.OnExposed(func(_ string, _ int64, _, pred float64, _, _ []byte) { replayed = append(replayed, pred) })
	})
	if len(replayed) != 2 || replayed[0] != got[0] || replayed[1] != got[1] {
		t.Fatalf("replayed %v, live %v", replayed, got)
	}
}
