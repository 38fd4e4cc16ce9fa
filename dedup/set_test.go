package dedup

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cpafeed/cpafeed/binenc"
)

func key(i uint64) Key {
	var k Key
	binary.LittleEndian.PutUint64(k[:], i*0x9e3779b97f4a7c15+1)
	binary.LittleEndian.PutUint64(k[8:], i)
	return k
}

func TestSetWindow(t *testing.T) {
	const hour = int64(3600_000)
	d := New(48*hour, 6) // 8-hour generations
	d.Advance(100 * hour)
	if !d.Insert(key(1), d.Gen(100*hour)) || d.Insert(key(1), d.Gen(100*hour)) {
		t.Fatal("insert twice")
	}
	if !d.Contains(key(1)) || d.Contains(key(2)) {
		t.Fatal("contains")
	}
	d.Advance(147 * hour)
	if !d.Contains(key(1)) {
		t.Fatal("forgotten within the window")
	}
	if n := d.Advance(160 * hour); n != 1 || d.Contains(key(1)) || d.Len() != 0 {
		t.Fatalf("not expired after window and a generation: dropped %d", n)
	}
	// An insert into a generation that has left the window is refused.
	if d.Insert(key(3), d.Gen(10*hour)) {
		t.Fatal("inserted into an expired generation")
	}
}

func TestSetRemoveAndEach(t *testing.T) {
	d := New(1000, 4)
	d.Advance(5000)
	g := d.Gen(5000)
	for i := range uint64(10) {
		d.Insert(key(i), g)
	}
	d.Remove(key(3), g)
	d.Remove(key(3), g) // twice is fine
	n := 0
	d.Each(func(k Key, gen int64) {
		if k == key(3) || gen != g {
			t.Fatalf("unexpected %v %d", k, gen)
		}
		n++
	})
	if n != 9 || d.Len() != 9 {
		t.Fatalf("Each saw %d, Len %d", n, d.Len())
	}
}

func TestSetGenerations(t *testing.T) {
	d := New(8000, 8) // 1 s generations
	key := func(i int) Key { return Key{byte(i), byte(i >> 8), 1} }
	d.Advance(0)
	for i := range 1000 {
		if !d.Insert(key(i), d.cur) {
			t.Fatal("insert failed")
		}
	}
	if d.Insert(key(5), d.cur) {
		t.Fatal("second insert of a key succeeded")
	}
	d.Advance(1000)
	d.Insert(key(2000), d.cur)
	if d.Advance(8999) != 0 || d.Len() != 1001 || !d.Contains(key(999)) {
		t.Fatalf("generation 0 dropped too early: n=%d", d.Len())
	}
	if dropped := d.Advance(9000); dropped != 1000 || d.Len() != 1 || d.Contains(key(999)) || !d.Contains(key(2000)) {
		t.Fatalf("generation 0 not dropped as a whole: dropped %d, n=%d", dropped, d.Len())
	}
	for _, g := range d.gens {
		if g.id == 0 || (g.id < 0 && g.m != nil) {
			t.Fatalf("dropped generation still held: %+v", g.id)
		}
	}
	// An old generation (replay of an old record) is not inserted.
	if d.Insert(key(3000), 0) {
		t.Fatal("expired generation accepted")
	}
	// A clock that steps back does not resurrect or evict anything.
	d.Advance(100)
	if !d.Contains(key(2000)) || d.cur != 9 {
		t.Fatalf("clock step back: cur %d", d.cur)
	}
	d.Remove(key(2000), 1)
	if d.Contains(key(2000)) || d.Len() != 0 {
		t.Fatal("remove failed")
	}
}

func TestSetSnapshotRoundTrip(t *testing.T) {
	d := New(48*3600_000, 6)
	d.Advance(100 * 3600_000)
	for i := range uint64(1000) {
		d.Insert(key(i), d.Gen(int64(90+i%10)*3600_000))
	}
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	d.WriteSnapshot(w, nil)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	d2 := New(48*3600_000, 6)
	r := binenc.NewReader(&buf)
	d2.ReadSnapshot(r, 100*3600_000)
	if r.Err() != nil || d2.Len() != 1000 || !d2.Contains(key(999)) {
		t.Fatalf("restored %d keys: %v", d2.Len(), r.Err())
	}
	// Expiry continues as before: the generation of hour 90 leaves first.
	if n1, n2 := d.Advance(150*3600_000), d2.Advance(150*3600_000); n1 != n2 || n1 == 0 {
		t.Fatalf("expiry differs after restore: %d vs %d", n1, n2)
	}
}

// TestSetSnapshotSkipsReservedKeys: keys held ahead of their journal
// record's apply are left out, and the count written matches what follows
// (a key in skip that the set does not hold changes nothing).
func TestSetSnapshotSkipsReservedKeys(t *testing.T) {
	d := New(48*3600_000, 6)
	d.Advance(100 * 3600_000)
	for i := range uint64(100) {
		d.Insert(key(i), d.Gen(100*3600_000))
	}
	skip := map[Key]struct{}{key(3): {}, key(50): {}, key(5000): {}}
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	d.WriteSnapshot(w, skip)
	w.Tag("after")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	d2 := New(48*3600_000, 6)
	r := binenc.NewReader(&buf)
	d2.ReadSnapshot(r, 100*3600_000)
	r.Tag("after")
	if r.Err() != nil || d2.Len() != 98 || d2.Contains(key(3)) || d2.Contains(key(50)) || !d2.Contains(key(4)) {
		t.Fatalf("restored %d keys (3: %v, 50: %v): %v", d2.Len(), d2.Contains(key(3)), d2.Contains(key(50)), r.Err())
	}
}
