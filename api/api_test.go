package api

import (
	"encoding/json"
	"testing"
)

// TestJSON: the embedded document converts to JSON that reads back with
// the OpenAPI version, string status codes and typed scalars.
func TestJSON(t *testing.T) {
	b, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	if _, ok := doc.Paths["/healthz"]["get"]["responses"].(map[string]any)["200"]; !ok {
		t.Errorf("GET /healthz has no \"200\" response: %v", doc.Paths["/healthz"])
	}
	f := func(yaml, want string) {
		t.Helper()
		got, err := ToJSON([]byte(yaml))
		if err != nil || string(got) != want {
			t.Errorf("ToJSON(%q) = %s, %v; want %s", yaml, got, err, want)
		}
	}
	f("a: 1", `{"a":1}`)
	f("200: x", `{"200":"x"}`)
	f(`a: "1"`, `{"a":"1"}`)
	f("a: [true, null, 1.5, v24.0]", `{"a":[true,null,1.5,"v24.0"]}`)
	if _, err := ToJSON([]byte("a: &x 1\nb: *x\n")); err == nil {
		t.Error("an alias was accepted")
	}
}
