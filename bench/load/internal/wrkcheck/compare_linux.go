//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cpafeed/cpafeed/bench/load"
	"github.com/cpafeed/cpafeed/bench/market"
)

// compareCase is one target and request shape.
type compareCase struct {
	name, url, kind string
	lua             string // wrk script sending the generator's first request of kind
}

// runResult is what one run of one tool measured.
type runResult struct {
	requests uint64
	errors   uint64
	rate     float64 // requests/s
	cpu      time.Duration
}

func (r runResult) usPerRequest() float64 {
	return r.cpu.Seconds() * 1e6 / float64(max(r.requests, 1))
}

// compare loads the bare handler (its own process) and, with o.server, a
// cpafeed, with wrk and with `cpafeed bench` in alternating order, and
// prints each tool's CPU per request (user + system time of its process
// during the load, from /proc and its rusage) and rate, the ratio of the
// generator's CPU per request to wrk's, and the ratio of cpafeed's rate to
// the bare handler's as each tool sees it.
func compare(o compareOpts) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (Debian: apt-get install wrk)")
	}
	if o.cpafeed == "" {
		return errors.New("-cpafeed: the cpafeed binary is required")
	}
	tmp, err := os.MkdirTemp("", "wrkcheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var servers []*exec.Cmd
	defer func() {
		for _, s := range servers {
			s.Process.Signal(os.Interrupt)
			s.Wait()
		}
	}()
	bare, bareURL, err := startServer(exec.Command(self, "serve", "-for", "3h"), false)
	if err != nil {
		return fmt.Errorf("bare handler: %w", err)
	}
	servers = append(servers, bare)
	cases := []compareCase{{name: "bare POST /v1/score", url: bareURL, kind: "score"}}
	if o.get {
		cases = append(cases, compareCase{name: "bare GET /v1/win", url: bareURL, kind: "win"})
	}
	if o.server {
		data := filepath.Join(tmp, "data")
		srv, u, err := startServer(exec.Command(o.cpafeed, "serve", "--data", data, "--listen", "127.0.0.1:0"), true)
		if err != nil {
			return fmt.Errorf("cpafeed serve: %w", err)
		}
		servers = append(servers, srv)
		cases = append(cases, compareCase{name: "cpafeed POST /v1/score", url: u, kind: "score"})
	}
	for i := range cases {
		if cases[i].lua, err = wrkScript(tmp, i, cases[i], o.requests); err != nil {
			return err
		}
	}

	fmt.Printf("wrkcheck compare: %d rounds of %v runs, connections %v, wrk -t%d, generator pool %d request(s), %d cores, load average %s\n",
		o.rounds, o.d, o.conns, o.threads, o.requests, runtime.NumCPU(), loadAvg())
	type key struct {
		c    int
		i    int
		tool string
	}
	results := map[key][]runResult{}
	for r := 1; r <= o.rounds; r++ {
		n := 0
		for _, c := range o.conns {
			for i, cs := range cases {
				tools := []string{"wrk", "bench"}
				if (r+n)%2 == 0 { // alternate which tool goes first
					tools[0], tools[1] = tools[1], tools[0]
				}
				n++
				var line [2]runResult
				for _, tool := range tools {
					var res runResult
					var err error
					if tool == "wrk" {
						res, err = runWrk(cs, c, o)
					} else {
						res, err = runBench(cs, c, o, tmp)
					}
					if err != nil {
						return fmt.Errorf("round %d, %s, %d connections, %s: %w", r, cs.name, c, tool, err)
					}
					results[key{c, i, tool}] = append(results[key{c, i, tool}], res)
					if tool == "wrk" {
						line[0] = res
					} else {
						line[1] = res
					}
				}
				fmt.Printf("round %d  c=%-3d %-24s wrk %7.0f req/s %5.1f µs CPU/req%s  bench %7.0f req/s %5.1f µs CPU/req%s  CPU ratio %.2f\n",
					r, c, cs.name, line[0].rate, line[0].usPerRequest(), errNote(line[0]), line[1].rate, line[1].usPerRequest(), errNote(line[1]),
					line[1].usPerRequest()/line[0].usPerRequest())
			}
		}
	}

	fmt.Printf("\nmedians [min–max] over %d rounds; load average now %s\n", o.rounds, loadAvg())
	fmt.Printf("%-24s %4s  %-22s %-22s %-18s %-18s %-18s %s\n", "target", "c", "wrk req/s", "bench req/s", "rate bench/wrk", "wrk µs CPU/req", "bench µs CPU/req", "CPU/req bench/wrk")
	fail := false
	for _, c := range o.conns {
		for i, cs := range cases {
			w, b := results[key{c, i, "wrk"}], results[key{c, i, "bench"}]
			ratios := make([]float64, len(w))
			rates := make([]float64, len(w))
			for j := range w {
				ratios[j] = b[j].usPerRequest() / w[j].usPerRequest()
				rates[j] = b[j].rate / w[j].rate
			}
			verdict := "ok"
			if median(ratios) > o.limit {
				verdict, fail = fmt.Sprintf("over %.2f", o.limit), true
			}
			fmt.Printf("%-24s %4d  %-22s %-22s %-18s %-18s %-18s %s %s\n", cs.name, c,
				spread(pick(w, func(r runResult) float64 { return r.rate }), "%.0f"),
				spread(pick(b, func(r runResult) float64 { return r.rate }), "%.0f"),
				spread(rates, "%.2f"),
				spread(pick(w, runResult.usPerRequest), "%.1f"),
				spread(pick(b, runResult.usPerRequest), "%.1f"),
				spread(ratios, "%.2f"), verdict)
		}
	}
	if o.server {
		fmt.Println()
		srv := len(cases) - 1
		for _, c := range o.conns {
			for _, tool := range []string{"wrk", "bench"} {
				bare, s := results[key{c, 0, tool}], results[key{c, srv, tool}]
				ratios := make([]float64, len(bare))
				for j := range bare {
					ratios[j] = s[j].rate / bare[j].rate
				}
				fmt.Printf("cpafeed/bare rate ratio, c=%d, as %-5s sees it: %s\n", c, tool, spread(ratios, "%.2f"))
			}
		}
	}
	if fail {
		return fmt.Errorf("the generator's median CPU per request is over %.2f× wrk's", o.limit)
	}
	return nil
}

