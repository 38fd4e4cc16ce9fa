package conversions

import (
	"encoding/json"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// testEvent is what GET /v1/test_events shows of one event of a batch sent
// with a test_event_code: the fields Meta's Test Events tool shows, with no
// raw PII. Hashed user_data fields (em, ph, fn, ..., external_id) carry the
// SHA-256 of their normalized value (what Meta receives); the other
// customer information parameters (client_ip_address, fbp, madid, ...) are
// listed by name, their values are not kept. The URL loses its query and
// fragment (they may carry PII).
type testEvent struct {
	ReceivedTime    int64               `json:"received_time"` // Unix milliseconds, server clock
	TestEventCode   string              `json:"test_event_code"`
	EventName       string              `json:"event_name"`
	EventTime       int64               `json:"event_time"`
	EventID         string              `json:"event_id,omitempty"`
	ActionSource    string              `json:"action_source"`
	EventSourceURL  string              `json:"event_source_url,omitempty"`
	UserData        map[string][]string `json:"user_data"`
	OtherParameters []string            `json:"other_user_data_parameters,omitempty"`
	Value           *float64            `json:"value,omitempty"`
	Currency        string              `json:"currency,omitempty"`
	LimitedDataUse  string              `json:"limited_data_use,omitempty"` // restricted or kept
	Matchable       bool                `json:"matchable"`                  // has an identifier cpafeed matches
}

// Bounds of what one test event keeps.
const (
	maxTestURL    = 512 // bytes of event_source_url
	maxTestParams = 32  // user_data parameter names
)

// testRing holds the newest test events of one dataset, at most
// Config.TestEventsKept, shown for Config.TestEventsTTL.
type testRing struct {
	mu   sync.Mutex
	evs  []testEvent // a ring: evs[next] is the oldest once full
	next int
}

func (r *testRing) add(evs []testEvent, keep int) {
	if keep <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		if len(r.evs) < keep {
			r.evs = append(r.evs, ev)
			continue
		}
		r.evs[r.next] = ev
		r.next = (r.next + 1) % keep
	}
}

// list returns the events received at or after sinceMs with the given code
// ("" = any), newest first.
func (r *testRing) list(sinceMs int64, code string) []testEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]testEvent, 0, len(r.evs))
	for k := range len(r.evs) {
		i := (r.next - 1 - k + 2*len(r.evs)) % len(r.evs)
		ev := r.evs[i]
		if ev.ReceivedTime >= sinceMs && (code == "" || ev.TestEventCode == code) {
			out = append(out, ev)
		}
	}
	return out
}

// expire forgets the events received before sinceMs.
func (r *testRing) expire(sinceMs int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.evs[:0:0]
	for k := range len(r.evs) {
		ev := r.evs[(r.next+k)%len(r.evs)] // oldest first
		if ev.ReceivedTime >= sinceMs {
			kept = append(kept, ev)
		}
	}
	if len(kept) == len(r.evs) {
		return
	}
	r.evs, r.next = kept, 0
	if len(kept) == 0 {
		r.evs = nil
	}
}

// keepTestEvents records the events of a valid test batch (b, parsed from
// the array data) for GET /v1/test_events. Only on the test path: it may
// allocate.
func (s *Service) keepTestEvents(b *batch, ds *dataset, data *fastjson.Value) {
	arr, _ := data.Array()
	if len(arr) != len(b.events) || s.cfg.TestEventsKept <= 0 {
		return
	}
	evs := make([]testEvent, len(arr))
	var scratch []byte
	for i, v := range arr {
		e := &b.events[i]
		t := &evs[i]
		t.ReceivedTime, t.TestEventCode = b.nowMs, string(b.testCode)
		t.EventName, t.EventTime, t.ActionSource = string(e.name), e.time, e.action.String()
		t.Matchable = !e.unmatchable && !e.ldu.restricted()
		switch {
		case e.ldu.restricted():
			t.LimitedDataUse = "restricted"
		case e.ldu != lduNone:
			t.LimitedDataUse = "kept"
		}
		if e.flags&FlagValue != 0 {
			val := e.value
			t.Value, t.Currency = &val, e.currency
		}
		t.UserData = map[string][]string{}
		o, _ := v.Object()
		o.Visit(func(k []byte, x *fastjson.Value) {
			switch string(k) {
			case "event_id":
				if id, ok := b.scalar(x); ok {
					t.EventID = string(id)
				}
			case "event_source_url":
				if u, ok := stringOf(x); ok {
					t.EventSourceURL = displayURL(u)
				}
			case "user_data":
				scratch = t.addUserData(x, scratch)
			}
		})
	}
	clear(scratch)
	ds.tests.add(evs, s.cfg.TestEventsKept)
}

// addUserData fills t.UserData with the SHA-256 of each hashed field's
// normalized values and t.OtherParameters with the names of the others.
func (t *testEvent) addUserData(v *fastjson.Value, scratch []byte) []byte {
	o, err := v.Object()
	if err != nil {
		return scratch
	}
	o.Visit(func(k []byte, x *fastjson.Value) {
		if !present(x) {
			return
		}
		f := parseField(k)
		if f == fieldNone {
			if len(t.OtherParameters) < maxTestParams {
				t.OtherParameters = append(t.OtherParameters, string(k))
			}
			return
		}
		vals := []*fastjson.Value{x}
		if x.Type() == fastjson.TypeArray {
			vals, _ = x.Array()
		}
		for _, y := range vals[:min(len(vals), maxValuesPerField)] {
			raw, ok := stringOf(y)
			if !ok {
				continue
			}
			var norm []byte
			norm, _, ok = normalizeUserData(scratch[:0], f, raw)
			scratch = norm
			if !ok {
				continue
			}
			var hex [64]byte
			h := norm
			if !isSHA256Hex(norm) {
				h = appendSHA256Hex(hex[:0], norm)
			}
			t.UserData[fieldNames[f]] = append(t.UserData[fieldNames[f]], string(h))
		}
	})
	return scratch
}

// displayURL is u without its query and fragment, at most maxTestURL bytes.
func displayURL(u []byte) string {
	s := string(u)
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if len(s) > maxTestURL {
		s = s[:maxTestURL]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// HandleTestEvents serves GET /v1/test_events?dataset=<id> (or the
// advertiser's only dataset), optionally &test_event_code=<code>, for
// advertiser adv (the server resolved its token): the newest events of the
// batches sent with a test_event_code within Config.TestEventsTTL, newest
// first, as Meta's Test Events tool shows them:
//
//	{"dataset":"1234567890","test_events":[{"received_time":...,"test_event_code":"TEST1",
//	  "event_name":"Purchase","event_time":...,"event_id":"...","action_source":"website",
//	  "event_source_url":"https://shop.example.com/thanks","user_data":{"em":["<sha-256>"]},
//	  "other_user_data_parameters":["client_user_agent"],"value":129.9,"currency":"USD",
//	  "matchable":true}]}
//
// Test events are never stored as conversions nor journaled: they are gone
// after a restart.
func (s *Service) HandleTestEvents(ctx *fasthttp.RequestCtx, adv string) error {
	ds, aerr := s.queryDataset(ctx, adv)
	if aerr != nil {
		return aerr
	}
	since := s.cfg.Now().Add(-s.cfg.TestEventsTTL).UnixMilli()
	out := struct {
		Dataset    string      `json:"dataset"`
		TestEvents []testEvent `json:"test_events"`
	}{ds.id, ds.tests.list(since, string(ctx.QueryArgs().Peek("test_event_code")))}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	return nil
}
