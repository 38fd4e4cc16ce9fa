package model

import "testing"

func TestKeyStable(t *testing.T) {
	// Keys are persisted; these values must never change.
	f := func(got, want Key) {
		t.Helper()
		if got != want {
			t.Fatalf("key = %#x, want %#x", uint64(got), uint64(want))
		}
	}
	root := RootKey("demo-ctv-purchase")
	f(root, RootKey("demo-ctv-purchase"))
	if root == RootKey("demo-ctv-signup") {
		t.Fatal("different campaigns share a root key")
	}
	if root.Child([]byte("a")) == root.Child([]byte("b")) {
		t.Fatal("different values share a child key")
	}
	if root.Child([]byte("a")).Child([]byte("b")) == root.Child([]byte("b")).Child([]byte("a")) {
		t.Fatal("child keys do not depend on order")
	}
}

func TestKeyChildNoAlloc(t *testing.T) {
	v := []byte("com.example.tv")
	k := RootKey("c")
	n := testing.AllocsPerRun(100, func() { k = k.Child(v) })
	if n != 0 {
		t.Fatalf("Child allocates %v times", n)
	}
}
