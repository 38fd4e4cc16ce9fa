package conversions

import (
	"testing"
)

// The parse-validate-hash-dedup-journal path allocates nothing per event in
// steady state: a 1000-event batch costs the same few allocations as a
// 10-event one, apart from the growth of the dedup maps, amortized over
// hundreds of inserts.
func TestIngestAllocsPerEvent(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	perBatch := func(n int) float64 {
		log := newMemLog()
		log.discard = true
		e := newTestEnvWithLog(t, log, nil)
		e.s.SetStoredHook(nil)
		body, offs := genBatch(n)
		it := uint32(0)
		run := func() {
			it++
			stamp(body, offs, it)
			recv, dedup, err := e.s.Ingest(testDataset, body, "application/json")
			if err != nil || recv != n || dedup != 0 {
				t.Fatalf("ingest: %d %d %v", recv, dedup, err)
			}
		}
		for range 3 {
			run() // warm the pools
		}
		return testing.AllocsPerRun(20, run)
	}
	small, large := perBatch(10), perBatch(1000)
	perEvent := (large - small) / 990
	t.Logf("allocations per batch: %.1f (10 events), %.1f (1000 events); %.4f per event", small, large, perEvent)
	if small > 16 { // the parser scrub's error, the journal wait, ...
		t.Errorf("%.1f allocations for a 10-event batch", small)
	}
	if perEvent > 0.02 {
		t.Errorf("%.4f allocations per event (dedup map growth aside, want 0)", perEvent)
	}
}

// A batch of duplicates only (a retried batch) does not allocate either.
func TestIngestDuplicatesAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	log := newMemLog()
	log.discard = true
	e := newTestEnvWithLog(t, log, nil)
	e.s.SetStoredHook(nil)
	body, _ := genBatch(1000)
	if _, _, err := e.s.Ingest(testDataset, body, "application/json"); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(10, func() {
		if _, d, err := e.s.Ingest(testDataset, body, "application/json"); err != nil || d != 1000 {
			t.Fatalf("%d %v", d, err)
		}
	})
	if n > 16 {
		t.Fatalf("%.1f allocations for a retried batch of 1000", n)
	}
}
