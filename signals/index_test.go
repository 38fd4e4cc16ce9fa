package signals

import (
	"bytes"
	"sync"
	"testing"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

func collect(x *Index, key uint64, since, until int64) []int64 {
	var ts []int64
	x.Visit(key, since, until, func(_ uint64, e IndexedExposure) bool {
		ts = append(ts, e.TS)
		return true
	})
	return ts
}

func eq(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIndexVisitNewestFirstWithinRange(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 100})
	ifa, ip := ID{IDIFA, 11}, ID{IDIP, 22}
	x.Add(IndexedExposure{TS: 1000, Leaf: 1}, []ID{ifa, ip})
	x.Add(IndexedExposure{TS: 2000, Leaf: 2}, []ID{ip})
	x.Add(IndexedExposure{TS: 3000, Leaf: 3}, []ID{ifa})
	f := func(key uint64, since, until int64, want ...int64) {
		t.Helper()
		if got := collect(x, key, since, until); !eq(got, want) {
			t.Fatalf("Visit(%d, %d, %d) = %v, want %v", key, since, until, got, want)
		}
	}
	f(11, 0, 5000, 3000, 1000)
	f(22, 0, 5000, 2000, 1000)
	f(22, 1500, 5000, 2000)
	f(11, 0, 2999, 1000)
	f(33, 0, 5000)
}

func TestIndexVisitStopsWhenAsked(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 10})
	for i := range 5 {
		x.Add(IndexedExposure{TS: int64(i)}, []ID{{IDIP, 7}})
	}
	n := 0
	x.Visit(7, 0, 100, func(uint64, IndexedExposure) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("visited %d", n)
	}
}

func TestIndexEvictsOldestWhenFull(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 4})
	for i := 1; i <= 10; i++ {
		x.Add(IndexedExposure{TS: int64(i)}, []ID{{IDIP, 1}, {IDIFA, uint64(100 + i)}})
	}
	if got := collect(x, 1, 0, 100); !eq(got, []int64{10, 9, 8, 7}) {
		t.Fatalf("after wrap: %v", got)
	}
	if got := collect(x, 101, 0, 100); len(got) != 0 {
		t.Fatalf("evicted exposure still found: %v", got)
	}
	if got := collect(x, 108, 0, 100); !eq(got, []int64{8}) {
		t.Fatalf("live exposure lost: %v", got)
	}
	if st := x.Stats(); st.Exposures != 4 {
		t.Fatalf("stats %+v", st)
	}
	// Sweep drops the keys whose exposures are all gone.
	if n := x.Sweep(10); n != 6 {
		t.Fatalf("swept %d keys, want 6", n)
	}
}

func TestIndexPostingRingWrap(t *testing.T) {
	// Many identities per exposure make postings wrap before exposures do.
	x := NewIndex(IndexConfig{MaxExposures: 3, MaxIDsPerExposure: 6})
	for i := 1; i <= 20; i++ {
		ids := []ID{{IDIP, 1}}
		for j := range 5 {
			ids = append(ids, ID{IDEID, uint64(1000*i + j)})
		}
		x.Add(IndexedExposure{TS: int64(i)}, ids)
	}
	got := collect(x, 1, 0, 100)
	if len(got) == 0 || got[0] != 20 {
		t.Fatalf("newest exposure not found: %v", got)
	}
	for _, ts := range got {
		if ts < 18 {
			t.Fatalf("evicted exposure %d found: %v", ts, got)
		}
	}
}

func TestIndexDeleteHidesExposureFromEveryKey(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 10})
	x.Add(IndexedExposure{TS: 1}, []ID{{IDIFA, 5}, {IDIP, 6}})
	x.Add(IndexedExposure{TS: 2}, []ID{{IDIP, 6}})
	if n := x.Delete([]uint64{5}, nil); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if got := collect(x, 6, 0, 10); !eq(got, []int64{2}) {
		t.Fatalf("deleted exposure reachable through the IP: %v", got)
	}
	if got := collect(x, 5, 0, 10); len(got) != 0 {
		t.Fatalf("deleted key still found: %v", got)
	}
}

func TestIndexSweepByAge(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 10})
	x.Add(IndexedExposure{TS: 100}, []ID{{IDIP, 1}})
	x.Add(IndexedExposure{TS: 100 + 7*86400}, []ID{{IDIP, 2}})
	if n := x.Sweep(100 + 7*86400 + 1); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if x.Stats().Identities != 1 {
		t.Fatal("young key swept")
	}
}

func TestIndexConcurrent(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 1000})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				key := uint64(i%50 + 1)
				if w%2 == 0 {
					x.Add(IndexedExposure{TS: int64(i), Leaf: model.Key(i)}, []ID{{IDIP, key}})
				} else {
					x.Visit(key, 0, 1<<40, func(uint64, IndexedExposure) bool { return true })
				}
				if i%500 == 0 {
					x.Sweep(int64(i))
				}
			}
		}()
	}
	wg.Wait()
}

