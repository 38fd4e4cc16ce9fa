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

func TestSnapshotRoundTrip(t *testing.T) {
	cfg := Config{MinDelaySamples: 20}
	a := New(cfg, testCampaigns())
	smallStream(a, 1, t0, t0+3*86400)
	a.Refit(t0 + 3*86400)
	snap := snapshotOf(t, a)

	b := New(cfg, testCampaigns())
	res, err := b.ReadSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	if res.Campaigns != 2 || res.Learners != 2 || res.Nodes != a.Estimates().Len() || res.DroppedNodes != 0 {
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
	sameTables(t, ea, eb)
	if ea.Version() != eb.Version() {
		t.Fatalf("versions %d and %d", ea.Version(), eb.Version())
	}
	for _, c := range testCampaigns() {
		sa, _ := a.CampaignStats(c.ID)
		sb, _ := b.CampaignStats(c.ID)
		if sa.Exposures != sb.Exposures || sa.Spend != sb.Spend || sa.Conversions != sb.Conversions ||
			sa.Unattributed != sb.Unattributed || sa.DelayP50 != sb.DelayP50 || sa.Strengths[2] != sb.Strengths[2] {
			t.Fatalf("campaign stats differ:\n%+v\n%+v", sa, sb)
		}
	}
}

func TestSnapshotConfigChanged(t *testing.T) {
	a := New(Config{}, testCampaigns())
	smallStream(a, 1, t0, t0+86400)
	snap := snapshotOf(t, a)
	cs := testCampaigns()[:1]
	cs[0].Window = 24 * time.Hour
	b := New(Config{Shards: 8}, cs)
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

func TestSnapshotCorrupt(t *testing.T) {
	a := New(Config{}, testCampaigns())
	smallStream(a, 1, t0, t0+86400)
	a.Refresh(t0 + 86400)
	snap := snapshotOf(t, a)
	b := New(Config{}, testCampaigns())
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

// TestSnapshotGolden reads a snapshot written by an earlier build, so that a
// format change cannot go unnoticed (regenerate with UPDATE_GOLDEN=1 only
// together with a format version bump).
func TestSnapshotGolden(t *testing.T) {
	path := filepath.Join("testdata", "model-v1.snap")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		m := New(Config{MinDelaySamples: 5}, testCampaigns())
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
	m := New(Config{MinDelaySamples: 5}, testCampaigns())
	if _, err := m.ReadSnapshot(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	root, ok := m.Estimates().Campaign("demo-ctv-purchase")
	if !ok || root.Exposures == 0 || root.Conversions == 0 {
		t.Fatalf("golden root %+v", root)
	}
	if !bytes.Equal(snapshotOf(t, m), data) {
		t.Fatal("rewriting the golden snapshot changes it")
	}
}

func FuzzReadSnapshot(f *testing.F) {
	m := New(Config{MinDelaySamples: 5}, testCampaigns())
	smallStream(m, 4, t0, t0+3600)
	m.Refit(t0 + 3600)
	f.Add(snapshotOf(f, m))
	if data, err := os.ReadFile(filepath.Join("testdata", "model-v1.snap")); err == nil {
		f.Add(data)
	}
	// One model for every input: ReadSnapshot replaces all of its state or
	// none (and New costs milliseconds, which would starve the fuzzer).
	m = New(Config{Shards: 4}, testCampaigns())
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
	m := New(Config{}, testCampaigns())
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
	m := New(Config{}, testCampaigns())
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

func FuzzUnmarshalEstimates(f *testing.F) {
	m := New(Config{}, testCampaigns())
	smallStream(m, 6, t0, t0+3600)
	data, err := m.Refresh(t0 + 3600).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	empty, _ := New(Config{}, nil).Estimates().MarshalBinary()
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
		e.Campaigns(func(id string) bool {
			e.Segments(id, -1, func(Estimate) bool { return true })
			e.CampaignCVR(id)
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
