package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// piiValue is one identifier sent in the clear, with the normalized form
// the service hashes.
type piiValue struct {
	kind       string // email, phone, name, ip, ifa, id
	sent       string
	normalized string
}

// forms are the byte strings whose presence would betray v: as sent, its
// normalized form, lower and upper case, hex and base64 of those, unkeyed
// SHA-256 of the normalized value (hex and raw), and per kind: the digits of
// a phone, the binary and expanded forms of an IP, an IFA without dashes
// and as 16 bytes.
func (v piiValue) forms() map[string][]byte {
	out := map[string][]byte{}
	add := func(name string, b []byte) {
		if len(b) > 0 {
			out[name] = b
		}
	}
	for _, s := range []string{v.sent, v.normalized} {
		for _, f := range []string{s, strings.ToLower(s), strings.ToUpper(s)} {
			add("text "+f, []byte(f))
			add("hex of "+f, []byte(hex.EncodeToString([]byte(f))))
			add("base64 of "+f, []byte(base64.StdEncoding.EncodeToString([]byte(f))))
		}
	}
	sum := sha256.Sum256([]byte(v.normalized))
	add("sha256 hex", []byte(hex.EncodeToString(sum[:])))
	add("sha256 HEX", []byte(strings.ToUpper(hex.EncodeToString(sum[:]))))
	add("sha256 raw", sum[:])
	switch v.kind {
	case "phone":
		add("digits", []byte(v.normalized))
		add("+digits", []byte("+"+v.normalized))
	case "ip":
		ip := net.ParseIP(v.sent)
		if ip4 := ip.To4(); ip4 != nil {
			add("4 bytes", ip4)
		} else {
			add("16 bytes", ip.To16())
			var full []string
			for i := 0; i < 16; i += 2 {
				full = append(full, hex.EncodeToString(ip[i:i+2]))
			}
			add("expanded", []byte(strings.Join(full, ":")))
		}
	case "ifa":
		plain := strings.ReplaceAll(v.normalized, "-", "")
		add("no dashes", []byte(plain))
		add("NO DASHES", []byte(strings.ToUpper(plain)))
		raw, _ := hex.DecodeString(plain)
		add("16 bytes", raw)
	}
	return out
}

