package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers shared by the fault, tenancy and privacy tests. They never call
// t.Fatal themselves when used from client goroutines: httpc returns errors.

// httpc is an HTTP client for tests that expect failures (a killed server, a
// refused connection): it returns errors instead of failing the test.
type httpc struct {
	hc *http.Client
}

func newHTTPC(timeout time.Duration) *httpc {
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	return &httpc{hc: &http.Client{Timeout: timeout, Transport: tr}}
}

// answer is one HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    []byte
	json   map[string]any // nil unless the answer is JSON
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.raw) }

// send sends method base+path with the bearer token (if any), the content
// type (if any) and extra headers as "Name: value" pairs.
func (c *httpc) send(method, url, contentType, token string, body []byte, headers ...string) (answer, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &a.json); err != nil {
			return a, fmt.Errorf("%s %s: answer is not JSON: %s", method, url, raw)
		}
	}
	return a, nil
}

// mustSend is send that fails the test on a transport error. Only for the
// test goroutine.
func (c *httpc) mustSend(t *testing.T, method, url, contentType, token string, body []byte, headers ...string) answer {
	t.Helper()
	a, err := c.send(method, url, contentType, token, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// errorMessage returns error.message of an API error answer, or "".
func errorMessage(a answer) string {
	e, _ := a.json["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// runServe runs `cpafeed serve args...` that is expected to exit by itself
// within timeout, and returns its combined output and exit code (-1: killed
// at the timeout).
func runServe(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), -1
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// mountTmpfs mounts a tmpfs of size (e.g. "4m") on a new directory and
// unmounts it at cleanup, after the processes started later are gone. It
// skips the test when mounting is not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		// Remount read-write first in case a test left it read-only.
		_ = syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size="+size)
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return mnt
}

// segments lists the journal segment files of a data dir, oldest first.
func segments(t *testing.T, dataDir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dataDir, "journal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	return segs
}

// sha256Hex is how Meta wants an identifier hashed (after normalization).
func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// conversionEvent is one CAPI server event of the fault workloads: a
// website event with user data as given.
func conversionEvent(name, id string, t int64, value float64, userData map[string]any) map[string]any {
	ud := map[string]any{"client_user_agent": "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0)"}
	for k, v := range userData {
		ud[k] = v
	}
	ev := map[string]any{
		"event_name": name, "event_time": t, "event_id": id, "action_source": "website",
		"event_source_url": "https://shop.example.com/checkout", "user_data": ud,
	}
	if value > 0 {
		ev["custom_data"] = map[string]any{"value": value, "currency": "USD"}
	}
	return ev
}

// exposure is one exposure of the features form of POST /v1/exposures.
func exposure(requestID, campaign string, priceCPM float64, ts int64, features, ids map[string]any) map[string]any {
	return map[string]any{"request_id": requestID, "imp_id": "1", "campaign": campaign, "price_cpm": priceCPM,
		"ts": ts, "features": features, "ids": ids}
}

// mustJSON marshals v; for workloads built outside a test goroutine.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// readFixture reads a file of the repository relative to this package.
func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually retries cond every 20ms until it holds or d passed.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
