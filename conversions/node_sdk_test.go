package conversions

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/valyala/fasthttp"
)

// nodeSDKVersion is the Meta Node business SDK the optional test installs
// from npm.
const nodeSDKVersion = "24.0.1"

// TestNodeSDKAgainstCpafeed runs Meta's Node business SDK, installed from
// npm, through README's recipe (FacebookAdsApi.GRAPH redefined) against a
// loopback server of the Meta path: the event is stored, a resend
// deduplicated, and an unknown dataset raises the SDK's FacebookRequestError
// with Meta's answer (code 100, subcode 33). Optional: skipped with -short,
// without node and npm, or when the npm registry cannot be reached (CI
// stays green without it). The install is kept in the temp dir for the
// next run.
func TestNodeSDKAgainstCpafeed(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Node SDK test installs from npm")
	}
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("node or npm not installed")
	}
	dir := filepath.Join(os.TempDir(), "cpafeed-node-sdk-"+nodeSDKVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "facebook-nodejs-business-sdk", "package.json")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"private":true}`), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--silent", "facebook-nodejs-business-sdk@"+nodeSDKVersion)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("npm install failed (no registry?): %v %s", err, out)
		}
	}

	e := newTestEnv(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		parts := strings.Split(strings.Trim(string(ctx.Path()), "/"), "/")
		var err error
		if len(parts) == 3 && parts[2] == "events" {
			err = e.metaEvents(ctx, bodyOf(ctx.Request.Body()), parts[1])
		} else {
			err = apierr.NotFound("%s: no such endpoint", ctx.Path())
		}
		if err != nil {
			ae := apierr.As(err)
			ctx.Response.Reset()
			ctx.SetStatusCode(ae.Status)
			ctx.SetContentType("application/json")
			ctx.SetBody(apierr.AppendJSON(nil, ae, apierr.TraceID(ctx.ID())))
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	base := "http://" + ln.Addr().String()

	run := func(dataset, eventID string) map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "node", "send_events.js"),
			base, testToken, dataset, itoa(testNow.Unix()-60), eventID)
		cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node: %v %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
			t.Fatalf("node printed %q", out)
		}
		return m
	}
	ok, _ := run(testDataset, "node-sdk-1")["ok"].(map[string]any)
	if ok == nil || ok["_events_received"] != 1.0 { // EventResponse, as the SDK prints it
		t.Fatalf("the SDK's answer: %v", ok)
	}
	if got := e.hook.all(); len(got) != 1 || got[0].EventName != "Purchase" || got[0].Value != 129.9 || len(got[0].IDs) != 2 {
		t.Fatalf("stored %+v", got)
	}
	if ok, _ := run(testDataset, "node-sdk-1")["ok"].(map[string]any); ok == nil || len(e.hook.all()) != 1 {
		t.Fatalf("a resend: %v, %d stored", ok, len(e.hook.all()))
	}
	fail, _ := run("999999", "node-sdk-2")["error"].(map[string]any)
	merr, _ := fail["response"].(map[string]any) // the SDK keeps the envelope's "error" member

	if fail == nil || fail["status"] != 400.0 || merr["code"] != 100.0 || merr["error_subcode"] != 33.0 || merr["type"] != "GraphMethodException" {
		t.Fatalf("unknown dataset through the SDK: %v", fail)
	}
}
