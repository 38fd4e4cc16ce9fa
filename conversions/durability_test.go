package conversions

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestJournalFlushFailureAnswers503(t *testing.T) {
	e := newTestEnv(t, nil)
	body := batchOf(ev("Purchase", "j-1", testNow.Unix()-5, `"em":"jane.doe@example.com"`))
	e.log.FailNextFlush()
	r := e.postCAPI(body)
	if r.status != 503 || r.err.Code != 2 {
		t.Fatalf("flush failure: %d %s", r.status, r.body)
	}
	if len(e.hook.all()) != 0 || e.s.DedupEntries() != 0 || num(e.stats(t), "received") != 0 {
		t.Fatal("a batch that is not durable was acknowledged somewhere")
	}
	// The retry stores the event.
	r = e.postCAPI(body)
	if m := r.json(t); r.status != 200 || num(m, "events_deduplicated") != 0 || len(e.hook.all()) != 1 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
}

func TestJournalAppendFailureAnswers503(t *testing.T) {
	e := newTestEnv(t, nil)
	body := batchOf(ev("Purchase", "j-2", testNow.Unix()-5, `"em":"jane.doe@example.com"`))
	e.log.appendFn = func() error { return errors.New("disk full") }
	if r := e.postCAPI(body); r.status != 503 {
		t.Fatalf("append failure: %d %s", r.status, r.body)
	}
	if r := e.pixel("id=" + testDataset + "&ev=Purchase&eid=j-3&dl=https://x"); r.status != 503 {
		t.Fatalf("pixel, append failure: %d %s", r.status, r.body)
	}
	e.log.appendFn = nil
	if r := e.postCAPI(body); r.status != 200 || num(r.json(t), "events_deduplicated") != 0 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
}

// Batch B deduplicates against batch A while A's record is not yet durable;
// then A's flush fails. B must fail too (it acknowledged a copy of something
// lost), and a retry must store the event.
func TestDedupAgainstBatchWhoseFlushFails(t *testing.T) {
	for _, bNew := range []bool{false, true} {
		t.Run(fmt.Sprintf("B has new events %v", bNew), func(t *testing.T) {
			log := newMemLog()
			log.manual = true
			e := newTestEnvWithLog(t, log, nil)
			now := testNow.Unix()
			a := ev("Purchase", "race-1", now-5, `"em":"jane.doe@example.com"`)
			bodyA, bodyB := batchOf(a), batchOf(a)
			if bNew {
				bodyB = batchOf(a, ev("Lead", "race-2", now-5, `"em":"jane.doe@example.com"`))
			}
			resA, resB := make(chan response), make(chan response)
			go func() { resA <- e.postCAPI(bodyA) }()
			waitFor(t, "A in Wait", func() bool { return log.PendingCount() == 1 && log.Waiting() == 1 })
			go func() { resB <- e.postCAPI(bodyB) }()
			waitFor(t, "B in Wait", func() bool { return log.Waiting() == 2 })
			log.FailNextFlush()
			log.Flush()
			for name, ch := range map[string]chan response{"A": resA, "B": resB} {
				if r := <-ch; r.status != 503 {
					t.Fatalf("%s: %d %s, want 503", name, r.status, r.body)
				}
			}
			if len(e.hook.all()) != 0 || e.s.DedupEntries() != 0 {
				t.Fatalf("lost batches acknowledged: %d stored, %d entries", len(e.hook.all()), e.s.DedupEntries())
			}
			log.SetManual(false)
			r := e.postCAPI(bodyB)
			if m := r.json(t); r.status != 200 || num(m, "events_deduplicated") != 0 {
				t.Fatalf("retry of B: %d %s", r.status, r.body)
			}
			if got := len(e.hook.all()); got != strings.Count(bodyB, "event_name") {
				t.Fatalf("retry stored %d events", got)
			}
		})
	}
}

