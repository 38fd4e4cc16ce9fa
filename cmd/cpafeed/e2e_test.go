package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the cpafeed binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cpafeed-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "cpafeed")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot build cpafeed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `cpafeed serve`.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	mu   sync.Mutex
	logs bytes.Buffer
	eof  chan struct{} // closed when all of stderr is in logs
}

var listening = regexp.MustCompile(`msg="cpafeed listening" addr=(\S+)`)

// start runs `cpafeed serve` on a free loopback port with the embedded
// default config and dataDir, and waits until it is ready.
func start(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	return startUnder(t, nil, dataDir, extra...)
}

// startUnder is start with the binary run by the command prefix (e.g. a
// shell that sets a limit and execs it). It shuts down without a drain
// delay unless extra sets one.
func startUnder(t *testing.T, prefix []string, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--config", "../../configs/cpafeed.yaml", "--listen", "127.0.0.1:0", "--data", dataDir, "--drain-delay", "0s"}, extra...)
	argv := append(append(prefix[:len(prefix):len(prefix)], binary), args...)
	return launch(t, argv, nil)
}

// launch runs argv, a `cpafeed serve`, with env added to the environment,
// and waits until it is ready.
func launch(t *testing.T, argv, env []string) *proc {
	t.Helper()
	p := &proc{t: t, eof: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.wait()
		}
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("cpafeed did not start:\n%s", p.Logs())
	}
	// Ready: /readyz says so and the log has caught up with it (the pipe
	// is read on its own goroutine, so the HTTP answer can come before the
	// lines logged during recovery are in p.logs).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(p.Logs(), `msg="cpafeed ready"`) {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("cpafeed not ready:\n%s", p.Logs())
	return nil
}

func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
}

func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait()
}

// wait reads stderr to its end (the process exited), then reaps the
// process: Wait closes the pipe, so calling it first could lose the last
// lines logged.
func (p *proc) wait() error {
	select {
	case <-p.eof:
	case <-time.After(60 * time.Second):
		p.t.Errorf("cpafeed's stderr not closed 60 s after the signal")
	}
	return p.cmd.Wait()
}

// do sends a request and decodes a JSON answer.
func (p *proc) do(method, path, contentType, token string, body []byte) (int, map[string]any, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			p.t.Fatalf("%s %s: answer is not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out, raw
}

const (
	advToken    = "dev-advertiser-token"
	bidderToken = "dev-bidder-token"
)

func purchase(id string, t int64) map[string]any {
	return map[string]any{
		"event_name": "Purchase", "event_time": t, "event_id": id, "action_source": "website",
		"event_source_url": "https://shop.example.com/thanks",
		"user_data": map[string]any{
			"em": []string{"jane.doe@example.com"}, "client_ip_address": "203.0.113.42",
			"client_user_agent": "Mozilla/5.0",
		},
		"custom_data": map[string]any{"value": 129.9, "currency": "USD"},
	}
}

func jsonBody(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stats(t *testing.T, p *proc) map[string]any {
	t.Helper()
	status, out, raw := p.do("GET", "/v1/stats?dataset=1234567890", "", advToken, nil)
	if status != 200 {
		t.Fatalf("stats: %d %s", status, raw)
	}
	return out
}

func num(m map[string]any, path ...string) float64 {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return -1
		}
		v = mm[k]
	}
	f, _ := v.(float64)
	return f
}

