package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/configs"
)

// TestConfigYAMLRoundTrip: the effective config, rendered unmasked, loads
// back into a config rendered the same (so what config check prints is
// what serve runs), for the embedded default and every example.
func TestConfigYAMLRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("../configs/examples/*.yaml")
	raws := map[string][]byte{"embedded": configs.Default}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws[f] = b
	}
	for name, raw := range raws {
		c, err := ParseConfig(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := c.YAML(false)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("%s: the effective config does not load: %v\n%s", name, err, out)
		}
		again, err := back.YAML(false)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(out) {
			t.Errorf("%s: the effective config loads back different:\n%s", name, out)
		}
	}
}

func TestConfigYAMLMasksSecrets(t *testing.T) {
	c, err := ParseConfig([]byte(`
identity: {secret: s3cret-identity}
advertisers: [{name: a, token: adv-t0ken, datasets: ["1"]}]
bidders: [{name: b, token: bid-t0ken, win_secret: w1n-secret-0123456789}, {name: c, token: c-t0ken}]
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.YAML(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s3cret-identity", "adv-t0ken", "bid-t0ken", "w1n-secret-0123456789", "c-t0ken"} {
		if strings.Contains(string(out), s) {
			t.Errorf("the masked config shows %q:\n%s", s, out)
		}
	}
	if n := strings.Count(string(out), Masked); n != 5 {
		t.Errorf("%d values masked, want 5:\n%s", n, out)
	}
	if !strings.Contains(string(out), `win_secret: ""`) { // bidder c has none: shown empty
		t.Errorf("an empty secret is not shown empty:\n%s", out)
	}
	f := func(key string, want bool) {
		t.Helper()
		if isSecretKey(key) != want {
			t.Errorf("isSecretKey(%q) = %v", key, !want)
		}
	}
	f("token", true)
	f("secret", true)
	f("win_secret", true)
	f("api_token", true)
	f("tokens", false)
	f("tcf_vendor_id", false)
}

// TestParseConfigReportsDecodeAndValueProblemsTogether: an unknown field
// does not hide the problems of the values.
func TestParseConfigReportsDecodeAndValueProblemsTogether(t *testing.T) {
	_, err := ParseConfig([]byte("listen: nowhere\nlisten_adress: x\nidentity: {secret: s}\n"))
	if err == nil || !strings.Contains(err.Error(), "listen_adress") || !strings.Contains(err.Error(), "listen: not HOST:PORT") {
		t.Errorf("got %v", err)
	}
}

const minimalConfig = "identity: {secret: s}\nadvertisers: [{name: a, token: t, datasets: [\"1\"]}]\n"

func TestDrainDelay(t *testing.T) {
	f := func(yaml string, want time.Duration) {
		t.Helper()
		c, err := ParseConfig([]byte(minimalConfig + yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.HTTP.Drain(); got != want {
			t.Errorf("%q: drain %s, want %s", yaml, got, want)
		}
	}
	f("", 5*time.Second)
	f("http: {drain_delay: 0s}", 0)
	f("http: {drain_delay: 30s}", 30*time.Second)
	if _, err := ParseConfig([]byte(minimalConfig + "http: {drain_delay: -1s}\n")); err == nil || !strings.Contains(err.Error(), "http.drain_delay") {
		t.Errorf("negative drain delay: %v", err)
	}
}

// TestReadyzDraining: from Drain on, /readyz answers 503 "draining" while
// the other routes are served.
func TestReadyzDraining(t *testing.T) {
	s := testServer(t, nil)
	if code, body := call(s, "GET", "/readyz", ""); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	s.Drain()
	if code, body := call(s, "GET", "/readyz", ""); code != 503 || body != `{"status":"draining"}` {
		t.Errorf("/readyz while draining: %d %s", code, body)
	}
	if code, body := call(s, "GET", "/v1/stats?dataset=1234567890", "", "Authorization: Bearer "+advToken); code != 200 {
		t.Errorf("/v1/stats while draining: %d %s", code, body)
	}
}
