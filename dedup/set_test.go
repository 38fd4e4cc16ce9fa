package dedup

import (
	"encoding/binary"
	"runtime"
	"testing"
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

// TestSetMemoryPerEntry holds the 48-bytes-per-remembered-event budget.
func TestSetMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~100 MB")
	}
	const n = 2_000_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d := New(48*3600_000, 6)
	g := d.Gen(0)
	for i := range uint64(n) {
		d.Insert(key(i), g)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per remembered key", per)
	if per > 48 {
		t.Fatalf("%.1f bytes per key, budget 48", per)
	}
	runtime.KeepAlive(&d)
}
