package model

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchPaths returns n distinct 5-level paths of campaign c (a fanout of
// 100 × 10 × 10 × n/10000 below the root) with their labels.
func benchPaths(c string, n int) ([][]Key, [][][]byte) {
	paths := make([][]Key, n)
	labels := make([][][]byte, n)
	for i := range paths {
		paths[i], labels[i] = testPath(c,
			fmt.Sprintf("pub-%d", i%100), fmt.Sprintf("bundle-%d", i/100%10),
			fmt.Sprintf("genre-%d", i/1000%10), fmt.Sprintf("metro-%d", i/10000))
	}
	return paths, labels
}

// filledModel returns a model with n leaf paths (about 1.11·n nodes), each
// exposed a few times and some credited.
func filledModel(b *testing.B, n int) (*Model, [][]Key) {
	b.Helper()
	m := New(Config{Structure: StructureChain}, testCampaigns())
	paths, labels := benchPaths("demo-ctv-purchase", n)
	r := rand.New(rand.NewPCG(1, 1))
	for i, p := range paths {
		ts := t0 + int64(r.IntN(7*86400))
		m.Expose(ts, p, labels[i], 0.02)
		if i%50 == 0 {
			m.Credit(ts, ts+3600, p[len(p)-1], 1)
		}
	}
	return m, paths
}

func BenchmarkModelExpose(b *testing.B) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	paths, labels := benchPaths("demo-ctv-purchase", 10000)
	for i, p := range paths {
		m.Expose(t0, p, labels[i], 0.02)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(paths)
		m.Expose(t0+int64(i/1000), paths[j], labels[j], 0.02)
	}
}

func BenchmarkModelExposeParallel(b *testing.B) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	paths, labels := benchPaths("demo-ctv-purchase", 10000)
	for i, p := range paths {
		m.Expose(t0, p, labels[i], 0.02)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(paths))
		for pb.Next() {
			i++
			j := i % len(paths)
			m.Expose(t0+int64(i/1000), paths[j], labels[j], 0.02)
		}
	})
}

func BenchmarkModelCredit(b *testing.B) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	paths, labels := benchPaths("demo-ctv-purchase", 10000)
	for i, p := range paths {
		m.Expose(t0, p, labels[i], 0.02)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(paths)
		m.Credit(t0, t0+3600+int64(i/1000), paths[j][4], 1)
	}
}

func BenchmarkModelLookup(b *testing.B) {
	m, paths := filledModel(b, 100000)
	e := m.Refresh(t0 + 7*86400)
	b.ReportAllocs()
	b.ResetTimer()
	var s float64
	for i := 0; i < b.N; i++ {
		est, _ := e.Lookup(paths[i%len(paths)])
		s += est.CVR
	}
	_ = s
}

func BenchmarkModelLookupParallel(b *testing.B) {
	m, paths := filledModel(b, 100000)
	m.Refresh(t0 + 7*86400)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(paths))
		var s float64
		for pb.Next() {
			i++
			est, _ := m.Estimates().Lookup(paths[i%len(paths)])
			s += est.CVR
		}
		_ = s
	})
}

// BenchmarkModelLookupFallback looks up paths whose two deepest levels are
// unknown (three probes).
func BenchmarkModelLookupFallback(b *testing.B) {
	m, paths := filledModel(b, 100000)
	e := m.Refresh(t0 + 7*86400)
	miss := make([][]Key, 1000)
	for i := range miss {
		p := append([]Key(nil), paths[i][:3]...)
		p = append(p, p[2].Child([]byte("unseen-genre")))
		miss[i] = append(p, p[3].Child([]byte("unseen-metro")))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Lookup(miss[i%len(miss)])
	}
}

func benchmarkRefresh(b *testing.B, n int) {
	m, _ := filledModel(b, n)
	m.Refresh(t0 + 7*86400) // warm the interval cache, as in steady state
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Refresh(t0 + 7*86400 + int64(i))
	}
	b.ReportMetric(float64(m.Estimates().Len()), "nodes")
}

func BenchmarkModelRefresh100k(b *testing.B) { benchmarkRefresh(b, 90000) }
func BenchmarkModelRefresh1M(b *testing.B)   { benchmarkRefresh(b, 900000) }

// BenchmarkModelRefreshCold rebuilds with every interval recomputed (as
// after a Refit changed the strengths).
func BenchmarkModelRefreshCold100k(b *testing.B) {
	m, _ := filledModel(b, 90000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.rs.cache = nil
		m.rs.pos = nil
		m.Refresh(t0 + 7*86400 + int64(i))
	}
}

