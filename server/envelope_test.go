package server

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// checkEnvelope fails t unless body is Meta's Graph error envelope as every
// answer of cpafeed's API has it: message, type, code, is_transient (true
// exactly on 429 and 503, which Meta's SDKs retry), error_user_title,
// error_user_msg, fbtrace_id, and nothing else but error_subcode and
// cpafeed's details.
func checkEnvelope(t *testing.T, what string, status int, body string) {
	t.Helper()
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil || len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("%s: %d %q is not {\"error\":{...}}", what, status, body)
	}
	for k := range raw["error"] {
		switch k {
		case "message", "type", "code", "error_subcode", "is_transient", "error_user_title", "error_user_msg", "fbtrace_id", "details":
		default:
			t.Fatalf("%s: member %q is not Meta's: %s", what, k, body)
		}
	}
	var e struct {
		Error struct {
			Message   string  `json:"message"`
			Type      string  `json:"type"`
			Code      int     `json:"code"`
			Transient *bool   `json:"is_transient"`
			Title     *string `json:"error_user_title"`
			Msg       *string `json:"error_user_msg"`
			Trace     string  `json:"fbtrace_id"`
		}
	}
	_ = json.Unmarshal([]byte(body), &e)
	x := e.Error
	if x.Message == "" || x.Type == "" || x.Code == 0 || x.Trace == "" || x.Transient == nil || x.Title == nil || *x.Title == "" || x.Msg == nil || *x.Msg == "" {
		t.Fatalf("%s: incomplete envelope %s", what, body)
	}
	if *x.Transient != (status == 429 || status == 503) {
		t.Fatalf("%s: is_transient %v with status %d", what, *x.Transient, status)
	}
}

// TestEveryServerErrorHasTheEnvelope walks the errors the server answers
// itself, around the handlers: each is in Meta's envelope.
func TestEveryServerErrorHasTheEnvelope(t *testing.T) {
	s := testServer(t, func(c *Config) { c.HTTP.MaxBodyBytes = 4096 })
	f := func(what string, want, status int, body string) {
		t.Helper()
		if status != want {
			t.Fatalf("%s: %d %s, want %d", what, status, body, want)
		}
		checkEnvelope(t, what, status, body)
	}
	ev := `{"data":[{"event_name":"Lead","event_time":` + itoa(time.Now().Unix()) + `,"action_source":"app","user_data":{"external_id":"x"}}]}`
	st, b := call(s, "POST", "/v1/conversions?dataset=1234567890", ev, "Authorization: Bearer nope")
	f("401", 401, st, b)
	st, b = call(s, "POST", "/v24.0/999999/events?access_token="+advToken, ev)
	f("unknown dataset", 400, st, b)
	if !strings.Contains(b, `"error_subcode":33`) || !strings.Contains(b, "GraphMethodException") {
		t.Fatalf("unknown dataset: %s", b)
	}
	st, b = call(s, "GET", "/v2/nothing", "")
	f("404", 404, st, b)
	st, b = call(s, "GET", "/v1/conversions", "", "Authorization: Bearer "+advToken)
	f("405", 405, st, b)
	st, b = call(s, "POST", "/v1/conversions?dataset=1234567890", ev, "Authorization: Bearer "+advToken, "Content-Encoding: br")
	f("415", 415, st, b)
	st, b = call(s, "GET", "/v1/test_events", "", "Authorization: Bearer nope")
	f("test events, 401", 401, st, b)
	s.inflight[0].Store(int64(s.cfg.HTTP.MaxInflight))
	st, b = call(s, "POST", "/v1/conversions?dataset=1234567890", ev, "Authorization: Bearer "+advToken)
	s.inflight[0].Store(0)
	f("429 shed", 429, st, b)
	s.ready.Store(false)
	st, b = call(s, "POST", "/v1/conversions?dataset=1234567890", ev, "Authorization: Bearer "+advToken)
	s.ready.Store(true)
	f("503 not ready", 503, st, b)

	addr := serveOn(t, s)
	st, b = roundTrip(t, addr, "POST /v1/conversions?dataset=1234567890 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+advToken+
		"\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"+strings.Repeat(" ", 5000))
	f("413", 413, st, b)
	st, b = roundTrip(t, addr, "GET /v1/stats HTTP/1.1\r\nHost: x\r\n"+strings.Repeat("X-H: v\r\n", 1000)+"\r\n")
	f("431", 431, st, b)
	st, b = roundTrip(t, addr, "GET /v1/stats HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
	f("400 malformed", 400, st, b)
}

// TestRefusedConnectionsHaveTheEnvelope: beyond http.max_conns (503) and
// http.max_conns_per_ip (429) fasthttp refuses a connection before any
// handler runs; the answer is still the JSON envelope, with Retry-After.
func TestRefusedConnectionsHaveTheEnvelope(t *testing.T) {
	for _, c := range []struct {
		what     string
		edit     func(*Config)
		want     int
		contains string
	}{
		{"max_conns", func(c *Config) { c.HTTP.MaxConns, c.HTTP.MaxConnsPerIP = 1, -1 }, 503, "http.max_conns"},
		{"max_conns_per_ip", func(c *Config) { c.HTTP.MaxConns, c.HTTP.MaxConnsPerIP = 8, 1 }, 429, "http.max_conns_per_ip"},
	} {
		s := testServer(t, c.edit)
		addr := serveOn(t, s)
		hold, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// The held connection is being served (a request answered) before
		// the second one arrives.
		if _, err := hold.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		hold.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := hold.Read(buf); err != nil {
			t.Fatal(err)
		}
		st, b := roundTrip(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		hold.Close()
		if st != c.want || !strings.Contains(b, c.contains) {
			t.Fatalf("%s: %d %s, want %d", c.what, st, b, c.want)
		}
		checkEnvelope(t, c.what, st, b)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
