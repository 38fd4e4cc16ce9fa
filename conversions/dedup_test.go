package conversions

import (
	"fmt"
	"testing"
	"time"
)

func TestDedupAcrossCAPIMetaAndPixel(t *testing.T) {
	e := newTestEnv(t, nil)
	now := testNow.Unix()
	body := batchOf(ev("Purchase", "order-77", now-60, `"em":"jane.doe@example.com"`))
	f := func(r response, wantStatus, wantRecv, wantDedup int) {
		t.Helper()
		if r.status != wantStatus {
			t.Fatalf("status %d, want %d: %s", r.status, wantStatus, r.body)
		}
		if wantStatus == 200 && r.ctype == "application/json" {
			m := r.json(t)
			if num(m, "events_received") != wantRecv || num(m, "events_deduplicated") != wantDedup {
				t.Fatalf("answer %s, want received %d deduplicated %d", r.body, wantRecv, wantDedup)
			}
		}
	}
	f(e.postCAPI(body), 200, 1, 0)
	f(e.postCAPI(body), 200, 1, 1)                                                                       // a retry
	f(e.postMeta("?access_token="+testToken, body), 200, 1, 1)                                           // the Meta path
	f(e.pixel("id="+testDataset+"&ev=Purchase&eid=order-77&dl=https://x"), 200, 0, 0)                    // the browser copy
	f(e.pixel("id="+testDataset+"&ev=Lead&eid=order-77&dl=https://x"), 200, 0, 0)                        // another event name: new
	f(e.pixel("id="+testDataset+"&ev=Purchase&eid=order-78&dl=https://x"), 200, 0, 0)                    // pixel first...
	f(e.postCAPI(batchOf(ev("Purchase", "order-78", now-60, `"em":"jane.doe@example.com"`))), 200, 1, 1) // ...then the server copy
	// The same event id in another advertiser's dataset is another event.
	r := call(e.asAdvertiser(e.s.HandleConversions), "POST", "/v1/conversions", body, "Authorization: Bearer "+testOtherToken)
	f(r, 200, 1, 0)

	got := e.hook.all()
	var names []string
	for _, g := range got {
		names = append(names, g.Dataset+"/"+g.EventName+"/"+g.Source.String())
	}
	want := []string{testDataset + "/Purchase/capi", testDataset + "/Lead/pixel", testDataset + "/Purchase/pixel", testOtherDS + "/Purchase/capi"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("stored %v, want %v", names, want)
	}
	st := e.stats(t)
	if num(st, "received") != 7 || num(st, "stored") != 3 || num(st, "deduplicated") != 4 {
		t.Fatalf("stats %v", st)
	}
	bySrc := st["by_source"].(map[string]any)
	if px := bySrc["pixel"].(map[string]any); num(px, "received") != 3 || num(px, "deduplicated") != 1 || num(px, "stored") != 2 {
		t.Fatalf("pixel stats %v", px)
	}
}

func TestDedupFingerprintRetry(t *testing.T) {
	e := newTestEnv(t, nil)
	now := testNow.Unix()
	a := ev("Purchase", "", now-60, `"em":"jane.doe@example.com"`)
	b := ev("Purchase", "", now-60, `"em":"john@example.com"`)     // other identity: another event
	c := ev("Purchase", "", now-61, `"em":"jane.doe@example.com"`) // other time: another event
	r := e.postCAPI(batchOf(a, b))
	if m := r.json(t); num(m, "events_deduplicated") != 0 {
		t.Fatalf("%s", r.body)
	}
	r = e.postCAPI(batchOf(a, b, c)) // a retried batch plus one new event
	if m := r.json(t); num(m, "events_received") != 3 || num(m, "events_deduplicated") != 2 {
		t.Fatalf("%s", r.body)
	}
	for _, g := range e.hook.all() {
		if g.Flags&FlagFingerprint == 0 {
			t.Fatalf("event without event_id not flagged: %+v", g)
		}
	}
	if n := len(e.hook.all()); n != 3 {
		t.Fatalf("%d stored, want 3", n)
	}
}

