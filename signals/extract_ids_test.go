package signals

import (
	"testing"
)

func TestRequestIDs(t *testing.T) {
	all := fixtures(t)
	h := NewHasher([]byte("test-secret"))
	x := NewExtractor()
	norm := func(kind IDKind, v string) ID {
		switch kind {
		case IDIP:
			b, ok := NormalizeIP(nil, []byte(v))
			if !ok {
				t.Fatalf("bad IP %q", v)
			}
			return h.ID(kind, b)
		case IDIFA:
			b, _ := NormalizeIFA(nil, []byte(v))
			return h.ID(kind, b)
		}
		return h.ID(kind, []byte(v))
	}
	f := func(fixture string, want ...ID) {
		t.Helper()
		r, err := x.Extract(all[fixture], testNow)
		if err != nil {
			t.Fatal(err)
		}
		got := r.IDs(h, nil)
		if len(got) != len(want) {
			t.Fatalf("%s: %d ids %v; want %d %v", fixture, len(got), got, len(want), want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: ids[%d] = %v; want %v", fixture, i, got[i], want[i])
			}
		}
	}
	f("roku-ctv-pod-gpp",
		norm(IDIFA, "5a6e2c1b-9d3f-5e7a-8b4c-0f1d2e3a4b5c"),
		norm(IDIP, "73.92.14.201"),
		norm(IDEID, "uidapi.com/A4AAAAAAAAvDkUwQ8yl5XAGhM1uEXbZrHsxDkAFjl4sbuI3ZV8Q="),
		norm(IDEID, "liveramp.com/XY1000bIVBVah9ium-sZ3ykhPiXQbEcUpn4GjCtxrrw2BRDGM"),
		norm(IDUserID, "roku-user-7781"))
	// IPv6 only: the /64 is the household.
	f("lg-webos-ctv-ipv6-gpp-optout",
		norm(IDIFA, "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"),
		norm(IDIP, "2601:646:8f00:3a10::1"),
		norm(IDEID, "uidapi.com/A4AAAAAAAA7zTm3b2sOq9Ygm8PQyY3ZL6R2wSgRm5o3xkQ="),
		norm(IDUserID, "lg-u-55"))
	// lmt=1: no IFA, the IP stays.
	f("appletv-ctv-lmt-gdpr-purpose7-denied", norm(IDIP, "90.45.120.8"))
	// 2.5 eids in user.ext.
	f("firetv-ctv-gdpr-ext-eids",
		norm(IDIFA, "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"),
		norm(IDIP, "84.135.22.17"),
		norm(IDEID, "id5-sync.com/ID5*abcdEFGHijklMNOPqrstUVWX"),
		norm(IDEID, "netid.de/dE3nEtId0000"),
		norm(IDUserID, "firetv-hh-91"))
	f("openwrap-ctv-dynamic-adpod", norm(IDIP, "::1")) // an IPv6 address in device.ip
	// ifa_type ppid: a publisher-scoped id, not indexed; the IP stays.
	r, err := x.Extract(all["settopbox-ctv-regs-ext"], testNow)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.IFAType) != "ppid" || len(r.IFA) == 0 {
		t.Fatalf("settopbox fixture: ifa %q of type %q; want a ppid", r.IFA, r.IFAType)
	}
	for _, id := range r.IDs(h, nil) {
		if id.Kind == IDIFA {
			t.Fatalf("settopbox fixture: the ppid IFA is indexed")
		}
	}
}

func TestRequestIdentityFields(t *testing.T) {
	all := fixtures(t)
	x := NewExtractor()
	f := func(fixture, ifaType string, lmt bool, ip, ipv6 string) {
		t.Helper()
		r, err := x.Extract(all[fixture], testNow)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.IFAType) != ifaType || r.LMT != lmt || string(r.IP) != ip || string(r.IPv6) != ipv6 {
			t.Fatalf("%s: ifa_type %q lmt %v ip %q ipv6 %q", fixture, r.IFAType, r.LMT, r.IP, r.IPv6)
		}
	}
	f("roku-ctv-pod-gpp", "rida", false, "73.92.14.201", "")
	f("firetv-ctv-gdpr-ext-eids", "afai", false, "84.135.22.17", "")
	f("samsung-tizen-ctv-usp-optout", "tifa", false, "98.210.47.3", "")
	f("lg-webos-ctv-ipv6-gpp-optout", "lgudid", false, "", "2601:646:8f00:3a10:8d2c:1b4e:77aa:9c01")
	f("appletv-ctv-lmt-gdpr-purpose7-denied", "idfa", true, "90.45.120.8", "")
	f("settopbox-ctv-regs-ext", "ppid", false, "24.5.77.190", "")
}

func TestRequestIDsNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	h := NewHasher([]byte("s"))
	x := NewExtractor()
	r, err := x.Extract(fixtures(t)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		t.Fatal(err)
	}
	dst := r.IDs(h, nil)
	n := testing.AllocsPerRun(100, func() {
		dst = r.IDs(h, dst[:0])
	})
	if n != 0 {
		t.Fatalf("IDs allocates %v times", n)
	}
}
