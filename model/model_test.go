package model

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const t0 = int64(1_750_000_000)

// testPath returns the keys and labels of a path below campaign.
func testPath(campaign string, values ...string) ([]Key, [][]byte) {
	keys := []Key{RootKey(campaign)}
	labels := [][]byte{nil}
	for _, v := range values {
		keys = append(keys, keys[len(keys)-1].Child([]byte(v)))
		labels = append(labels, []byte(v))
	}
	return keys, labels
}

func testCampaigns() []Campaign {
	return []Campaign{
		{ID: "demo-ctv-purchase", Advertiser: "demo", Event: "Purchase", TargetCPA: 40, PriorCVR: 0.002},
		{ID: "demo-ctv-signup", Advertiser: "demo", Event: "CompleteRegistration", TargetCPA: 5},
	}
}

func TestExposeCreditLookup(t *testing.T) {
	m := New(Config{Structure: StructureChain, HalfLife: -1}, testCampaigns())
	path, labels := testPath("demo-ctv-purchase", "pub-1203", "com.example.tv", "Sports", "501")
	for i := 0; i < 1000; i++ {
		if !m.Expose(t0, path, labels, 0.02) {
			t.Fatal("Expose refused a configured campaign")
		}
	}
	for i := 0; i < 10; i++ {
		if !m.Credit(t0, t0+30*86400, path[4], 1) { // long after: delay is beyond the window
			t.Fatal("Credit refused a known leaf")
		}
	}
	e := m.Refresh(t0 + 30*86400)
	if e.Version() != 2 {
		t.Fatalf("version %d, want 2 (New publishes 1)", e.Version())
	}
	got, ok := e.Lookup(path)
	if !ok || got.Level != 4 || got.Key != path[4] {
		t.Fatalf("Lookup = %+v, %v", got, ok)
	}
	if got.Exposures != 1000 || got.Conversions != 10 {
		t.Fatalf("counts %g exposures %g conversions, want 1000 and 10", got.Exposures, got.Conversions)
	}
	// Every exposure is 30 days old: fully matured, n_eff ≈ exposures (up
	// to the grid's truncation excess, < 1.9%).
	if got.NEff < 1000 || got.NEff > 1000*(1+0.019) {
		t.Fatalf("n_eff %g for 1000 matured exposures", got.NEff)
	}
	if !(got.Lo < got.CVR && got.CVR < got.Hi) || got.CVR < 0.002 || got.CVR > 0.011 {
		t.Fatalf("estimate %+v", got)
	}
	if name := string(e.Name(path[4], nil)); name != "demo-ctv-purchase/pub-1203/com.example.tv/Sports/501" {
		t.Fatalf("Name = %q", name)
	}
	if string(e.Label(path[2])) != "com.example.tv" {
		t.Fatalf("Label = %q", e.Label(path[2]))
	}
	// A sibling never seen falls back to its deepest known ancestor.
	other, _ := testPath("demo-ctv-purchase", "pub-1203", "com.example.tv", "News", "501")
	got, ok = e.Lookup(other)
	if !ok || got.Level != 2 || got.Key != path[2] {
		t.Fatalf("fallback Lookup = level %d key %x, %v", got.Level, got.Key, ok)
	}
	// The other campaign is known (root at its prior) though it has no data.
	cvr, ok := e.CampaignCVR("demo-ctv-signup")
	if !ok || cvr != 0.001 {
		t.Fatalf("CampaignCVR = %g, %v; want the prior 0.001", cvr, ok)
	}
	if _, ok := e.CampaignCVR("nope"); ok {
		t.Fatal("unknown campaign has a CVR")
	}
	var n int
	e.Segments("demo-ctv-purchase", -1, func(Estimate) bool { n++; return true })
	if n != 5 {
		t.Fatalf("Segments visited %d nodes, want 5", n)
	}
	if m.Expose(t0, []Key{RootKey("nope")}, nil, 0) || m.Credit(t0, t0, RootKey("x"), 1) {
		t.Fatal("unknown campaign or leaf accepted")
	}
	if c := m.Counters(); c.UnknownCampaign != 1 || c.UnknownLeaf != 1 || c.BadDelay != 10 {
		t.Fatalf("counters %+v", c)
	}
	st, ok := m.CampaignStats("demo-ctv-purchase")
	if !ok || st.Exposures != 1000 || st.Credited != 10 || math.Abs(st.Spend-20) > 1e-9 || math.Abs(st.CPA-2) > 1e-9 {
		t.Fatalf("CampaignStats = %+v", st)
	}
}