func TestDedupExpiresInBulk(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.DedupWindow = 48 * time.Hour; c.DedupGenerations = 8 })
	now := testNow.Unix()
	body := batchOf(ev("Purchase", "exp-1", now-60, `"em":"jane.doe@example.com"`))
	dedups := func() int { return num(e.postCAPI(body).json(t), "events_deduplicated") }
	if dedups() != 0 {
		t.Fatal("first copy deduplicated")
	}
	e.clock.Add(48 * time.Hour) // the window: still remembered
	if dedups() != 1 {
		t.Fatal("copy within the window not deduplicated")
	}
	e.clock.Add(6*time.Hour + time.Second) // window + one generation: forgotten
	if dedups() != 0 {
		t.Fatal("copy after the window deduplicated")
	}
	if n := e.s.DedupEntries(); n != 1 {
		t.Fatalf("%d entries remembered, want 1 (the new copy)", n)
	}
	// An idle dataset gives its memory back when the server calls Expire.
	e.clock.Add(60 * time.Hour)
	if e.s.DedupEntries() != 1 {
		t.Fatal("expired without Expire or ingest")
	}
	e.s.Expire()
	if n := e.s.DedupEntries(); n != 0 {
		t.Fatalf("%d entries after Expire", n)
	}
}

func TestTestEventCodeStoresNothing(t *testing.T) {
	e := newTestEnv(t, nil)
	now := testNow.Unix()
	evs := ev("Purchase", "t-1", now-60, `"em":"jane.doe@example.com"`)
	r := e.postCAPI(`{"test_event_code":"TEST42","data":[` + evs + `]}`)
	m := r.json(t)
	// Answered exactly as a real batch is.
	if msgs := m["messages"].([]any); r.status != 200 || len(msgs) != 0 || num(m, "events_received") != 1 || num(m, "events_deduplicated") != 0 {
		t.Fatalf("%s", r.body)
	}
	// A test batch that is invalid is refused as a real one, and counted
	// nowhere but in a metric: nothing journaled, not even counts.
	bad := e.postCAPI(`{"test_event_code":"TEST42","data":[{"event_name":"Purchase"}]}`)
	if bad.status != 400 || bad.err.Subcode != 2804019 {
		t.Fatalf("invalid test batch: %d %s", bad.status, bad.body)
	}
	if len(e.hook.all()) != 0 || len(e.log.Records()) != 0 || e.log.PendingCount() != 0 || e.s.DedupEntries() != 0 {
		t.Fatal("test event stored or journaled")
	}
	if st := e.stats(t); num(st, "received") != 0 || num(st, "rejected") != 0 {
		t.Fatalf("test batches counted in the stats: %v", st)
	}
	// The same event sent for real afterwards is new.
	if m := e.postCAPI(batchOf(evs)).json(t); num(m, "events_deduplicated") != 0 || len(e.hook.all()) != 1 {
		t.Fatalf("%v", m)
	}
}

func TestTooManyEvents(t *testing.T) {
	e := newTestEnv(t, nil)
	evs := make([]string, 1001)
	for i := range evs {
		evs[i] = ev("Purchase", fmt.Sprint(i), testNow.Unix(), `"em":"a@b.co"`)
	}
	r := e.postCAPI(batchOf(evs...))
	if r.status != 400 || r.err.Subcode != 2804008 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r = e.postCAPI(batchOf(evs[:1000]...)); r.status != 200 {
		t.Fatalf("1000 events: %d %s", r.status, r.body)
	}
}

func TestDatasetResolution(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Datasets["555"] = "other" })
	body := batchOf(ev("Purchase", "x", testNow.Unix(), `"em":"a@b.co"`))
	r := call(e.asAdvertiser(e.s.HandleConversions), "POST", "/v1/conversions", body, "Authorization: Bearer "+testOtherToken)
	if r.status != 400 || r.err.Subcode != 2804001 {
		t.Fatalf("two datasets and none named: %d %s", r.status, r.body)
	}
	r = call(e.asAdvertiser(e.s.HandleConversions), "POST", "/v1/conversions?dataset=555", body, "Authorization: Bearer "+testOtherToken)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r = call(e.asAdvertiser(e.s.HandleConversions), "POST", "/v1/conversions?dataset=nope", body, "Authorization: bearer "+testOtherToken)
	if r.status != 400 || r.err.Subcode != 33 || r.err.Type != "GraphMethodException" {
		t.Fatalf("unknown dataset: %d %s", r.status, r.body)
	}
}