func errNote(r runResult) string {
	if r.errors == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d errors)", r.errors)
}

// startServer starts a server and returns its base URL: the first line of
// its stdout (wrkcheck serve) or, for cpafeed, the address of its
// "cpafeed listening" log line once it logged "cpafeed ready".
func startServer(cmd *exec.Cmd, cpafeed bool) (*exec.Cmd, string, error) {
	var out io.ReadCloser
	var err error
	if cpafeed {
		out, err = cmd.StderrPipe()
	} else {
		out, err = cmd.StdoutPipe()
	}
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		addr, sent := "", false
		for sc.Scan() {
			if sent {
				continue // drain
			}
			line := sc.Text()
			switch {
			case !cpafeed:
				found <- line
				sent = true
			case strings.Contains(line, `msg="cpafeed listening"`):
				if _, a, ok := strings.Cut(line, " addr="); ok {
					addr, _, _ = strings.Cut(a, " ")
				}
			case strings.Contains(line, `msg="cpafeed ready"`) && addr != "":
				found <- "http://" + addr
				sent = true
			}
		}
	}()
	select {
	case u := <-found:
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, "", fmt.Errorf("unexpected address %q", u)
		}
		return cmd, u, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", errors.New("did not start within 30 s")
	}
}

// wrkScript writes the wrk script that sends the generator's first request
// of the case's kind, byte for byte but for the order of the headers (wrk
// adds Host and Content-Length itself).
func wrkScript(dir string, i int, cs compareCase, requests int) (string, error) {
	raw, err := load.SampleRequest(cs.url, cs.kind, market.Scenario{}, 1, load.PoolOptions{Requests: requests})
	if err != nil {
		return "", err
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return "", fmt.Errorf("sample request without a head: %q", raw)
	}
	lines := strings.Split(string(head), "\r\n")
	method, rest, _ := strings.Cut(lines[0], " ")
	path, _, _ := strings.Cut(rest, " ")
	var s strings.Builder
	fmt.Fprintf(&s, "wrk.method = %s\nwrk.path = %s\n", luaString(method), luaString(path))
	for _, h := range lines[1:] {
		name, value, _ := strings.Cut(h, ": ")
		if name == "Host" || name == "Content-Length" {
			continue
		}
		fmt.Fprintf(&s, "wrk.headers[%s] = %s\n", luaString(name), luaString(value))
	}
	if len(body) > 0 {
		bodyPath := filepath.Join(dir, fmt.Sprintf("body%d", i))
		if err := os.WriteFile(bodyPath, body, 0o644); err != nil {
			return "", err
		}
		fmt.Fprintf(&s, "local f = io.open(%s, \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\n", luaString(bodyPath))
	}
	p := filepath.Join(dir, fmt.Sprintf("case%d.lua", i))
	return p, os.WriteFile(p, []byte(s.String()), 0o644)
}

