package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// runBinary runs the cpafeed binary with args (and env added to the
// environment), expecting it to exit within 30 s.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("cpafeed %s: still running after 30 s", strings.Join(args, " "))
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// TestHelpExitsZero: -h and --help print the usage on stdout and exit 0,
// for the binary and every command; a mistake prints it on stderr and
// exits 2.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"serve", "-h"}, {"serve", "--help"}, {"help", "serve"},
		{"bench", "-h"}, {"bench", "--help"},
		{"simulate", "-h"}, {"simulate", "--help"},
		{"version", "-h"}, {"version", "--help"},
		{"config", "-h"}, {"config", "--help"}, {"config", "check", "-h"}, {"config", "check", "--help"},
	} {
		stdout, stderr, code := runBinary(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "Usage") || stderr != "" {
			t.Errorf("cpafeed %s: exit %d, stdout %q, stderr %q; want the usage on stdout and exit 0",
				strings.Join(args, " "), code, firstLine(stdout), stderr)
		}
	}
	for _, args := range [][]string{
		{}, {"nope"}, {"serve", "--nope"}, {"serve", "extra"}, {"bench", "--nope"}, {"simulate", "--nope"},
		{"config"}, {"config", "nope"}, {"config", "check"}, {"config", "check", "a.yaml", "b.yaml"},
	} {
		stdout, stderr, code := runBinary(t, nil, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "Usage") && !strings.Contains(stderr, "cpafeed") {
			t.Errorf("cpafeed %s: exit %d, stdout %q, stderr %q; want a message on stderr and exit 2",
				strings.Join(args, " "), code, firstLine(stdout), firstLine(stderr))
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

var helpFlag = regexp.MustCompile(`(?m)^  --([a-z-]+)(.*)$`)

// TestServeFlagsFromEnvironment: every flag of serve can come from its
// CPAFEED_* variable, which serve -h names; a flag on the command line
// wins; a bad value is refused naming the variable.
func TestServeFlagsFromEnvironment(t *testing.T) {
	help, _, _ := runBinary(t, nil, "serve", "-h")
	flags := helpFlag.FindAllStringSubmatch(help, -1)
	if len(flags) < 6 {
		t.Fatalf("serve -h lists %d flags:\n%s", len(flags), help)
	}
	for _, f := range flags {
		env := "CPAFEED_" + strings.ToUpper(strings.ReplaceAll(f[1], "-", "_"))
		if !strings.Contains(f[2], "["+env+"]") {
			t.Errorf("serve -h: --%s does not name %s: %q", f[1], env, f[0])
		}
	}

	dataA, dataB := t.TempDir(), t.TempDir()
	env := []string{"CPAFEED_CONFIG=../../configs/cpafeed.yaml", "CPAFEED_LISTEN=127.0.0.1:0", "CPAFEED_DATA=" + dataA, "CPAFEED_DRAIN_DELAY=0s"}
	p := launch(t, []string{binary, "serve"}, env)
	if !strings.Contains(p.Logs(), "data_dir="+dataA) {
		t.Errorf("CPAFEED_DATA not used:\n%s", p.Logs())
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}
	p = launch(t, []string{binary, "serve", "--data", dataB}, env)
	if !strings.Contains(p.Logs(), "data_dir="+dataB) {
		t.Errorf("--data did not win over CPAFEED_DATA:\n%s", p.Logs())
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}

	_, stderr, code := runBinary(t, []string{"CPAFEED_REPAIR=maybe", "CPAFEED_DRAIN_DELAY=soon"}, "serve", "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "CPAFEED_REPAIR") || !strings.Contains(stderr, "CPAFEED_DRAIN_DELAY") {
		t.Errorf("bad environment values: exit %d, %s", code, stderr)
	}
}

// TestConfigCheck: `cpafeed config check FILE` reports every problem at
// once (exit 1), or prints the effective config with defaults filled and
// no secret in it (exit 0).
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secrets := []string{"idsecret-7f3a9c2b41", "advtoken-5d8e1f0a77", "bidtoken-2c4b6d8e90", "winsecret-1a2b3c4d5e6f"}
	good := write("good.yaml", `
listen: 0.0.0.0:8080
identity: {secret: "${CHECK_ID_SECRET}"}
http: {drain_delay: 0s}
advertisers: [{name: a, token: `+secrets[1]+`, datasets: ["42"]}]
bidders: [{name: b, token: `+secrets[2]+`, win_secret: `+secrets[3]+`}]
campaigns: [{id: c1, advertiser: a, event: Purchase, target_cpa: 10, currency: USD}]
`)
	stdout, stderr, code := runBinary(t, []string{"CHECK_ID_SECRET=" + secrets[0]}, "config", "check", good)
	if code != 0 {
		t.Fatalf("valid config: exit %d\n%s", code, stderr)
	}
	for _, s := range secrets {
		if strings.Contains(stdout+stderr, s) {
			t.Errorf("the output shows the secret %q:\n%s", s, stdout)
		}
	}
	var eff map[string]any
	if err := yaml.Unmarshal([]byte(stdout), &eff); err != nil {
		t.Fatalf("the effective config is not YAML: %v\n%s", err, stdout)
	}
	for _, want := range []string{
		"secret: (masked)", "token: (masked)", "win_secret: (masked)", // masked, not dropped
		"read_timeout: 5s", "max_inflight: 1024", "drain_delay: 0s", "window: 168h0m0s", "win_notices: true", // defaults filled, zero kept
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("effective config lacks %q:\n%s", want, stdout)
		}
	}
	if n := strings.Count(stdout, "token: (masked)"); n != 2 {
		t.Errorf("%d masked tokens, want 2", n)
	}

	bad := write("bad.yaml", `
listen: nowhere
listen_adress: 127.0.0.1:1
identity: {secret: ""}
http: {drain_delay: -1s}
advertisers: [{name: a, token: t, datasets: ["42"]}]
campaigns: [{id: c1, advertiser: zz, event: Purchase, target_cpa: 10, currency: USD}]
`)
	stdout, stderr, code = runBinary(t, nil, "config", "check", bad)
	if code != 1 || stdout != "" {
		t.Errorf("invalid config: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{"listen_adress", "listen: not HOST:PORT", "identity.secret: required",
		"http.drain_delay: must be >= 0", "campaigns[0].advertiser: unknown advertiser", "5 problems"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("config check of an invalid config does not report %q:\n%s", want, stderr)
		}
	}

	dev := write("dev.yaml", "listen: 0.0.0.0:8080\nidentity: {secret: dev-identity-secret}\n")
	_, stderr, code = runBinary(t, nil, "config", "check", dev)
	if code != 1 || !strings.Contains(stderr, "refusing to listen on 0.0.0.0:8080 with development credentials (identity.secret)") {
		t.Errorf("development credentials off loopback: exit %d\n%s", code, stderr)
	}
	_, stderr, code = runBinary(t, nil, "config", "check", filepath.Join(dir, "missing.yaml"))
	if code != 1 || !strings.Contains(stderr, "cannot read config") {
		t.Errorf("missing file: exit %d\n%s", code, stderr)
	}
}

