package market

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultScenarioFileMatchesCode(t *testing.T) {
	got, err := LoadScenario("../../configs/scenarios/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultScenario().WithDefaults()
	if !got.Start.Equal(want.Start) {
		t.Fatalf("start: got %v, want %v", got.Start, want.Start)
	}
	got.Start = want.Start
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/scenarios/default.yaml differs from DefaultScenario():\n got %+v\nwant %+v", got, want)
	}
}

func TestEveryScenarioFileLoads(t *testing.T) {
	files, err := filepath.Glob("../../configs/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); sc.Name != want {
			t.Errorf("%s: name %q, want %q", f, sc.Name, want)
		}
		if raceEnabled { // building 50 000 households is slow under the race detector
			sc.Reporting.Households = min(sc.Reporting.Households, 5000)
		}
		if _, err := NewMarket(sc, 1); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseScenarioPartial(t *testing.T) {
	sc, err := ParseScenario([]byte("name: x\ntruth:\n  vtr_cvr_correlation: 0\n  shared_across_campaigns: 0\nmarket:\n  auction: first\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultScenario()
	if sc.Name != "x" || sc.Truth.VTRCVRCorrelation != 0 || sc.Truth.SharedAcrossCampaigns != 0 || sc.Market.Auction != FirstPrice {
		t.Fatalf("written fields not applied: %+v", sc)
	}
	if sc.Truth.BaseVTR != def.Truth.BaseVTR || sc.Inventory.Publishers != def.Inventory.Publishers || len(sc.Campaigns) != 2 {
		t.Fatalf("absent fields lost their defaults: %+v", sc)
	}
	if _, err := ParseScenario(nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestParseScenarioErrors(t *testing.T) {
	f := func(yaml, want string) {
		t.Helper()
		_, err := ParseScenario([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got error %v, want it to contain %q", yaml, err, want)
		}
	}
	f("nmae: x", "field nmae not found")
	f("inventory: {publishers: 0}", "inventory.publishers: must be within 1..1048576, got 0")
	f("inventory: {hour_weights: [1, 2]}", "inventory.hour_weights: must have 24 weights, got 2")
	f("inventory: {pod_size_weights: [0, 0]}", "inventory.pod_size_weights: weights must not all be zero")
	f("inventory: {devices: [{name: x, share: 1, devicetype: 4, ifa_type: rida}]}", "inventory.devices[0].devicetype: must be 3 (connected TV) or 7 (set-top box), got 4")
	f("truth: {vtr_cvr_correlation: 1.5}", "truth.vtr_cvr_correlation: must be within -1..1, got 1.5")
	f("truth: {base_vtr: 1}", "truth.base_vtr: must be within (0, 1), got 1")
	f("truth: {cvr_sigma: {genre: 0.3}}", "truth.cvr_sigma and truth.vtr_sigma became the lists truth.cvr_effects")
	f("reporting: {identifiers: {ip: 0.5}}", "the old identifiers.ifa is reporting.app_share")
	f("truth: {cvr_effects: [{key: [genre], sigma: -1}]}", "truth.cvr_effects[0].sigma: must be within 0..3, got -1")
	f("truth: {cvr_effects: [{key: [], sigma: 1}]}", "truth.cvr_effects[0].key: must name at least one feature")
	f("truth: {cvr_effects: [{key: [genre, channel], sigma: 1}]}", `truth.cvr_effects[0].key: unknown feature "channel" (known: publisher, bundle, genre, metro, hour, daypart, device, devicetype, live, slot, pod_size)`)
	f("truth: {vtr_effects: [{key: [metro, metro], sigma: 1}]}", `truth.vtr_effects[0].key: feature "metro" twice`)
	f("truth: {cvr_effects: [{key: [genre, metro], sigma: 1}, {key: [metro, genre], sigma: 1}]}", "truth.cvr_effects[1].key: same key as truth.cvr_effects[0]")
	f("truth: {cvr_effects: [{key: [publisher, bundle], sigma: 1}, {key: [bundle], sigma: 1}]}", "truth.cvr_effects[1].key: same key as truth.cvr_effects[0]")
	f("truth: {cvr_effects: [{key: [slot], sigma: 1, shared: 1.5}]}", "truth.cvr_effects[0].shared: must be within 0..1, got 1.5")
	f("truth: {organic_effects: [{key: [daypart], sigma: 1}]}", `truth.organic_effects[0].key: feature "daypart" cannot shape this rate (allowed: metro)`)
	f("reporting: {identifiers: {website: {ifa: 0.2}}}", "reporting.identifiers.website.ifa: must be 0 (a web conversion knows no TV ifa), got 0.2")
	f("reporting: {identifiers: {app: {email: 1.2}}}", "reporting.identifiers.app.email: must be within 0..1, got 1.2")
	f("reporting: {app_share: -0.1}", "reporting.app_share: must be within 0..1, got -0.1")
	f("reporting: {ip: {churn_per_day: 2}}", "reporting.ip.churn_per_day: must be within 0..1, got 2")
	f("reporting: {ip: {shared_share: 0.1, households_per_shared_ip: 1}}", "reporting.ip.households_per_shared_ip: must be within 2..1000 when shared_share > 0, got 1")
	f("inventory: {devices: [{name: x, share: 1, devicetype: 3, ifa_type: rida, lmt: 2}]}", "inventory.devices[0].lmt: must be within 0..1, got 2")
	f("truth: {delay: {components: [{weight: 1, mean: 0s}]}}", "truth.delay.components[0].mean: must be > 0, got 0s")
	f("reporting: {pixel_share: 2}", "reporting.pixel_share: must be within 0..1, got 2")
	f("reporting: {batch_max: 1001}", "reporting.batch_max: must be within 1..1000, got 1001")
	f("reporting: {privacy: {gpp_present: 0.01, gpp_opt_out: 0.02}}", "reporting.privacy.gpp_opt_out: must be ≤ gpp_present (0.01), got 0.02")
	f("market: {auction: vickrey}", `market.auction: must be "first" or "second", got "vickrey"`)
	f("campaigns: []", "campaigns: must not be empty")
	f("campaigns: [{id: a, event: Purchase, base_cvr: 0.001, target_cpa: 1}, {id: a, event: Purchase, base_cvr: 0.001, target_cpa: 1}]", `campaigns[1].id: duplicate id "a"`)
	f("campaigns: [{id: 'a,b', event: Purchase, base_cvr: 0.001, target_cpa: 1}]", "campaigns[0].id: must be printable ASCII")
	f("campaigns: [{id: a, event: Purchase, base_cvr: 0, target_cpa: 1}]", "campaigns[0].base_cvr: must be within (0, 0.5), got 0")
}

func TestLoadScenarioMissingFile(t *testing.T) {
	_, err := LoadScenario(filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob("../../configs/scenarios/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("inventory: {publishers: 3, genres: 1, metros: 1}\nreporting: {households: 2}\n"))
	f.Add([]byte("truth: {delay: {components: [{weight: 1, mean: 1s}], max: 2s}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data)
		if err != nil {
			return
		}
		if errs := sc.Validate(); len(errs) > 0 {
			t.Fatalf("ParseScenario accepted an invalid scenario: %v", errs)
		}
		// A valid scenario must build and generate; keep the fuzzer's
		// markets small.
		inv, rp := sc.Inventory, sc.Reporting
		if inv.Publishers*inv.BundlesPerPublisher > 5000 || rp.Households > 5000 {
			return
		}
		sc.Inventory.OpportunitiesPerDay = min(inv.OpportunitiesPerDay, 50)
		m, err := NewMarket(sc, 1)
		if err != nil {
			t.Fatalf("NewMarket of a valid scenario: %v", err)
		}
		it := m.Day(0)
		rep := m.NewReporter()
		for _, c := range m.Organic(0) {
			rep.Add(c)
		}
		for o := it.Next(); o != nil; o = it.Next() {
			m.AppendBidRequest(nil, o)
			out := m.Outcome(o, 0, 0)
			out.Converted = true
			rep.Add(m.Conversion(o, 0, 0, out))
		}
		rep.Flush(m.DayStart(30))
	})
}