// The same race when A's flush succeeds: B is a deduplicated success.
func TestDedupAgainstPendingBatchThatSucceeds(t *testing.T) {
	log := newMemLog()
	log.manual = true
	e := newTestEnvWithLog(t, log, nil)
	body := batchOf(ev("Purchase", "race-3", testNow.Unix()-5, `"em":"jane.doe@example.com"`))
	resA, resB := make(chan response), make(chan response)
	go func() { resA <- e.postCAPI(body) }()
	waitFor(t, "A in Wait", func() bool { return log.Waiting() == 1 })
	go func() { resB <- e.postCAPI(body) }()
	waitFor(t, "B in Wait", func() bool { return log.Waiting() == 2 })
	// B stores nothing: it journals only its counts, after A's record.
	if n := log.PendingCount(); n != 2 {
		t.Fatalf("%d records pending, want A's batch and B's counts", n)
	}
	log.Flush()
	if r := <-resA; r.status != 200 || num(r.json(t), "events_deduplicated") != 0 {
		t.Fatalf("A: %d %s", r.status, r.body)
	}
	if r := <-resB; r.status != 200 || num(r.json(t), "events_deduplicated") != 1 {
		t.Fatalf("B: %d %s", r.status, r.body)
	}
	if recs := log.BatchRecords(); len(recs) != 1 {
		t.Fatalf("%d batch records, want A's only", len(recs))
	}
	// Once everything is durable, a copy is deduplicated against it and
	// waits only for its own counts record.
	waitFor(t, "no waiter", func() bool { return log.Waiting() == 0 })
	log.SetManual(false)
	if r := e.postCAPI(body); r.status != 200 || num(r.json(t), "events_deduplicated") != 1 {
		t.Fatalf("later copy: %d %s", r.status, r.body)
	}
}