// luaString quotes a printable ASCII string for Lua.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "\\%03d", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)\b`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk runs wrk against the case; its CPU is the whole process's (its
// start-up, a Lua state per thread, is well under a millisecond).
func runWrk(cs compareCase, c int, o compareOpts) (runResult, error) {
	secs := strconv.FormatFloat(o.d.Seconds(), 'f', -1, 64) + "s"
	cmd := exec.Command("wrk", "-t"+strconv.Itoa(min(o.threads, c)), "-c"+strconv.Itoa(c), "-d"+secs, "-s", cs.lua, cs.url)
	out, err := cmd.Output()
	if err != nil {
		return runResult{}, fmt.Errorf("%w: %s", err, out)
	}
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		return runResult{}, fmt.Errorf("no request count in wrk's output: %s", out)
	}
	var res runResult
	res.requests, _ = strconv.ParseUint(string(m[1]), 10, 64)
	el, _ := strconv.ParseFloat(string(m[2]), 64)
	el *= map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[string(m[3])]
	res.rate = float64(res.requests) / el
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
		res.errors += n
	}
	if m := wrkSocket.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.ParseUint(string(g), 10, 64)
			res.errors += n
		}
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, nil
}

// runBench runs `cpafeed bench` against the case; its CPU is counted from
// the line it prints as its load starts (after it generated its requests)
// to its exit.
func runBench(cs compareCase, c int, o compareOpts, tmp string) (runResult, error) {
	jsonPath := filepath.Join(tmp, "bench.json")
	cmd := exec.Command(o.cpafeed, "bench", "--target", cs.url, "--mix", cs.kind+"=1", "--duration", o.d.String(),
		"--concurrency", strconv.Itoa(c), "--requests", strconv.Itoa(o.requests), "--seed", "1", "--json", jsonPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return runResult{}, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return runResult{}, err
	}
	var cpu0 time.Duration
	started := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if !started && strings.HasPrefix(sc.Text(), "cpafeed bench: ") {
			started = true
			if cpu0, err = procCPU(cmd.Process.Pid); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return runResult{}, err
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return runResult{}, fmt.Errorf("%w: %s", err, stderr.Bytes())
	}
	if !started {
		return runResult{}, errors.New("cpafeed bench never printed its start line")
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return runResult{}, err
	}
	var rep load.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return runResult{}, err
	}
	res := runResult{requests: rep.Total.Requests, rate: rep.Total.Throughput}
	for _, n := range rep.Total.Errors {
		res.errors += n
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime() - cpu0
	return res, nil
}

// procCPU is the user + system time of a process so far, from
// /proc/PID/stat (in clock ticks of 10 ms: Linux's USER_HZ is 100).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	// Fields 14 and 15 of the line (utime, stime); f[0] is field 3.
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func pick(rs []runResult, f func(runResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread formats the median and range of v.
func spread(v []float64, format string) string {
	return fmt.Sprintf(format+" ["+format+"–"+format+"]", median(v), slices.Min(v), slices.Max(v))
}
