package signals

import (
	"testing"
)

const (
	tcfAllGranted   = "CQdWToAQdWToAAKABBENEsFoAP_gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
	tcfP1Denied     = "CQdWToAQdWToAAKABBENEsFoAH_gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
	tcfP7Denied     = "CQdWToAQdWToAAKABBENEsFoAP3gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
	tcfVendorAbsent = "CQdWToAQdWToAAKABBENEsFoAP_gAAAAAAYgF5wAwAFAA0AXmAAAAAAA.IAAA.YAAAAAAAAAAA"
)

func TestGate(t *testing.T) {
	f := func(p Privacy, vendor int, wantOK bool, wantReason string) {
		t.Helper()
		ok, reason := Gate(p, vendor)
		if ok != wantOK || reason != wantReason {
			t.Fatalf("Gate(%+v, %d) = %v, %q; want %v, %q", p, vendor, ok, reason, wantOK, wantReason)
		}
	}
	b := func(s string) []byte { return []byte(s) }
	f(Privacy{GDPR: -1}, 0, true, "")
	f(Privacy{GDPR: -1, COPPA: true}, 0, false, ReasonCOPPA)
	f(Privacy{GDPR: 1, COPPA: true, Consent: b(tcfAllGranted)}, 0, false, ReasonCOPPA)
	f(Privacy{GDPR: 1}, 0, false, ReasonGDPRNoConsent)
	f(Privacy{GDPR: 1, Consent: b("garbage")}, 0, false, ReasonGDPRNoConsent)
	f(Privacy{GDPR: 1, Consent: b(tcfAllGranted)}, 0, true, "")
	f(Privacy{GDPR: 1, Consent: b(tcfAllGranted)}, 1234, true, "")
	f(Privacy{GDPR: 1, Consent: b(tcfAllGranted)}, 1235, false, ReasonGDPRNoConsent)
	f(Privacy{GDPR: 1, Consent: b(tcfVendorAbsent)}, 0, true, "")
	f(Privacy{GDPR: 1, Consent: b(tcfVendorAbsent)}, 1234, false, ReasonGDPRNoConsent)
	f(Privacy{GDPR: 1, Consent: b(tcfP1Denied)}, 0, false, ReasonGDPRNoConsent)
	f(Privacy{GDPR: 1, Consent: b(tcfP7Denied)}, 0, false, ReasonGDPRNoConsent)
	f(Privacy{GDPR: 0, Consent: b("garbage")}, 1234, true, "")
	f(Privacy{GDPR: -1, USPrivacy: b("1YYN")}, 0, false, ReasonUSPOptOut)
	f(Privacy{GDPR: -1, USPrivacy: b("1NYN")}, 0, false, ReasonUSPOptOut)
	f(Privacy{GDPR: -1, USPrivacy: b("1yy-")}, 0, false, ReasonUSPOptOut)
	f(Privacy{GDPR: -1, USPrivacy: b("1YNN")}, 0, true, "")
	f(Privacy{GDPR: -1, USPrivacy: b("1---")}, 0, true, "")
	f(Privacy{GDPR: -1, USPrivacy: b("1Y")}, 0, true, "")
	f(Privacy{GDPR: -1, USPrivacy: b("uspConsentString")}, 0, true, "")
	f(Privacy{GDPR: -1, GPP: b("DBABLA~CUQiAAAAAACA.QA")}, 0, true, "")
	f(Privacy{GDPR: -1, GPP: b("DBABLA~CUQRAAAAAACA.QA")}, 0, false, ReasonGPPOptOut)
	f(Privacy{GDPR: -1, GPP: b("gppString")}, 0, true, "")
	f(Privacy{GDPR: -1, GPP: b("DBABBg~BAQAAABA.QA")}, 0, false, ReasonGPPOptOut) // usca only: sale opt-out
	f(Privacy{GDPR: -1, GPP: b("DBABBg~BAoAAABA.QA")}, 0, true, "")               // usca only: no opt-out
}

// TestGateGPPVectors runs Gate on every GPP vector: refused exactly when the
// library says usnat SaleOptOut or TargetedAdvertisingOptOut is 1, or a US
// state section's SaleOptOut or its second opt-out is.
func TestGateGPPVectors(t *testing.T) {
	for _, v := range readJSONL[gppVector](t, "testdata/gpp/*.jsonl") {
		want := v.SaleOptOut != nil && (*v.SaleOptOut == 1 || *v.TargetedAdvertising == 1)
		for _, st := range v.USStates {
			want = want || st.Sale == 1 || st.Second == 1
		}
		ok, reason := Gate(Privacy{GDPR: -1, GPP: []byte(v.GPP)}, 0)
		if ok == want || (want && reason != ReasonGPPOptOut) {
			t.Fatalf("%s: Gate = %v, %q", v.Case, ok, reason)
		}
	}
}

