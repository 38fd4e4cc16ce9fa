package signals

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

type tcfVector struct {
	Case             string `json:"case"`
	TCString         string `json:"tc_string"`
	OurVendor        int    `json:"our_vendor"`
	OurVendorConsent bool   `json:"our_vendor_consent"`
	PurposeConsents  []int  `json:"purpose_consents"`
	VendorConsents   []int  `json:"vendor_consents"`
	Version          int    `json:"version"`
	PolicyVersion    int    `json:"policy_version"`
	VendorListVer    int    `json:"vendor_list_version"`
	CMPID            int    `json:"cmp_id"`
}

func readJSONL[T any](t testing.TB, pattern string) []T {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files for %s: %v", pattern, err)
	}
	var out []T
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var v T
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, v)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestDecodeTCFVectors checks DecodeTCF against strings made and decoded by
// IAB's @iabtechlabtcf/core (testdata/tcf/README.md): every purpose and
// every vendor id up to past the maximum, for bit-field and range encoding.
func TestDecodeTCFVectors(t *testing.T) {
	vectors := readJSONL[tcfVector](t, "testdata/tcf/*.jsonl")
	if len(vectors) < 12 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	ranges, bitfields := 0, 0
	for _, v := range vectors {
		tc, err := DecodeTCF(v.TCString)
		if err != nil {
			t.Fatalf("%s: %v", v.Case, err)
		}
		if tc.Version != v.Version || tc.PolicyVersion != v.PolicyVersion || tc.VendorListVersion != v.VendorListVer || tc.CMPID != v.CMPID {
			t.Fatalf("%s: header %+v; want version %d policy %d vlv %d cmp %d", v.Case, tc, v.Version, v.PolicyVersion, v.VendorListVer, v.CMPID)
		}
		purposes := map[int]bool{}
		for _, p := range v.PurposeConsents {
			purposes[p] = true
		}
		for p := 0; p <= 25; p++ {
			if tc.PurposeConsent(p) != purposes[p] {
				t.Fatalf("%s: purpose %d = %v", v.Case, p, !purposes[p])
			}
		}
		vendors := map[int]bool{}
		max := 0
		for _, id := range v.VendorConsents {
			vendors[id] = true
			if id > max {
				max = id
			}
		}
		if tc.MaxVendorID != max {
			t.Fatalf("%s: MaxVendorID %d; want %d", v.Case, tc.MaxVendorID, max)
		}
		for id := 0; id <= max+5; id++ {
			if tc.VendorConsent(id) != vendors[id] {
				t.Fatalf("%s: vendor %d = %v", v.Case, id, !vendors[id])
			}
		}
		if tc.VendorConsent(v.OurVendor) != v.OurVendorConsent {
			t.Fatalf("%s: our vendor %d", v.Case, v.OurVendor)
		}
		if tc.rangeCoding {
			ranges++
		} else {
			bitfields++
		}
	}
	if ranges == 0 || bitfields == 0 {
		t.Fatalf("vectors cover %d range and %d bit-field strings; want both", ranges, bitfields)
	}
}

func TestDecodeTCFErrors(t *testing.T) {
	f := func(in string, want error) {
		t.Helper()
		if _, err := DecodeTCF(in); err != want {
			t.Fatalf("DecodeTCF(%q) = %v; want %v", in, err, want)
		}
	}
	const ok = "CQdWToAQdWToAAKABBENEsFoAP_gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
	f(ok, nil)
	f(ok[:58]+"==", nil)
	f("", errTCFEmpty)
	f(".IAAA", errTCFEmpty)
	f("CQdW!oAQ", errTCFBase64)
	f("CQdWToAQ", errTCFShort)
	f("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", errTCFVersion) // a TCF v1 string
	f(ok[:40], errTCFVendors)                               // cut inside the ranges
}

func TestDecodeTCFNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	const s = "CQdWToAQdWToAAKABBENEsFoAP_gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
	n := testing.AllocsPerRun(100, func() {
		tc, err := DecodeTCF(s)
		if err != nil || !tc.VendorConsent(1234) {
			t.Fatal("vector does not decode")
		}
	})
	if n != 0 {
		t.Fatalf("DecodeTCF allocates %v times", n)
	}
}

func FuzzTCF(f *testing.F) {
	for _, v := range readJSONL[tcfVector](f, "testdata/tcf/*.jsonl") {
		f.Add(v.TCString, v.OurVendor)
	}
	f.Add("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", 1)
	f.Fuzz(func(t *testing.T, s string, vendor int) {
		tc, err := DecodeTCF(s)
		if err != nil {
			return
		}
		// A decoded string answers every vendor without panicking, and
		// never consents past its maximum.
		if tc.VendorConsent(tc.MaxVendorID+1) || tc.VendorConsent(0) {
			t.Fatal("consent outside 1..MaxVendorID")
		}
		tc.VendorConsent(vendor)
		for id := 1; id <= tc.MaxVendorID && id < 5000; id += 7 {
			tc.VendorConsent(id)
		}
	})
}
