package signals

import (
	"fmt"
	"math"
	"testing"
)

// hhRequest builds a request carrying the given identities (empty: left
// out); hhid goes into user.eids of the household graph source.
func hhRequest(ifa, ip, hhid string) *Request {
	r := &Request{Imps: []Imp{{}}}
	if ifa != "" {
		r.IFA = []byte(ifa)
	}
	if ip != "" {
		r.IP = []byte(ip)
	}
	if hhid != "" {
		r.EIDs = []EID{{Source: []byte("graph.example"), IDs: [][]byte{[]byte(hhid)}}}
	}
	return r
}

func newTestHouseholds(entries int) *Households {
	return NewHouseholds([]byte("holdout-key"), []string{"graph.example"}, 0, entries)
}

func mustKey(t *testing.T, h *Households, r *Request) uint64 {
	t.Helper()
	k, ok := h.Key(r)
	if !ok || k == 0 {
		t.Fatalf("no household for %+v", r)
	}
	return k
}

// TestHouseholdKeysStick follows one household through the cases the
// cache is for: its IP changes, a second TV appears, the household id
// comes only sometimes, and another household shares its IP.
func TestHouseholdKeysStick(t *testing.T) {
	h := newTestHouseholds(0)
	const tv1, tv2 = "6d3a1f00-1111-4a4a-8b8b-000000000001", "6d3a1f00-1111-4a4a-8b8b-000000000002"
	a := mustKey(t, h, hhRequest(tv1, "73.1.2.3", ""))
	// Precedence for a household seen the first time: the IP.
	if want := h.hasher.ID(IDIP, []byte("73.1.2.3")).Key; a != want {
		t.Fatalf("first key %x, want the IP's %x", a, want)
	}
	if k := mustKey(t, h, hhRequest(tv1, "98.7.6.5", "")); k != a {
		t.Errorf("the IP changed: key %x, want %x (the IFA remembers it)", k, a)
	}
	if k := mustKey(t, h, hhRequest(tv2, "98.7.6.5", "")); k != a {
		t.Errorf("second TV on the new IP: %x, want %x", k, a)
	}
	if k := mustKey(t, h, hhRequest(tv2, "98.7.6.5", "hh-42")); k != a {
		t.Errorf("the household id came: %x, want %x (its other identities were known)", k, a)
	}
	if k := mustKey(t, h, hhRequest("", "", "hh-42")); k != a {
		t.Errorf("the household id alone: %x, want %x", k, a)
	}
	// Another household behind the same (shared) IP, with its own IFA
	// seen first elsewhere: it keeps its own key; the IP is not re-pointed.
	b := mustKey(t, h, hhRequest("6d3a1f00-2222-4a4a-8b8b-000000000003", "10.9.9.9", ""))
	if k := mustKey(t, h, hhRequest("6d3a1f00-2222-4a4a-8b8b-000000000003", "98.7.6.5", "")); k != b {
		t.Errorf("a second household on a shared IP: %x, want its own %x", k, b)
	}
	if k := mustKey(t, h, hhRequest(tv1, "98.7.6.5", "")); k != a {
		t.Errorf("the first household after the disagreement: %x, want %x", k, a)
	}
	// A household id never seen, alone: keyed by it.
	if k := mustKey(t, h, hhRequest("", "", "hh-new")); k != h.hasher.ID(IDHousehold, []byte("hh-new")).Key {
		t.Errorf("a new household id: %x", k)
	}
	// No identity: no household.
	if _, ok := h.Key(hhRequest("", "", "")); ok {
		t.Error("a request without identity has a household")
	}
	// A request that fails the privacy gates gets its household's key
	// (the household stays in its arm), but leaves nothing behind.
	r := hhRequest(tv1, "98.7.6.5", "")
	r.SetPrivacy(Privacy{COPPA: true, GDPR: -1})
	if k, ok := h.Key(r); !ok || k != a {
		t.Errorf("a COPPA request of the household: %x, %v, want %x", k, ok, a)
	}
	g := hhRequest("6d3a1f00-4444-4a4a-8b8b-000000000005", "66.6.6.6", "")
	g.SetPrivacy(Privacy{COPPA: true, GDPR: -1})
	k, ok := h.Key(g)
	if !ok || k != h.hasher.ID(IDIP, []byte("66.6.6.6")).Key {
		t.Errorf("a gated request of a new household: %x, %v", k, ok)
	}
	if k2 := mustKey(t, h, hhRequest("6d3a1f00-4444-4a4a-8b8b-000000000005", "77.7.7.7", "")); k2 == k {
		t.Error("a gated request's identities were remembered")
	}
	// A gated request of a household never remembered, whose household
	// id comes only sometimes: keyed by its IP first, with or without
	// the household id, so it stays in one arm.
	g1 := hhRequest("", "66.6.6.7", "hh-gated")
	g1.SetPrivacy(Privacy{COPPA: true, GDPR: -1})
	g2 := hhRequest("", "66.6.6.7", "")
	g2.SetPrivacy(Privacy{COPPA: true, GDPR: -1})
	k1, _ := h.Key(g1)
	if k2, _ := h.Key(g2); k1 != k2 || k1 != h.hasher.ID(IDIP, []byte("66.6.6.7")).Key {
		t.Errorf("a gated household with and without its household id: %x, %x", k1, k2)
	}
	// A limited device's IFA is not used.
	lmt := hhRequest("6d3a1f00-3333-4a4a-8b8b-000000000004", "55.5.5.5", "")
	lmt.LMT = true
	if k := mustKey(t, h, lmt); k != h.hasher.ID(IDIP, []byte("55.5.5.5")).Key {
		t.Errorf("lmt: %x", k)
	}
}