// TestSIGTERMDrains: on SIGTERM the server first fails /readyz with 503
// "draining" while it still accepts connections and serves requests, for
// the drain delay; then it stops accepting, finishes the request in flight
// (its body still arriving), snapshots and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	const drain = 2 * time.Second
	dir := t.TempDir()
	p := start(t, dir, "--drain-delay", drain.String())
	addr := strings.TrimPrefix(p.base, "http://")

	// A request in flight: its head and half its body sent.
	body := jsonBody(t, map[string]any{"data": []any{purchase("in-flight", time.Now().Unix())}})
	inflight, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Close()
	fmt.Fprintf(inflight, "POST /v1/conversions?dataset=1234567890 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", advToken, len(body))
	inflight.Write(body[:len(body)/2])
	time.Sleep(100 * time.Millisecond) // the head is read

	signaled := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if !eventually(drain, func() bool { return readyz(p.base) == `503 {"status":"draining"}` }) {
		t.Fatalf("/readyz not draining after SIGTERM: %s\n%s", readyz(p.base), p.Logs())
	}
	// Still served, on new connections, while draining.
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		t.Errorf("a new connection while draining: %v", err)
	} else {
		c.Close()
	}
	if code, _, raw := p.do("GET", "/healthz", "", "", nil); code != 200 {
		t.Errorf("/healthz while draining: %d %s", code, raw)
	}
	conv := jsonBody(t, map[string]any{"data": []any{purchase("while-draining", time.Now().Unix())}})
	if code, _, raw := p.do("POST", "/v1/conversions?dataset=1234567890", "application/json", advToken, conv); code != 200 {
		t.Errorf("a conversion while draining: %d %s", code, raw)
	}
	// Then the listener closes...
	if !eventually(drain+10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}) {
		t.Fatalf("still accepting connections %s after SIGTERM", time.Since(signaled))
	}
	if waited := time.Since(signaled); waited < drain {
		t.Errorf("the listener closed %s after SIGTERM, before the drain delay %s", waited, drain)
	}
	// ...and the request in flight is finished.
	inflight.Write(body[len(body)/2:])
	inflight.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(inflight), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v\n%s", err, p.Logs())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the request in flight: %d", resp.StatusCode)
	}
	inflight.Close()
	if err := p.wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Logs())
	}
	for _, want := range []string{`msg="cpafeed draining`, "drain_delay=2s", `msg="cpafeed stopped"`} {
		if !strings.Contains(p.Logs(), want) {
			t.Errorf("log lacks %s:\n%s", want, p.Logs())
		}
	}
	// Both conversions were kept: the next start has them.
	q := start(t, dir)
	_, stats, _ := q.do("GET", "/v1/stats?dataset=1234567890", "", advToken, nil)
	if got := fmt.Sprint(stats["stored"]); got != "2" {
		t.Errorf("events stored after the restart: %v, want 2 (%v)", got, stats)
	}
	q.stop()
}

// TestSecondSignalCutsTheDrainShort: a second SIGTERM ends the drain
// delay at once.
func TestSecondSignalCutsTheDrainShort(t *testing.T) {
	p := start(t, t.TempDir(), "--drain-delay", "10m")
	p.cmd.Process.Signal(syscall.SIGTERM)
	if !eventually(10*time.Second, func() bool { return readyz(p.base) == `503 {"status":"draining"}` }) {
		t.Fatalf("/readyz not draining after SIGTERM: %s", readyz(p.base))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.Logs())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("a second SIGTERM did not cut the 10 min drain short:\n%s", p.Logs())
	}
	if !strings.Contains(p.Logs(), "drain cut short by a second signal") {
		t.Errorf("log:\n%s", p.Logs())
	}
}

// readyz answers "STATUS BODY" of GET /readyz, or the error.
func readyz(base string) string {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b.String())
}
