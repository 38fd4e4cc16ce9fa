package conversions

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/signals"
)

// fixture is one request of testdata/valid or testdata/invalid and what it
// must produce. The fixtures are the spec of the endpoints; the clock is
// testNow (event_time 1795628590).
type fixture struct {
	Description string          `json:"description"`
	Endpoint    string          `json:"endpoint"` // capi (default), meta, pixel
	URI         string          `json:"uri"`      // overrides the endpoint's default URI
	Query       string          `json:"query"`    // appended to the URI
	Headers     []string        `json:"headers"`  // "Name: value"
	Body        json.RawMessage `json:"body"`     // sent byte for byte (a JSON string is sent as its text)
	Want        struct {
		Status       int              `json:"status"`
		Received     *int             `json:"events_received"`
		Deduplicated *int             `json:"events_deduplicated"`
		Messages     []string         `json:"messages"`
		Stored       []fixtureStored  `json:"stored"`
		Code         int              `json:"code"`
		Subcode      int              `json:"error_subcode"`
		Type         string           `json:"type"`
		Details      []map[string]any `json:"details"`
		GIF          bool             `json:"gif"`
		Rejected     int              `json:"rejected"`
		Message      string           `json:"message"`    // the error's, exactly
		UserTitle    string           `json:"user_title"` // error_user_title, exactly
	} `json:"want"`
}

type fixtureStored struct {
	EventName    string   `json:"event_name"`
	EventTime    int64    `json:"event_time"`
	IDs          []string `json:"ids"` // identity kinds, in order
	Flags        []string `json:"flags"`
	Value        float64  `json:"value"`
	Currency     string   `json:"currency"`
	ActionSource string   `json:"action_source"`
	Source       string   `json:"source"`
}

func flagNames(f Flags) []string {
	var out []string
	for _, x := range []struct {
		f    Flags
		name string
	}{{FlagLDU, "ldu"}, {FlagOptOut, "opt_out"}, {FlagValue, "value"}, {FlagFingerprint, "fingerprint"}} {
		if f&x.f != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

func loadFixtures(t testing.TB, dir string) map[string]fixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	out := make(map[string]fixture, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = fx
	}
	return out
}

// body returns the bytes to send: a JSON string fixture body is sent as its
// text (form bodies, malformed JSON), anything else as written.
func (fx fixture) body() string {
	var s string
	if len(fx.Body) > 0 && fx.Body[0] == '"' && json.Unmarshal(fx.Body, &s) == nil {
		return s
	}
	return string(fx.Body)
}

func (fx fixture) run(e *testEnv) response {
	headers := fx.Headers
	switch fx.Endpoint {
	case "meta":
		uri := "/v24.0/" + testDataset + "/events"
		if fx.URI != "" {
			uri = fx.URI
		}
		return call(func(ctx *fasthttp.RequestCtx, b []byte) error {
			return e.metaEvents(ctx, bodyOf(b), testDataset)
		}, "POST", uri+fx.Query, fx.body(), headers...)
	case "pixel":
		method := "GET"
		if len(fx.Body) > 0 {
			method = "POST"
		}
		uri := "/v1/pixel"
		return call(raw(e.s.HandlePixel), method, uri+fx.Query, fx.body(), headers...)
	default:
		uri := "/v1/conversions?dataset=" + testDataset
		if fx.URI != "" {
			uri = fx.URI
		}
		if len(headers) == 0 {
			headers = []string{"Authorization: Bearer " + testToken, "Content-Type: application/json"}
		}
		return call(e.asAdvertiser(e.s.HandleConversions), "POST", uri+fx.Query, fx.body(), headers...)
	}
}

func TestFixturesValid(t *testing.T) {
	for name, fx := range loadFixtures(t, "valid") {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			e := newTestEnv(t, nil)
			r := fx.run(e)
			want := fx.Want
			if want.Status == 0 {
				want.Status = 200
			}
			if r.status != want.Status {
				t.Fatalf("%s: status %d, want %d: %s", fx.Description, r.status, want.Status, r.body)
			}
			if want.GIF {
				if r.ctype != "image/gif" || string(r.body) != signals.TransparentGIF {
					t.Fatalf("not the GIF: %s %q", r.ctype, r.body)
				}
			} else {
				m := r.json(t)
				if want.Received != nil && num(m, "events_received") != *want.Received {
					t.Fatalf("events_received %v, want %d", m["events_received"], *want.Received)
				}
				if want.Deduplicated != nil && num(m, "events_deduplicated") != *want.Deduplicated {
					t.Fatalf("events_deduplicated %v, want %d", m["events_deduplicated"], *want.Deduplicated)
				}
				msgs, _ := m["messages"].([]any)
				if len(msgs) != len(want.Messages) {
					t.Fatalf("messages %v, want %v", msgs, want.Messages)
				}
				for i := range msgs {
					if msgs[i] != want.Messages[i] {
						t.Fatalf("messages %v, want %v", msgs, want.Messages)
					}
				}
			}
			got := e.hook.all()
			if len(got) != len(want.Stored) {
				t.Fatalf("%d events stored, want %d: %+v", len(got), len(want.Stored), got)
			}
			for i, w := range want.Stored {
				g := got[i]
				var kinds []string
				for _, id := range g.IDs {
					kinds = append(kinds, id.Kind.String())
				}
				gs := fixtureStored{EventName: g.EventName, EventTime: g.EventTime, IDs: kinds, Flags: flagNames(g.Flags),
					Value: g.Value, Currency: g.Currency, ActionSource: g.ActionSource.String(), Source: g.Source.String()}
				if len(w.IDs) == 0 {
					w.IDs = nil
				}
				if len(w.Flags) == 0 {
					w.Flags = nil
				}
				if w.Source == "" {
					w.Source = "capi"
				}
				if w.EventTime == 0 {
					w.EventTime = g.EventTime
				}
				if !reflect.DeepEqual(gs, w) {
					t.Fatalf("stored[%d] = %+v\nwant        %+v", i, gs, w)
				}
			}
			// What the hook saw is what the journal holds.
			stored := 0
			for _, rec := range e.log.BatchRecords() {
				var d decodedRecord
				if err := decodeRecord(&d, rec); err != nil {
					t.Fatal(err)
				}
				stored += len(d.events)
			}
			if stored != len(want.Stored) {
				t.Fatalf("journal holds %d events, want %d", stored, len(want.Stored))
			}
			if want.Rejected > 0 {
				st := e.stats(t)
				if num(st, "rejected") != want.Rejected {
					t.Fatalf("rejected %v, want %d", st["rejected"], want.Rejected)
				}
			}
		})
	}
}

