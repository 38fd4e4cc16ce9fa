package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diskBatch is conversion batch number b of the disk tests: 40 events with
// unique event ids.
func diskBatch(t *testing.T, b int, now int64) []byte {
	var evs []any
	for i := range 40 {
		evs = append(evs, conversionEvent("Purchase", fmt.Sprintf("disk-%d-%d", b, i), now-30, 15,
			map[string]any{"em": fmt.Sprintf("disk.%d.%d@example.com", b, i), "client_ip_address": "192.0.2.55"}))
	}
	return jsonBody(t, map[string]any{"data": evs})
}

// bidTimeWorks checks that bid-time requests answer while ingest cannot
// persist: the health probe and POST /v1/bids (in-memory).
func bidTimeWorks(t *testing.T, c *httpc, base string, bid []byte) {
	t.Helper()
	if a := c.mustSend(t, "GET", base+"/healthz", "", "", nil); a.status != 200 {
		t.Fatalf("/healthz: %v", a)
	}
	if a := c.mustSend(t, "POST", base+"/v1/bids", "application/json", bidderToken, bid); a.status != 200 || num(a.json, "remembered") != 3 {
		t.Fatalf("/v1/bids: %v", a)
	}
	if a := c.mustSend(t, "POST", base+"/v1/score", "application/json", bidderToken, bid); a.status != 200 || a.json["model_version"] == nil {
		t.Fatalf("/v1/score: %v", a)
	}
}

// topUp writes path until the file system is full.
func topUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 512)
	for {
		if _, err := f.Write(block); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestFaultDataDirFull: the data dir is a 4 MiB tmpfs, nearly filled by
// another file. Ingest fills the rest, then answers 503 with a clear JSON
// error and acknowledges nothing it could not persist: the stored count is
// exactly the acknowledged events, also after a kill -9 and a restart while
// the disk is still full. Bid-time requests keep working. When the filler is
// removed, ingest recovers by itself, without a restart.
func TestFaultDataDirFull(t *testing.T) {
	mnt := mountTmpfs(t, "4m")
	dir := filepath.Join(mnt, "data")
	filler := filepath.Join(mnt, "filler")
	c := newHTTPC(10 * time.Second)
	bid := readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	now := time.Now().Unix()

	p := start(t, dir)
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if err := os.WriteFile(filler, make([]byte, free-192<<10), 0o644); err != nil {
		t.Fatal(err)
	}

	acked := 0
	var failed []int // batches answered 503
	b := 0
	for ; len(failed) == 0 && b < 500; b++ {
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, b, now))
		switch a.status {
		case 200:
			acked += 40
		case 503:
			failed = append(failed, b)
			msg := errorMessage(a)
			if !strings.Contains(msg, "no space left on device") || !strings.Contains(msg, "retry") {
				t.Fatalf("503 without a clear message: %v", a)
			}
			if strings.Contains(string(a.raw), mnt) || strings.Contains(string(a.raw), ".wal") {
				t.Fatalf("503 names the journal's files: %v", a)
			}
			t.Logf("disk full after %d acknowledged events: %s", acked, msg)
		default:
			t.Fatalf("batch %d: %v", b, a)
		}
	}
	if len(failed) == 0 {
		t.Fatalf("the disk never filled after %d batches", b)
	}
	ackedExp := 0
	check := func(when string) {
		t.Helper()
		if got := num(stats(t, p), "stored"); got != float64(acked) {
			t.Fatalf("%s: %v events stored, %d acknowledged", when, got, acked)
		}
		_, r, _ := p.do("GET", "/v1/campaigns/demo-ctv-purchase/stats", "", advToken, nil)
		if got := num(r, "exposures"); got != float64(ackedExp) {
			t.Fatalf("%s: %v exposures counted, %d acknowledged", when, got, ackedExp)
		}
	}
	// Take the last free blocks too, so that small records fail as well.
	topUp(t, filepath.Join(mnt, "filler2"))
	// Still full: every try is refused, nothing more is counted.
	for range 5 {
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, b, now))
		if a.status != 503 {
			t.Fatalf("disk still full, batch %d: %v", b, a)
		}
		failed = append(failed, b)
		b++
	}
	// A full disk does not flood the log: each failed request used to log
	// two ERROR lines (the journal's flush, the 503); repeats of a message
	// are now held to a few per 10 s.
	errorsBefore := strings.Count(p.Logs(), "level=ERROR")
	for range 200 {
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, b, now))
		if a.status != 503 {
			t.Fatalf("disk still full, batch %d: %v", b, a)
		}
		failed = append(failed, b)
		b++
	}
	time.Sleep(100 * time.Millisecond) // the log pipe is read on its own goroutine
	if n := strings.Count(p.Logs(), "level=ERROR") - errorsBefore; n > 20 {
		t.Fatalf("%d ERROR lines for 200 requests refused on a full disk", n)
	}
	// (Large enough not to fit in the slack of the segment's last page.)
	var exps []any
	for i := range 100 {
		exps = append(exps, exposure(fmt.Sprintf("disk-auction-%d", i), "demo-ctv-purchase", 20, now-600,
			map[string]any{"publisher": "pub-1", "bundle": "com.example.tv"}, map[string]any{"ip": "192.0.2.55"}))
	}
	expBody := jsonBody(t, map[string]any{"exposures": exps})
	if a := c.mustSend(t, "POST", p.base+"/v1/exposures", "application/json", bidderToken, expBody); a.status != 503 || !strings.Contains(errorMessage(a), "no space left on device") || strings.Contains(string(a.raw), mnt) {
		t.Fatalf("exposure on a full disk: %v", a)
	}
	bidTimeWorks(t, c, p.base, bid)
	check("disk full")

	// A crash while full loses nothing acknowledged, and the server starts.
	p.kill9()
	p = start(t, dir)
	check("restarted on a full disk")
	if a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, failed[0], now)); a.status != 503 {
		t.Fatalf("restarted on a full disk: %v", a)
	}
	bidTimeWorks(t, c, p.base, bid)

	// Space returns: ingest recovers by itself, the refused batches go in.
	for _, f := range []string{filler, filepath.Join(mnt, "filler2")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, fb := range failed {
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, fb, now))
		if a.status != 200 || num(a.json, "events_deduplicated") != 0 {
			t.Fatalf("after space returned, batch %d: %v", fb, a)
		}
		acked += 40
	}
	if a := c.mustSend(t, "POST", p.base+"/v1/exposures", "application/json", bidderToken, expBody); a.status != 200 || num(a.json, "exposures_stored") != 100 {
		t.Fatalf("exposure after space returned: %v", a)
	}
	ackedExp = 100
	check("space returned")
	p.kill9()
	p = start(t, dir)
	check("restarted after space returned")
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}
}