func TestGateFixtures(t *testing.T) {
	all := fixtures(t)
	x := NewExtractor()
	f := func(fixture string, vendor int, wantOK bool, wantReason string) {
		t.Helper()
		r, err := x.Extract(all[fixture], testNow)
		if err != nil {
			t.Fatal(err)
		}
		ok, reason := Gate(r.Privacy(), vendor)
		if ok != wantOK || reason != wantReason {
			t.Fatalf("%s: Gate = %v, %q; want %v, %q", fixture, ok, reason, wantOK, wantReason)
		}
	}
	f("roku-ctv-pod-gpp", 0, true, "")
	f("firetv-ctv-gdpr-ext-eids", 1234, true, "")
	f("firetv-ctv-gdpr-ext-eids", 999, false, ReasonGDPRNoConsent)
	f("samsung-tizen-ctv-usp-optout", 0, false, ReasonUSPOptOut)
	f("lg-webos-ctv-ipv6-gpp-optout", 0, false, ReasonGPPOptOut)
	f("appletv-ctv-lmt-gdpr-purpose7-denied", 0, false, ReasonGDPRNoConsent)
	f("settopbox-ctv-regs-ext", 0, false, ReasonGPPOptOut)
	f("smaato-video-gdpr-usp-gpp-pod", 0, false, ReasonCOPPA)
	f("clydo-app-video-gdpr-usp", 0, true, "")
	f("amx-video-eids-schain-usp", 0, true, "")
	f("cadent-roku-ctv-video", 0, true, "")
}

func TestPrivacyFromBothPlaces(t *testing.T) {
	all := fixtures(t)
	x := NewExtractor()
	r, err := x.Extract(all["settopbox-ctv-regs-ext"], testNow)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Privacy()
	if p.GDPR != 0 || string(p.USPrivacy) != "1YNN" || string(p.GPP) != "DBABzw~1YNN~CUQhAAAAAACA.QA" || len(p.GPPSID) != 2 || p.GPPSID[1] != 7 {
		t.Fatalf("2.5 places: %+v", p)
	}
	r, err = x.Extract(all["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		t.Fatal(err)
	}
	p = r.Privacy()
	if p.GDPR != -1 || string(p.USPrivacy) != "1YNN" || string(p.GPP) != "DBABLA~CUQiAAAAAACA.QA" || len(p.GPPSID) != 1 || p.GPPSID[0] != 7 || p.COPPA {
		t.Fatalf("2.6 places: %+v", p)
	}
	r, err = x.Extract(all["firetv-ctv-gdpr-ext-eids"], testNow)
	if err != nil {
		t.Fatal(err)
	}
	if p = r.Privacy(); p.GDPR != 1 || string(p.Consent) != tcfAllGranted {
		t.Fatalf("2.6 gdpr/consent: %+v", p)
	}
}

func TestGateNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	p := Privacy{GDPR: 1, Consent: []byte(tcfAllGranted), USPrivacy: []byte("1YNN"), GPP: []byte("DBABzw~1YNN~CUQiAAAAAACA.QA")}
	n := testing.AllocsPerRun(100, func() {
		if ok, _ := Gate(p, 1234); !ok {
			t.Fatal("refused")
		}
	})
	if n != 0 {
		t.Fatalf("Gate allocates %v times", n)
	}
}

// TestCallerBuiltRequest is an exposure posted with pre-extracted features
// and identities: a Request built without Extract.
func TestCallerBuiltRequest(t *testing.T) {
	var r Request
	r.Imps = make([]Imp, 1)
	if err := r.Imps[0].SetFeatures(map[string]string{"publisher": "pub-1", "genre": "News"}); err != nil {
		t.Fatal(err)
	}
	r.IFA = []byte("5A6E2C1B-9D3F-5E7A-8B4C-0F1D2E3A4B5C")
	r.IP = []byte("10.1.2.3")
	r.SetPrivacy(Privacy{GDPR: -1, USPrivacy: []byte("1YYN")})
	h := NewHasher([]byte("k"))
	if ids := r.IDs(h, nil); len(ids) != 2 || ids[0].Kind != IDIFA || ids[1].Kind != IDIP {
		t.Fatalf("IDs = %v", ids)
	}
	if ok, reason := Gate(r.Privacy(), 0); ok || reason != ReasonUSPOptOut {
		t.Fatalf("Gate = %v, %q", ok, reason)
	}
	if string(r.Imps[0].Feature(FeatureGenre)) != "News" || string(r.Imps[0].Feature(FeatureBundle)) != Unknown {
		t.Fatal("features")
	}
}