func BenchmarkModelRefit(b *testing.B) {
	m, paths := filledModel(b, 90000)
	for i := range 20000 {
		p := paths[i*4]
		m.Credit(t0+int64(i), t0+int64(i)+int64(i%86400), p[4], 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Refit(t0 + 7*86400 + int64(i))
	}
}

func BenchmarkSampleBeta(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		SampleBeta(2.5, 3000, r)
	}
}

func BenchmarkBetaQuantile(b *testing.B) {
	for _, c := range [][2]float64{{0.5, 2000}, {3, 4e5}, {700, 1e7}, {3e4, 1e8}} {
		b.Run(fmt.Sprintf("a=%g/b=%g", c[0], c[1]), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				betaQuantile(c[0], c[1], 0.05)
			}
		})
	}
}

// BenchmarkMapLookupBaseline is the obvious alternative to the table: a Go
// map from key to Estimate, probed from the deepest key of the same paths.
func BenchmarkMapLookupBaseline(b *testing.B) {
	m, paths := filledModel(b, 100000)
	e := m.Refresh(t0 + 7*86400)
	mp := make(map[Key]Estimate, e.Len())
	for i := range e.ents {
		mp[e.ents[i].key] = e.estimate(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var s float64
	for i := 0; i < b.N; i++ {
		p := paths[i%len(paths)]
		for j := len(p) - 1; j >= 0; j-- {
			if est, ok := mp[p[j]]; ok {
				s += est.CVR
				break
			}
		}
	}
	_ = s
}

// crossedModel returns a crossed model of the default effect keys (12
// tables over 10 features) with n cells over two campaigns, each exposed
// once and every 50th credited: random values of realistic cardinality
// (300 publishers of about 7 apps each, 210 metros, ...).
func crossedModel(b *testing.B, n int) *Model {
	b.Helper()
	cfg := Config{Structure: StructureCrossed}.WithDefaults()
	m := New(cfg, testCampaigns())
	dims := cfg.Dims()
	card := map[string]int{"publisher": 300, "bundle": 2000, "genre": 12, "metro": 210, "daypart": 6, "devicetype": 3,
		"make": 8, "position": 3, "slot": 5, "podsize": 4, "livestream": 2, "contentlen": 4}
	r := rand.New(rand.NewPCG(1, 1))
	camps := []string{"demo-ctv-purchase", "demo-ctv-signup"}
	values := make([]string, len(dims))
	for i := range n {
		for d, name := range dims {
			values[d] = fmt.Sprintf("%s-%d", name, r.IntN(card[name]))
		}
		// An app belongs to one publisher (about 7 each).
		values[1] = fmt.Sprintf("%s-%d", values[0], r.IntN(7))
		path, labels := testPath(camps[i%2], values...)
		ts := t0 + int64(r.IntN(7*86400))
		m.Expose(ts, path, labels, 0.02)
		if i%50 == 0 {
			m.Credit(ts, ts+3600, path[len(path)-1], 1)
		}
	}
	return m
}

// BenchmarkModelRefreshCrossed2M is a Refresh (Config.Sweeps = 2 warm
// sweeps) of a crossed model with 2 million cells; BenchmarkModelRefitCrossed2M
// a Refit (sweeps to convergence and the tables' strengths). The server
// waits ten times a rebuild's duration between two (server/state.go), so a
// refresh of d seconds costs a tenth of a core at an interval of 10·d.
func BenchmarkModelRefreshCrossed2M(b *testing.B) {
	m := crossedModel(b, 2_000_000)
	m.Refit(t0 + 7*86400) // converged, as in steady state
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Refresh(t0 + 7*86400 + int64(i))
	}
	b.ReportMetric(float64(m.Estimates().Len()), "entries")
}

func BenchmarkModelRefitCrossed2M(b *testing.B) {
	m := crossedModel(b, 2_000_000)
	m.Refit(t0 + 7*86400)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Refit(t0 + 7*86400 + int64(i))
	}
}

// BenchmarkModelLookupCell looks up cells (12 tables) in a table of
// 200 000 cells' effect levels.
func BenchmarkModelLookupCell(b *testing.B) {
	m := crossedModel(b, 200_000)
	e := m.Refit(t0 + 7*86400)
	dims := m.Config().Dims()
	cells := make([]Cell, 1000)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range cells {
		cells[i].Reset(len(dims))
		for d, name := range dims {
			cells[i].SetValue(d, fmt.Appendf(nil, "%s-%d", name, r.IntN(3)))
		}
	}
	root := RootKey("demo-ctv-purchase")
	b.ReportAllocs()
	b.ResetTimer()
	var s float64
	for i := 0; i < b.N; i++ {
		est, _ := e.LookupCell(root, &cells[i%len(cells)])
		s += est.CVR
	}
	_ = s
}