// TestFaultDataDirReadOnly: a data dir that is read-only at start stops
// `cpafeed serve` with a message naming the problem; acknowledged data is
// intact when it is writable again.
//
// A file system turning read-only under a running server cannot be made
// on this machine: the kernel refuses `mount -o remount,ro` (EBUSY) while
// the journal holds its segment open for writing, and there is no
// device-mapper to fail a block device. Where the remount works, the test
// checks 503, bid-time requests and recovery too. Write errors at run time
// take the same path as ENOSPC, which TestFaultDataDirFull covers.
func TestFaultDataDirReadOnly(t *testing.T) {
	mnt := mountTmpfs(t, "4m")
	dir := filepath.Join(mnt, "data")
	p := start(t, dir)
	ingestBatches(t, p, "ro", 2, 5)
	want := durableStats(t, p)

	// While it runs: where the kernel allows the remount (not here, see
	// above), ingest must answer 503, bid-time requests go on, and ingest
	// recovers once the file system is writable again.
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=4m"); err != nil {
		t.Logf("remount read-only while running: %v (the journal segment is open for writing)", err)
	} else {
		c := newHTTPC(10 * time.Second)
		now := time.Now().Unix()
		if a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, 0, now)); a.status != 503 {
			t.Fatalf("ingest on a read-only data dir: %v", a)
		}
		bidTimeWorks(t, c, p.base, readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json"))
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=4m"); err != nil {
			t.Fatal(err)
		}
		if a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, diskBatch(t, 0, now)); a.status != 200 {
			t.Fatalf("ingest once writable again: %v", a)
		}
		want = durableStats(t, p)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=4m"); err != nil {
		t.Skipf("cannot remount the tmpfs read-only: %v", err)
	}
	out, code := runServe(t, time.Minute, "--config", "../../configs/cpafeed.yaml", "--data", dir)
	if code <= 0 || !strings.Contains(out, "read-only file system") || !strings.Contains(out, dir) {
		t.Fatalf("started on a read-only data dir, or no clear message (exit %d):\n%s", code, out)
	}
	for line := range strings.Lines(out) {
		if strings.Contains(line, "read-only") {
			t.Logf("refused (exit %d): %s", code, strings.TrimSpace(line))
		}
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=4m"); err != nil {
		t.Fatal(err)
	}
	p = start(t, dir)
	if got := durableStats(t, p); got != want {
		t.Fatalf("after the read-only episode: %s, want %s", got, want)
	}
}
