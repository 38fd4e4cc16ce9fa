package conversions

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// sdkFixture is one request of testdata/sdk: the bytes one of Meta's SDKs
// (or curl) sends, written from its serialization code (testdata/sdk/
// README.md and each file's sources say where from).
type sdkFixture struct {
	Description string   `json:"description"`
	Sources     []string `json:"sources"`
	Headers     []string `json:"headers"`
	Query       string   `json:"query"` // the Meta path's query, as the SDK sends it
	Body        string   `json:"body"`
	Want        struct {
		Received int             `json:"events_received"`
		Stored   []fixtureStored `json:"stored"`
	} `json:"want"`
}

func loadSDKFixtures(t testing.TB) map[string]sdkFixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "sdk", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/sdk: %v", err)
	}
	out := map[string]sdkFixture{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx sdkFixture
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(fx.Sources) == 0 {
			t.Fatalf("%s names no source", f)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = fx
	}
	return out
}

// send posts the fixture to Meta's path as the SDK does, or (capi) to
// /v1/conversions with the Bearer token in place of its query token.
func (fx sdkFixture) send(e *testEnv, path, extraQuery string) response {
	if path == "meta" {
		q := fx.Query
		if extraQuery != "" {
			q += map[bool]string{true: "&", false: "?"}[q != ""] + extraQuery
		}
		return e.postMeta(q, fx.Body, fx.Headers...)
	}
	uri := "/v1/conversions?dataset=" + testDataset
	if extraQuery != "" {
		uri += "&" + extraQuery
	}
	h := append([]string{"Authorization: Bearer " + testToken}, fx.Headers...)
	return call(e.asAdvertiser(e.s.HandleConversions), "POST", uri, fx.Body, h...)
}

// Every SDK shape, on both paths: accepted and stored as the SDK meant it,
// then a resend (an SDK's retry) is deduplicated whole.
func TestSDKShapes(t *testing.T) {
	for name, fx := range loadSDKFixtures(t) {
		for _, path := range []string{"meta", "capi"} {
			t.Run(name+"/"+path, func(t *testing.T) {
				e := newTestEnv(t, nil)
				r := fx.send(e, path, "")
				m := r.json(t)
				if r.status != 200 || num(m, "events_received") != fx.Want.Received || num(m, "events_deduplicated") != 0 {
					t.Fatalf("%s: %d %s", fx.Description, r.status, r.body)
				}
				got := e.hook.all()
				if len(got) != len(fx.Want.Stored) {
					t.Fatalf("%d stored, want %d", len(got), len(fx.Want.Stored))
				}
				for i, w := range fx.Want.Stored {
					g := got[i]
					var kinds []string
					for _, id := range g.IDs {
						kinds = append(kinds, id.Kind.String())
					}
					gs := fixtureStored{EventName: g.EventName, IDs: kinds, Flags: flagNames(g.Flags), Value: g.Value,
						Currency: g.Currency, ActionSource: g.ActionSource.String(), Source: g.Source.String()}
					w.Source = "capi"
					if len(w.IDs) == 0 {
						w.IDs = nil
					}
					if len(w.Flags) == 0 {
						w.Flags = nil
					}
					if !reflect.DeepEqual(gs, w) {
						t.Fatalf("stored[%d] = %+v\nwant        %+v", i, gs, w)
					}
				}
				records := len(e.log.BatchRecords())
				r = fx.send(e, path, "")
				if m := r.json(t); r.status != 200 || num(m, "events_received") != fx.Want.Received || num(m, "events_deduplicated") != fx.Want.Received {
					t.Fatalf("resend: %d %s", r.status, r.body)
				}
				if len(e.hook.all()) != len(fx.Want.Stored) || len(e.log.BatchRecords()) != records {
					t.Fatal("a resend stored events again")
				}
			})
		}
	}
}

// The same requests with a test_event_code (in the query, as Meta's Test
// Events tool asks): answered exactly as the real ones, never stored nor
// journaled, and shown by GET /v1/test_events with hashed identifiers only.
func TestSDKShapesTestEvents(t *testing.T) {
	for name, fx := range loadSDKFixtures(t) {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			real := fx.send(newTestEnv(t, nil), "meta", "")
			r := fx.send(e, "meta", "test_event_code=TEST77")
			if r.status != real.status || !sameAnswer(t, r, real) {
				t.Fatalf("test batch answered %d %s, a real one %d %s", r.status, r.body, real.status, real.body)
			}
			if len(e.hook.all()) != 0 || len(e.log.Records()) != 0 || e.log.PendingCount() != 0 {
				t.Fatal("test events stored or journaled")
			}
			tr := call(e.asAdvertiser(func(ctx *fasthttp.RequestCtx, _ Body, adv string) error { return e.s.HandleTestEvents(ctx, adv) }),
				"GET", "/v1/test_events?dataset="+testDataset+"&test_event_code=TEST77", "", "Authorization: Bearer "+testToken)
			var out struct {
				Dataset    string      `json:"dataset"`
				TestEvents []testEvent `json:"test_events"`
			}
			if err := json.Unmarshal(tr.body, &out); err != nil || tr.status != 200 || len(out.TestEvents) != fx.Want.Received {
				t.Fatalf("test events: %d %s", tr.status, tr.body)
			}
			// Newest first: the batch's last event first.
			last, first := out.TestEvents[0], out.TestEvents[len(out.TestEvents)-1]
			if last.EventName != "Lead" || first.EventName != "Purchase" || first.Value == nil || *first.Value != 129.9 ||
				first.TestEventCode != "TEST77" || first.EventSourceURL != "https://shop.example.com/checkout/thanks" ||
				!first.Matchable || last.Matchable {
				t.Fatalf("test events %s", tr.body)
			}
			if em := first.UserData["em"]; len(em) != 1 || em[0] != "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d" {
				t.Fatalf("em %v", first.UserData)
			}
			if strings.Contains(string(tr.body), "203.0.113.42") || strings.Contains(string(tr.body), "fb.1.") {
				t.Fatalf("a clear identifier in the test events: %s", tr.body)
			}
		})
	}
}

// sameAnswer reports whether two CAPI answers agree but for fbtrace_id.
func sameAnswer(t *testing.T, a, b response) bool {
	ma, mb := a.json(t), b.json(t)
	delete(ma, "fbtrace_id")
	delete(mb, "fbtrace_id")
	return reflect.DeepEqual(ma, mb)
}