// TestEndToEndConversionsDedupAcrossPathsAndRestart: a batch with a duplicate
// through /v1/conversions, the same events through Meta's path (form-encoded,
// token in the body) and the pixel; then kill -9, restart, and a retry.
func TestEndToEndConversionsDedupAcrossPathsAndRestart(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	now := time.Now().Unix()

	batch := jsonBody(t, map[string]any{"data": []any{purchase("o-1", now-60), purchase("o-2", now-50), purchase("o-1", now-60)}})
	status, out, raw := p.do("POST", "/v1/conversions?dataset=1234567890", "application/json", advToken, batch)
	if status != 200 || out["events_received"] != 3.0 || out["events_deduplicated"] != 1.0 {
		t.Fatalf("CAPI: %d %s", status, raw)
	}

	// Meta's curl form: data=<JSON array>&access_token=...
	form := url.Values{"data": {string(jsonBody(t, []any{purchase("o-2", now-50), purchase("o-3", now-40)}))}, "access_token": {advToken}}
	status, out, raw = p.do("POST", "/v24.0/1234567890/events", "application/x-www-form-urlencoded", "", []byte(form.Encode()))
	if status != 200 || out["events_received"] != 2.0 || out["events_deduplicated"] != 1.0 || out["fbtrace_id"] == "" {
		t.Fatalf("Meta path: %d %s", status, raw)
	}

	// The pixel fires for o-3 and o-4.
	for _, eid := range []string{"o-3", "o-4"} {
		req, _ := http.NewRequest("GET", p.base+"/v1/pixel?id=1234567890&ev=Purchase&eid="+eid+"&em=jane.doe%40example.com&value=10&currency=USD", nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (e2e)")
		req.Header.Set("Referer", "https://shop.example.com/thanks")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" {
			t.Fatalf("pixel %s: %d %s", eid, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}

	before := stats(t, p)
	if got := num(before, "stored"); got != 4 {
		t.Fatalf("stored %v, want 4 (o-1..o-4): %v", got, before)
	}

	// Every acknowledged event survives kill -9.
	p.kill9()
	p = start(t, dir)
	after := stats(t, p)
	if num(after, "stored") != 4 {
		t.Fatalf("after kill -9: %v", after)
	}
	// A client retry after the restart is deduplicated.
	status, out, raw = p.do("POST", "/v1/conversions?dataset=1234567890", "application/json", advToken, batch)
	if status != 200 || out["events_deduplicated"] != 3.0 {
		t.Fatalf("retry after restart: %d %s", status, raw)
	}
	if num(stats(t, p), "stored") != 4 {
		t.Fatal("retry stored events twice")
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}
	// Logs never carry a raw identifier.
	for _, raw := range []string{"jane.doe@example.com", "203.0.113.42"} {
		if strings.Contains(p.Logs(), raw) {
			t.Fatalf("log holds %q", raw)
		}
	}
}

func TestServeRefusesDevTokensOffLoopback(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--config", "../../configs/cpafeed.yaml", "--listen", "0.0.0.0:0", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to listen on 0.0.0.0:0 with development credentials") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "cpafeed ") {
		t.Fatalf("%v %s", err, out)
	}
}

// TestEndToEndBidWinVASTConversionAttributed: remember a bid, send its win
// notice and VAST events, post a conversion from another device of the
// household (same IP, no IFA) and see it attributed in the campaign report
// and the segment list; then restart and see the same.
func TestEndToEndBidWinVASTConversionAttributed(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	bid, err := os.ReadFile("../../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	if err != nil {
		t.Fatal(err)
	}
	status, out, raw := p.do("POST", "/v1/bids", "application/json", bidderToken, bid)
	if status != 200 || out["remembered"] != 3.0 {
		t.Fatalf("bids: %d %s", status, raw)
	}
	// The bid memory applies sets asynchronously: retry the win briefly.
	get := func(path string) {
		t.Helper()
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	report := func() map[string]any {
		t.Helper()
		status, out, raw := p.do("GET", "/v1/campaigns/demo-ctv-purchase/stats", "", advToken, nil)
		if status != 200 {
			t.Fatalf("campaign stats: %d %s", status, raw)
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for num(report(), "exposures") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("win notice never counted")
		}
		get("/v1/win?auction=9f1c2d3e-roku-0001&imp=1&campaign=demo-ctv-purchase&creative=cr1&price=24.5")
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the won exposure is remembered asynchronously too
	for _, ev := range []string{"impression", "start", "midpoint", "complete"} {
		get("/v1/vast?auction=9f1c2d3e-roku-0001&imp=1&campaign=demo-ctv-purchase&ev=" + ev)
	}
	r := report()
	if num(r, "exposures") != 1 || num(r, "starts") != 1 || num(r, "completes") != 1 || num(r, "spend") < 0.0244 {
		t.Fatalf("report after win and VAST: %v", r)
	}

	// A purchase from a phone in the same household, 10 minutes later.
	now := time.Now().Unix()
	conv := purchase("order-tv-1", now)
	conv["user_data"] = map[string]any{"client_ip_address": "73.92.14.201", "client_user_agent": "Mozilla/5.0 (iPhone)"}
	status, _, raw = p.do("POST", "/v1/conversions", "application/json", advToken, jsonBody(t, map[string]any{"data": []any{conv}}))
	if status != 200 {
		t.Fatalf("conversion: %d %s", status, raw)
	}
	check := func(p *proc) {
		t.Helper()
		r := report()
		if num(r, "conversions", "attributed") != 1 || num(r, "conversions", "attributed_by_method", "household_ip") != 1 {
			t.Fatalf("conversion not attributed by household IP: %v", r)
		}
	}
	check(p)
	// The segment list (readable keys) after the model's refresh: under the
	// crossed model (the embedded config's), level 2 is the second effect
	// key, [publisher, bundle].
	var seg map[string]any
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, seg, _ = p.do("GET", "/v1/segments?campaign=demo-ctv-purchase&level=2&sort=cvr", "", bidderToken, nil)
		if rows, _ := seg["segments"].([]any); len(rows) == 1 && num(rows[0].(map[string]any), "conversions") > 0.9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment not credited: %v", seg)
		}
		time.Sleep(100 * time.Millisecond)
	}
	row := seg["segments"].([]any)[0].(map[string]any)
	if row["segment"].(string) != "demo-ctv-purchase/publisher+bundle=pub-1203+151908" {
		t.Fatalf("readable key %v", row["segment"])
	}
	// The same value's effect over GET /v1/effects.
	_, eff, raw := p.do("GET", "/v1/effects?campaign=demo-ctv-purchase&key=publisher%2Bbundle", "", bidderToken, nil)
	if rows, _ := eff["effects"].([]any); len(rows) != 1 || rows[0].(map[string]any)["value"] != "pub-1203+151908" ||
		num(rows[0].(map[string]any), "conversions") < 0.9 || !(num(rows[0].(map[string]any), "effect") > 0) {
		t.Fatalf("effects: %s", raw)
	}
	// Reports are tenant-scoped.
	if status, _, _ := p.do("GET", "/v1/campaigns/demo-ctv-purchase/stats", "", "nope", nil); status != 401 {
		t.Fatalf("unknown token: %d", status)
	}

	// The same after a restart (rebuilt from the journal).
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	p = start(t, dir)
	check(p)
}

