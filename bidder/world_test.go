package bidder

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

const t0 = int64(1_750_000_000)

// fixtureDirs hold real OpenRTB requests: the shared ones and signals' own
// CTV ones, and ours.
var fixtureDirs = []string{"../signals/testdata/openrtb/shared", "../signals/testdata/openrtb", "testdata"}

// fixtures returns every request fixture by file name.
func fixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, dir := range fixtureDirs {
		names, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			tb.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				tb.Fatal(err)
			}
			out[strings.TrimSuffix(filepath.Base(n), ".json")] = b
		}
	}
	if len(out) < 15 {
		tb.Fatalf("found %d fixtures in %v", len(out), fixtureDirs)
	}
	return out
}

func sortedNames(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var testLevels = [][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}}

// testCampaigns: a CPA campaign with floor and cap, a cautious one with
// pacing and neither, and one the test bidder may not score.
func testCampaigns() []model.Campaign {
	return []model.Campaign{
		{ID: "ctv-purchase", Advertiser: "demo", Event: "Purchase", TargetCPA: 40, FloorCPM: 10, CapCPM: 30, PriorCVR: 0.002},
		{ID: "ctv-signup", Advertiser: "demo", Event: "CompleteRegistration", TargetCPA: 8, Pacing: 0.5, BidOn: "cvr_lo", PriorCVR: 0.01},
		{ID: "other-tenant", Advertiser: "other", Event: "Purchase", TargetCPA: 10},
	}
}

// world is a model fed known exposures and conversions on the paths of
// the fixtures' imps, with a Service on it.
type world struct {
	m     *model.Model
	rules *Rules
	svc   *Service
	fed   map[model.Key]bool // every node an exposure reached
	now   int64
}

type testBidder struct {
	name    string
	allowed map[string]bool // nil: all
}

func (b testBidder) BidderName() string { return b.name }
func (b testBidder) SendsWins() bool    { return true }
func (b testBidder) MayUse(c string) bool {
	return b.allowed == nil || b.allowed[c]
}

var demoBidder = testBidder{name: "demo-bidder", allowed: map[string]bool{"ctv-purchase": true, "ctv-signup": true}}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	return newWorldOf(tb, model.Config{HalfLife: -1, NoDelayCorrection: true, Structure: model.StructureChain}, testLevels)
}

// crossedConfig is the crossed model of the crossed test world.
func crossedConfig() model.Config {
	return model.Config{HalfLife: -1, NoDelayCorrection: true, Structure: model.StructureCrossed,
		Effects: [][]string{{"publisher"}, {"publisher", "bundle"}, {"genre"}, {"metro"}, {"daypart"}, {"position"}}}
}

// newCrossedWorld is newWorld with the crossed model: its rules' chain is
// the model's dimensions, one feature a level (as the server builds it).
func newCrossedWorld(tb testing.TB) *world {
	tb.Helper()
	var levels [][]string
	for _, d := range crossedConfig().Dims() {
		levels = append(levels, []string{d})
	}
	return newWorldOf(tb, crossedConfig(), levels)
}

func newWorldOf(tb testing.TB, cfg model.Config, levels [][]string) *world {
	tb.Helper()
	rules, err := NewRules(levels, testCampaigns())
	if err != nil {
		tb.Fatal(err)
	}
	w := &world{
		m:     model.New(cfg, testCampaigns()),
		rules: rules,
		fed:   map[model.Key]bool{},
		now:   t0 + 86400,
	}
	w.svc = NewService(Config{}, rules, w.m, nil)
	w.svc.SetClock(func() time.Time { return time.Unix(w.now, 0) })
	return w
}

// feed exposes n impressions of imp for campaign on its path cut to depth
// levels below the campaign, and credits c conversions to them.
func (w *world) feed(tb testing.TB, campaign string, imp *signals.Imp, depth, n, c int) {
	tb.Helper()
	ch := w.rules.chain
	if w.m.Config().Structure == model.StructureCrossed {
		depth = ch.Depth() // a cell has every dimension
	}
	path := ch.Keys(model.RootKey(campaign), imp, nil)[:depth+1]
	labels := append([][]byte{nil}, ch.Labels(imp, nil)...)[:depth+1]
	for range n {
		if !w.m.Expose(t0, path, labels, 0.02) {
			tb.Fatalf("Expose refused %s", campaign)
		}
	}
	for range c {
		if !w.m.Credit(t0, t0+3600, path[depth], 1) {
			tb.Fatal("Credit refused a leaf")
		}
	}
	for _, k := range path {
		w.fed[k] = true
	}
}