func TestDelayCorrectionYoung(t *testing.T) {
	// 10k exposures an hour old, 1% of which will convert: the conversions
	// seen so far are those with delay ≤ 1 h. n_eff must shrink by about
	// F(1 h) so that c/n_eff is not biased low.
	m := New(Config{Structure: StructureChain, HalfLife: -1, NoDelayCorrection: false}, testCampaigns())
	path, labels := testPath("demo-ctv-purchase", "p")
	for i := 0; i < 10000; i++ {
		m.Expose(t0, path, labels, 0)
	}
	e := m.Refresh(t0 + 3600)
	got, _ := e.Get(path[1])
	cs := m.camps.Load().byID["demo-ctv-purchase"]
	f := cs.l.fit.Load().cdf(&cs.l.g, 3600)
	if math.Abs(got.NEff/10000-f) > 1e-6 {
		t.Fatalf("n_eff/n = %g, want F(1h) = %g", got.NEff/10000, f)
	}
	// Crediting conversions removes their unconverted contribution.
	for i := 0; i < 30; i++ {
		m.Credit(t0, t0+1800, path[1], 1)
	}
	got, _ = m.Refresh(t0 + 3600).Get(path[1])
	want := 30 + (10000-30)*f
	if math.Abs(got.NEff-want) > 1e-6*want {
		t.Fatalf("n_eff = %g, want %g", got.NEff, want)
	}
}

func TestDecay(t *testing.T) {
	m := New(Config{Structure: StructureChain, HalfLife: time.Hour}, testCampaigns())
	path, labels := testPath("demo-ctv-purchase", "p")
	m.Expose(t0, path, labels, 1)
	m.Expose(t0+3600, path, labels, 1) // the first now weighs 1/2
	m.Video(t0+3600, path[1], 2, 1)
	got, _ := m.Refresh(t0 + 7200).Get(path[1])
	if math.Abs(got.Exposures-0.75) > 1e-12 || math.Abs(got.Spend-0.75) > 1e-12 {
		t.Fatalf("decayed exposures %g spend %g, want 0.75", got.Exposures, got.Spend)
	}
	// A conversion credited later decays from its exposure's time.
	m.Credit(t0, t0+7200, path[1], 1)
	got, _ = m.Refresh(t0 + 7200).Get(path[1])
	if math.Abs(got.Conversions-0.25) > 1e-12 {
		t.Fatalf("decayed conversions %g, want 0.25", got.Conversions)
	}
}

func TestConcurrentWrites(t *testing.T) {
	m := New(Config{Structure: StructureChain, HalfLife: -1}, testCampaigns())
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				v := string(rune('a'+(i+g)%7)) + string(rune('a'+i%5))
				if i%3 == 0 { // and a stream of new nodes
					v = fmt.Sprint(g, "-", i)
				}
				path, labels := testPath("demo-ctv-purchase", v, v+v)
				ts := t0 + int64(i)
				m.Expose(ts, path, labels, 0.01)
				if i%10 == 0 {
					m.Credit(ts, ts+60, path[2], 1)
					m.Video(ts, path[2], 1, 1)
				}
				if i%700 == 0 {
					// Tables built while nodes are being created keep their
					// invariants (UnmarshalEstimates checks them all).
					data, err := m.Refresh(ts).MarshalBinary()
					if err == nil {
						_, err = UnmarshalEstimates(data)
					}
					if err != nil {
						t.Error(err)
					}
				}
				if i%50 == 0 { // readers of labels while writers add nodes
					e := m.Estimates()
					x, _ := e.Lookup(path)
					e.Name(x.Key, nil)
				}
			}
		}()
	}
	wg.Wait()
	e := m.Refit(t0 + 3000)
	root, _ := e.Campaign("demo-ctv-purchase")
	if root.Exposures < 7999 || root.Exposures > 8000 {
		t.Fatalf("root exposures %g, want 8000", root.Exposures)
	}
	var sum float64
	e.Segments("demo-ctv-purchase", 1, func(x Estimate) bool { sum += x.Exposures; return true })
	if math.Abs(sum-root.Exposures) > 1e-6 {
		t.Fatalf("children sum %g, root %g", sum, root.Exposures)
	}
	var names []string
	e.Segments("demo-ctv-purchase", 2, func(x Estimate) bool {
		names = append(names, string(e.Name(x.Key, nil)))
		return true
	})
	if len(names) != 35+4*667 || !strings.HasPrefix(names[0], "demo-ctv-purchase/") {
		t.Fatalf("level-2 names %q", names)
	}
}

