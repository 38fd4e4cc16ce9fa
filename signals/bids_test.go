package signals

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/binenc"
)

// podRequest extracts the Roku pod fixture (three imps sharing the
// request's features) and marks its last imp as server-stitched.
func podRequest(t *testing.T) (*Request, []ID) {
	t.Helper()
	req, err := NewExtractor().Extract(fixture(t, "roku-ctv-pod-gpp.json"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Imps) < 2 {
		t.Fatalf("%d imps, want a pod", len(req.Imps))
	}
	req.Imps[len(req.Imps)-1].SetFeature(FeatureSSAI, []byte("3"))
	ids := req.IDs(NewHasher([]byte("s")), nil)
	if !slices.ContainsFunc(ids, func(id ID) bool { return id.Kind == IDIP }) || len(ids) < 3 {
		t.Fatalf("ids %v: want an IP and others", ids)
	}
	return req, ids
}

func TestRememberedRecord(t *testing.T) {
	req, ids := podRequest(t)
	rec := remembered(appendRemembered(nil, req.ID, "demo-bidder", 1234, true, ids, req.Imps))
	if rec.ts() != 1234 || !rec.indexed() || !rec.valid() {
		t.Fatalf("ts %d, indexed %v, valid %v", rec.ts(), rec.indexed(), rec.valid())
	}
	var d binenc.Slice
	key, bidder, gotIDs, n := rec.head(&d, nil)
	if string(key) != string(req.ID) || string(bidder) != "demo-bidder" || !slices.Equal(gotIDs, ids) || n != len(req.Imps) {
		t.Fatalf("head: %q %q %v %d", key, bidder, gotIDs, n)
	}
	for i := range req.Imps {
		want := &req.Imps[i]
		var imp Imp
		got, ok := rec.find(want.ID, &imp)
		if !ok {
			t.Fatalf("imp %q not found", want.ID)
		}
		for f := range NumFeatures {
			if !bytes.Equal(imp.Feature(f), want.Feature(f)) {
				t.Errorf("imp %q %s: %q, want %q", want.ID, f, imp.Feature(f), want.Feature(f))
			}
		}
		wantIDs := ids
		if i == len(req.Imps)-1 { // server-stitched: the IP is the stitcher's
			wantIDs = slices.DeleteFunc(slices.Clone(ids), func(id ID) bool { return id.Kind == IDIP })
		}
		if !slices.Equal(got, wantIDs) {
			t.Errorf("imp %q ids %v, want %v", want.ID, got, wantIDs)
		}
	}
	if _, ok := rec.find([]byte("no-such-imp"), new(Imp)); ok {
		t.Error("an unknown imp was found")
	}
	// The pod's imps share the request's features: stored once.
	one := appendRemembered(nil, req.ID, "demo-bidder", 1234, true, ids, req.Imps[:1])
	if extra := len(rec) - len(one); extra > len(req.Imps[1:])*(int(NumFeatures)+16) {
		t.Errorf("each further imp of the pod adds %d bytes", extra/len(req.Imps[1:]))
	}
	// Every truncation and any trailing byte is refused.
	for i := range rec {
		if rec[:i].valid() {
			t.Fatalf("record truncated to %d bytes is valid", i)
		}
	}
	if remembered(append(slices.Clone(rec), 0)).valid() {
		t.Fatal("record with a trailing byte is valid")
	}
}

// FuzzRememberedRecord: decoding any bytes as a record never panics, and a
// record that decodes finds each of its imps.
func FuzzRememberedRecord(f *testing.F) {
	var imps [2]Imp
	imps[0].ID, imps[1].ID = []byte("1"), []byte("2")
	imps[0].SetFeature(FeaturePublisher, []byte("p"))
	imps[1].SetFeature(FeaturePublisher, []byte("p"))
	imps[1].SetFeature(FeatureSSAI, []byte("3"))
	f.Add(appendRemembered(nil, []byte("a"), "b", 7, true, []ID{{IDIP, 1}, {IDIFA, 2}}, imps[:]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := remembered(b)
		if !r.valid() {
			r.find([]byte("1"), new(Imp))
			return
		}
		var d binenc.Slice
		_, _, _, n := r.head(&d, nil)
		var imp Imp
		for i := 0; i < n; i++ {
			nextImp(&d, &imp, i == 0, r.features())
			var got Imp
			if _, ok := r.find(imp.ID, &got); !ok {
				t.Fatalf("imp %q of a valid record not found", imp.ID)
			}
		}
	})
}

// TestExposuresReadsSnapshot2: a snapshot written before remembered bids
// became single records ("exposures2") still restores them.
// TestRememberedRecordV1 reads a record written before the CTV features
// (flags bit 1 clear, numFeaturesV1 features per imp), as older snapshots
// hold them: its features read back, the newer ones Unknown.
func TestRememberedRecordV1(t *testing.T) {
	req, ids := podRequest(t)
	rec := appendRemembered(nil, req.ID, "demo-bidder", 1234, true, ids, req.Imps)
	// Rewrite it in the old layout: the same head, the first numFeaturesV1
	// features of each imp.
	var d binenc.Slice
	_, _, _, n := remembered(rec).head(&d, nil)
	old := append([]byte(nil), rec[:len(rec)-d.Len()]...)
	old[8] &^= 2
	for i := range n {
		imp := &req.Imps[i]
		old = binary.AppendUvarint(old, uint64(len(imp.ID)))
		old = append(old, imp.ID...)
		for f := range FeatureID(numFeaturesV1) {
			v := knownFeature(imp, f)
			old = binary.AppendUvarint(old, uint64(len(v))+1)
			old = append(old, v...)
		}
	}
	r := remembered(old)
	if !r.valid() || r.features() != numFeaturesV1 {
		t.Fatalf("old record: valid %v, %d features", r.valid(), r.features())
	}
	for i := range req.Imps {
		want := &req.Imps[i]
		var imp Imp
		if _, ok := r.find(want.ID, &imp); !ok {
			t.Fatalf("imp %q not found", want.ID)
		}
		for f := range NumFeatures {
			w := want.Feature(f)
			if int(f) >= numFeaturesV1 {
				w = []byte(Unknown)
			}
			if !bytes.Equal(imp.Feature(f), w) {
				t.Errorf("imp %q %s: %q, want %q", want.ID, f, imp.Feature(f), w)
			}
		}
	}
}

func TestExposuresReadsSnapshot2(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, ids := podRequest(t)
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	w.Tag("exposures2")
	h.x.seen.WriteSnapshot(w, nil)
	w.Uvarint(1)
	// The old layout: key, ts, bidder, flags, one arena of imp ids and
	// features with offsets per imp, a server-stitched flag, identities.
	w.String(string(req.ID))
	w.Varint(h.x.now().Unix())
	w.String("demo-bidder")
	w.Byte(1)
	var arena []byte
	type offs struct {
		id  [2]int
		off [numFeaturesV1 + 1]int // the features of the time
	}
	var os []offs
	for i := range req.Imps {
		imp, o := &req.Imps[i], offs{}
		o.id[0] = len(arena)
		arena = append(arena, imp.ID...)
		o.id[1] = len(arena)
		for f := range FeatureID(numFeaturesV1) {
			o.off[f] = len(arena)
			arena = append(arena, imp.feat[f]...)
		}
		o.off[numFeaturesV1] = len(arena)
		os = append(os, o)
	}
	w.Bytes(arena)
	w.Uvarint(uint64(len(os)))
	for i, o := range os {
		w.Uvarint(uint64(o.id[0]))
		w.Uvarint(uint64(o.id[1]))
		for _, v := range o.off {
			w.Uvarint(uint64(v))
		}
		w.Byte(byte(i / (len(os) - 1))) // the last imp is server-stitched
	}
	w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		w.Byte(byte(id.Kind))
		w.U64(id.Key)
	}
	w.Uvarint(0) // won exposures
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := h.x.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/win?auction=" + string(req.ID) + "&imp=" + string(req.Imps[0].ID) + "&campaign=demo-ctv-signup&price=5")
	if err := h.x.HandleWin(&ctx); err != nil || h.c.exposures != 1 {
		t.Fatalf("win after an exposures2 snapshot: %v, %d exposures", err, h.c.exposures)
	}
}

