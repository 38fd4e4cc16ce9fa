package auth

import (
	"bytes"
	"testing"
)

func TestBearer(t *testing.T) {
	f := func(h, want string) {
		t.Helper()
		got := Bearer([]byte(h))
		if string(got) != want || (want == "" && got != nil) {
			t.Errorf("Bearer(%q) = %q, want %q", h, got, want)
		}
	}
	f("Bearer tok", "tok")
	f("bearer tok", "tok")
	f("BEARER tok", "tok")
	f("bEaReR tok", "tok")
	f("  Bearer   tok  ", "tok")
	f("Bearer\ttok\t", "tok")
	f("Bearer a b", "a b") // the token is what follows the scheme, inner spaces kept
	f("Bearer", "")
	f("Bearer ", "")
	f("Bearer    ", "")
	f("Bearertok", "")
	f("Basic dG9rOng=", "")
	f("Bearer-x tok", "")
	f("Bearar tok", "")
	f("tok", "")
	f("", "")
	f("\x02earer tok", "") // |0x20 must not turn a control byte into a letter
}

func TestBearerAllocatesNothing(t *testing.T) {
	h := []byte("  BEARER dev-bidder-token ")
	if n := testing.AllocsPerRun(100, func() { Bearer(h) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzBearer: any header value gives nil or a token that is a trimmed part
// of it, never a panic.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer tok", "BEARER  x ", "Basic x", "", "bearer", "Bearer\t\t"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		tok := Bearer(h)
		if tok == nil {
			return
		}
		if len(tok) == 0 || !bytes.Contains(h, tok) || tok[0] == ' ' || tok[len(tok)-1] == ' ' {
			t.Fatalf("Bearer(%q) = %q", h, tok)
		}
	})
}
