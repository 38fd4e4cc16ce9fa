package conversions

import (
	"errors"
	"testing"
)

// The vectors of the reference's example request (section (b)): real SHA-256
// values of the normalized values of section (c).
func TestHashUserDataVectors(t *testing.T) {
	f := func(field, in, want string) {
		t.Helper()
		got, err := HashUserData(nil, field, []byte(in))
		if err != nil || string(got) != want {
			t.Fatalf("HashUserData(%s, %q) = %s, %v; want %s", field, in, got, err, want)
		}
	}
	f("em", "jane.doe@example.com", "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d")
	f("em", "  Jane.Doe@EXAMPLE.com\n", "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d")
	f("ph", "15551234567", "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a")
	f("ph", "+1 (555) 123-4567", "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a")
	f("ph", "001-555-123-4567", "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a")
	f("fn", "Jane", "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2")
	f("ln", " DOE ", "799ef92a11af918e3fb741df42934f3b568ed2d93ac1df74f1b8d41a27932a6f")
	f("ge", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111")
	f("ge", "Female", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111")
	f("db", "19850214", "849e2789727c811d57203fdea08ebd034951e149a4e68685363e9e2fe4ce5b4f")
	f("db", "1985-02-14", "849e2789727c811d57203fdea08ebd034951e149a4e68685363e9e2fe4ce5b4f")
	f("ct", "Austin", "c7c1319276e936c8d64f1d5ed80cd8a0cf54e6dea7b0125533eb4163e03a2c11")
	f("st", "TX", "1b5b9ccb3e8d006a5230de9bda23ff91edc794d4f56410560830b418528e446c")
	f("zp", "78701", "384248b18055777d69403b479d74e10a96ecc6c6dd6f02308684d3d94eaacad1")
	f("zp", "78701-1234", "384248b18055777d69403b479d74e10a96ecc6c6dd6f02308684d3d94eaacad1")
	f("country", "US", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621")
	f("external_id", "crm-88412", "cb58ad4c6993d2f89ed48ebd870d694a414105248749eb729407e4206caf1ce7")
	f("external_id", " CRM-88412 ", "cb58ad4c6993d2f89ed48ebd870d694a414105248749eb729407e4206caf1ce7")
	// Already hashed: passed through, lower-cased.
	f("em", "86E0B9E56C17CC4D12387E1949B85053FBE73BC3CE5A1188713A9D300CC6133D", "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d")
	f("ph", "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a", "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a")
}

func TestNormalizeUserData(t *testing.T) {
	f := func(fld field, in, want string, wantReason bool) {
		t.Helper()
		got, reason, ok := normalizeUserData(nil, fld, []byte(in))
		if ok != (want != "") || string(got) != want || (reason != "") != wantReason {
			t.Fatalf("normalize(%s, %q) = %q, %q, %v; want %q (reason %v)", fieldNames[fld], in, got, reason, ok, want, wantReason)
		}
	}
	f(fieldEmail, "A.B+tag@Mail.Example.co.uk", "a.b+tag@mail.example.co.uk", false)
	f(fieldEmail, "not-an-email", "", true)
	f(fieldEmail, "a@b", "", true)
	f(fieldEmail, "a@@b.com", "", true)
	f(fieldEmail, "a b@c.com", "", true)
	f(fieldEmail, "a@b..com", "", true)
	f(fieldEmail, "   ", "", false)
	f(fieldPhone, "+44 20 7946 0958", "442079460958", false)
	f(fieldPhone, "0044 20 7946 0958", "442079460958", false)
	f(fieldPhone, "020 7946 0958", "2079460958", false) // a leading 0 goes, as in Meta's SDK
	f(fieldPhone, "00 0123 4567", "0001234567", false)  // what follows the zeros starts with 0: kept
	f(fieldPhone, "12345", "", true)
	f(fieldPhone, "1234567890123456", "", true)
	f(fieldGender, "M", "m", false)
	f(fieldGender, "male", "m", false)
	f(fieldGender, "x", "", false) // dropped, as Meta's SDK does
	f(fieldBirthDate, "1985/02/14", "19850214", false)
	f(fieldBirthDate, "14.02.85", "", true)
	f(fieldBirthDate, "19851314", "", true)
	f(fieldCity, "San Francisco", "sanfrancisco", false)
	f(fieldCity, "St. Louis (MO)", "stlouismo", false)
	f(fieldCity, "Zürich", "zürich", false)
	f(fieldState, "C.A.", "ca", false)
	f(fieldZip, "SW1A 1AA", "sw1a1aa", false)
	f(fieldZip, "1", "", false)
	f(fieldCountry, "de", "de", false)
	f(fieldCountry, "xx", "", true)
	f(fieldCountry, "usa", "", true)
	f(fieldFirstName, "ÉLODIE", "élodie", false)
}

func TestHashUserDataErrors(t *testing.T) {
	if _, err := HashUserData(nil, "zz", []byte("x")); err == nil {
		t.Fatal("unknown field accepted")
	}
	if _, err := HashUserData(nil, "ge", []byte("unknown")); !errors.Is(err, ErrNoValue) {
		t.Fatalf("unknown gender: %v, want ErrNoValue", err)
	}
	if _, err := HashUserData(nil, "em", []byte("nope")); err == nil || errors.Is(err, ErrNoValue) {
		t.Fatalf("bad email: %v", err)
	}
}

func TestCodes(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := currencyCode([]byte(in)); got != want {
			t.Fatalf("currencyCode(%q) = %q, want %q", in, got, want)
		}
	}
	f("USD", "USD")
	f("eur", "EUR")
	f("AED", "AED")
	f("ZWL", "ZWL")
	f("XCG", "XCG")
	f("ABC", "")
	f("US", "")
	f("US$", "")
	f("", "")
	for _, c := range []string{"us", "de", "ad", "zw", "gb"} {
		if !isCountry([]byte(c)) {
			t.Fatalf("%s is a country", c)
		}
	}
	for _, c := range []string{"uk", "US", "zz", "u"} {
		if isCountry([]byte(c)) {
			t.Fatalf("%s is not a country", c)
		}
	}
}

func TestDecodeForm(t *testing.T) {
	var got []string
	decodeForm(nil, []byte("a=1&b=x+y%20z&&c&d=%zz&e%5B0%5D=%7B%22k%22%3A1%7D"), func(k, v []byte) {
		got = append(got, string(k)+"="+string(v))
	})
	want := []string{"a=1", "b=x y z", "c=", "d=%zz", "e[0]={\"k\":1}"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