// TestExposuresReadsSnapshot3: a snapshot of the ristretto bid memory
// ("exposures3": records in no order) still restores its bids, in time
// order (an auction remembered twice gives the newer), without the ones
// bid_ttl old.
func TestExposuresReadsSnapshot3(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, ids := podRequest(t)
	now := h.now.Unix()
	ttl := int64(h.x.cfg.BidTTL / time.Second)
	rec := func(auction, imp string, ts int64) []byte {
		imps := slices.Clone(req.Imps)
		imps[0].ID = []byte(imp)
		return appendRemembered(nil, []byte(auction), "demo-bidder", ts, true, ids, imps)
	}
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	w.Tag("exposures3")
	h.x.seen.WriteSnapshot(w, nil)
	recs := [][]byte{
		rec("a", "newer", now-60), rec("b", "1", now-ttl), rec("a", "older", now-120),
		rec("c", "1", now-ttl+1), rec("a", "oldest", now-ttl+5),
	}
	w.Uvarint(uint64(len(recs)))
	for _, r := range recs {
		w.Bytes(r)
	}
	w.Uvarint(0) // won exposures
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := h.x.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	if r, ok := h.x.lookupBid([]byte("a"), "demo-bidder"); !ok {
		t.Error("a: not restored")
	} else if _, ok := r.find([]byte("newer"), new(Imp)); !ok {
		t.Error("a: an older request restored over the newer")
	}
	if _, ok := h.x.lookupBid([]byte("b"), "demo-bidder"); ok {
		t.Error("b, bid_ttl old, restored")
	}
	if _, ok := h.x.lookupBid([]byte("c"), "demo-bidder"); !ok {
		t.Error("c, a second short of bid_ttl, not restored")
	}
}

