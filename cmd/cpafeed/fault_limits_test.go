package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// limitsConfig has read_timeout 1s, max_body_bytes 256 KiB and
// max_decompressed_bytes 1 MiB.
const limitsConfig = "testdata/faults-limits.yaml"

func zstdOf(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// zstdStreamOf is zstdOf without the content size in the frame header, as a
// streaming client sends it.
func zstdStreamOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(enc, bytes.NewReader(b)) // through Write: no frame content size
	enc.Close()
	return buf.Bytes()
}

// TestFaultBodyLimitsAndDecompressionBombs: small bodies that expand past
// http.max_decompressed_bytes (zstd, gzip) are refused with 413 quickly; a
// body larger than http.max_body_bytes (with a length or chunked) is 413; an
// unknown Content-Encoding is 415; every refusal is a JSON error, and the
// server goes on serving compressed and plain bodies.
func TestFaultBodyLimitsAndDecompressionBombs(t *testing.T) {
	p := start(t, t.TempDir(), "--config", limitsConfig)
	c := newHTTPC(30 * time.Second)
	now := time.Now().Unix()
	// A valid batch padded with whitespace to n bytes: what it holds is
	// fine, only its size is not.
	padded := func(n int) []byte {
		b := jsonBody(t, map[string]any{"data": []any{purchase("pad-1", now)}})
		b = append(b[:len(b)-1], bytes.Repeat([]byte(" "), n-len(b))...)
		return append(b, '}')
	}
	zeros := make([]byte, 32<<20)
	bombs := []struct {
		name, enc string
		body      []byte
	}{
		{"zstd, 32 MiB of zeros", "zstd", zstdOf(t, zeros)},
		{"zstd stream, 32 MiB of zeros", "zstd", zstdStreamOf(t, zeros)},
		{"zstd, a valid batch padded to 2 MiB", "zstd", zstdOf(t, padded(2<<20))},
		{"gzip, 8 MiB of zeros", "gzip", gzipOf(t, zeros[:8<<20])},
		{"gzip, a valid batch padded to 2 MiB", "gzip", gzipOf(t, padded(2<<20))},
	}
	for _, route := range []struct{ path, token string }{
		{"/v1/conversions?dataset=1234567890", advToken},
		{"/v24.0/1234567890/events?access_token=" + advToken, ""},
		{"/v1/exposures", bidderToken},
		{"/v1/bids", bidderToken},
	} {
		for _, b := range bombs {
			if b.name[:4] == "zstd" && len(b.body) > 1100 {
				t.Fatalf("%s: %d bytes, want a bomb of about 1 KB", b.name, len(b.body))
			}
			start := time.Now()
			a := c.mustSend(t, "POST", p.base+route.path, "application/json", route.token, b.body, "Content-Encoding: "+b.enc)
			took := time.Since(start)
			if a.status != 413 || !strings.Contains(errorMessage(a), "after "+b.enc+" decompression") {
				t.Fatalf("%s %s (%d bytes): %v", route.path, b.name, len(b.body), a)
			}
			t.Logf("%-36s %-40s %6d bytes -> 413 in %s", strings.SplitN(route.path, "?", 2)[0], b.name, len(b.body), took.Round(time.Millisecond))
		}
	}

	// Over max_body_bytes as sent, announced by Content-Length, or reached
	// by chunks. The client sends no more than the server reads before it
	// refuses (the headers; the chunks up to the one over the limit): a
	// server that closes with unread bytes resets the connection, and the
	// client may then lose the answer.
	addr := strings.TrimPrefix(p.base, "http://")
	head := "POST /v1/conversions?dataset=1234567890 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + advToken + "\r\nContent-Type: application/json\r\n"
	chunk := strings.Repeat("x", 64<<10)
	for name, raw := range map[string]string{
		"Content-Length": head + "Content-Length: 307200\r\n\r\n",
		"chunked":        head + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk), 4) + "1\r\n",
	} {
		status, body, err := rawRequest(addr, raw)
		if err != nil || status != 413 || !strings.Contains(body, "larger than 262144 bytes") {
			t.Fatalf("body over max_body_bytes (%s): %d %s %v", name, status, body, err)
		}
	}

	// Unsupported encodings.
	for _, enc := range []string{"br", "deflate", "compress"} {
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, []byte("xx"), "Content-Encoding: "+enc)
		if a.status != 415 || !strings.Contains(errorMessage(a), "Content-Encoding") {
			t.Fatalf("Content-Encoding %s: %v", enc, a)
		}
	}

	// Still serving, compressed and not: batches just under the limits.
	for i, enc := range []string{"zstd", "gzip", ""} {
		body := padded(200 << 10)
		if enc != "" {
			body = padded(1<<20 - 64)
		}
		body = bytes.Replace(body, []byte("pad-1"), []byte(fmt.Sprintf("pad-%d", i+2)), 1)
		var hdr []string
		switch enc {
		case "zstd":
			body, hdr = zstdOf(t, body), []string{"Content-Encoding: zstd"}
		case "gzip":
			body, hdr = gzipOf(t, body), []string{"Content-Encoding: gzip"}
		}
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, body, hdr...)
		if a.status != 200 || num(a.json, "events_received") != 1 || num(a.json, "events_deduplicated") != 0 {
			t.Fatalf("valid %q batch after the bombs: %v", enc, a)
		}
	}
	if got := num(stats(t, p), "stored"); got != 3 {
		t.Fatalf("stored %v, want the 3 valid batches only", got)
	}
}

