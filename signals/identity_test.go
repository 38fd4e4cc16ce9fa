package signals

import (
	"testing"
)

func TestNormalizeIP(t *testing.T) {
	f := func(in, want string, wantOK bool) {
		t.Helper()
		got, ok := NormalizeIP(nil, []byte(in))
		if ok != wantOK || string(got) != want {
			t.Fatalf("NormalizeIP(%q) = %q, %v; want %q, %v", in, got, ok, want, wantOK)
		}
	}
	f("123.123.123.123", "123.123.123.123", true)
	f("::ffff:10.1.2.3", "10.1.2.3", true)
	f("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", true)
	f("2001:DB8:1:2::ff", "2001:db8:1:2::/64", true)
	f("fe80::1%eth0", "fe80::/64", true)
	f("", "", false)
	f("not-an-ip", "", false)
	f("1.2.3", "", false)
}

func TestNormalizeIFA(t *testing.T) {
	f := func(in, want string, wantOK bool) {
		t.Helper()
		got, ok := NormalizeIFA(nil, []byte(in))
		if ok != wantOK || string(got) != want {
			t.Fatalf("NormalizeIFA(%q) = %q, %v; want %q, %v", in, got, ok, want, wantOK)
		}
	}
	f("7A2016D7-17b0-572f-a7a6-13f89a81d905", "7a2016d7-17b0-572f-a7a6-13f89a81d905", true)
	f(" abc ", "abc", true)
	f("00000000-0000-0000-0000-000000000000", "", false)
	f("", "", false)
}

func TestHasherKeyed(t *testing.T) {
	a, b := NewHasher([]byte("secret-a")), NewHasher([]byte("secret-b"))
	v := []byte("7a2016d7-17b0-572f-a7a6-13f89a81d905")
	if a.ID(IDIFA, v) != a.ID(IDIFA, v) {
		t.Fatal("not deterministic")
	}
	if a.ID(IDIFA, v) == b.ID(IDIFA, v) {
		t.Fatal("key does not depend on the secret")
	}
	if a.ID(IDIFA, v).Key == a.ID(IDUserID, v).Key {
		t.Fatal("key does not depend on the kind")
	}
}

func TestHasherNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	h := NewHasher([]byte("s"))
	v := []byte("10.0.0.1")
	var buf []byte
	h.ID(IDIP, v)
	n := testing.AllocsPerRun(200, func() {
		buf, _ = NormalizeIP(buf[:0], v)
		h.ID(IDIP, buf)
	})
	if n != 0 {
		t.Fatalf("ID+NormalizeIP allocate %v times", n)
	}
}

func TestHouseholdEIDSourcesAreHouseholdIDs(t *testing.T) {
	h := NewHasher([]byte("s"), "hhgraph.example")
	r := &Request{EIDs: []EID{{Source: []byte("hhgraph.example"), IDs: [][]byte{[]byte("hh-42")}}, {Source: []byte("uidapi.com"), IDs: [][]byte{[]byte("u1")}}}}
	ids := r.IDs(h, nil)
	if len(ids) != 2 || ids[0] != h.ID(IDHousehold, []byte("hh-42")) || ids[1] != h.ID(IDEID, []byte("uidapi.com/u1")) {
		t.Fatalf("ids %v", ids)
	}
}

// TestNormalizeIPRefusesWithoutAllocating: what cannot be an IPv4 address
// is refused before netip (whose error allocates); what can is parsed.
func TestNormalizeIPRefusesWithoutAllocating(t *testing.T) {
	f := func(in string, ok bool) {
		t.Helper()
		if _, got := NormalizeIP(nil, []byte(in)); got != ok {
			t.Errorf("NormalizeIP(%q) ok = %v, want %v", in, got, ok)
		}
	}
	f("111.222.333.444", false)
	f("1.2.3", false)
	f("1.2.3.4.5", false)
	f("1..3.4", false)
	f("1.2.3.4x", false)
	f("255.255.255.255", true)
	f("0.0.0.0", true)
	f("::ffff:1.2.3.4", true)
	if raceEnabled {
		return
	}
	buf, bad := make([]byte, 0, 64), []byte("111.222.333.444")
	if n := testing.AllocsPerRun(100, func() { NormalizeIP(buf[:0], bad) }); n != 0 {
		t.Errorf("an impossible IPv4 allocates %v times", n)
	}
}