// TestRememberedBidFoundAtOnce: a bid is found from the moment Remember
// returns; concurrent remembering, lookups and snapshots agree while the
// generations turn over (run with -race).
func TestRememberedBidFoundAtOnce(t *testing.T) {
	// 768 KiB for the bids, 48 KiB a generation: the 1200 bids fill about
	// ten generations and none is evicted.
	h := openHarnessWith(t, t.TempDir(), ExposureConfig{BidMemoryBytes: 1 << 20})
	req, _ := podRequest(t)
	var wg sync.WaitGroup
	done := make(chan struct{})
	snapshots := 0
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, r := range h.x.bids.live(h.x.now().Unix()) {
				if !r.valid() {
					t.Error("a snapshot's bid does not decode")
					return
				}
			}
			snapshots++
		}
	})
	var remembering sync.WaitGroup
	for g := range 4 {
		v := req.View() // IDs writes a Request's scratch buffer
		r := &v
		remembering.Go(func() {
			for i := range 300 {
				id := fmt.Appendf(nil, "auction-%d-%d", g, i)
				r.ID = id
				h.x.Remember(r, "demo-bidder", h.x.now().Unix())
				rec, ok := h.x.lookupBid(id, "demo-bidder")
				if !ok {
					t.Errorf("bid %s not found right after Remember", id)
					return
				}
				if key := rec.key(); string(key) != string(id) {
					t.Errorf("lookup of %s found %s", id, key)
					return
				}
				// An older bid, likely in an older generation.
				old := fmt.Appendf(nil, "auction-%d-%d", g, i/2)
				if rec, ok := h.x.lookupBid(old, "demo-bidder"); !ok || string(rec.key()) != string(old) {
					t.Errorf("older bid %s not found", old)
					return
				}
			}
		})
	}
	remembering.Wait()
	close(done)
	wg.Wait()
	for g := range 4 {
		for i := range 300 {
			if _, ok := h.x.lookupBid(fmt.Appendf(nil, "auction-%d-%d", g, i), "demo-bidder"); !ok {
				t.Fatalf("auction-%d-%d not found at the end", g, i)
			}
		}
	}
	if live := h.x.bids.live(h.x.now().Unix()); len(live) != 1200 {
		t.Fatalf("%d bids in a snapshot, want 1200", len(live))
	}
	h.x.bids.mu.Lock()
	gens := len(h.x.bids.gens)
	h.x.bids.mu.Unlock()
	t.Logf("%d generations, %d snapshots taken meanwhile", gens, snapshots)
	if gens < 4 {
		t.Fatalf("%d generations: the test did not turn them over", gens)
	}
}

