package signals

import (
	"testing"
)

type gppVector struct {
	Case                string `json:"case"`
	GPP                 string `json:"gpp"`
	SectionIDs          []int  `json:"section_ids"`
	SaleOptOut          *int   `json:"usnat_sale_opt_out"`
	TargetedAdvertising *int   `json:"usnat_targeted_advertising_opt_out"`
	USNatVersion        *int   `json:"usnat_version"`
	// US state sections by name: their sale opt-out and second opt-out.
	USStates map[string]struct {
		Sale   int `json:"sale_opt_out"`
		Second int `json:"second_opt_out"`
	} `json:"us_states"`
}

// TestDecodeGPPVectors checks DecodeGPP and DecodeUSNat against strings made
// and decoded by IAB's @iabgpp/cmpapi (testdata/gpp/gpp-encode.js).
func TestDecodeGPPVectors(t *testing.T) {
	vectors := readJSONL[gppVector](t, "testdata/gpp/*.jsonl")
	if len(vectors) < 12 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	for _, v := range vectors {
		g, err := DecodeGPP(v.GPP)
		if err != nil {
			t.Fatalf("%s: %v", v.Case, err)
		}
		want := map[int]bool{}
		for _, id := range v.SectionIDs {
			want[id] = true
		}
		for id := -1; id <= 130; id++ {
			if g.HasSection(id) != want[id] {
				t.Fatalf("%s: section %d = %v", v.Case, id, !want[id])
			}
		}
		states := 0
		for i, layout := range gppUSStates {
			id := gppUSStateFirst + i
			sec, ok := g.Section(id)
			want, listed := v.USStates[layout.name]
			if ok != listed {
				t.Fatalf("%s: section %s present = %v", v.Case, layout.name, ok)
			}
			if !ok {
				continue
			}
			states++
			u, err := DecodeUSState(id, sec)
			if err != nil || u.Version != 1 || u.SaleOptOut != want.Sale || u.SecondOptOut != want.Second {
				t.Fatalf("%s: %s decoded %+v, %v; library says %+v", v.Case, layout.name, u, err, want)
			}
		}
		if states != len(v.USStates) {
			t.Fatalf("%s: %d state sections decoded, library lists %v", v.Case, states, v.USStates)
		}
		sec, ok := g.Section(GPPSectionUSNat)
		if ok != (v.SaleOptOut != nil) {
			t.Fatalf("%s: usnat section present = %v", v.Case, ok)
		}
		if !ok {
			continue
		}
		u, err := DecodeUSNat(sec)
		if err != nil {
			t.Fatalf("%s: %v", v.Case, err)
		}
		if u.SaleOptOut != *v.SaleOptOut || u.TargetedAdvertisingOptOut != *v.TargetedAdvertising || u.Version != *v.USNatVersion {
			t.Fatalf("%s: %+v", v.Case, u)
		}
	}
}

func TestDecodeGPPErrors(t *testing.T) {
	f := func(in string, want error) {
		t.Helper()
		if _, err := DecodeGPP(in); err != want {
			t.Fatalf("DecodeGPP(%q) = %v; want %v", in, err, want)
		}
	}
	f("DBABLA~CUQiAAAAAACA.QA", nil)
	f("DBABzw~1YNN~CUQhAAAAAACA.QA", nil)
	f("", errGPPEmpty)
	f("DBABLA", errGPPSections)                 // lists usnat, carries no section
	f("DBABzw~CUQhAAAAAACA.QA", errGPPSections) // lists 6 and 7, carries one
	f("DBABLA~CUQiAAAAAACA~x", errGPPSections)  // lists one, carries two
	f("CBABLA~CUQiAAAAAACA.QA", errGPPHeader)   // type 2
	f("DB!BLA~x", errGPPBase64)
	f("DBAB", errGPPRange)              // one range, no bits left for it
	f("DBABAAAAAAAA", errGPPRange)      // no Fibonacci terminator
	f("DBAB__________", errGPPSections) // ids 1..2: header fine, sections missing
	f("DBAA", nil)                      // no sections
	f("DBAC", errGPPRange)              // two ranges, none coded
	uf := func(in string, want error) {
		t.Helper()
		if _, err := DecodeUSNat(in); err != want {
			t.Fatalf("DecodeUSNat(%q) = %v; want %v", in, err, want)
		}
	}
	uf("CUQ", errUSNat)
	uf("AUQiAAAAAACA", errUSNat) // version 0
	uf("BUQiAAAAAA", nil)        // version 1
}

func FuzzGPP(f *testing.F) {
	for _, v := range readJSONL[gppVector](f, "testdata/gpp/*.jsonl") {
		f.Add(v.GPP)
	}
	f.Add("DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := DecodeGPP(s)
		gppOptedOut(s)
		if err != nil {
			return
		}
		for id := 0; id <= gppMaxSectionID+1; id++ {
			if sec, ok := g.Section(id); ok {
				DecodeUSNat(sec)
				DecodeUSState(id, sec)
			} else if g.HasSection(id) {
				t.Fatalf("section %d listed but not found in %q", id, s)
			}
		}
	})
}
