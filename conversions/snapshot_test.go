package conversions

import (
	"bytes"
	"math"
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
	e.s.WriteSnapshot(w, math.MaxUint64)
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

// TestSnapshotAtCheckpointExcludesInflightBatch: a checkpoint taken while a
// batch's record is appended but not yet applied (the batch's dedup keys are
// reserved, its stats and hook are not) must not hold those keys. Restarting
// from it and replaying the record stores and counts the events; and if the
// record never reached the disk, the client's retry stores them. Before the
// fix the snapshot held the keys, the replayed events were taken for
// duplicates and the retry was deduplicated too: acknowledged conversions
// lost for good.
func TestSnapshotAtCheckpointExcludesInflightBatch(t *testing.T) {
	log := newMemLog()
	log.SetManual(true)
	e := newTestEnvWithLog(t, log, nil)
	now := testNow.Unix()
	first := batchOf(ev("Purchase", "c-1", now-60, `"em":"a@example.com"`))
	second := batchOf(ev("Purchase", "c-2", now-60, `"em":"b@example.com"`), ev("Lead", "c-3", now-60, `"em":"c@example.com"`))

	done := make(chan response, 2)
	go func() { done <- e.postCAPI(first) }()
	waitFor(t, "the first record", func() bool { return log.PendingCount() == 1 })
	log.Flush()
	if r := <-done; r.status != 200 {
		t.Fatalf("first batch: %d %s", r.status, r.body)
	}
	go func() { done <- e.postCAPI(second) }()
	waitFor(t, "the second record", func() bool { return log.PendingCount() == 1 && log.Waiting() == 1 })

	// The checkpoint: every record < next applied, the second (LSN 2) not.
	next := uint64(2)
	var buf bytes.Buffer
	w := binenc.NewWriter(&buf)
	e.s.WriteSnapshot(w, next)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	log.Flush()
	if r := <-done; r.status != 200 {
		t.Fatalf("second batch: %d %s", r.status, r.body)
	}
	snap := buf.Bytes()

	restore := func(replay bool) *testEnv {
		e2 := newTestEnv(t, nil)
		if err := e2.s.ReadSnapshot(binenc.NewReader(bytes.NewReader(snap))); err != nil {
			t.Fatal(err)
		}
		if replay {
			recs := log.Records()
			for _, rec := range recs[next-1:] {
				if err := e2.s.Replay(rec); err != nil {
					t.Fatal(err)
				}
			}
		}
		return e2
	}
	// The crash came after the second record was durable: replay counts it.
	e2 := restore(true)
	if st := e2.stats(t); num(st, "stored") != 3 || num(st, "deduplicated") != 0 {
		t.Fatalf("after the replay: %v", st)
	}
	if got := len(e2.hook.all()); got != 2 {
		t.Fatalf("replay handed %d events to attribution, want 2", got)
	}
	// The crash came before it reached the disk: the client's retry stores it.
	e3 := restore(false)
	r := e3.postCAPI(second)
	if m := r.json(t); r.status != 200 || num(m, "events_deduplicated") != 0 {
		t.Fatalf("retry of a batch that never reached the disk: %d %s", r.status, r.body)
	}
}