// TestRememberedTwice: an auction remembered twice (a retry with other
// imps) gives the newer request, whether both are in one generation or in
// two, also after a snapshot (which keeps the newest of each generation).
func TestRememberedTwice(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, _ := podRequest(t)
	req.ID = []byte("twice")
	remember := func(imp string) {
		req.Imps[0].ID = []byte(imp)
		h.x.Remember(req, "demo-bidder", h.x.now().Unix())
	}
	check := func(when, newer, older string) {
		t.Helper()
		rec, ok := h.x.lookupBid([]byte("twice"), "demo-bidder")
		if !ok {
			t.Fatalf("%s: not found", when)
		}
		if _, ok := rec.find([]byte(newer), new(Imp)); !ok {
			t.Errorf("%s: the older request was kept", when)
		}
		if _, ok := rec.find([]byte(older), new(Imp)); ok {
			t.Errorf("%s: the older imp is still found", when)
		}
	}
	remember("first")
	remember("retried")
	check("one generation", "retried", "first")
	h.now = h.now.Add(h.x.cfg.BidTTL / 2) // a generation later
	remember("again")
	check("two generations", "again", "retried")
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	h.x.WriteSnapshot(w, math.MaxUint64)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h2 := openHarness(t, t.TempDir())
	h2.now = h.now
	if err := h2.x.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	h = h2
	check("after a snapshot", "again", "retried")
	if live := h2.x.bids.live(h2.now.Unix()); len(live) != 2 {
		t.Errorf("%d bids restored, want 2 (the newest of each generation)", len(live))
	}
}

// TestRememberTooLarge: a request whose record would pass maxRemembered is
// not remembered (a snapshot could not read it back), and is counted.
func TestRememberTooLarge(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, _ := podRequest(t)
	req.ID = []byte("huge")
	imp := req.Imps[0]
	req.Imps = make([]Imp, maxRemembered/32)
	for i := range req.Imps {
		req.Imps[i] = imp
		req.Imps[i].ID = fmt.Appendf(nil, "imp-%08d", i)
	}
	before := bidsTooLarge.Get()
	h.x.Remember(req, "demo-bidder", h.x.now().Unix())
	if _, ok := h.x.lookupBid([]byte("huge"), "demo-bidder"); ok {
		t.Error("a request over maxRemembered was remembered")
	}
	if bidsTooLarge.Get() != before+1 {
		t.Errorf("not counted: %d -> %d", before, bidsTooLarge.Get())
	}
	// The snapshot of what is remembered reads back.
	req.Imps = req.Imps[:3]
	req.ID = []byte("small")
	h.x.Remember(req, "demo-bidder", h.x.now().Unix())
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	h.x.WriteSnapshot(w, math.MaxUint64)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h2 := openHarness(t, t.TempDir())
	if err := h2.x.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	if _, ok := h2.x.lookupBid([]byte("small"), "demo-bidder"); !ok {
		t.Error("the small request did not survive the snapshot")
	}
}