func TestSetCampaigns(t *testing.T) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	path, labels := testPath("demo-ctv-purchase", "p")
	m.Expose(t0, path, labels, 1)
	cs := testCampaigns()
	cs[0].TargetCPA = 50
	cs = append(cs[:1], Campaign{ID: "new", PriorCVR: 0.01})
	if err := m.SetCampaigns(cs); err != nil {
		t.Fatal(err)
	}
	if m.Expose(t0, []Key{RootKey("demo-ctv-signup")}, nil, 0) {
		t.Fatal("removed campaign still takes writes")
	}
	m.Expose(t0, path, labels, 1)
	if st, _ := m.CampaignStats("demo-ctv-purchase"); st.Exposures != 2 {
		t.Fatalf("totals lost across SetCampaigns: %+v", st)
	}
	if cvr, ok := m.Refresh(t0).CampaignCVR("new"); !ok || cvr != 0.01 {
		t.Fatalf("new campaign CVR %g %v", cvr, ok)
	}
	cs[0].Window = time.Hour
	if err := m.SetCampaigns(cs); err == nil {
		t.Fatal("window change accepted")
	}
	if err := m.SetCampaigns([]Campaign{{ID: "a"}, {ID: "a"}}); err == nil {
		t.Fatal("duplicate id accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(c Config, wantErrs int) {
		t.Helper()
		if errs := c.WithDefaults().Validate(); len(errs) != wantErrs {
			t.Fatalf("Validate(%+v) = %v, want %d errors", c, errs, wantErrs)
		}
	}
	f(Config{}, 0)
	f(Config{Quantiles: [2]float64{0.9, 0.1}}, 1)
	f(Config{Shards: 3}, 1)
	f(Config{MinSiblings: 1, VTRPrior: -1}, 2)
	f(Config{Structure: "tree"}, 1)
	f(Config{Sweeps: MaxSweeps + 1}, 1)
	f(Config{Effects: [][]string{{"genre"}, {}, {"a+b"}, {"x", "x"}, {"genre"}}}, 4)
	many := make([][]string, MaxLevels)
	for i := range many {
		many[i] = []string{fmt.Sprint("f", i)}
	}
	f(Config{Effects: many}, 2) // too many keys, too many features
}

// TestRefreshWhileNodesAreCreated: Refresh runs while writers create new
// segments (children in other shards than their parents); it must never
// see a child without its parent.
func TestRefreshWhileNodesAreCreated(t *testing.T) {
	m := New(Config{Structure: StructureChain}, []Campaign{{ID: "c", Advertiser: "a", Event: "Purchase", TargetCPA: 10}})
	root := RootKey("c")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			v := []byte(fmt.Sprint(i))
			p1 := root.Child(v)
			m.Expose(1000, []Key{root, p1, p1.Child(v), p1.Child(v).Child(v)}, [][]byte{nil, v, v, v}, 0.01)
		}
	}()
	for {
		select {
		case <-done:
			m.Refresh(2000)
			return
		default:
			m.Refresh(2000)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	err := yaml.Unmarshal([]byte(`
half_life: 72h
quantiles: [0.1, 0.9]
refresh_interval: 5s
min_siblings: 30
strength_spread: 0.3
no_delay_correction: true
shards: 16
structure: crossed
effects: [[genre], [publisher, bundle]]
sweeps: 3
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{HalfLife: 72 * time.Hour, Quantiles: [2]float64{0.1, 0.9}, RefreshInterval: 5 * time.Second,
		MinSiblings: 30, StrengthSpread: 0.3, NoDelayCorrection: true, Shards: 16,
		Structure: StructureCrossed, Effects: [][]string{{"genre"}, {"publisher", "bundle"}}, Sweeps: 3}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("decoded %+v", c)
	}
	if errs := c.WithDefaults().Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if d := c.Dims(); !reflect.DeepEqual(d, []string{"genre", "publisher", "bundle"}) {
		t.Fatalf("Dims() = %v", d)
	}
}
