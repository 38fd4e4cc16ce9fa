package conversions

import (
	"bytes"
	"math"
	"mime/multipart"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cpafeed/cpafeed/signals"
)

// checkStored fails t unless e is what validation guarantees of an accepted
// event.
func checkStored(t *testing.T, e StoredEvent, now time.Time) {
	t.Helper()
	switch {
	case e.EventName == "" || len(e.EventName) > maxEventName || signals.BadText([]byte(e.EventName)) != "":
		t.Fatalf("bad event name %q", e.EventName)
	case e.EventTime < now.Add(-62*24*time.Hour).Unix() || e.EventTime > now.Add(10*time.Minute).Unix():
		t.Fatalf("event_time %d out of bounds", e.EventTime)
	case e.EventTime < now.Add(-7*24*time.Hour).Unix() && e.ActionSource != ActionPhysicalStore:
		t.Fatalf("event_time %d too old for %v", e.EventTime, e.ActionSource)
	case e.ActionSource == ActionNone || e.ActionSource >= numActionSources:
		t.Fatalf("action_source %d", e.ActionSource)
	case math.IsNaN(e.Value) || math.IsInf(e.Value, 0) || e.Value < 0:
		t.Fatalf("value %v", e.Value)
	case e.Flags&FlagValue != 0 && currencyCode([]byte(e.Currency)) != e.Currency:
		t.Fatalf("currency %q", e.Currency)
	case e.Flags&FlagValue == 0 && (e.Value != 0 || e.Currency != ""):
		t.Fatalf("value without FlagValue: %+v", e)
	case e.Flags&^flagsKnown != 0:
		t.Fatalf("flags %x", e.Flags)
	case e.Flags&FlagLDU != 0 && len(e.IDs) > 0:
		t.Fatalf("LDU event with identities")
	}
	for i, id := range e.IDs {
		if !storedKind(id.Kind) || id.Key == 0 {
			t.Fatalf("identity %+v", id)
		}
		for _, x := range e.IDs[:i] {
			if x == id {
				t.Fatalf("duplicate identity %+v", id)
			}
		}
	}
}

// checkRecords decodes every record of log, re-encodes it and compares.
func checkRecords(t *testing.T, log *memLog) {
	t.Helper()
	for _, rec := range log.Records() {
		if rec[0] == RecordTypeConversionCounts {
			d, err := decodeCountsRecord(rec)
			if err != nil {
				t.Fatalf("journaled counts record does not decode: %v", err)
			}
			if again := appendCountsRecord(nil, d.dataset, d.source, d.outcome, d.n, d.names); !bytes.Equal(again, rec) {
				t.Fatalf("counts record does not round-trip:\n% x\n% x", rec, again)
			}
			continue
		}
		var d decodedRecord
		if err := decodeRecord(&d, rec); err != nil {
			t.Fatalf("journaled record does not decode: %v", err)
		}
		again := appendRecord(nil, &d.recordHeader, d.events, d.ids)
		if !bytes.Equal(again, rec) {
			t.Fatalf("record does not round-trip:\n% x\n% x", rec, again)
		}
	}
}

func fixtureBodies(t testing.TB) []string {
	var out []string
	for _, dir := range []string{"valid", "invalid"} {
		for _, fx := range loadFixtures(t, dir) {
			if len(fx.Body) > 0 && fx.Endpoint != "pixel" {
				out = append(out, fx.body())
			}
		}
	}
	return out
}

// fuzzTypes are the Content-Types FuzzCAPIBatch sends a body with.
var fuzzTypes = [...]string{"application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ", "text/plain", ""}

