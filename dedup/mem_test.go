package dedup

import (
	"encoding/binary"
	"runtime"
	"testing"
)

func splitmixKey(i uint64) Key {
	var k Key
	for h := range 2 {
		x := i*2 + uint64(h) + 0x9e3779b97f4a7c15
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
		x = (x ^ (x >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(k[8*h:], x^(x>>31))
	}
	return k
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestDedupMemoryPerEntry inserts 2 million keys over the generations of a
// 48h window and checks the memory held per remembered event at every
// quarter million (the load factor of the maps varies as they grow), then
// that expiry gives the memory back in bulk.
func TestDedupMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("memory accounting under -race or -short is not meaningful")
	}
	const total, step = 2_000_000, 250_000
	windowMs := int64(48 * 3600 * 1000)
	d := New(windowMs, 8)
	base := heapAlloc()
	worst := 0.0
	for i := uint64(0); i < total; i++ {
		if i%step == 0 && i > 0 {
			per := float64(heapAlloc()-base) / float64(d.Len())
			worst = max(worst, per)
			t.Logf("%8d entries: %.1f bytes per entry", d.n, per)
		}
		now := int64(i) * (windowMs / total) // 2 M events spread over the window
		d.Advance(now)
		d.Insert(splitmixKey(i), d.cur)
	}
	if d.Len() != total {
		t.Fatalf("%d entries, want %d", d.n, total)
	}
	per := float64(heapAlloc()-base) / float64(d.Len())
	worst = max(worst, per)
	t.Logf("%8d entries: %.1f bytes per entry; worst %.1f", d.n, per, worst)
	if worst > 48 {
		t.Fatalf("%.1f bytes per remembered event, want <= 48", worst)
	}
	// Past the window every generation goes, as whole maps.
	d.Advance(3 * windowMs)
	if d.Len() != 0 {
		t.Fatalf("%d entries after the window", d.Len())
	}
	if left := int64(heapAlloc()) - int64(base); left > 1<<20 {
		t.Fatalf("%d bytes still held after expiry", left)
	}
}