// A restart: the journal's records are replayed into a new Service; stats and
// dedup state come back, and a client retry is deduplicated.
func TestReplayAfterRestart(t *testing.T) {
	e1 := newTestEnv(t, nil)
	now := testNow.Unix()
	batch1 := batchOf(ev("Purchase", "r-1", now-60, `"em":"jane.doe@example.com","client_ip_address":"203.0.113.42"`),
		ev("Purchase", "r-1", now-60, `"em":"jane.doe@example.com"`),
		ev("Lead", "", now-30, `"ph":"+15551234567"`),
		`{"event_name":"Purchase","event_time":`+itoa(now-20)+`,"action_source":"app","event_id":"r-ldu","data_processing_options":["LDU"],"custom_data":{"value":1,"currency":"USD"}}`)
	if r := e1.postCAPI(batch1); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e1.pixel("id=" + testDataset + "&ev=Purchase&eid=r-2&dl=https://x")
	e1.pixel("id=" + testDataset + "&ev=Purchase&eid=r-1&dl=https://x") // deduplicated: a counts record
	e1.postCAPI(`{"data":[{"event_name":"Bad"}]}`)                      // rejected: a counts record
	e1.postCAPI(batchOf(ev("Purchase", "r-3", now-9*86400, `"em":"a@b.co"`)))

	e1.clock.Add(time.Hour) // the restart happens later
	e2 := newTestEnv(t, nil)
	e2.clock.t = e1.clock.Now()
	for _, rec := range e1.log.Records() {
		if err := replayRecord(e2.s, rec); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(e1.hook.all(), e2.hook.all()) {
		t.Fatalf("replayed events differ:\n%+v\n%+v", e1.hook.all(), e2.hook.all())
	}
	s1, s2 := e1.stats(t), e2.stats(t)
	// Every counter comes back, those of rejected and all-duplicate
	// batches included (issue 18, defect 9: they fell back to the last
	// snapshot).
	if num(s1, "rejected") != 2 || num(s1, "deduplicated") != 2 {
		t.Fatalf("the live stats miss the rejected or deduplicated events: %v", s1)
	}
	if fmt.Sprint(s1) != fmt.Sprint(s2) {
		t.Fatalf("stats after replay:\n%v\nwant\n%v", s2, s1)
	}
	if e1.s.DedupEntries() != e2.s.DedupEntries() {
		t.Fatalf("dedup entries %d, want %d", e2.s.DedupEntries(), e1.s.DedupEntries())
	}
	// The client retries its batch after the restart: all deduplicated.
	r := e2.postCAPI(batch1)
	if m := r.json(t); num(m, "events_deduplicated") != 4 || len(e2.log.BatchRecords()) != 0 {
		t.Fatalf("retry after restart: %s", r.body)
	}
}

// A batch whose answer failed although its record reached the disk, then
// retried: after a restart, the retry's copy is not counted twice.
func TestReplayDeduplicatesUnacknowledgedRecord(t *testing.T) {
	e := newTestEnv(t, nil)
	body := batchOf(ev("Purchase", "u-1", testNow.Unix()-5, `"em":"jane.doe@example.com"`))
	e.postCAPI(body)
	first := e.log.Records()[0]
	e2 := newTestEnv(t, nil)
	for _, rec := range [][]byte{first, first} { // the same batch journaled twice
		if err := e2.s.Replay(rec); err != nil {
			t.Fatal(err)
		}
	}
	st := e2.stats(t)
	if len(e2.hook.all()) != 1 || num(st, "stored") != 1 || num(st, "deduplicated") != 1 {
		t.Fatalf("replayed twice: %d events, stats %v", len(e2.hook.all()), st)
	}
}

func TestReplayRejectsOtherRecords(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, rec := range [][]byte{nil, {0x02, 0x01}, {0x01, 0x09}, {0x01, 0x01, 0x03, 'a'}} {
		if err := e.s.Replay(rec); err == nil {
			t.Fatalf("Replay(% x) accepted", rec)
		}
	}
}

// No raw PII in a journal record: neither the clear values nor their
// unkeyed SHA-256 (which is only pseudonymous).
func TestNoRawPIIInRecords(t *testing.T) {
	e := newTestEnv(t, nil)
	now := testNow.Unix()
	email, phone, ip, ifa := "jane.doe@example.com", "15551234567", "203.0.113.42", "6d92078a-8246-4ba4-ae5b-76104861e7dc"
	ipv6 := "2001:db8:1:2:3:4:5:6"
	body := batchOf(
		ev("Purchase", "pii-1", now-5, `"em":"`+email+`","ph":"+1 555 123 4567","client_ip_address":"`+ip+`","ifa":"`+ifa+`","external_id":"crm-88412","household_id":"hh-secret-7"`),
		ev("Lead", "", now-5, `"em":"`+email+`","client_ip_address":"`+ipv6+`"`),
	)
	if r := e.postCAPI(body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.pixel("id=" + testDataset + "&ev=Purchase&eid=pii-2&em=" + email + "&dl=https://x")
	sum := sha256.Sum256([]byte(email))
	ip4 := netip.MustParseAddr(ip).As4()
	ip16 := netip.MustParseAddr(ipv6).As16()
	needles := [][]byte{[]byte(email), []byte("jane.doe"), []byte(phone), []byte("5551234567"), []byte(ip), ip4[:],
		[]byte(ifa), []byte("6d92078a"), []byte("crm-88412"), []byte("hh-secret-7"), []byte("2001:db8"), ip16[:8],
		[]byte(hex.EncodeToString(sum[:])), sum[:8], []byte("203.0.113.9")} // the pixel's connection IP
	recs := e.log.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for _, rec := range recs {
		for _, n := range needles {
			if bytes.Contains(rec, n) {
				t.Fatalf("record contains %q", n)
			}
		}
	}
	// The clear values are gone from the pooled buffers too.
	b := e.s.getBatch()
	for _, buf := range [][]byte{b.form[:cap(b.form)], b.js[:cap(b.js)], b.scratch[:cap(b.scratch)], b.hex[:]} {
		for _, n := range needles[:3] {
			if bytes.Contains(buf, n) {
				t.Fatalf("pooled buffer holds %q", n)
			}
		}
	}
	e.s.putBatch(b)
}

// A batch with a duplicate of a pending batch's event waits for its own
// record (which comes after every reservation it matched), not for the
// journal's tail: an unrelated record appended right after it (another
// dataset, an exposure) whose flush fails must not turn its durable, applied
// batch into a 503, whose retry would store the events a second time live
// (and a replay would then disagree with the live state).
func TestDedupWaitIgnoresLaterUnrelatedFailure(t *testing.T) {
	log := newMemLog()
	log.SetManual(true)
	e := newTestEnvWithLog(t, log, nil)
	now := testNow.Unix()
	a1 := ev("Purchase", "w-a1", now-5, `"em":"a@example.com"`)
	b1 := ev("Purchase", "w-b1", now-5, `"em":"b@example.com"`)
	resA, resB := make(chan response, 1), make(chan response, 1)
	go func() { resA <- e.postCAPI(batchOf(a1)) }()
	waitFor(t, "A appended", func() bool { return log.PendingCount() == 1 })
	// Right after B's append, another goroutine appends an unrelated
	// record.
	log.onAppend = func() { log.AppendApply([]byte{0xff}, nil, nil) }
	go func() { resB <- e.postCAPI(batchOf(a1, b1)) }()
	waitFor(t, "B and the unrelated record appended", func() bool { return log.PendingCount() == 3 })
	log.FlushTo(2) // A and B durable and applied
	log.FailNextFlush()
	log.Flush() // the unrelated record is lost
	if r := <-resA; r.status != 200 {
		t.Fatalf("A: %d %s", r.status, r.body)
	}
	if r := <-resB; r.status != 200 || num(r.json(t), "events_deduplicated") != 1 {
		t.Fatalf("B, durable before the unrelated failure: %d %s", r.status, r.body)
	}
	log.SetManual(false)
	if r := e.postCAPI(batchOf(a1, b1)); r.status != 200 || num(r.json(t), "events_deduplicated") != 2 {
		t.Fatalf("a retry of B stored events again: %d %s", r.status, r.body)
	}
	if st := e.stats(t); num(st, "stored") != 2 {
		t.Fatalf("stored %v, want 2", st["stored"])
	}
}