func FuzzCAPIBatch(f *testing.F) {
	for _, b := range fixtureBodies(f) {
		f.Add([]byte(b), uint8(map[bool]int{true: 1, false: 0}[len(b) > 0 && b[0] != '{']))
	}
	for _, fx := range loadSDKFixtures(f) {
		body := []byte(fx.Body)
		for _, h := range fx.Headers {
			if ct, ok := strings.CutPrefix(h, "Content-Type: multipart/form-data; boundary="); ok {
				body = bytes.ReplaceAll(body, []byte(ct), []byte("XyZ"))
				f.Add(body, uint8(2))
			}
		}
		f.Add(body, uint8(1))
		f.Add(body, uint8(0))
	}
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[\"{}\"]\r\n--XyZ--"), uint8(2))
	body, _ := genBatch(3)
	f.Add(body, uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		e := newTestEnv(t, nil)
		recv, dedup, err := e.s.Ingest(testDataset, body, fuzzTypes[int(ct)%len(fuzzTypes)])
		got := e.hook.all()
		if err != nil {
			if len(got) != 0 || len(e.log.BatchRecords()) != 0 || e.log.PendingCount() != 0 {
				t.Fatalf("rejected batch stored %d events", len(got))
			}
			return
		}
		if bytes.Contains(body, []byte("test_event_code")) && len(got) == 0 {
			return // test mode, most likely
		}
		if len(got) != recv-dedup {
			t.Fatalf("%d stored, answer says %d received %d deduplicated", len(got), recv, dedup)
		}
		for _, ev := range got {
			checkStored(t, ev, testNow)
		}
		checkRecords(t, e.log)
	})
}

// FuzzMultipart: decodeMultipart never panics and hands out only slices of
// the body; a body written by mime/multipart decodes to the fields it
// holds.
func FuzzMultipart(f *testing.F) {
	for _, fx := range loadSDKFixtures(f) {
		for _, h := range fx.Headers {
			if ct, ok := strings.CutPrefix(h, "Content-Type: "); ok && strings.HasPrefix(ct, "multipart/") {
				f.Add([]byte(fx.Body), ct, "data", "[]")
			}
		}
	}
	f.Add([]byte("preamble\n--b\nContent-Disposition: form-data; name=x\n\nv\n--b--"), "multipart/form-data; boundary=b", "access_token", "t")
	f.Add([]byte("--b\r\n\r\n--b--"), `multipart/form-data; boundary="b"; charset=utf-8`, "a;b", "")
	f.Fuzz(func(t *testing.T, body []byte, ct, name, value string) {
		_ = decodeMultipart(body, []byte(ct), func(k, v []byte) {
			for _, s := range [][]byte{k, v} {
				if len(s) > 0 && !within(s, body) {
					t.Fatalf("a slice outside the body")
				}
			}
		})
		if name == "" || strings.ContainsAny(name, "\"\\\r\n;") || strings.Contains(value, "--fuzzboundary") {
			return
		}
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		if err := w.SetBoundary("fuzzboundary"); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteField(name, value); err != nil {
			t.Fatal(err)
		}
		w.Close()
		var got [][2]string
		if err := decodeMultipart(buf.Bytes(), []byte(w.FormDataContentType()), func(k, v []byte) {
			got = append(got, [2]string{string(k), string(v)})
		}); err != nil || len(got) != 1 || got[0] != [2]string{name, value} {
			t.Fatalf("%q: %v %q, want %q=%q", buf.Bytes(), err, got, name, value)
		}
	})
}

// within reports whether s lies inside b.
func within(s, b []byte) bool {
	if len(b) == 0 {
		return len(s) == 0
	}
	lo := uintptr(unsafe.Pointer(&b[0]))
	p := uintptr(unsafe.Pointer(&s[0]))
	return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(b))
}

func recordSeeds(t testing.TB) [][]byte {
	e := newTestEnv(t, nil)
	body, _ := genBatch(5)
	e.s.Ingest(testDataset, body, "application/json")
	e.s.Ingest(testDataset, []byte(batchOf(
		ev("Purchase", "", testNow.Unix(), `"em":"a@b.co"`),
		ev("Purchase", "", testNow.Unix(), `"em":"a@b.co"`),
		`{"event_name":"Lead","event_time":`+itoa(testNow.Unix())+`,"action_source":"chat","opt_out":true,"data_processing_options":["LDU"]}`)),
		"application/json")
	e.pixel("id=" + testDataset + "&ev=Purchase&eid=p1&dl=https://x&cd[value]=1&cd[currency]=EUR")
	e.pixel("id=" + testDataset + "&ev=Purchase&eid=p1&dl=https://x&cd[value]=1&cd[currency]=EUR")                    // counts: deduplicated
	e.s.Ingest(testDataset, []byte(`{"data":[{"event_name":"Purchase"},{"event_name":"Lead"}]}`), "application/json") // counts: rejected
	return e.log.Records()
}