// readAllData returns every file under dir, and for *.zst files also their
// decompressed content (the zstd stream after a snapshot's 40-byte header,
// or the whole file).
func readAllData(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[path] = b
		if strings.HasSuffix(path, ".zst") {
			stream := b
			if bytes.HasPrefix(b, []byte("CPAFSNAP")) && len(b) > 40 {
				stream = b[40:]
			}
			dec, err := zstd.NewReader(bytes.NewReader(stream))
			if err != nil {
				return err
			}
			plain, err := io.ReadAll(dec)
			dec.Close()
			if len(plain) == 0 {
				return fmt.Errorf("%s: cannot decompress: %v", path, err)
			}
			files[path+" (decompressed)"] = plain // a trailer after the frame may end the read with an error
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNoRawPIIOnDiskOrInLogs: a realistic run sends emails, phones, names,
// external ids, IPs (v4 and v6) and device ids in the clear through every
// ingest path (CAPI JSON, Meta form, pixel, exposures, remembered bids and
// their win notice, VAST, a rejected batch, a deletion), with debug logging,
// then shuts down with SIGTERM. No file under the data dir (decompressing
// snapshots) and no log line holds any of them in any form that would
// betray it.
func TestNoRawPIIOnDiskOrInLogs(t *testing.T) {
	vals := []piiValue{
		{"email", "  Zelda.Quux+cpafeed@Example.ORG ", "zelda.quux+cpafeed@example.org"},
		{"email", "Meta.Form.Person@Example.com", "meta.form.person@example.com"},
		{"email", "Pixel.Person@Example.net", "pixel.person@example.net"},
		{"email", "rejected.person@example.com", "rejected.person@example.com"},
		{"email", "Malformed.Header@Example.com", "malformed.header@example.com"},
		{"email", "Malformed.URI@Example.com", "malformed.uri@example.com"},
		{"email", "Bad.Chunk@Example.com", "bad.chunk@example.com"},
		{"phone", "+1 (415) 555-0199", "14155550199"},
		{"phone", "+44 20 7946 0958", "442079460958"},
		{"name", "Zebulon", "zebulon"},
		{"name", "Quixotica", "quixotica"},
		{"name", "Ouagadougou", "ouagadougou"},
		{"id", "cust-90210-xyzzy", "cust-90210-xyzzy"},
		{"ip", "198.51.100.23", "198.51.100.23"},
		{"ip", "2001:db8:cafe::17", "2001:db8:cafe::17"},
		{"ip", "198.51.100.24", "198.51.100.24"},
		{"ip", "192.0.2.211", "192.0.2.211"},
		{"ip", "2001:db8:beef::42", "2001:db8:beef::42"},
		{"ifa", "0F1E2D3C-4B5A-4968-8776-655443322110", "0f1e2d3c-4b5a-4968-8776-655443322110"},
		{"ifa", "3C9D2A71-6B0E-4F15-9D2A-7E1C0B5F8A36", "3c9d2a71-6b0e-4f15-9d2a-7e1c0b5f8a36"},
		{"ifa", "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF", "a1b2c3d4-e5f6-4711-8899-aabbccddeeff"},
		{"ifa", "7E57AB1E-0000-4C0F-BEED-FACECAFEBEEF", "7e57ab1e-0000-4c0f-beed-facecafebeef"},
		{"id", "viewer-31415926", "viewer-31415926"},
		{"id", "UID2-token-5f3e9c1d2b7a", "UID2-token-5f3e9c1d2b7a"},
	}
	dir := t.TempDir()
	p := start(t, dir, "--config", "testdata/faults-debuglog.yaml")
	c := newHTTPC(10 * time.Second)
	now := time.Now().Unix()
	ok := func(a answer, what string) {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("%s: %v", what, a)
		}
	}

	// CAPI JSON with everything in the clear.
	ev := conversionEvent("Purchase", "pii-order-1", now-120, 99.5, map[string]any{
		"em": []string{"  Zelda.Quux+cpafeed@Example.ORG "}, "ph": "+1 (415) 555-0199",
		"fn": "Zebulon", "ln": "Quixotica", "ct": "Ouagadougou", "external_id": "cust-90210-xyzzy",
		"client_ip_address": "198.51.100.23", "ifa": "0F1E2D3C-4B5A-4968-8776-655443322110", "ifa_type": "rida",
		"madid": "3C9D2A71-6B0E-4F15-9D2A-7E1C0B5F8A36",
	})
	ev6 := conversionEvent("Purchase", "pii-order-2", now-100, 10, map[string]any{"client_ip_address": "2001:db8:cafe::17"})
	ok(c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, jsonBody(t, map[string]any{"data": []any{ev, ev6}})), "CAPI")
	// A rejected batch (too old) with a clear email.
	old := conversionEvent("Purchase", "pii-old", now-30*86400, 1, map[string]any{"em": "rejected.person@example.com"})
	if a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, jsonBody(t, map[string]any{"data": []any{old}})); a.status != 400 {
		t.Fatalf("stale batch: %v", a)
	}
	// Meta's form.
	form := url.Values{"data": {string(jsonBody(t, []any{conversionEvent("Lead", "pii-lead-1", now-90, 0,
		map[string]any{"em": "Meta.Form.Person@Example.com", "client_ip_address": "198.51.100.23"})}))}, "access_token": {advToken}}
	ok(c.mustSend(t, "POST", p.base+"/v24.0/1234567890/events", "application/x-www-form-urlencoded", "", []byte(form.Encode())), "Meta form")
	// The pixel.
	req, _ := http.NewRequest("GET", p.base+"/v1/pixel?id=1234567890&ev=Purchase&eid=pii-pixel-1&em="+url.QueryEscape("Pixel.Person@Example.net")+
		"&ph="+url.QueryEscape("+44 20 7946 0958")+"&value=5&currency=USD", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0")
	req.Header.Set("Referer", "https://shop.example.com/")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pixel: %d", resp.StatusCode)
	}
	// Requests the HTTP server cannot parse, with clear identifiers in the
	// URL (fasthttp's error messages quote the request).
	addr := strings.TrimPrefix(p.base, "http://")
	for _, raw := range []string{
		"GET /v1/pixel?id=1234567890&ev=Purchase&em=Malformed.Header@Example.com HTTP/1.1\r\nHost: x\r\nA Header Without Colon\r\n\r\n",
		"GET /v1/pixel?id=1234567890&ev=Purchase&em=Malformed.URI@Example.com\xff\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/pixel?id=1234567890&ev=Purchase&em=Bad.Chunk@Example.com HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(raw))
		answer, _ := io.ReadAll(conn) // the server answers 400 and closes
		conn.Close()
		if !bytes.HasPrefix(answer, []byte("HTTP/1.1 400")) {
			t.Fatalf("malformed request %q: %q", raw, answer)
		}
	}
	// Exposures with an IP and an IFA.
	exp := exposure("pii-auction-1", "demo-ctv-purchase", 22, now-3600, map[string]any{"publisher": "pub-3", "bundle": "com.tv"},
		map[string]any{"ip": "198.51.100.24", "ifa": "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF"})
	ok(c.mustSend(t, "POST", p.base+"/v1/exposures", "application/json", bidderToken, jsonBody(t, map[string]any{"exposures": []any{exp}})), "exposures")
	// A bid request with the device's IPs, IFA, user id and eids; its win
	// notice and VAST events.
	var bid map[string]any
	if err := json.Unmarshal(readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json"), &bid); err != nil {
		t.Fatal(err)
	}
	dev := bid["device"].(map[string]any)
	dev["ip"], dev["ipv6"], dev["ifa"] = "192.0.2.211", "2001:db8:beef::42", "7E57AB1E-0000-4C0F-BEED-FACECAFEBEEF"
	user := bid["user"].(map[string]any)
	user["id"] = "viewer-31415926"
	user["eids"] = []any{map[string]any{"source": "uidapi.com", "uids": []any{map[string]any{"id": "UID2-token-5f3e9c1d2b7a", "atype": 3}}}}
	a := c.mustSend(t, "POST", p.base+"/v1/bids", "application/json", bidderToken, jsonBody(t, bid))
	ok(a, "bids")
	auction := bid["id"].(string)
	if !eventually(5*time.Second, func() bool {
		resp, err := c.hc.Get(p.base + "/v1/win?auction=" + auction + "&imp=1&campaign=demo-ctv-purchase&creative=cr1&price=24.5")
		if err == nil {
			resp.Body.Close()
		}
		r := c.mustSend(t, "GET", p.base+"/v1/campaigns/demo-ctv-purchase/stats", "", advToken, nil)
		return num(r.json, "exposures") >= 2
	}) {
		t.Fatal("win notice never counted")
	}
	for _, e := range []string{"impression", "start", "complete"} {
		resp, err := c.hc.Get(p.base + "/v1/vast?auction=" + auction + "&imp=1&campaign=demo-ctv-purchase&ev=" + e)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A conversion from the bid's household, and a deletion with clear
	// values.
	ok(c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken,
		jsonBody(t, map[string]any{"data": []any{conversionEvent("Purchase", "pii-order-3", now-10, 20, map[string]any{"client_ip_address": "192.0.2.211"})}})), "conversion")
	ok(c.mustSend(t, "DELETE", p.base+"/v1/identities", "application/json", advToken,
		[]byte(`{"em":"  Zelda.Quux+cpafeed@Example.ORG ","client_ip_address":["198.51.100.24"],"ifa":"A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF","ph":"+1 (415) 555-0199"}`)), "deletion")

	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}
	files := readAllData(t, dir)
	files["logs"] = []byte(p.Logs())

	// The scan can see: the journal holds event names and the dataset, the
	// logs hold debug lines.
	journalSeen := false
	for name, b := range files {
		if strings.HasSuffix(name, ".wal") && bytes.Contains(b, []byte("Purchase")) && bytes.Contains(b, []byte("1234567890")) {
			journalSeen = true
		}
	}
	if !journalSeen || !strings.Contains(p.Logs(), "cpafeed stopped") {
		t.Fatalf("the scan does not see the data: files %v", keys(files))
	}
	scanned := 0
	for name, b := range files {
		scanned += len(b)
		for _, v := range vals {
			for form, pat := range v.forms() {
				if i := bytes.Index(b, pat); i >= 0 {
					lo, hi := max(0, i-40), min(len(b), i+len(pat)+40)
					t.Errorf("%s holds the %s %q as %s at %d: %q", name, v.kind, v.sent, form, i, b[lo:hi])
				}
			}
		}
	}
	t.Logf("scanned %d files (%d bytes) for %d clear values", len(files), scanned, len(vals))
}

func keys(m map[string][]byte) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s (%d bytes)", k, len(v)))
	}
	return out
}
