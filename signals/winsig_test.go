package signals

import (
	"strings"
	"testing"
)

// TestWinSigner pins the signature a bidder computes (here with Python's
// hmac.new(secret, b"auction-1\n2\ndemo-ctv-purchase", sha256).hexdigest())
// and what Valid refuses.
func TestWinSigner(t *testing.T) {
	s := NewWinSigner(testWinSecret)
	const want = "29beb5886f18f7d21dd29235dcc6d82b42676844685311a9f16a249f12bda376"
	if got := string(s.AppendSig(nil, "auction-1", "2", "demo-ctv-purchase")); got != want {
		t.Fatalf("sig %s, want %s", got, want)
	}
	f := func(sig, auction, imp, campaign string, ok bool) {
		t.Helper()
		if s.Valid([]byte(sig), []byte(auction), []byte(imp), campaign) != ok {
			t.Errorf("Valid(%q, %q, %q, %q) != %v", sig, auction, imp, campaign, ok)
		}
	}
	f(want, "auction-1", "2", "demo-ctv-purchase", true)
	f(strings.ToUpper(want), "auction-1", "2", "demo-ctv-purchase", true)
	f(want, "auction-1", "1", "demo-ctv-purchase", false)
	f(want, "auction-1", "2", "demo-ctv-signup", false)
	f(want, "auction-2", "2", "demo-ctv-purchase", false)
	f(want[:63], "auction-1", "2", "demo-ctv-purchase", false)
	f(want+"0", "auction-1", "2", "demo-ctv-purchase", false)
	f(want[:62]+"zz", "auction-1", "2", "demo-ctv-purchase", false)
	f("", "auction-1", "2", "demo-ctv-purchase", false)
	if other := NewWinSigner([]byte("another-bidder-secret")); other.Valid([]byte(want), []byte("auction-1"), []byte("2"), "demo-ctv-purchase") {
		t.Error("another key's signer accepts the signature")
	}
	// A newline would make the message ambiguous: never valid.
	amb := string(s.AppendSig(nil, "a\n1", "2", "c"))
	f(amb, "a\n1", "2", "c", false)
	f(amb, "a", "1\n2", "c", false)
}

// TestWinSignerRotation: during a rotation the signer signs with the new
// secret and accepts URLs signed with the previous one; the signer of the
// new secret alone (the rotation finished) refuses them.
func TestWinSignerRotation(t *testing.T) {
	old := NewWinSigner(testWinSecret)
	next := []byte("the-next-win-secret-0123")
	s := NewWinSigner(next, testWinSecret)
	oldSig := old.AppendSig(nil, "auction-1", "2", "demo-ctv-purchase")
	newSig := s.AppendSig(nil, "auction-1", "2", "demo-ctv-purchase")
	if string(newSig) != string(NewWinSigner(next).AppendSig(nil, "auction-1", "2", "demo-ctv-purchase")) {
		t.Fatal("a rotating signer signs with the previous secret")
	}
	for _, sig := range [][]byte{oldSig, newSig} {
		if !s.Valid(sig, []byte("auction-1"), []byte("2"), "demo-ctv-purchase") {
			t.Fatalf("rotating signer refuses %s", sig)
		}
	}
	if s.Valid(oldSig, []byte("auction-1"), []byte("3"), "demo-ctv-purchase") {
		t.Fatal("the previous secret's sig is valid for another imp")
	}
	if NewWinSigner(next).Valid(oldSig, []byte("auction-1"), []byte("2"), "demo-ctv-purchase") {
		t.Fatal("after the rotation the previous secret's sig is still valid")
	}
	if NewWinSigner(next, nil).prev != nil {
		t.Fatal("an empty previous secret is accepted as a key")
	}
}

func TestWinSignerValidAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	s := NewWinSigner(testWinSecret)
	sig := s.AppendSig(nil, "auction-1", "2", "demo-ctv-purchase")
	auction, imp := []byte("auction-1"), []byte("2")
	s.Valid(sig, auction, imp, "demo-ctv-purchase")
	if n := testing.AllocsPerRun(100, func() { s.Valid(sig, auction, imp, "demo-ctv-purchase") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// FuzzWinSig: Valid never panics on any query values, and accepts a sig
// only when it is the one AppendSig makes (either case).
func FuzzWinSig(f *testing.F) {
	s := NewWinSigner(testWinSecret)
	f.Add("29beb5886f18f7d21dd29235dcc6d82b42676844685311a9f16a249f12bda376", "auction-1", "2", "demo-ctv-purchase")
	f.Add("", "", "", "")
	f.Add("zz", "a\n1", "2", "c")
	f.Fuzz(func(t *testing.T, sig, auction, imp, campaign string) {
		ok := s.Valid([]byte(sig), []byte(auction), []byte(imp), campaign)
		want := string(s.AppendSig(nil, auction, imp, campaign))
		if ok != (strings.EqualFold(sig, want) && !strings.Contains(auction+imp+campaign, "\n")) {
			t.Fatalf("Valid(%q, %q, %q, %q) = %v (sig %s)", sig, auction, imp, campaign, ok, want)
		}
	})
}