// TestEndToEndDeleteIdentities: a household's exposure is deleted on the
// advertiser's request; a later conversion from that household is not
// attributed, also after a restart (the tombstone is replayed).
func TestEndToEndDeleteIdentities(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	now := time.Now().Unix()
	exp := map[string]any{"request_id": "del-1", "imp_id": "1", "campaign": "demo-ctv-purchase", "price_cpm": 20, "ts": now - 100,
		"features": map[string]any{"publisher": "pub-9", "bundle": "com.x", "genre": "News", "metro": "501"},
		"ids":      map[string]any{"ip": "198.51.100.7", "ifa": "11111111-2222-3333-4444-555555555555"}}
	status, _, raw := p.do("POST", "/v1/exposures", "application/json", bidderToken, jsonBody(t, map[string]any{"exposures": []any{exp}}))
	if status != 200 {
		t.Fatalf("exposures: %d %s", status, raw)
	}
	// Only the advertiser's token may delete.
	if status, _, _ := p.do("DELETE", "/v1/identities", "application/json", bidderToken, []byte(`{"client_ip_address":"198.51.100.7"}`)); status != 401 {
		t.Fatalf("bidder token deleted: %d", status)
	}
	status, out, raw := p.do("DELETE", "/v1/identities", "application/json", advToken, []byte(`{"client_ip_address":["198.51.100.7"],"em":"someone@example.com"}`))
	if status != 200 || out["identities"] != 2.0 || out["exposures_removed"] != 1.0 {
		t.Fatalf("delete: %d %s", status, raw)
	}
	check := func(p *proc, order string) {
		t.Helper()
		conv := purchase(order, time.Now().Unix())
		conv["user_data"] = map[string]any{"client_ip_address": "198.51.100.7", "client_user_agent": "Mozilla/5.0"}
		if status, _, raw := p.do("POST", "/v1/conversions", "application/json", advToken, jsonBody(t, map[string]any{"data": []any{conv}})); status != 200 {
			t.Fatalf("conversion: %d %s", status, raw)
		}
		_, r, _ := p.do("GET", "/v1/campaigns/demo-ctv-purchase/stats", "", advToken, nil)
		if num(r, "conversions", "attributed") != 0 {
			t.Fatalf("deleted exposure attributed: %v", r)
		}
	}
	check(p, "del-order-1")
	p.kill9()
	p = start(t, dir)
	check(p, "del-order-2")
}
