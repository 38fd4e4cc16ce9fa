package market

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// truthDigest hashes the truth (CVR, VTR of every campaign in the first
// slot) and the competing prices of the first n opportunities of day d.
func truthDigest(m *Market, d, n int) [32]byte {
	h := sha256.New()
	it := m.Day(d)
	var b [8]byte
	put := func(x float64) {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
		h.Write(b[:])
	}
	for range n {
		o := it.Next()
		for c := range m.campaigns() {
			put(o.Truth(0, c).CVR)
			put(o.Truth(0, c).VTR)
		}
		for s := range o.Slots {
			put(o.Slots[s].CompetingCPM)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// configs/scenarios/nested.yaml is the default market of before issue 12,
// byte for byte: the digests below were taken from the code of that time
// (commit d934338, DefaultScenario(), seed 7) over the same output. The
// tolerance is zero: every bid request, exposure, URL, conversion batch,
// truth and competing price is the same, so `cpafeed simulate` gives the
// same figures.
func TestNestedReproducesOldDefault(t *testing.T) {
	sc, err := LoadScenario("../../configs/scenarios/nested.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := testMarket(t, sc, 7)
	if got := fmt.Sprintf("%x", marketDigest(t, m, 2, 400)); got != "d4c99b44175d578bfe227b0f09d605513127e52b86bf1b7388ac49b1eacd63fc" {
		t.Errorf("requests, exposures, URLs and batches differ from the old default: digest %s", got)
	}
	if got := fmt.Sprintf("%x", truthDigest(m, 3, 20000)); got != "3c5ba65689b36b4c675ac00e926de5a23f67754520171b02635f1de5139bb9be" {
		t.Errorf("truth or competing prices differ from the old default: digest %s", got)
	}
}

// spreadScenario is a small market with a single CVR effect and no VTR
// effect.
func spreadScenario(e Effect) Scenario {
	sc := DefaultScenario()
	sc.Inventory.Publishers = 40
	sc.Inventory.BundlesPerPublisher = 3
	sc.Inventory.Genres = 8
	sc.Inventory.Metros = 12
	sc.Reporting.Households = 300
	sc.Truth.CVREffects = []Effect{e}
	sc.Truth.VTREffects = nil
	sc.Truth.OrganicEffects = nil
	return sc
}

// randomOpportunity gives o random features (any combination, whatever
// the traffic) and a pod of 1..4 slots, and fills its truth.
func randomOpportunity(m *Market, o *Opportunity, u uint64) {
	r := splitmix{s: u}
	pick := func(n int) int { return int(r.next() % uint64(n)) }
	o.Publisher = int32(pick(len(m.pubs)))
	o.Bundle = m.pubs[o.Publisher].firstBundle + int32(pick(m.sc.Inventory.BundlesPerPublisher))
	o.Genre = int32(pick(len(m.genres)))
	o.Metro = int32(pick(len(m.metros)))
	o.Hour = pick(24)
	o.Device = pick(len(m.sc.Inventory.Devices))
	o.Live = pick(2) == 1
	o.Slots = make([]Slot, 1+pick(4))
	m.truth(o)
}

// keyOf names the values of o's features in key (slot s for the slot).
func keyOf(m *Market, o *Opportunity, key []string, s int) string {
	var b strings.Builder
	for _, f := range key {
		var v int
		switch f {
		case "publisher":
			v = int(o.Publisher)
		case "bundle":
			v = int(o.Bundle)
		case "genre":
			v = int(o.Genre)
		case "metro":
			v = int(o.Metro)
		case "hour":
			v = o.Hour
		case "daypart":
			v = int(hourDaypart[o.Hour])
		case "device":
			v = o.Device
		case "devicetype":
			v = m.sc.Inventory.Devices[o.Device].DeviceType
		case "live":
			if o.Live {
				v = 1
			}
		case "slot":
			v = int(slotPosition(s, len(o.Slots)))
		case "pod_size":
			v = len(o.Slots)
		}
		fmt.Fprintf(&b, "%s=%d,", f, v)
	}
	return b.String()
}

// Every CVR effect of the default scenario, alone in a market: its factor is
// a function of its key only (the same on every app, hour, device, ... not
// in the key: the truth is crossed), its log spread across the key's
// values matches its sigma, it keeps the mean, and the part shared by the
// two campaigns is its shared share. Tolerances: sd within 10 % of sigma
// and mean factor within 0.08 of 1, over ≥ 600 values of the key (pooled
// over seeds for small keys); the correlation of the campaigns' draws
// within 0.15 of shared.
func TestEffectSpread(t *testing.T) {
	effects := DefaultScenario().Truth.CVREffects
	effects = append(effects, Effect{Key: []string{"hour"}, Sigma: 0.25}, Effect{Key: []string{"devicetype", "pod_size"}, Sigma: 0.5, Shared: opt(0)})
	if raceEnabled { // a few under the race detector, every one without
		effects = []Effect{effects[0], effects[6], effects[9]}
	}
	for _, e := range effects {
		t.Run(strings.Join(e.Key, "+"), func(t *testing.T) {
			sc := spreadScenario(e)
			shared := sc.Truth.SharedAcrossCampaigns
			if e.Shared != nil {
				shared = *e.Shared
			}
			var x0, x1 []float64 // per distinct key value: ln(CVR/base) of campaign 0 and 1
			for seed := uint64(1); len(x0) < 600 && seed < 400; seed++ {
				m := testMarket(t, sc, seed)
				card := m.compileEffects([]Effect{e}, 0, false, 0, 0)[0].card
				seen := map[string][2]float64{}
				var o Opportunity
				for i := range 40 * int(card) {
					randomOpportunity(m, &o, seed<<32|uint64(i))
					for s := range o.Slots {
						k := keyOf(m, &o, e.Key, s)
						v := [2]float64{math.Log(o.Truth(s, 0).CVR / sc.Campaigns[0].BaseCVR), math.Log(o.Truth(s, 1).CVR / sc.Campaigns[1].BaseCVR)}
						if old, ok := seen[k]; ok {
							if old != v {
								t.Fatalf("seed %d, %s: two values %v and %v: the effect depends on more than its key", seed, k, old, v)
							}
							continue
						}
						seen[k] = v
						x0, x1 = append(x0, v[0]), append(x1, v[1])
					}
				}
				if uint64(len(seen)) > card {
					t.Fatalf("%d distinct values of a key with %d", len(seen), card)
				}
			}
			if len(x0) < 600 {
				t.Fatalf("only %d values drawn", len(x0))
			}
			n := float64(len(x0))
			var v0, mean, z01 float64
			for i := range x0 {
				z0, z1 := (x0[i]+e.Sigma*e.Sigma/2)/e.Sigma, (x1[i]+e.Sigma*e.Sigma/2)/e.Sigma
				v0 += z0 * z0
				z01 += z0 * z1
				mean += math.Exp(x0[i])
			}
			if sd := e.Sigma * math.Sqrt(v0/n); math.Abs(sd-e.Sigma) > 0.1*e.Sigma {
				t.Errorf("sd of ln CVR across %d values %.4f, want %.4f ± 10 %%", len(x0), sd, e.Sigma)
			}
			if mean /= n; math.Abs(mean-1) > 0.08 {
				t.Errorf("mean factor %.4f, want 1 ± 0.08", mean)
			}
			if corr := z01 / n; math.Abs(corr-shared) > 0.15 {
				t.Errorf("correlation of the campaigns' draws %.3f, want shared %.2f ± 0.15", corr, shared)
			}
		})
	}
}

// A VTR effect is drawn with its CVR twin (same key) at the scenario's
// correlation, and moves the logit of the VTR by its sigma; a VTR effect
// without a twin is independent of the CVR.
func TestVTREffects(t *testing.T) {
	sc := spreadScenario(Effect{Key: []string{"publisher", "bundle"}, Sigma: 0.4})
	sc.Inventory.Publishers = 300
	sc.Truth.VTRCVRCorrelation = 0.6
	sc.Truth.StartRate = 1
	sc.Truth.VTREffects = []Effect{{Key: []string{"metro"}, Sigma: 0}, {Key: []string{"bundle", "publisher"}, Sigma: 0.5}}
	m := testMarket(t, sc, 3)
	logitBase := math.Log(sc.Truth.BaseVTR / (1 - sc.Truth.BaseVTR))
	var sz, sw, szz, sww, szw, n float64
	var o Opportunity
	o.Slots = make([]Slot, 1)
	for b := range m.bundles {
		o.Bundle, o.Publisher = int32(b), m.bundles[b].pub
		m.truth(&o)
		tr := o.Truth(0, 0)
		z := (math.Log(tr.CVR/sc.Campaigns[0].BaseCVR) + 0.08) / 0.4
		w := (math.Log(tr.VTR/(1-tr.VTR)) - logitBase) / 0.5
		sz, sw, szz, sww, szw, n = sz+z, sw+w, szz+z*z, sww+w*w, szw+z*w, n+1
	}
	corr := (szw/n - sz/n*sw/n) / math.Sqrt((szz/n-sz/n*sz/n)*(sww/n-sw/n*sw/n))
	if math.Abs(corr-0.6) > 0.1 {
		t.Errorf("correlation of the twins' draws over %v bundles %.3f, want 0.6 ± 0.1", n, corr)
	}
	if sd := math.Sqrt(sww/n - sw/n*sw/n); math.Abs(sd-1) > 0.1 {
		t.Errorf("sd of the VTR draw %.3f, want 1 ± 0.1", sd)
	}
	if m.vtr[1].twin != 0 || m.vtr[0].twin != -1 {
		t.Errorf("twins %d %d", m.vtr[0].twin, m.vtr[1].twin)
	}
}

// Organic conversions follow their metro effects: a metro's count is its
// households × its factor × the base rate. Checked over 30 days with a large
// sigma: each metro's count within 4 standard deviations of its
// expectation, and the metros' factors spread as the sigma says (± 25 %
// over 60 metros).
func TestOrganicEffects(t *testing.T) {
	sc := DefaultScenario()
	sc.Reporting.Households = 20000
	sc.Truth.OrganicPerHouseholdDay = 0.002
	sc.Truth.OrganicEffects = []Effect{{Key: []string{"metro"}, Sigma: 0.8, Shared: opt(0)}}
	m := testMarket(t, sc, 11)
	const days = 30
	count := make([]float64, len(m.metros))
	for d := range days {
		for _, c := range m.Organic(d) {
			if c.Campaign == 0 {
				count[m.households[c.Household].metro]++
			}
		}
	}
	var ls, lss, k float64
	for mt, hs := range m.hhByMetro {
		if len(hs) < 50 {
			continue
		}
		var fv [numFeatures]uint64
		fv[featMetro] = uint64(mt)
		e := &m.org[0]
		f := math.Exp(e.sigma*m.normal(e, false, e.node(&fv), 0) + e.shift)
		want := sc.Truth.OrganicPerHouseholdDay * days * float64(len(hs)) * f
		if math.Abs(count[mt]-want) > 4*math.Sqrt(want)+1 {
			t.Errorf("metro %d: %v organic conversions, want about %.0f", mt, count[mt], want)
		}
		l := math.Log(f)
		ls, lss, k = ls+l, lss+l*l, k+1
	}
	if sd := math.Sqrt(lss/k - ls/k*ls/k); math.Abs(sd-0.8) > 0.2 {
		t.Errorf("sd of the metros' ln factor %.3f, want 0.8 ± 0.2", sd)
	}
	// Only household features can shape the organic rate.
	if _, err := ParseScenario([]byte("truth: {organic_effects: [{key: [genre], sigma: 0.3}]}")); err == nil || !strings.Contains(err.Error(), `truth.organic_effects[0].key: feature "genre" cannot shape this rate`) {
		t.Errorf("organic genre effect: %v", err)
	}
}

// A share of households sits behind shared IPs, in groups of their metro;
// a line's IP changes on a day with the churn probability, and conversions
// carry the IP of their event day.
func TestHouseholdIPs(t *testing.T) {
	sc := testScenario()
	sc.Reporting.IP = IPSpec{ChurnPerDay: 0.05, SharedShare: 0.2, HouseholdsPerSharedIP: 6}
	m := testMarket(t, sc, 5)
	byLine := map[int32][]int32{}
	for h := range m.households {
		byLine[m.households[h].line] = append(byLine[m.households[h].line], int32(h))
	}
	shared := 0
	for line, hs := range byLine {
		if line < int32(len(m.households)) {
			if len(hs) != 1 || hs[0] != line {
				t.Fatalf("own line %d of households %v", line, hs)
			}
			continue
		}
		shared += len(hs)
		if len(hs) > 6 {
			t.Fatalf("shared line %d of %d households", line, len(hs))
		}
		for _, h := range hs {
			if m.households[h].metro != m.households[hs[0]].metro || m.IP(h, 3) != m.IP(hs[0], 3) {
				t.Fatalf("shared line %d across metros or IPs", line)
			}
		}
	}
	if got := float64(shared) / float64(len(m.households)); math.Abs(got-0.2) > 0.02 {
		t.Errorf("households on a shared IP %.3f, want 0.2 ± 0.02", got)
	}
	// Churn: the share of lines whose IP changes from one day to the next.
	changed, lines := 0, 0
	for h := range m.households {
		if m.households[h].line != int32(h) {
			continue
		}
		for d := range 10 {
			lines++
			if m.IP(int32(h), d) != m.IP(int32(h), d+1) {
				changed++
			}
		}
	}
	if got := float64(changed) / float64(lines); math.Abs(got-0.05) > 0.006 {
		t.Errorf("IP changes per line and day %.4f, want 0.05 ± 0.006", got)
	}
	// The bid request shows the day's IP, the conversion its event day's.
	it := m.Day(4)
	o := it.Next()
	if body := string(m.AppendBidRequest(nil, o)); !strings.Contains(body, `"ip":"`+m.IP(o.Household, 4)+`"`) {
		t.Errorf("bid request of day 4 without the household's IP of day 4 %s", m.IP(o.Household, 4))
	}
	out := m.Outcome(o, 0, 0)
	out.Converted, out.Delay = true, 3*86400*1e9
	cv := m.Conversion(o, 0, 0, out)
	cv.IDs |= IDSetIP
	if body := string(m.AppendCAPIBatch(nil, []Conversion{cv})); !strings.Contains(body, `"client_ip_address":"`+m.IP(o.Household, 7)+`"`) {
		t.Errorf("conversion of day 7 without the household's IP of day 7: %s", body)
	}
}

// A device's own lmt share overrides the privacy share.
func TestDeviceLMT(t *testing.T) {
	sc := testScenario()
	m := testMarket(t, sc, 2)
	apple := slices.IndexFunc(sc.Inventory.Devices, func(d DeviceSpec) bool { return d.Name == "apple_tv" })
	var n, lmt, on, lmtOthers float64
	for _, tv := range m.tvs {
		if int(tv.dev) == apple {
			n++
			if tv.lmt {
				lmt++
			}
		} else {
			on++
			if tv.lmt {
				lmtOthers++
			}
		}
	}
	if got, want := lmt/n, *sc.Inventory.Devices[apple].LMT; math.Abs(got-want) > 4*math.Sqrt(want*(1-want)/n) {
		t.Errorf("apple_tv lmt share %.3f of %v TVs, want %.3f", got, n, want)
	}
	if got, want := lmtOthers/on, sc.Reporting.Privacy.LMT; math.Abs(got-want) > 4*math.Sqrt(want*(1-want)/on) {
		t.Errorf("other TVs' lmt share %.3f, want %.3f", got, want)
	}
}
