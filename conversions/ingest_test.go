package conversions

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/signals"
)

func TestIngestStoresAndAnswers(t *testing.T) {
	e := newTestEnv(t, nil)
	now := testNow.Unix()
	r := e.postCAPI(batchOf(
		ev("Purchase", "order-1", now-30, `"em":"Jane.Doe@Example.com","client_ip_address":"203.0.113.42"`),
		ev("Lead", "lead-1", now-10, `"ph":"+1 (555) 123-4567"`),
	))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	if num(m, "events_received") != 2 || num(m, "events_deduplicated") != 0 {
		t.Fatalf("answer %s", r.body)
	}
	if tr, _ := m["fbtrace_id"].(string); !strings.HasPrefix(tr, "A") || len(tr) != 25 {
		t.Fatalf("fbtrace_id %q", tr)
	}
	got := e.hook.all()
	if len(got) != 2 || got[0].EventName != "Purchase" || got[1].EventName != "Lead" {
		t.Fatalf("hook got %+v", got)
	}
	h := signals.NewHasher([]byte(testSecret))
	wantEm := h.ID(signals.IDEmail, []byte("86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"))
	wantIP := h.ID(signals.IDIP, []byte("203.0.113.42"))
	if len(got[0].IDs) != 2 || got[0].IDs[0] != wantEm || got[0].IDs[1] != wantIP {
		t.Fatalf("Purchase IDs %v, want [%v %v]", got[0].IDs, wantEm, wantIP)
	}
	wantPh := h.ID(signals.IDPhone, []byte("d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a"))
	if len(got[1].IDs) != 1 || got[1].IDs[0] != wantPh {
		t.Fatalf("Lead IDs %v, want [%v]", got[1].IDs, wantPh)
	}
	if got[0].Key != EventDedupKey(testDataset, "Purchase", "order-1") || got[1].Key != EventDedupKey(testDataset, "Lead", "lead-1") {
		t.Fatalf("EventDedupKey differs from ingest's key")
	}
	p := got[0]
	if p.Value != 12.5 || p.Currency != "USD" || p.Flags != FlagValue || p.Source != SourceCAPI ||
		p.ActionSource != ActionWebsite || p.EventTime != now-30 || p.Received != testNow.UnixMilli() || p.Dataset != testDataset {
		t.Fatalf("stored event %+v", p)
	}
	recs := e.log.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	var d decodedRecord
	if err := decodeRecord(&d, recs[0]); err != nil {
		t.Fatal(err)
	}
	if d.nReceived != 2 || d.nDedup != 0 || len(d.events) != 2 || d.dataset != testDataset || d.source != SourceCAPI {
		t.Fatalf("record %+v", d)
	}
	if !bytes.Equal(recs[0][:2], []byte{0x01, 0x01}) {
		t.Fatalf("record starts % x", recs[0][:2])
	}
}
