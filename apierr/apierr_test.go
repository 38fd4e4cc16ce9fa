package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestAppendJSONIsValidJSON(t *testing.T) {
	e := BadRequest("data[3].event_time: older than 7 days").WithSubcode(SubcodeStaleEvent)
	e.Details = []Detail{{Index: 3, Field: "data[3].event_time", Reason: "older than 7 days"}, {Index: -1, Field: "a\"b\\c\n<x>\x01", Reason: "ctl"}}
	b := AppendJSON(nil, e, "trace-1")
	var v struct {
		Error struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      int    `json:"code"`
			Subcode   int    `json:"error_subcode"`
			FBTraceID string `json:"fbtrace_id"`
			Details   []struct {
				Index  int    `json:"index"`
				Field  string `json:"field"`
				Reason string `json:"reason"`
			} `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	if v.Error.Code != 100 || v.Error.Subcode != SubcodeStaleEvent || v.Error.FBTraceID != "trace-1" || v.Error.Type != "OAuthException" {
		t.Fatalf("unexpected %+v", v.Error)
	}
	if len(v.Error.Details) != 2 || v.Error.Details[1].Field != "a\"b\\c\n<x>\x01" {
		t.Fatalf("details not round-tripped: %+v", v.Error.Details)
	}
}

func TestAs(t *testing.T) {
	if got := As(fmt.Errorf("wrap: %w", NotFound("campaign x"))); got.Status != 404 {
		t.Fatalf("status %d", got.Status)
	}
	if got := As(errors.New("boom")); got.Status != 500 || got.Message != "internal error" {
		t.Fatalf("got %+v", got)
	}
}

// TestAppendBytes: values (feature values, ids) are escaped into valid JSON.
func TestAppendBytes(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := string(AppendBytes(nil, []byte(in)))
		if got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%q: %s is not JSON: %v", in, got, err)
		}
	}
	f("pub-1203", `"pub-1203"`)
	f(`a"b\c`, `"a\"b\\c"`)
	f("tab\there\nnl", `"tab\there\nnl"`)
	f("\x01", `"\u0001"`)
	f("<b>", `"\u003cb\u003e"`)
	f("Café/Ünïcode", `"Café/Ünïcode"`)
	f("bad\xffutf8", "\"bad\ufffdutf8\"")
	f("", `""`)
}