// TestHouseholdCacheEvictsLeastRecent checks the bound: with a small
// cache, a household seen again keeps its key while households not seen
// since are forgotten.
func TestHouseholdCacheEvictsLeastRecent(t *testing.T) {
	h := newTestHouseholds(64 * hhShards) // 32 a shard and generation
	const keep = "6d3a1f00-aaaa-4a4a-8b8b-00000000000f"
	k0 := mustKey(t, h, hhRequest(keep, "1.1.1.1", ""))
	for i := range 5000 {
		mustKey(t, h, hhRequest(fmt.Sprintf("6d3a1f00-bbbb-4a4a-8b8b-%012d", i), fmt.Sprintf("2.2.%d.%d", i/250, i%250), ""))
		if i%50 == 0 { // seen often: stays
			if k := mustKey(t, h, hhRequest(keep, "3.3.3.3", "")); k != k0 {
				t.Fatalf("a household seen often lost its key after %d others", i)
			}
		}
	}
	n := 0
	for i := range h.cache.shards {
		n += len(h.cache.shards[i].cur) + len(h.cache.shards[i].prev)
	}
	if n > 64*hhShards {
		t.Errorf("cache holds %d identities, bound %d", n, 64*hhShards)
	}
}

// TestHeldShareAndIndependence checks the assignment: the held-out share
// of many households is the campaign's share, a household's arm is the
// same on every call, and two campaigns' arms are independent.
func TestHeldShareAndIndependence(t *testing.T) {
	h := newTestHouseholds(0)
	sa, sb := h.CampaignSalt("a"), h.CampaignSalt("b")
	if sa == sb || sa != h.CampaignSalt("a") {
		t.Fatal("campaign salts are not distinct and stable")
	}
	const n = 200_000
	var inA, inB, both int
	for i := range n {
		hh := h.hasher.ID(IDIP, fmt.Appendf(nil, "10.%d.%d.%d", i>>16, i>>8&255, i&255)).Key
		a, b := Held(hh, sa, 0.05), Held(hh, sb, 0.05)
		if a != Held(hh, sa, 0.05) {
			t.Fatal("arm not stable")
		}
		if a {
			inA++
		}
		if b {
			inB++
		}
		if a && b {
			both++
		}
	}
	for _, got := range []int{inA, inB} {
		if math.Abs(float64(got)/n-0.05) > 0.003 {
			t.Errorf("held-out share %.4f, want 0.05", float64(got)/n)
		}
	}
	if math.Abs(float64(both)/n-0.0025) > 0.0007 {
		t.Errorf("held out of both: %.4f, want 0.0025 (independent)", float64(both)/n)
	}
	if Held(1, sa, 0) {
		t.Error("share 0 holds out")
	}
}

func TestHouseholdKeyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	h := newTestHouseholds(0)
	r := hhRequest("6d3a1f00-1111-4a4a-8b8b-000000000001", "73.1.2.3", "hh-1")
	r.IPv6 = []byte("2001:db8:1:2::17")
	mustKey(t, h, r)
	if n := testing.AllocsPerRun(100, func() { h.Key(r) }); n != 0 {
		t.Errorf("Key allocates %v times", n)
	}
	g := hhRequest("6d3a1f00-9999-4a4a-8b8b-000000000001", "73.9.9.9", "")
	g.SetPrivacy(Privacy{COPPA: true, GDPR: -1}) // never remembered: hashed on every call
	if n := testing.AllocsPerRun(100, func() { h.Key(g) }); n != 0 {
		t.Errorf("Key of a gated request allocates %v times", n)
	}
}