func FuzzConversionCountsRecord(f *testing.F) {
	for _, rec := range recordSeeds(f) {
		if rec[0] == RecordTypeConversionCounts {
			f.Add(rec)
		}
	}
	f.Add([]byte{RecordTypeConversionCounts, 1, 1, '1', 1, 2, 5, 1, 1, 'x', 6}) // names count more than the events
	e := newTestEnv(f, nil)
	f.Fuzz(func(t *testing.T, rec []byte) {
		d, err := decodeCountsRecord(rec)
		if rerr := e.s.ReplayCounts(rec); (rerr == nil) != (err == nil) {
			t.Fatalf("ReplayCounts and decodeCountsRecord disagree: %v, %v", rerr, err)
		}
		if err != nil {
			return
		}
		if again := appendCountsRecord(nil, d.dataset, d.source, d.outcome, d.n, d.names); !bytes.Equal(again, rec) {
			t.Fatalf("record does not round-trip:\n% x\n% x", rec, again)
		}
	})
}

func FuzzConversionRecord(f *testing.F) {
	for _, rec := range recordSeeds(f) {
		if rec[0] == RecordTypeConversionBatch {
			f.Add(rec)
		}
	}
	f.Add([]byte{0x01, 0x01})
	e := newTestEnv(f, nil)
	f.Fuzz(func(t *testing.T, rec []byte) {
		var d decodedRecord
		err := decodeRecord(&d, rec)
		if rerr := e.s.Replay(rec); (rerr == nil) != (err == nil) {
			t.Fatalf("Replay and decodeRecord disagree: %v, %v", rerr, err)
		}
		if err != nil {
			return
		}
		again := appendRecord(nil, &d.recordHeader, d.events, d.ids)
		if !bytes.Equal(again, rec) {
			t.Fatalf("record does not round-trip:\n% x\n% x", rec, again)
		}
	})
}

func FuzzPixelQuery(f *testing.F) {
	for _, fx := range loadFixtures(f, "valid") {
		if fx.Endpoint == "pixel" {
			f.Add(fx.Query, fx.body(), "")
		}
	}
	f.Add("id="+testDataset+"&ev=Lead&eid=1&dl=https%3A%2F%2Fx&ud[ph]=%2B15551234567&cd[value]=3&cd[currency]=usd&dpo=LDU", "", "1.2.3.4, 10.0.0.1")
	f.Add("id="+testDataset+"&ev=Purchase", "ud[em]=x%40y.co&cd[order_id]=7", "")
	e := newTestEnv(f, func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8"} })
	f.Fuzz(func(t *testing.T, query, body, xff string) {
		before := len(e.hook.all())
		h := []string{"Remote: 10.1.1.1"}
		if xff != "" {
			h = append(h, "X-Forwarded-For: "+xff)
		}
		method := "GET"
		if body != "" {
			method = "POST"
		}
		r := call(raw(e.s.HandlePixel), method, "/v1/pixel?"+query, body, h...)
		if r.status != 200 || string(r.body) != signals.TransparentGIF {
			t.Fatalf("answer %d %q", r.status, r.body)
		}
		for _, ev := range e.hook.all()[before:] {
			checkStored(t, ev, testNow)
			if ev.Source != SourcePixel || ev.ActionSource != ActionWebsite || ev.EventTime != testNow.Unix() {
				t.Fatalf("pixel event %+v", ev)
			}
			if !hasKind(ev.IDs, signals.IDIP) && ev.Flags&FlagLDU == 0 {
				t.Fatalf("pixel event without the client's IP: %+v", ev)
			}
		}
	})
}

func hasKind(ids []signals.ID, k signals.IDKind) bool {
	for _, id := range ids {
		if id.Kind == k {
			return true
		}
	}
	return false
}
