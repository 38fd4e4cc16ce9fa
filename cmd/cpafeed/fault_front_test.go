package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Faults at the front door: connection floods past the open-file limit,
// error answers that could echo secrets.

// underFDLimit is a startUnder prefix that runs the binary with
// RLIMIT_NOFILE n (soft and hard, so that Go cannot raise it).
func underFDLimit(n int) []string {
	return []string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, n)}
}

// metric reads one sample of /metrics (the first line starting with name).
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// flooded is one connection of idleFlood: its reader and the status of
// the answer (0: closed, or no answer within the wait).
type flooded struct {
	c      net.Conn
	r      *bufio.Reader
	status int
}

// idleFlood opens n connections to addr that each send GET /healthz, and
// reads each answer for up to wait. The connections stay open.
func idleFlood(addr string, n int, wait time.Duration) []flooded {
	out := make(chan flooded, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				out <- flooded{}
				return
			}
			f := flooded{c: c, r: bufio.NewReader(c)}
			c.SetDeadline(time.Now().Add(wait))
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err == nil {
				if resp, err := http.ReadResponse(f.r, nil); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					f.status = resp.StatusCode
				}
			}
			c.SetDeadline(time.Time{})
			out <- f
		}()
	}
	wg.Wait()
	close(out)
	var all []flooded
	for f := range out {
		all = append(all, f)
	}
	return all
}

// count returns how many of fs were answered 200, with another status, or
// not at all.
func count(fs []flooded) (ok, refused, none int) {
	for _, f := range fs {
		switch f.status {
		case 200:
			ok++
		case 0:
			none++
		default:
			refused++
		}
	}
	return ok, refused, none
}

// exited reports whether the process ended (its stderr closed) within d.
func (p *proc) exited(d time.Duration) bool {
	select {
	case <-p.eof:
		return true
	case <-time.After(d):
		return false
	}
}

func closeAll(fs []flooded) {
	for _, f := range fs {
		if f.c != nil {
			f.c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile for the other tests
			f.c.Close()
		}
	}
}

// TestFaultConnectionFloodUnderLowFDLimit: with RLIMIT_NOFILE 256 and the
// default limits, 400 idle connections that each sent GET /healthz do not
// stop the process: it chose http.max_conns below the limit (and says so in
// the log), refuses what is over it or over the per-address cap, and
// serves again once the flood closes.
func TestFaultConnectionFloodUnderLowFDLimit(t *testing.T) {
	p := startUnder(t, underFDLimit(256), t.TempDir())
	addr := strings.TrimPrefix(p.base, "http://")

	conns := idleFlood(addr, 400, 10*time.Second)
	ok, refused, other := count(conns)
	t.Logf("400 connections: %d served and kept idle, %d refused with a status, %d closed or unanswered", ok, refused, other)
	if p.exited(time.Second) {
		closeAll(conns)
		t.Fatalf("cpafeed exited during the flood:\n%s", p.Logs())
	}
	chosen := regexp.MustCompile(`msg="connection limits" max_conns=(\d+) chosen_by="default[^"]*" open_file_limit=256 max_conns_per_ip=(\d+)`).FindStringSubmatch(p.Logs())
	if chosen == nil {
		t.Fatalf("no log line with the connection limits chosen from the open-file limit:\n%s", p.Logs())
	}
	t.Logf("chosen: max_conns %s, max_conns_per_ip %s", chosen[1], chosen[2])
	if ok == 0 || ok > 192 {
		t.Fatalf("%d connections served at once with max_conns %s", ok, chosen[1])
	}
	closeAll(conns)
	c := newHTTPC(5 * time.Second)
	if !eventually(10*time.Second, func() bool {
		a, err := c.send("GET", p.base+"/healthz", "", "", nil)
		return err == nil && a.status == 200
	}) {
		t.Fatalf("not serving after the flood closed:\n%s", p.Logs())
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM after the flood: %v\n%s", err, p.Logs())
	}
}

// TestFaultAcceptBacksOffWhenOutOfDescriptors: with http.max_conns set to
// the open-file limit itself (256) and no per-address cap, a flood does
// exhaust the descriptors: accept fails with EMFILE. The process waits and
// accepts again (counted, logged once rather than per failure) and serves
// the connections that waited once others close.
func TestFaultAcceptBacksOffWhenOutOfDescriptors(t *testing.T) {
	def, err := os.ReadFile("../../configs/cpafeed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "fds.yaml")
	if err := os.WriteFile(cfg, bytes.Replace(def, []byte("\nhttp:\n"), []byte("\nhttp:\n  max_conns: 256\n  max_conns_per_ip: -1\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startUnder(t, underFDLimit(256), t.TempDir(), "--config", cfg)
	addr := strings.TrimPrefix(p.base, "http://")

	conns := idleFlood(addr, 300, 3*time.Second)
	ok, _, waiting := count(conns)
	t.Logf("300 connections: %d served, %d waiting for a descriptor", ok, waiting)
	if p.exited(time.Second) {
		closeAll(conns)
		t.Fatalf("cpafeed exited when out of descriptors:\n%s", p.Logs())
	}
	if waiting == 0 || ok < 100 {
		t.Fatalf("%d of 300 served under a limit of 256 descriptors: the test did not exhaust them", ok)
	}
	// Free a hundred: the connections that waited in the backlog are
	// accepted and answered.
	var served, pending []flooded
	for _, f := range conns {
		if f.status == 200 {
			served = append(served, f)
		} else if f.c != nil {
			pending = append(pending, f)
		}
	}
	closeAll(served[:100])
	late := 0
	for _, f := range pending {
		f.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if resp, err := http.ReadResponse(f.r, nil); err == nil && resp.StatusCode == 200 {
			late++
		}
	}
	closeAll(served[100:])
	closeAll(pending)
	if late == 0 {
		t.Fatalf("none of the %d waiting connections was served once descriptors were free", len(pending))
	}
	t.Logf("%d of %d waiting connections served once 100 closed", late, len(pending))
	if n := metric(t, p.base, "cpafeed_http_accept_errors_total"); n == 0 {
		t.Fatal("cpafeed_http_accept_errors_total is 0")
	}
	if n := strings.Count(p.Logs(), "cannot accept connections"); n == 0 || n > 3 {
		t.Fatalf("%d log lines about failed accepts, want one per 10 s:\n%s", n, p.Logs())
	}
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}
}

// TestFaultMalformedHeadNotEchoed: a request head fasthttp cannot take (1000
// headers) is answered 431 naming the problem, without the head: neither
// the Bearer token nor the query's email come back.
func TestFaultMalformedHeadNotEchoed(t *testing.T) {
	p := start(t, t.TempDir())
	var h strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&h, "X-Filler-%d: x\r\n", i)
	}
	raw := "GET /v1/pixel?id=1234567890&ev=Purchase&em=jane.leak@example.com HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + advToken + "\r\n" + h.String() + "\r\n"
	status, body, err := rawRequest(strings.TrimPrefix(p.base, "http://"), raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{advToken, "jane.leak", "X-Filler", "Authorization"} {
		if strings.Contains(body, leak) {
			t.Fatalf("the answer echoes %q: %d %s", leak, status, body)
		}
	}
	if status != 431 || !strings.Contains(body, "HTTP head too large") {
		t.Fatalf("1000 headers: %d %s", status, body)
	}
}