// feedFixtures feeds every fixture's first imp for both scorable
// campaigns, cut at different depths, with different rates, and publishes
// the estimates.
func (w *world) feedFixtures(tb testing.TB, all map[string][]byte) {
	tb.Helper()
	x := signals.NewExtractor()
	for i, name := range sortedNames(all) {
		req, err := x.Extract(all[name], w.now)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		imp := &req.Imps[0]
		w.feed(tb, "ctv-purchase", imp, i%5, 1000+1500*i, (i*3)%11)
		w.feed(tb, "ctv-signup", imp, (i+2)%5, 1000+50*i, 5+i)
	}
	w.m.Refresh(w.now)
}

// expect is what scoring imp for campaign must answer, derived from what
// was fed: the deepest fed node of the imp's path, its estimate, the bid
// rule and the campaign's average.
func (w *world) expect(tb testing.TB, campaign string, imp *signals.Imp) Score {
	tb.Helper()
	ch := w.rules.chain
	path := ch.Keys(model.RootKey(campaign), imp, nil)
	labels := ch.Labels(imp, nil)
	level := 0
	for l := range path {
		if w.fed[path[l]] {
			level = l
		}
	}
	est := w.m.Estimates()
	e, ok := est.Get(path[level])
	if !ok {
		tb.Fatalf("%s: no estimate of level %d", campaign, level)
	}
	root, _ := est.Get(path[0])
	seg := campaign
	for _, l := range labels[:level] {
		seg += "/" + string(l)
	}
	c := &w.rules.camps[w.rules.byID[campaign]]
	return Score{
		Campaign: campaign, CVR: e.CVR, CVRLo: e.Lo, CVRHi: e.Hi, VTR: e.VTR, NEff: e.NEff,
		Conversions: e.Conversions, Level: level, Key: path[level], Segment: []byte(seg),
		BidCPM: expectBid(c, e.CVR, e.Lo), UnshadedCPM: expectBid(c, e.CVR, e.Lo), CPAControl: 1, Pacing: c.Pacing, Shading: 1,
		Multiplier: e.CVR / root.CVR,
	}
}

// expectBid is the bid rule on an estimate without a closed loop: on its
// CVR, or its interval's low end for bid_on: cvr_lo.
func expectBid(c *campaign, cvr, lo float64) float64 {
	if c.onLo {
		return c.Bid(lo)
	}
	return c.Bid(cvr)
}

// expectCrossed is what scoring imp for campaign must answer under the
// crossed model: its cell's estimate (model.Estimates.LookupCell), the bid
// rule and the campaign's average.
func (w *world) expectCrossed(tb testing.TB, campaign string, imp *signals.Imp) Score {
	tb.Helper()
	est := w.m.Estimates()
	var cell model.Cell
	cell.Reset(len(est.Dims()))
	seg := campaign
	for d, name := range est.Dims() {
		f, _ := signals.FeatureByName(name)
		cell.SetValue(d, imp.Feature(f))
		seg += "/" + string(imp.Feature(f))
	}
	root := model.RootKey(campaign)
	e, ok := est.LookupCell(root, &cell)
	if !ok {
		tb.Fatalf("%s: no estimate", campaign)
	}
	avg, _ := est.CampaignCVR(campaign)
	c := &w.rules.camps[w.rules.byID[campaign]]
	return Score{
		Campaign: campaign, CVR: e.CVR, CVRLo: e.Lo, CVRHi: e.Hi, VTR: e.VTR, NEff: e.NEff,
		Conversions: e.Conversions, Level: e.Level, Key: cell.Key(root), Segment: []byte(seg),
		BidCPM: expectBid(c, e.CVR, e.Lo), UnshadedCPM: expectBid(c, e.CVR, e.Lo), CPAControl: 1, Pacing: c.Pacing, Shading: 1,
		Multiplier: e.CVR / avg,
	}
}

// call runs a handler of s on a request and returns the status and body
// (the error message for an error).
func call(s *Service, method, uri string, body []byte, b signals.Bidder) (int, []byte) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	var err error
	switch {
	case strings.HasPrefix(uri, "/v1/model/snapshot"):
		err = s.HandleSnapshot(&ctx, b)
	case method == "GET":
		err = s.HandleScoreFeatures(&ctx, b)
	default:
		err = s.HandleScore(&ctx, body, b)
	}
	if err != nil {
		e := apierr.As(err)
		return e.Status, []byte(e.Message)
	}
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}