func TestFixturesInvalid(t *testing.T) {
	for name, fx := range loadFixtures(t, "invalid") {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			e := newTestEnv(t, nil)
			r := fx.run(e)
			want := fx.Want
			if r.status != want.Status {
				t.Fatalf("%s: status %d, want %d: %s", fx.Description, r.status, want.Status, r.body)
			}
			ge := checkEnvelope(t, r.status, r.body)
			if want.Message != "" && ge.Message != want.Message {
				t.Fatalf("message %q, want %q", ge.Message, want.Message)
			}
			if want.UserTitle != "" && *ge.UserTitle != want.UserTitle {
				t.Fatalf("error_user_title %q, want %q", *ge.UserTitle, want.UserTitle)
			}
			if ge.Code != want.Code || ge.Subcode != want.Subcode || (want.Type != "" && ge.Type != want.Type) || ge.FBTraceID == "" || ge.Message == "" {
				t.Fatalf("error %+v, want code %d subcode %d type %q", ge, want.Code, want.Subcode, want.Type)
			}
			if len(want.Details) > 0 || len(ge.Details) > 0 {
				if !reflect.DeepEqual(ge.Details, want.Details) {
					gb, _ := json.MarshalIndent(ge.Details, "", " ")
					t.Fatalf("details:\n%s\nwant %v", gb, want.Details)
				}
				first := want.Details[0]
				if !strings.HasPrefix(ge.Message, first["field"].(string)+": "+first["reason"].(string)) {
					t.Fatalf("message %q does not start with the first problem", ge.Message)
				}
			}
			if n := len(e.hook.all()); n != 0 {
				t.Fatalf("%d events stored from an invalid request", n)
			}
			if n := len(e.log.BatchRecords()) + e.log.PendingCount(); n != 0 {
				t.Fatalf("%d records journaled from an invalid request", n)
			}
		})
	}
}

// envelope is Meta's Graph error envelope as cpafeed writes it.
type envelope struct {
	Message   string           `json:"message"`
	Type      string           `json:"type"`
	Code      int              `json:"code"`
	Subcode   int              `json:"error_subcode"`
	Transient *bool            `json:"is_transient"`
	UserTitle *string          `json:"error_user_title"`
	UserMsg   *string          `json:"error_user_msg"`
	FBTraceID string           `json:"fbtrace_id"`
	Details   []map[string]any `json:"details"`
}

// checkEnvelope fails t unless body is Meta's error envelope, with
// is_transient true exactly for 429 and 503, and no member but Meta's and
// details; it returns the error.
func checkEnvelope(t testing.TB, status int, body []byte) envelope {
	t.Helper()
	var got map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &got); err != nil || len(got) != 1 || got["error"] == nil {
		t.Fatalf("error answer %q is not {\"error\":{...}}: %v", body, err)
	}
	for k := range got["error"] {
		switch k {
		case "message", "type", "code", "error_subcode", "is_transient", "error_user_title", "error_user_msg", "fbtrace_id", "details":
		default:
			t.Fatalf("error answer has a member %q that is not Meta's: %s", k, body)
		}
	}
	var e struct{ Error envelope }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error answer %s: %v", body, err)
	}
	ge := e.Error
	if ge.Message == "" || ge.Type == "" || ge.Code == 0 || ge.FBTraceID == "" || ge.Transient == nil ||
		ge.UserTitle == nil || *ge.UserTitle == "" || ge.UserMsg == nil || *ge.UserMsg == "" {
		t.Fatalf("incomplete envelope: %s", body)
	}
	if *ge.Transient != (status == 429 || status == 503) {
		t.Fatalf("is_transient %v for status %d: %s", *ge.Transient, status, body)
	}
	return ge
}
