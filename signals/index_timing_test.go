package signals

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/cpafeed/cpafeed/model"
)

func BenchmarkIndexAdd(b *testing.B) {
	x := NewIndex(IndexConfig{MaxExposures: 1 << 20})
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]ID, 2)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ids[0] = ID{IDIFA, r.Uint64N(1<<18) + 1}
		ids[1] = ID{IDIP, r.Uint64N(1<<17) + 1}
		x.Add(IndexedExposure{TS: int64(i), Leaf: model.Key(i)}, ids)
	}
}

func BenchmarkIndexVisitHousehold(b *testing.B) {
	x := NewIndex(IndexConfig{MaxExposures: 1 << 20})
	for i := range 1 << 20 {
		x.Add(IndexedExposure{TS: int64(i)}, []ID{{IDIP, uint64(i%(1<<16)) + 1}})
	}
	b.ReportAllocs()
	var n int
	for i := 0; b.Loop(); i++ {
		x.Visit(uint64(i%(1<<16))+1, 0, 1<<40, func(uint64, IndexedExposure) bool { n++; return true })
	}
}

// BenchmarkIndexMemory fills an index with INDEX_EXPOSURES exposures
// (default 10 000 000) of a CTV-like population — every exposure carries the
// device IFA and the household IP, a third also an eid; 4 devices per
// household on average — and reports the heap bytes per exposure and per
// exposure and identity key.
func BenchmarkIndexMemory(b *testing.B) {
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("INDEX_EXPOSURES")); err == nil && v > 0 {
		n = v
	}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x := NewIndex(IndexConfig{MaxExposures: n})
		r := rand.New(rand.NewPCG(3, 4))
		devices := n / 5
		ids := make([]ID, 0, 3)
		keys := 0
		for i := range n {
			dev := r.IntN(devices)
			ids = append(ids[:0], ID{IDIFA, uint64(dev)*2 + 1}, ID{IDIP, uint64(dev/4)*2 + 2})
			if dev%3 == 0 {
				ids = append(ids, ID{IDEID, uint64(dev)*2 + 1<<40})
			}
			keys += len(ids)
			x.Add(IndexedExposure{TS: int64(i / 100), Leaf: model.Key(dev)}, ids)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		st := x.Stats()
		b.ReportMetric(heap/float64(n), "bytes/exposure")
		b.ReportMetric(heap/float64(keys), "bytes/exposure-key")
		b.ReportMetric(float64(st.Identities), "identities")
		runtime.KeepAlive(x)
	}
}