// TestBidMemoryKeepsNewestBids: a bid memory filled six times over with
// bids in time order, all younger than bid_ttl, keeps the newest ones and
// drops the oldest first: every bid newer than the oldest one kept is
// found (the newest tenth among them), the ones kept fill most of the
// memory's budget, and the bids pushed out early are counted and logged
// with the memory that would keep them.
func TestBidMemoryKeepsNewestBids(t *testing.T) {
	const budget = 4 << 20 // BidMemoryBytes: 3 MiB for the bids
	var logged bytes.Buffer
	h := openHarnessWith(t, t.TempDir(), ExposureConfig{BidTTL: 15 * time.Minute, BidMemoryBytes: budget,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	req, _ := podRequest(t)
	recBytes := len(appendRemembered(nil, []byte("auction-000000"), "demo-bidder", 0, true, req.IDs(h.x.hasher, nil), req.Imps))
	capacity := budget * 3 / 4 / recBytes // bids the budget holds at their bare size
	n := 6 * capacity
	start := h.now
	auction := func(i int) []byte { return fmt.Appendf(nil, "auction-%06d", i) }
	evicted := bidsEvictedEarly.Get()
	for i := range n {
		// n bids over 10 minutes: all younger than bid_ttl at the end.
		h.now = start.Add(time.Duration(i) * 10 * time.Minute / time.Duration(n))
		req.ID = auction(i)
		h.x.Remember(req, "demo-bidder", h.now.Unix())
	}
	found := make([]bool, n)
	oldest := n
	for i := range n {
		if _, found[i] = h.x.lookupBid(auction(i), "demo-bidder"); found[i] {
			oldest = min(oldest, i)
		}
	}
	missing := 0
	for i := oldest; i < n; i++ {
		if !found[i] {
			missing++
		}
	}
	newestTenth := 0
	for i := n - n/10; i < n; i++ {
		if !found[i] {
			newestTenth++
		}
	}
	kept := n - oldest
	t.Logf("%d bids of %d bytes, budget for %d at their bare size: %d kept (the newest since bid %d), %d of them missing, %d missing in the newest tenth",
		n, recBytes, capacity, kept-missing, oldest, missing, newestTenth)
	if newestTenth > 0 || missing > 0 {
		t.Fatalf("not oldest first: %d bids newer than the oldest kept are gone, %d of the newest tenth (%d)", missing, newestTenth, n/10)
	}
	if kept < capacity*3/4 {
		t.Fatalf("%d bids kept, want at least three quarters of the %d the budget holds", kept, capacity)
	}
	if got := int(bidsEvictedEarly.Get() - evicted); got != n-kept {
		t.Errorf("cpafeed_bids_evicted_early_total rose by %d, want %d", got, n-kept)
	}
	// Logged at the first eviction, then at most once a minute: the
	// bids of 10 minutes filled the memory in under 2.
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) < 2 || len(lines) > 10 || !strings.Contains(lines[0], "before bid_ttl") {
		t.Fatalf("%d log lines:\n%s", len(lines), logged.String())
	}
	// What it asks for keeps the bids of bid_ttl at their rate (~105/s)
	// and size, with the won exposures' quarter.
	var need int64
	for _, f := range strings.Fields(lines[len(lines)-1]) {
		if v, ok := strings.CutPrefix(f, "bid_memory_bytes_needed="); ok {
			need, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	rate := float64(n) / 600
	if want := rate * 900 * float64(recBytes) * 4 / 3; float64(need) < want || float64(need) > 1.5*want {
		t.Errorf("bid_memory_bytes_needed=%d, want %.0f to %.0f (%s)", need, want, 1.5*want, lines[len(lines)-1])
	}
}

// TestBidMemoryExpiresAtTTL: with room to spare, every bid younger than
// bid_ttl is found and none older, and the memory of expired bids is given
// back whole generations at a time.
func TestBidMemoryExpiresAtTTL(t *testing.T) {
	h := openHarnessWith(t, t.TempDir(), ExposureConfig{BidTTL: 10 * time.Minute})
	req, _ := podRequest(t)
	start := h.now
	auction := func(i int) []byte { return fmt.Appendf(nil, "auction-%06d", i) }
	const n, perSecond = 12000, 10 // 20 minutes of bids
	expired := bidsExpired.Get()
	for i := range n {
		h.now = start.Add(time.Duration(i) * time.Second / perSecond)
		req.ID = auction(i)
		h.x.Remember(req, "demo-bidder", h.now.Unix())
	}
	early := 0
	for i := range n {
		age := h.now.Unix() - (start.Unix() + int64(i/perSecond))
		_, ok := h.x.lookupBid(auction(i), "demo-bidder")
		if want := age < 600; ok != want {
			early++
			if early < 5 {
				t.Errorf("bid %d, %d s old: found %v, want %v", i, age, ok, want)
			}
		}
	}
	if early > 0 {
		t.Fatalf("%d bids found or missed against bid_ttl", early)
	}
	// The generations older than bid_ttl are gone: what is held is about
	// bid_ttl of bids, and the expired ones were counted.
	m := h.x.bids
	m.mu.Lock()
	held, gens := m.n, len(m.gens)
	m.mu.Unlock()
	if held < 600*perSecond || held > 600*perSecond*(bidGenerations+1)/bidGenerations {
		t.Errorf("%d bids held in %d generations, want bid_ttl's %d and at most a generation more", held, gens, 600*perSecond)
	}
	if got := int(bidsExpired.Get() - expired); got != n-held {
		t.Errorf("cpafeed_bids_expired_total rose by %d, want %d", got, n-held)
	}
	if gens > bidGenerations+1 {
		t.Errorf("%d generations for bid_ttl, want at most %d", gens, bidGenerations+1)
	}
}

// TestBidMemoryBoundsHeap fills the bid memory three times over and checks
// that the heap it holds stays within its budget (the map entries and the
// chunks' spare room are counted), and that it is given back at close.
func TestBidMemoryBoundsHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("memory accounting under -short is skipped")
	}
	const budget = 16 << 20
	h := openHarnessWith(t, t.TempDir(), ExposureConfig{BidMemoryBytes: budget, Logger: slog.New(slog.DiscardHandler)})
	req, _ := podRequest(t)
	req.ID = []byte("auction-0000000000")
	base := heapAlloc()
	worst := uint64(0)
	for i := 1; i <= 3*budget*3/4/300; i++ {
		for k, v := len(req.ID)-1, i; v > 0; k, v = k-1, v/10 {
			req.ID[k] = byte('0' + v%10)
		}
		h.x.Remember(req, "demo-bidder", h.now.Unix())
		if i%10000 == 0 {
			worst = max(worst, heapAlloc()-base)
		}
	}
	h.x.bids.mu.Lock()
	kept, acct := h.x.bids.n, h.x.bids.bytes
	h.x.bids.mu.Unlock()
	t.Logf("%d bids kept, %d bytes counted, at most %d bytes of heap held (budget %d for the bids)", kept, acct, worst, budget*3/4)
	if worst > budget*3/4*21/20 {
		t.Fatalf("the bid memory held %d bytes of heap, over its budget of %d", worst, budget*3/4)
	}
	h.x.Close()
	if left := int64(heapAlloc()) - int64(base); left > 2<<20 {
		t.Fatalf("%d bytes still held after close", left)
	}
}

// heapAlloc is the heap in use after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestRememberAllocs: remembering a request allocates nothing in steady
// state (the record is copied into the memory's chunks).
func TestRememberAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	h := openHarness(t, t.TempDir())
	req, _ := podRequest(t)
	req.ID = []byte("auction-0000000000")
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		i++
		for k, v := len(req.ID)-1, i; v > 0; k, v = k-1, v/10 {
			req.ID[k] = byte('0' + v%10)
		}
		h.x.Remember(req, "demo-bidder", h.now.Unix())
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per remembered request", allocs)
	}
}

