package signals

import (
	"testing"

	"github.com/cpafeed/cpafeed/model"
)

func TestWonMemoryTTL(t *testing.T) {
	w := newWonMemory(900, 1<<20)
	h := wonHash([]byte("auction-1"), []byte("1"), "demo-ctv-purchase")
	other := h + 1                                  // the same shard
	w.put(other, wonEntry{leaf: 1, ts: 1000}, 1000) // the generation starts at 1000
	w.put(h, wonEntry{leaf: 42, ts: 1800}, 1800)
	w.put(other, wonEntry{leaf: 1, ts: 1950}, 1950) // rotates: h is in the older generation
	for _, now := range []int64{1800, 2000, 2699} {
		if e, ok := w.get(h, now); !ok || e.leaf != 42 {
			t.Fatalf("at %d: got %v %v, want leaf 42", now, e, ok)
		}
	}
	if _, ok := w.get(h, 2700); ok {
		t.Fatal("entry still found at its ttl")
	}
	w.put(other, wonEntry{leaf: 1, ts: 2850}, 2850) // rotates again: h is dropped
	if _, ok := w.get(h, 2000); ok {
		t.Fatal("entry kept after two rotations")
	}
	if _, ok := w.get(wonHash([]byte("auction-1"), []byte("2"), "demo-ctv-purchase"), 1800); ok {
		t.Fatal("another imp found")
	}
}

func TestWonMemoryHashParts(t *testing.T) {
	// Length prefixes keep the parts apart.
	a := wonHash([]byte("ab"), []byte("c"), "d")
	b := wonHash([]byte("a"), []byte("bc"), "d")
	c := wonHash([]byte("a"), []byte("b"), "cd")
	if a == b || b == c || a == c {
		t.Fatalf("hashes collide: %x %x %x", a, b, c)
	}
}

func TestWonMemoryBounded(t *testing.T) {
	w := newWonMemory(900, 64*wonEntryBytes*2*wonShards) // 64 entries a shard and generation
	key := func(i int) uint64 { return wonHash([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, nil, "c") }
	for i := range 100_000 {
		w.put(key(i), wonEntry{leaf: model.Key(i), ts: 1000}, 1000)
	}
	n := 0
	w.each(1000, func(uint64, wonEntry) { n++ })
	if max := 2 * 64 * wonShards; n > max {
		t.Fatalf("%d entries remembered, bound %d", n, max)
	}
	// The newest are kept.
	if e, ok := w.get(key(99_999), 1000); !ok || e.leaf != 99_999 {
		t.Fatalf("newest entry: %v %v", e, ok)
	}
}