func TestIndexDeleteScopedToCampaigns(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 10})
	x.Add(IndexedExposure{TS: 1, Campaign: 0}, []ID{{IDIP, 6}})
	x.Add(IndexedExposure{TS: 2, Campaign: 1}, []ID{{IDIP, 6}})
	if n := x.Delete([]uint64{6}, func(c uint16) bool { return c == 0 }); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if got := collect(x, 6, 0, 10); !eq(got, []int64{2}) {
		t.Fatalf("another advertiser's exposure lost or the deleted one kept: %v", got)
	}
}

func TestIndexSnapshotRoundTrip(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 5})
	for i := 1; i <= 8; i++ { // wraps the ring
		x.Add(IndexedExposure{TS: int64(i), Leaf: model.Key(i), Cost: 0.5, Campaign: uint16(i % 2)}, []ID{{IDIP, 1}, {IDIFA, uint64(10 + i)}})
	}
	x.Delete([]uint64{17}, nil) // exposure 7
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	x.WriteSnapshot(w, []string{"a", "b"})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	y := NewIndex(IndexConfig{MaxExposures: 1000}) // the snapshot's capacity wins
	if err := y.ReadSnapshot(binenc.NewReader(&buf), sameNumbers("a", "b")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []uint64{1, 14, 17, 18} {
		if a, b := collect(x, key, 0, 100), collect(y, key, 0, 100); !eq(a, b) {
			t.Fatalf("key %d: %v before, %v after", key, a, b)
		}
	}
	// Both go on identically.
	x.Add(IndexedExposure{TS: 9}, []ID{{IDIP, 1}})
	y.Add(IndexedExposure{TS: 9}, []ID{{IDIP, 1}})
	if a, b := collect(x, 1, 0, 100), collect(y, 1, 0, 100); !eq(a, b) || !eq(a, []int64{9, 8, 6, 5}) {
		t.Fatalf("after restore: %v vs %v", a, b)
	}
}

// sameNumbers numbers campaigns in the order given.
func sameNumbers(ids ...string) func(string) (uint16, bool) {
	return func(id string) (uint16, bool) {
		for i, v := range ids {
			if v == id {
				return uint16(i), true
			}
		}
		return 0, false
	}
}

// TestIndexSnapshotRenumbersCampaigns: exposures carry their campaign as
// its position in the config. A restart from a snapshot after the campaigns
// were reordered, one inserted and one removed, must renumber them by id:
// before, an exposure of campaign "buy" (number 0) became one of whatever
// campaign was now first, possibly another advertiser's, and its
// conversions credited that campaign.
func TestIndexSnapshotRenumbersCampaigns(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 10})
	x.Add(IndexedExposure{TS: 1, Leaf: 1, Campaign: 0}, []ID{{IDIP, 1}}) // buy
	x.Add(IndexedExposure{TS: 2, Leaf: 2, Campaign: 1}, []ID{{IDIP, 1}}) // signup
	x.Add(IndexedExposure{TS: 3, Leaf: 3, Campaign: 2}, []ID{{IDIP, 1}}) // gone
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	x.WriteSnapshot(w, []string{"buy", "signup", "gone"})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	y := NewIndex(IndexConfig{MaxExposures: 10})
	if err := y.ReadSnapshot(binenc.NewReader(&buf), sameNumbers("other-tenant", "signup", "buy")); err != nil {
		t.Fatal(err)
	}
	got := map[int64]uint16{}
	y.Visit(1, 0, 100, func(_ uint64, e IndexedExposure) bool { got[e.TS] = e.Campaign; return true })
	if len(got) != 2 || got[1] != 2 || got[2] != 1 {
		t.Fatalf("exposures after the restart: %v, want ts 1 -> 2 (buy), ts 2 -> 1 (signup), ts 3 gone", got)
	}
}

// TestIndexSnapshotKeepsGhostAndGroup checks that the index3 section keeps
// an exposure's ghost mark and lift group, and that Add keeps the mark.
func TestIndexSnapshotKeepsGhostAndGroup(t *testing.T) {
	x := NewIndex(IndexConfig{MaxExposures: 10})
	g := IndexedExposure{TS: 1, Leaf: 5, Campaign: 1, Group: 7}
	g.SetGhost(true)
	x.Add(g, []ID{{IDIP, 1}})
	x.Add(IndexedExposure{TS: 2, Leaf: 6, Campaign: 1, Group: 200}, []ID{{IDIP, 1}})
	if x.Last() != 2 {
		t.Fatalf("Last %d", x.Last())
	}
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	x.WriteSnapshot(w, []string{"a", "b"})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	y := NewIndex(IndexConfig{MaxExposures: 10})
	if err := y.ReadSnapshot(binenc.NewReader(&buf), sameNumbers("a", "b")); err != nil {
		t.Fatal(err)
	}
	var got []IndexedExposure
	y.Visit(1, 0, 10, func(_ uint64, e IndexedExposure) bool { got = append(got, e); return true })
	if len(got) != 2 || got[0].Ghost() || got[0].Group != 200 || !got[1].Ghost() || got[1].Group != 7 || got[1].Campaign != 1 {
		t.Fatalf("after restore: %+v", got)
	}
}