// TestRememberKeepsNoIdentityOfGatedRequests: a request that fails the
// privacy gates (here a US privacy opt-out) is remembered for its win, but
// without its identities: its exposure never enters the index, so not even
// their keyed hashes are kept, in memory or in a snapshot. Before, they were.
func TestRememberKeepsNoIdentityOfGatedRequests(t *testing.T) {
	h := openHarness(t, t.TempDir())
	for _, fx := range []struct {
		name    string
		indexed bool
	}{{"samsung-tizen-ctv-usp-optout.json", false}, {"roku-ctv-pod-gpp.json", true}} {
		req, err := NewExtractor().Extract(fixture(t, fx.name), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if h.x.Remember(req, "demo-bidder", h.now.Unix()) == 0 {
			t.Fatalf("%s: not remembered", fx.name)
		}
		rec, ok := h.x.lookupBid(req.ID, "demo-bidder")
		if !ok {
			t.Fatalf("%s: not found", fx.name)
		}
		var d binenc.Slice
		_, _, ids, _ := rec.head(&d, nil)
		if rec.indexed() != fx.indexed || (len(ids) > 0) != fx.indexed {
			t.Fatalf("%s: indexed %v with %d identities kept, want indexed %v", fx.name, rec.indexed(), len(ids), fx.indexed)
		}
	}
}
