package conversions

import (
	"bytes"
	"testing"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/signals"
)

func TestServiceSnapshotRoundTrip(t *testing.T) {
	e := newTestEnv(t, nil)
	now := testNow.Unix()
	a := ev("Purchase", "o-1", now-60, `"em":"jane.doe@example.com"`)
	fp := ev("Purchase", "", now-60, `"em":"john@example.com"`) // fingerprinted
	e.postCAPI(batchOf(a, fp, a))
	before := e.stats(t)

	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	e.s.WriteSnapshot(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	e2 := newTestEnv(t, nil)
	if err := e2.s.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	if after := e2.stats(t); num(after, "stored") != num(before, "stored") || num(after, "deduplicated") != num(before, "deduplicated") {
		t.Fatalf("stats %v after, %v before", after, before)
	}
	r := e2.postCAPI(batchOf(a, fp))
	if m := r.json(t); num(m, "events_deduplicated") != 2 {
		t.Fatalf("retry after restore not deduplicated: %s", r.body)
	}
	// The fingerprint index survived too: deleting the identity forgets it.
	h := signals.NewHasher([]byte(testSecret))
	buf2, _ := HashUserData(nil, "em", []byte("john@example.com"))
	if n := e2.s.forgetIdentities("demo", []uint64{h.ID(signals.IDEmail, buf2).Key}); n != 1 {
		t.Fatalf("forgot %d fingerprints, want 1", n)
	}
}

func TestAttributorSnapshotRoundTrip(t *testing.T) {
	h := newAttrHarness(t)
	h.expose(t0, t0, "buy", "pub-a", ip)
	h.convert(t0+10, t0+10, "ds1", "Purchase", 0, ip)   // attributed
	h.convert(t0+20, t0+20, "ds1", "Purchase", 0, ifa)  // pending
	h.convert(t0+30, t0+30, "ds1", "Purchase", FlagLDU) // excluded
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	h.a.WriteSnapshot(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h2 := newAttrHarness(t)
	if err := h2.a.ReadSnapshot(binenc.NewReader(&buf)); err != nil {
		t.Fatal(err)
	}
	s1, s2 := h.stats("buy"), h2.stats("buy")
	if s1.Attributed != s2.Attributed || s1.Unattributed != s2.Unattributed || s2.Pending != 1 || s2.Excluded["ldu"] != 1 || s2.ByMethod["household_ip"] != 1 {
		t.Fatalf("before %+v after %+v", s1, s2)
	}
	// The pending conversion still matches a late exposure.
	leaf := h2.expose(t0+100, t0+5, "buy", "pub-late", ifa)
	if h2.credited(t0+200, leaf) < 0.99 || h2.stats("buy").Late != 1 {
		t.Fatal("restored pending conversion did not match its late exposure")
	}
}
