package bidder

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fastjson"
)

// FuzzScoreRequest: any body is either scored, with a valid JSON answer
// holding every imp, or refused with a 400; never a panic.
func FuzzScoreRequest(f *testing.F) {
	all := fixtures(f)
	for _, n := range sortedNames(all) {
		f.Add(all[n])
	}
	f.Add([]byte(`{"id":"r","imp":[{"id":"1","video":{"plcmt":1}}],"app":{"publisher":{"id":"p\u0000\"x"}}}`))
	w := newWorld(f)
	w.feedFixtures(f, all)
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := call(w.svc, "POST", "/v1/score?campaigns=ctv-purchase,ctv-signup&explore=thompson", body, demoBidder)
		switch status {
		case 200:
			if !json.Valid(out) {
				t.Fatalf("answer is not JSON: %s", out)
			}
			var p fastjson.Parser
			if _, err := decodeAnswer(&p, out); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		case 400:
		default:
			t.Fatalf("status %d: %s", status, out)
		}
	})
}

// FuzzDecodeAnswer: the client's reading of an answer never panics.
func FuzzDecodeAnswer(f *testing.F) {
	all := fixtures(f)
	w := newWorld(f)
	w.feedFixtures(f, all)
	for _, n := range sortedNames(all)[:4] {
		_, out := call(w.svc, "POST", "/v1/score?explore=thompson", all[n], demoBidder)
		f.Add(out)
	}
	f.Add([]byte(`{"error":{"message":"x","code":100,"details":[{"index":1}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p fastjson.Parser
		decodeAnswer(&p, body)
		decodeFeatureAnswer(&p, body)
		decodeError(&p, 400, body)
	})
}
