package model

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// smallStream feeds m a deterministic mix of exposures, credits, video
// events and campaign conversions between from and to.
func smallStream(m *Model, seed uint64, from, to int64) {
	r := rand.New(rand.NewPCG(seed, 9))
	pubs := []string{"pub-1", "pub-2", "pub-3", "pub-4"}
	genres := []string{"Sports", "News", "Drama"}
	for ts := from; ts < to; ts += 30 {
		c := "demo-ctv-purchase"
		if r.IntN(3) == 0 {
			c = "demo-ctv-signup"
		}
		path, labels := testPath(c, pubs[r.IntN(len(pubs))], genres[r.IntN(len(genres))], []string{"501", "803", "602"}[r.IntN(3)])
		m.Expose(ts, path, labels, 0.025)
		if r.IntN(4) == 0 {
			m.Video(ts, path[3], 1, float64(r.IntN(2)))
		}
		if r.IntN(40) == 0 {
			m.Credit(ts-int64(r.IntN(86400)), ts, path[3], 1)
			m.CampaignConversion(ts, c, true)
		}
		if r.IntN(200) == 0 {
			m.CampaignConversion(ts, c, false)
		}
	}
}

func snapshotOf(t testing.TB, m *Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := m.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameTables fails unless a and b answer every lookup alike. Intervals may
// differ within the refresh cache tolerance (the restored model computes
// them afresh).
func sameTables(t *testing.T, a, b *Estimates) {
	t.Helper()
	if a.Len() != b.Len() {
		t.Fatalf("tables have %d and %d nodes", a.Len(), b.Len())
	}
	for i := range a.ents {
		k := a.ents[i].key
		x, _ := a.Get(k)
		y, ok := b.Get(k)
		if !ok {
			t.Fatalf("node %x missing", uint64(k))
		}
		near := func(u, v float64) bool { return math.Abs(u-v) <= 2e-3*math.Abs(u) }
		lx, ly := x, y
		lx.Lo, lx.Hi, ly.Lo, ly.Hi = 0, 0, 0, 0
		if lx != ly || !near(x.Lo, y.Lo) || !near(x.Hi, y.Hi) {
			t.Fatalf("node %s:\n%+v\n%+v", a.Name(k, nil), x, y)
		}
		if string(a.Name(k, nil)) != string(b.Name(k, nil)) {
			t.Fatalf("names %q and %q", a.Name(k, nil), b.Name(k, nil))
		}
	}
}

// crossedSmall is a crossed config over smallStream's dimensions.
func crossedSmall(c Config) Config {
	c.Structure = StructureCrossed
	c.Effects = [][]string{{"publisher"}, {"genre"}, {"metro"}, {"publisher", "genre"}}
	return c
}

// sameCrossedTables fails unless a and b hold the same entries with the
// same counts, and fits within 1% (a restored model refits its effects
// from a cold start).
func sameCrossedTables(t *testing.T, a, b *Estimates) {
	t.Helper()
	if a.Len() != b.Len() || !a.Crossed() || !b.Crossed() {
		t.Fatalf("tables have %d and %d entries", a.Len(), b.Len())
	}
	for i := range a.ents {
		k := a.ents[i].key
		x, _ := a.Get(k)
		y, ok := b.Get(k)
		near := func(u, v float64) bool { return math.Abs(u-v) <= 1e-2*math.Abs(u)+1e-12 }
		if !ok || x.Exposures != y.Exposures || x.Conversions != y.Conversions || x.NEff != y.NEff || x.Level != y.Level ||
			!near(x.CVR, y.CVR) || !near(x.Lo, y.Lo) || !near(x.Hi, y.Hi) || !near(x.VTR, y.VTR) {
			t.Fatalf("entry %s:\n%+v\n%+v", a.Name(k, nil), x, y)
		}
		if string(a.Name(k, nil)) != string(b.Name(k, nil)) {
			t.Fatalf("names %q and %q", a.Name(k, nil), b.Name(k, nil))
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Run("chain", func(t *testing.T) { testSnapshotRoundTrip(t, Config{Structure: StructureChain, MinDelaySamples: 20}) })
	t.Run("crossed", func(t *testing.T) { testSnapshotRoundTrip(t, crossedSmall(Config{MinDelaySamples: 20})) })
}

func testSnapshotRoundTrip(t *testing.T, cfg Config) {
	a := New(cfg, testCampaigns())
	smallStream(a, 1, t0, t0+3*86400)
	a.Refit(t0 + 3*86400)
	snap := snapshotOf(t, a)

	b := New(cfg, testCampaigns())
	res, err := b.ReadSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	nodes := 0
	for i := range a.shards {
		nodes += len(a.shards[i].nodes)
	}
	if res.Campaigns != 2 || res.Learners != 2 || res.Nodes != nodes || res.DroppedNodes != 0 || res.StructureChanged {
		t.Fatalf("restored %+v", res)
	}
	if !bytes.Equal(snapshotOf(t, b), snap) {
		t.Fatal("a restored model does not write the same snapshot")
	}
	// The same continuation gives the same answers, refits included (the
	// delay reservoirs and their random states came along).
	for _, m := range []*Model{a, b} {
		smallStream(m, 2, t0+3*86400, t0+5*86400)
	}
	ea, eb := a.Refit(t0+5*86400), b.Refit(t0+5*86400)
	if cfg.Structure == StructureCrossed {
		sameCrossedTables(t, ea, eb)
	} else {
		sameTables(t, ea, eb)
	}
	if ea.Version() != eb.Version() {
		t.Fatalf("versions %d and %d", ea.Version(), eb.Version())
	}
	for _, c := range testCampaigns() {
		sa, _ := a.CampaignStats(c.ID)
		sb, _ := b.CampaignStats(c.ID)
		if sa.Exposures != sb.Exposures || sa.Spend != sb.Spend || sa.Conversions != sb.Conversions ||
			sa.Unattributed != sb.Unattributed || sa.DelayP50 != sb.DelayP50 || math.Abs(sa.Strengths[2]/sb.Strengths[2]-1) > 1e-2 {
			t.Fatalf("campaign stats differ:\n%+v\n%+v", sa, sb)
		}
	}
}

func TestSnapshotConfigChanged(t *testing.T) {
	a := New(Config{Structure: StructureChain}, testCampaigns())
	smallStream(a, 1, t0, t0+86400)
	snap := snapshotOf(t, a)
	cs := testCampaigns()[:1]
	cs[0].Window = 24 * time.Hour
	b := New(Config{Structure: StructureChain, Shards: 8}, cs)
	res, err := b.ReadSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	if res.Campaigns != 1 || res.DroppedNodes == 0 || len(res.WindowChanged) != 1 {
		t.Fatalf("restored %+v", res)
	}
	root, _ := b.Estimates().Campaign("demo-ctv-purchase")
	want, _ := a.Refresh(a.Estimates().At()).Campaign("demo-ctv-purchase")
	if root.Exposures != want.Exposures || root.Conversions != want.Conversions {
		t.Fatalf("counts not carried over: %+v vs %+v", root, want)
	}
}

// TestSnapshotStructureChanged: a snapshot of another structure (or, for
// the crossed model, of other effect keys) restores the campaigns' roots
// only; the crossed model counts them in its bases.
func TestSnapshotStructureChanged(t *testing.T) {
	chain := Config{Structure: StructureChain, MinDelaySamples: 20}
	crossed := crossedSmall(chain)
	other := crossed
	other.Effects = [][]string{{"genre"}, {"metro"}, {"publisher"}}
	for _, c := range []struct {
		name     string
		from, to Config
	}{{"chain to crossed", chain, crossed}, {"crossed to chain", crossed, chain}, {"other effects", crossed, other}} {
		t.Run(c.name, func(t *testing.T) {
			a := New(c.from, testCampaigns())
			smallStream(a, 1, t0, t0+86400)
			ea := a.Refit(t0 + 86400)
			b := New(c.to, testCampaigns())
			res, err := b.ReadSnapshot(bytes.NewReader(snapshotOf(t, a)))
			if err != nil {
				t.Fatal(err)
			}
			if !res.StructureChanged || res.Campaigns != 2 || res.Nodes != 2 || res.DroppedNodes == 0 {
				t.Fatalf("restored %+v", res)
			}
			ra, _ := ea.Campaign("demo-ctv-purchase")
			rb, _ := b.Estimates().Campaign("demo-ctv-purchase")
			if ra.Exposures != rb.Exposures || ra.Conversions != rb.Conversions || math.Abs(rb.CVR/ra.CVR-1) > 0.05 {
				t.Fatalf("root %+v, was %+v", rb, ra)
			}
			// Writes go on under the new structure.
			smallStream(b, 2, t0+86400, t0+2*86400)
			if _, err := UnmarshalEstimates(mustMarshal(t, b.Refit(t0+2*86400))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustMarshal(t *testing.T, e *Estimates) []byte {
	t.Helper()
	data, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSnapshotCorrupt(t *testing.T) {
	a := New(Config{Structure: StructureChain}, testCampaigns())
	smallStream(a, 1, t0, t0+86400)
	a.Refresh(t0 + 86400)
	snap := snapshotOf(t, a)
	b := New(Config{Structure: StructureChain}, testCampaigns())
	before := snapshotOf(t, b)
	for _, cut := range []int{0, 5, 8, 12, 100, len(snap) / 2, len(snap) - 4, len(snap) - 1} {
		if _, err := b.ReadSnapshot(bytes.NewReader(snap[:cut])); err == nil {
			t.Fatalf("snapshot cut at %d accepted", cut)
		}
	}
	for _, at := range []int{9, 40, len(snap) / 3, len(snap) - 10} {
		bad := bytes.Clone(snap)
		bad[at] ^= 0x20
		if _, err := b.ReadSnapshot(bytes.NewReader(bad)); err == nil {
			t.Fatalf("snapshot with byte %d flipped accepted", at)
		}
	}
	if !bytes.Equal(snapshotOf(t, b), before) {
		t.Fatal("a refused snapshot changed the model")
	}
}

// TestSnapshotGolden reads snapshots written by earlier builds, so that a
// format change cannot go unnoticed: format 1 (the chain, before the
// crossed model) is still read; the files of the current format rewrite
// to themselves (regenerate them with UPDATE_GOLDEN=1 only together with
// a format version bump).
func TestSnapshotGolden(t *testing.T) {
	for _, c := range []struct {
		file    string
		cfg     Config
		current bool
	}{
		{"model-v1.snap", Config{Structure: StructureChain, MinDelaySamples: 5}, false},
		{"model-v2-chain.snap", Config{Structure: StructureChain, MinDelaySamples: 5}, false},
		{"model-v2-crossed.snap", crossedSmall(Config{MinDelaySamples: 5}), false},
		{"model-v3-chain.snap", Config{Structure: StructureChain, MinDelaySamples: 5}, true},
		{"model-v3-crossed.snap", crossedSmall(Config{MinDelaySamples: 5}), true},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			if os.Getenv("UPDATE_GOLDEN") != "" && c.current {
				m := New(c.cfg, testCampaigns())
				smallStream(m, 3, t0, t0+6*3600)
				m.Refit(t0 + 6*3600)
				if err := os.WriteFile(path, snapshotOf(t, m), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m := New(c.cfg, testCampaigns())
			res, err := m.ReadSnapshot(bytes.NewReader(data))
			if err != nil || res.StructureChanged || res.DroppedNodes != 0 {
				t.Fatalf("restored %+v, %v", res, err)
			}
			root, ok := m.Estimates().Campaign("demo-ctv-purchase")
			if !ok || root.Exposures == 0 || root.Conversions == 0 {
				t.Fatalf("golden root %+v", root)
			}
			if c.current && !bytes.Equal(snapshotOf(t, m), data) {
				t.Fatal("rewriting the golden snapshot changes it")
			}
			if !c.current { // the rewrite, in the current format, reads back the same
				n := New(c.cfg, testCampaigns())
				if _, err := n.ReadSnapshot(bytes.NewReader(snapshotOf(t, m))); err != nil {
					t.Fatal(err)
				}
				sameTables(t, m.Estimates(), n.Estimates())
			}
		})
	}
}

func FuzzReadSnapshot(f *testing.F) {
	m := New(Config{Structure: StructureChain, MinDelaySamples: 5}, testCampaigns())
	smallStream(m, 4, t0, t0+3600)
	m.Refit(t0 + 3600)
	f.Add(snapshotOf(f, m))
	for _, file := range []string{"model-v1.snap", "model-v2-chain.snap", "model-v2-crossed.snap", "model-v3-chain.snap", "model-v3-crossed.snap"} {
		if data, err := os.ReadFile(filepath.Join("testdata", file)); err == nil {
			f.Add(data)
		}
	}
	// One model for every input: ReadSnapshot replaces all of its state or
	// none (and New costs milliseconds, which would starve the fuzzer).
	m = New(Config{Structure: StructureChain, Shards: 4}, testCampaigns())
	f.Fuzz(func(t *testing.T, data []byte) {
		// The checksum stops nearly every mutation at the end; the same
		// input with its checksum recomputed reaches the structure checks.
		if _, err := m.ReadSnapshot(bytes.NewReader(data)); err != nil {
			if len(data) < 4 {
				return
			}
			if _, err := m.ReadSnapshot(bytes.NewReader(withCRC(data))); err != nil {
				return
			}
		}
		// Whatever was accepted must be usable.
		e := m.Refresh(t0)
		for i := range e.ents {
			e.Name(e.ents[i].key, nil)
		}
		path, labels := testPath("demo-ctv-purchase", "pub-1", "Sports", "501")
		m.Expose(t0, path, labels, 0.01)
		m.Credit(t0, t0+60, path[3], 1)
		m.Refit(t0 + 60)
	})
}

func TestEstimatesMarshalRoundTrip(t *testing.T) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	smallStream(m, 5, t0, t0+2*86400)
	e := m.Refit(t0 + 2*86400)
	data, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := UnmarshalEstimates(data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version() != e.Version() || d.At() != e.At() || d.Quantiles() != e.Quantiles() {
		t.Fatalf("header differs: %d %d %v", d.Version(), d.At(), d.Quantiles())
	}
	for i := range e.ents {
		k := e.ents[i].key
		x, _ := e.Get(k)
		y, ok := d.Get(k)
		if !ok || x != y || string(e.Name(k, nil)) != string(d.Name(k, nil)) {
			t.Fatalf("node %s: %+v vs %+v", e.Name(k, nil), x, y)
		}
	}
	for _, c := range testCampaigns() {
		var xs, ys []Estimate
		e.Segments(c.ID, -1, func(x Estimate) bool { xs = append(xs, x); return true })
		d.Segments(c.ID, -1, func(x Estimate) bool { ys = append(ys, x); return true })
		if len(xs) != len(ys) || len(xs) == 0 {
			t.Fatalf("%s: %d and %d segments", c.ID, len(xs), len(ys))
		}
		for i := range xs {
			if xs[i] != ys[i] {
				t.Fatalf("%s: segment %d differs", c.ID, i)
			}
		}
		a, _ := e.CampaignCVR(c.ID)
		b, _ := d.CampaignCVR(c.ID)
		if a != b {
			t.Fatalf("%s: campaign CVR %g vs %g", c.ID, a, b)
		}
	}
	path, _ := testPath("demo-ctv-purchase", "pub-2", "Drama", "nowhere")
	x, _ := e.Lookup(path)
	y, _ := d.Lookup(path)
	if x != y || x.Level != 2 {
		t.Fatalf("fallback lookups %+v vs %+v", x, y)
	}
	if _, err := UnmarshalEstimates(data[:len(data)-1]); err == nil {
		t.Fatal("truncated table accepted")
	}
}

// TestEstimatesMarshalCampaigns: the table of some campaigns decodes to a
// table that answers for them exactly as the whole one and holds nothing
// of the others (issue 18: a bidder's snapshot named every campaign).
func TestEstimatesMarshalCampaigns(t *testing.T) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	smallStream(m, 5, t0, t0+2*86400)
	e := m.Refit(t0 + 2*86400)
	for _, keepID := range []string{"demo-ctv-purchase", "demo-ctv-signup", ""} {
		data, err := e.MarshalCampaigns(func(id string) bool { return id == keepID })
		if err != nil {
			t.Fatal(err)
		}
		d, err := UnmarshalEstimates(data)
		if err != nil {
			t.Fatalf("%q: %v", keepID, err)
		}
		var ids []string
		d.Campaigns(func(id string) bool { ids = append(ids, id); return true })
		if keepID == "" && len(ids) != 0 || keepID != "" && (len(ids) != 1 || ids[0] != keepID) {
			t.Fatalf("%q: campaigns %v", keepID, ids)
		}
		if d.Version() != e.Version() || d.At() != e.At() || d.Quantiles() != e.Quantiles() {
			t.Fatalf("%q: header differs", keepID)
		}
		n := 0
		for _, c := range testCampaigns() {
			var xs, ys []Estimate
			e.Segments(c.ID, -1, func(x Estimate) bool { xs = append(xs, x); return true })
			d.Segments(c.ID, -1, func(x Estimate) bool { ys = append(ys, x); return true })
			if c.ID != keepID {
				if len(ys) != 0 {
					t.Fatalf("%q: %d segments of %s", keepID, len(ys), c.ID)
				}
				for _, x := range xs {
					if _, ok := d.Get(x.Key); ok {
						t.Fatalf("%q: node %s of %s", keepID, e.Name(x.Key, nil), c.ID)
					}
				}
				continue
			}
			if len(xs) != len(ys) || len(xs) == 0 {
				t.Fatalf("%s: %d and %d segments", c.ID, len(xs), len(ys))
			}
			for i := range xs {
				if xs[i] != ys[i] || string(e.Name(xs[i].Key, nil)) != string(d.Name(ys[i].Key, nil)) {
					t.Fatalf("%s: segment %d differs", c.ID, i)
				}
				if p, ok := e.Parent(xs[i].Key); ok {
					if q, _ := d.Parent(ys[i].Key); q != p {
						t.Fatalf("%s: segment %d has parent %x, want %x", c.ID, i, uint64(q), uint64(p))
					}
				}
			}
			n += len(ys)
			path, _ := testPath(c.ID, "pub-2", "Drama", "nowhere")
			x, _ := e.Lookup(path)
			y, _ := d.Lookup(path)
			if x != y || x.Level != 2 {
				t.Fatalf("%s: fallback lookups %+v vs %+v", c.ID, x, y)
			}
		}
		if d.Len() != n {
			t.Fatalf("%q: %d nodes, %d of the campaign", keepID, d.Len(), n)
		}
	}
}

// TestEstimatesMarshalCrossed: a crossed table decodes to one that answers
// every cell, effect and segment alike (MarshalCampaigns of some campaigns
// too, see TestEstimatesMarshalCampaignsCrossed).
func TestEstimatesMarshalCrossed(t *testing.T) {
	m := New(crossedSmall(Config{}), testCampaigns())
	smallStream(m, 5, t0, t0+2*86400)
	e := m.Refit(t0 + 2*86400)
	d, err := UnmarshalEstimates(mustMarshal(t, e))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Crossed() || len(d.Dims()) != 3 || len(d.EffectKeys()) != 4 {
		t.Fatalf("decoded: crossed %v, dims %v, keys %v", d.Crossed(), d.Dims(), d.EffectKeys())
	}
	for _, c := range testCampaigns() {
		root := RootKey(c.ID)
		for _, v := range [][3]string{{"pub-1", "Sports", "501"}, {"pub-4", "News", "602"}, {"pub-9", "Cartoons", "999"}} {
			x, ok1 := e.LookupCell(root, cellOf(v[:]...))
			y, ok2 := d.LookupCell(root, cellOf(v[:]...))
			if !ok1 || !ok2 || x != y {
				t.Fatalf("%s %v: %+v vs %+v", c.ID, v, x, y)
			}
		}
		for _, key := range e.EffectKeys() {
			var xs, ys []Effect
			sx, _ := e.Effects(c.ID, key, func(ef Effect) bool { xs = append(xs, ef); return true })
			sy, _ := d.Effects(c.ID, key, func(ef Effect) bool { ys = append(ys, ef); return true })
			if sx != sy || len(xs) != len(ys) || len(xs) == 0 {
				t.Fatalf("%s %s: strengths %g %g, %d and %d levels", c.ID, key, sx, sy, len(xs), len(ys))
			}
			for i := range xs {
				if string(xs[i].Value) != string(ys[i].Value) || xs[i].Multiplier != ys[i].Multiplier || xs[i].Lo != ys[i].Lo {
					t.Fatalf("%s %s: %+v vs %+v", c.ID, key, xs[i], ys[i])
				}
			}
		}
		var nx, ny int
		e.Segments(c.ID, -1, func(Estimate) bool { nx++; return true })
		d.Segments(c.ID, -1, func(Estimate) bool { ny++; return true })
		if nx != ny || nx < 2 {
			t.Fatalf("%s: %d and %d segments", c.ID, nx, ny)
		}
	}
}

// TestEstimatesGoldenV1 decodes a table of format 1 (written before the
// crossed model): it equals the chain table the current code computes for
// the same stream.
func TestEstimatesGoldenV1(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "estimates-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := UnmarshalEstimates(data)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Config{Structure: StructureChain, MinDelaySamples: 5}, testCampaigns())
	smallStream(m, 3, t0, t0+6*3600)
	e := m.Refit(t0 + 6*3600)
	if d.Crossed() || d.Len() != e.Len() || d.Len() == 0 {
		t.Fatalf("decoded %d entries (crossed %v), want %d", d.Len(), d.Crossed(), e.Len())
	}
	for i := range e.ents {
		k := e.ents[i].key
		x, _ := e.Get(k)
		y, ok := d.Get(k)
		if !ok || x != y {
			t.Fatalf("node %s: %+v vs %+v", e.Name(k, nil), x, y)
		}
	}
}

func FuzzUnmarshalEstimates(f *testing.F) {
	m := New(Config{Structure: StructureChain}, testCampaigns())
	smallStream(m, 6, t0, t0+3600)
	data, err := m.Refresh(t0 + 3600).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	mc := New(crossedSmall(Config{}), testCampaigns())
	smallStream(mc, 6, t0, t0+3600)
	if data, err = mc.Refresh(t0 + 3600).MarshalBinary(); err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	if data, err := os.ReadFile(filepath.Join("testdata", "estimates-v1.bin")); err == nil {
		f.Add(data)
	}
	empty, _ := New(Config{Structure: StructureChain}, nil).Estimates().MarshalBinary()
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := UnmarshalEstimates(data)
		if err != nil && len(data) >= 4 {
			e, err = UnmarshalEstimates(withCRC(data))
		}
		if err != nil {
			return
		}
		for i := range e.ents {
			k := e.ents[i].key
			e.Name(k, nil)
			e.Label(k)
			if _, ok := e.Get(k); !ok {
				t.Fatalf("entry %d not found", i)
			}
		}
		var c Cell
		c.Reset(len(e.Dims()))
		e.Campaigns(func(id string) bool {
			e.Segments(id, -1, func(Estimate) bool { return true })
			e.CampaignCVR(id)
			e.LookupCell(RootKey(id), &c)
			for _, key := range e.EffectKeys() {
				e.Effects(id, key, func(Effect) bool { return true })
			}
			return true
		})
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalEstimates(again); err != nil {
			t.Fatalf("re-encoded table refused: %v", err)
		}
	})
}

// withCRC returns data with its last four bytes replaced by the CRC-32C of
// the rest, as the encoders write it.
func withCRC(data []byte) []byte {
	out := bytes.Clone(data)
	body := out[:len(out)-4]
	binary.LittleEndian.PutUint32(out[len(out)-4:], crc32.Checksum(body, castagnoli))
	return out
}

// TestEstimatesMarshalCampaignsCrossed: the table of one campaign of a
// crossed model (what a bidder limited to it is sent) answers for it
// exactly as the whole table and names nothing of the other.
func TestEstimatesMarshalCampaignsCrossed(t *testing.T) {
	m := New(crossedSmall(Config{}), testCampaigns())
	smallStream(m, 5, t0, t0+2*86400)
	e := m.Refit(t0 + 2*86400)
	keep := testCampaigns()[0].ID
	data, err := e.MarshalCampaigns(func(id string) bool { return id == keep })
	if err != nil {
		t.Fatal(err)
	}
	d, err := UnmarshalEstimates(data)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	d.Campaigns(func(id string) bool { ids = append(ids, id); return true })
	if len(ids) != 1 || ids[0] != keep || !d.Crossed() {
		t.Fatalf("campaigns %v, crossed %v", ids, d.Crossed())
	}
	root := RootKey(keep)
	for _, v := range [][3]string{{"pub-1", "Sports", "501"}, {"pub-4", "News", "602"}, {"pub-9", "Cartoons", "999"}} {
		x, ok1 := e.LookupCell(root, cellOf(v[:]...))
		y, ok2 := d.LookupCell(root, cellOf(v[:]...))
		if !ok1 || !ok2 || x != y {
			t.Fatalf("%v: %+v vs %+v", v, x, y)
		}
	}
	other := testCampaigns()[1].ID
	if _, ok := d.LookupCell(RootKey(other), cellOf("pub-1", "Sports", "501")); ok {
		t.Fatalf("the other campaign %s answers from a table without it", other)
	}
}
