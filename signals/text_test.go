package signals

import "testing"

func TestBadText(t *testing.T) {
	f := func(s, want string) {
		t.Helper()
		if got := BadText([]byte(s)); got != want {
			t.Errorf("BadText(%q) = %q, want %q", s, got, want)
		}
	}
	f("", "")
	f("Purchase", "")
	f("Achat réussi №1 😀", "")
	f("a\x00b", ReasonControl)
	f("a\tb", ReasonControl)
	f("a\x1fb", ReasonControl)
	f("a\x7fb", ReasonControl)
	f("é\x01", ReasonControl) // after a non-ASCII byte too
	f("a\xffb", ReasonNotUTF8)
	f("a\xc3", ReasonNotUTF8)        // truncated
	f("\xed\xa0\x80", ReasonNotUTF8) // a surrogate
	f("\xc0\xaf", ReasonNotUTF8)     // overlong
	f("a\u0085b", "")                // C1 controls are valid UTF-8 and allowed
	f("\xff\x01", ReasonControl)     // both: the control is named
}

func TestBadTextAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	s := []byte("commande-№1-" + "x")
	if n := testing.AllocsPerRun(100, func() { _ = BadText(s) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