// rawRequest writes raw to a new connection and reads one answer.
func rawRequest(addr, raw string) (int, string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// slowClient dials the server and sends prefix, then one byte of dribble
// every interval until the server closes the connection. It returns how long
// the server took to close it and what it answered.
func slowClient(addr string, prefix, dribble []byte, interval, giveUp time.Duration) (time.Duration, string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write(prefix); err != nil {
		return 0, "", err
	}
	closed := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(conn) // until the server closes (or the deadline)
		closed <- b
	}()
	conn.SetReadDeadline(time.Now().Add(giveUp))
	for i := 0; ; i++ {
		select {
		case b := <-closed:
			return time.Since(start), string(b), nil
		case <-time.After(interval):
		}
		if time.Since(start) > giveUp {
			return 0, "", fmt.Errorf("still open after %s", giveUp)
		}
		conn.Write(dribble[i%len(dribble) : i%len(dribble)+1]) // fails once closed: the reader reports it
	}
}

// bidTimeProbe sends bid-time requests (health probe and POST /v1/bids) one
// after the other until stop is closed, and reports how many succeeded,
// the failures, and the slowest.
// bidTimeProbe alternates /healthz, POST /v1/bids and POST /v1/score until
// stop.
func bidTimeProbe(base string, bid []byte, stop <-chan struct{}) (ok int, failures []string, slowest time.Duration) {
	c := newHTTPC(30 * time.Second) // a bound against hangs, not a latency target
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		start := time.Now()
		var a answer
		var err error
		switch i % 3 {
		case 0:
			a, err = c.send("GET", base+"/healthz", "", "", nil)
		case 1:
			a, err = c.send("POST", base+"/v1/bids", "application/json", bidderToken, bid)
		default:
			a, err = c.send("POST", base+"/v1/score", "application/json", bidderToken, bid)
		}
		slowest = max(slowest, time.Since(start))
		if err != nil || a.status != 200 {
			failures = append(failures, fmt.Sprintf("%v %v", a, err))
			continue
		}
		ok++
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFaultSlowClients: slowloris clients that dribble headers, or a body,
// are cut off by http.read_timeout (1s in the test config), and bid-time
// requests keep succeeding while they try.
func TestFaultSlowClients(t *testing.T) {
	p := start(t, t.TempDir(), "--config", limitsConfig)
	addr := strings.TrimPrefix(p.base, "http://")
	bid := readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	stop := make(chan struct{})
	probe := make(chan struct{})
	var ok int
	var failures []string
	var slowest time.Duration
	go func() { ok, failures, slowest = bidTimeProbe(p.base, bid, stop); close(probe) }()

	kinds := []struct {
		name            string
		prefix, dribble []byte
	}{
		{"headers", []byte("POST /v1/conversions?dataset=1234567890 HTTP/1.1\r\nHost: 127.0.0.1\r\n"), []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")},
		{"body", []byte("POST /v1/conversions?dataset=1234567890 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + advToken +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"data\": ["), []byte("                                ")},
		{"request line", []byte("GE"), []byte("T /healthz HTTP/1.1")},
	}
	const perKind = 40
	type result struct {
		kind   string
		took   time.Duration
		answer string
		err    error
	}
	results := make(chan result, perKind*len(kinds))
	var wg sync.WaitGroup
	for _, k := range kinds {
		for range perKind {
			wg.Add(1)
			go func() {
				defer wg.Done()
				took, ans, err := slowClient(addr, k.prefix, k.dribble, 100*time.Millisecond, 20*time.Second)
				results <- result{k.name, took, ans, err}
			}()
		}
	}
	wg.Wait()
	close(stop)
	<-probe
	close(results)
	took := map[string][]time.Duration{}
	for r := range results {
		if r.err != nil {
			t.Fatalf("slow client (%s): %v", r.kind, r.err)
		}
		// Either closed silently or answered with an error; never served.
		if r.answer != "" && !strings.HasPrefix(r.answer, "HTTP/1.1 408") && !strings.HasPrefix(r.answer, "HTTP/1.1 400") {
			t.Fatalf("slow client (%s) got: %q", r.kind, r.answer)
		}
		took[r.kind] = append(took[r.kind], r.took)
	}
	for k, ds := range took {
		slices.Sort(ds)
		t.Logf("%d slow clients dribbling the %s: cut off after %s (median), %s (max)", len(ds), k, ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	if len(failures) > 0 || ok < 10 {
		t.Fatalf("bid-time requests during the slow clients: %d ok, failures %v", ok, failures)
	}
	t.Logf("bid-time requests meanwhile: %d ok, slowest %s", ok, slowest.Round(time.Millisecond))
}

// TestFaultIdleConnections10000: 10 000 idle keep-alive connections (each
// served one request) are held open while bid-time requests keep answering,
// and the idle connections are still served afterwards.
func TestFaultIdleConnections10000(t *testing.T) {
	const conns = 10000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// The server's default http.max_conns leaves up to 1024 descriptors of
	// its limit in reserve.
	if lim.Cur < conns+2000 {
		if lim.Max < conns+2000 {
			t.Skipf("RLIMIT_NOFILE hard limit %d is below %d: cannot open %d connections", lim.Max, conns+2000, conns)
		}
		old := lim
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	p := start(t, t.TempDir(), "--config", limitsConfig) // inherits the raised limit
	addr := strings.TrimPrefix(p.base, "http://")
	bid := readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json")

	type idle struct {
		c net.Conn
		r *bufio.Reader
	}
	req := []byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	roundTrip := func(ic idle) error {
		ic.c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := ic.c.Write(req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(ic.r, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			return fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
		}
		return nil
	}
	open := make([]idle, conns)
	t.Cleanup(func() {
		for _, ic := range open {
			if ic.c != nil {
				// Reset rather than close: 10 000 client ports in TIME_WAIT
				// would crowd the other tests' connections for a minute.
				ic.c.(*net.TCPConn).SetLinger(0)
				ic.c.Close()
			}
		}
	})
	began := time.Now()
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < conns; i += workers {
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err == nil {
					open[i] = idle{c, bufio.NewReaderSize(c, 512)}
					err = roundTrip(open[i])
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("opening %d keep-alive connections (after %s): %v\n%s", conns, time.Since(began).Round(time.Millisecond), firstErr, p.Logs())
	}
	t.Logf("%d keep-alive connections open and idle after %s", conns, time.Since(began).Round(time.Millisecond))

	// Bid-time requests on new connections, while the 10 000 stay open.
	stop := make(chan struct{})
	done := make(chan struct{})
	var ok int
	var failures []string
	var slowest time.Duration
	go func() { ok, failures, slowest = bidTimeProbe(p.base, bid, stop); close(done) }()
	time.Sleep(3 * time.Second)
	close(stop)
	<-done
	if len(failures) > 0 || ok < 10 {
		t.Fatalf("bid-time requests with %d idle connections: %d ok, slowest %s, failures %v", conns, ok, slowest, failures)
	}
	t.Logf("bid-time requests meanwhile: %d ok, slowest %s", ok, slowest.Round(time.Millisecond))

	// The idle connections were kept, not dropped: a sample is served again.
	for i := 0; i < conns; i += conns / 100 {
		if err := roundTrip(open[i]); err != nil {
			t.Fatalf("idle connection %d after the wait: %v", i, err)
		}
	}
}
