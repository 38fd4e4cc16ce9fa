package signals

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"

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
	h.x.seen.WriteSnapshot(w)
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

// TestRememberedBidFoundAtOnce: a bid is found from the moment Remember
// returns, while it waits for the cache, while the cache applies it and
// after; concurrent remembering and lookups agree (run with -race).
func TestRememberedBidFoundAtOnce(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, _ := podRequest(t)
	var wg sync.WaitGroup
	for g := range 4 {
		v := req.View() // IDs writes a Request's scratch buffer
		r := &v
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				id := fmt.Appendf(nil, "auction-%d-%d", g, i)
				r.ID = id
				h.x.Remember(r, "demo-bidder", h.x.now().Unix())
				rec, ok := h.x.lookupBid(id)
				if !ok {
					t.Errorf("bid %s not found right after Remember", id)
					return
				}
				if key := rec.key(); string(key) != string(id) {
					t.Errorf("lookup of %s found %s", id, key)
					return
				}
				// An older bid: likely in the batch being flushed or just
				// applied to the cache.
				old := fmt.Appendf(nil, "auction-%d-%d", g, i/2)
				if rec, ok := h.x.lookupBid(old); !ok || string(rec.key()) != string(old) {
					t.Errorf("older bid %s not found", old)
					return
				}
			}
		}()
	}
	wg.Wait()
	h.x.WaitBids()
	for g := range 4 {
		for i := range 300 {
			if _, ok := h.x.bids.Get(fmt.Sprintf("auction-%d-%d", g, i)); !ok {
				t.Fatalf("auction-%d-%d not in the cache after WaitBids", g, i)
			}
		}
	}
}

// TestRememberedTwice: an auction remembered twice (a retry with other
// imps) keeps the newer request, in the batch and in the cache, also when
// both land in one batch.
func TestRememberedTwice(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, _ := podRequest(t)
	req.ID = []byte("twice")
	first := req.Imps[0].ID
	h.x.Remember(req, "demo-bidder", h.x.now().Unix())
	req.Imps[0].ID = []byte("retried-imp")
	h.x.Remember(req, "demo-bidder", h.x.now().Unix())
	check := func(when string) {
		t.Helper()
		rec, ok := h.x.lookupBid([]byte("twice"))
		if !ok {
			t.Fatalf("%s: not found", when)
		}
		if _, ok := rec.find([]byte("retried-imp"), new(Imp)); !ok {
			t.Errorf("%s: the older request was kept", when)
		}
		if _, ok := rec.find(first, new(Imp)); ok {
			t.Errorf("%s: the older imp is still found", when)
		}
	}
	check("before the cache")
	h.x.WaitBids()
	check("in the cache")
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
	h.x.WaitBids()
	if _, ok := h.x.lookupBid([]byte("huge")); ok {
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
	h.x.WriteSnapshot(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h2 := openHarness(t, t.TempDir())
	if err := h2.x.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	if _, ok := h2.x.lookupBid([]byte("small")); !ok {
		t.Error("the small request did not survive the snapshot")
	}
}
