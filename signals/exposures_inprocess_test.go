package signals

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/journal"
)

// journalRecords returns every record of h's journal, in order.
func journalRecords(t *testing.T, h *expHarness) [][]byte {
	t.Helper()
	h.x.Close()
	h.j.Close()
	j, err := journal.Open(journal.Options{Dir: h.dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var out [][]byte
	if _, err := j.Replay(1, func(_ uint64, rec []byte) error {
		out = append(out, bytes.Clone(rec))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// The in-process entry points write the very records the HTTP handlers
// write, and count and index the same.
func TestExposeAndVideoEventMatchTheHTTPPath(t *testing.T) {
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	const camp = "demo-ctv-purchase"

	// HTTP: the exposure with its request, then the VAST beacons.
	web := openHarness(t, t.TempDir())
	ts := web.now.Unix() - 60
	body := exposuresBody(t, map[string]any{"request": roku, "imp_id": "2", "campaign": camp, "price_cpm": 21.5, "ts": ts})
	if status, out := web.postExposures(t, demoBidder, body); status != 200 || out["exposures_stored"] != 1.0 {
		t.Fatalf("%d %v", status, out)
	}
	for _, ev := range []string{"impression", "start", "midpoint", "complete", "start"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/v1/vast?auction=9f1c2d3e-roku-0001&imp=2&campaign=" + camp + "&ev=" + ev)
		if err := web.x.HandleVAST(&ctx); err != nil {
			t.Fatal(err)
		}
	}

	// In process, from the extracted request.
	in := openHarness(t, t.TempDir())
	req, err := NewExtractor().Extract(roku, in.now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second is a duplicate
		stored, err := in.x.Expose(req, 1, camp, 21.5, ts)
		if err != nil {
			t.Fatal(err)
		}
		if stored != (i == 0) {
			t.Fatalf("call %d: stored %v", i, stored)
		}
	}
	for _, ev := range []string{"impression", "start", "midpoint", "complete", "start"} {
		if err := in.x.VideoEvent(req, 1, camp, ev); err != nil {
			t.Fatal(err)
		}
	}

	if in.c.exposures != 1 || web.c.exposures != 1 || in.c.cost != web.c.cost {
		t.Fatalf("exposures: in process %d (cost %v), HTTP %d (cost %v)", in.c.exposures, in.c.cost, web.c.exposures, web.c.cost)
	}
	if in.c.starts != 1 || in.c.completes != 1 || web.c.starts != 1 || web.c.completes != 1 {
		t.Fatalf("VAST: in process %v/%v, HTTP %v/%v", in.c.starts, in.c.completes, web.c.starts, web.c.completes)
	}
	if a, b := in.x.index.Stats(), web.x.index.Stats(); a != b || a.Exposures != 1 {
		t.Fatalf("index: in process %+v, HTTP %+v", a, b)
	}
	a, b := journalRecords(t, in), journalRecords(t, web)
	if len(a) != 3 || len(a) != len(b) {
		t.Fatalf("records: in process %d, HTTP %d (want 3: exposure, start, complete)", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Errorf("record %d differs:\nin process %x\nHTTP       %x", i, a[i], b[i])
		}
	}
}

func TestExposeRefusals(t *testing.T) {
	h := openHarness(t, t.TempDir())
	req, err := NewExtractor().Extract(fixture(t, "roku-ctv-pod-gpp.json"), h.now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	now := h.now.Unix()
	f := func(imp int, camp string, price float64, ts int64) {
		t.Helper()
		if _, err := h.x.Expose(req, imp, camp, price, ts); err == nil {
			t.Errorf("Expose(%d, %q, %v, now%+d) accepted", imp, camp, price, ts-now)
		}
	}
	f(0, "nope", 1, now)
	f(7, "demo-ctv-purchase", 1, now)
	f(-1, "demo-ctv-purchase", 1, now)
	f(0, "demo-ctv-purchase", -1, now)
	f(0, "demo-ctv-purchase", 1, now-8*86400)
	f(0, "demo-ctv-purchase", 1, now+3600)
	if err := h.x.VideoEvent(req, 0, "nope", "start"); err == nil {
		t.Error("VideoEvent of an unknown campaign accepted")
	}
	if h.c.exposures != 0 || h.c.starts != 0 {
		t.Fatalf("refused calls counted: %+v", h.c)
	}
}

// Views of one request give its identities concurrently (the race detector
// watches) and equal to its own.
func TestRequestViewsConcurrentIDs(t *testing.T) {
	h := NewHasher([]byte("test-secret"))
	req, err := NewExtractor().Extract(fixture(t, "firetv-ctv-gdpr-ext-eids.json"), 1_795_000_000)
	if err != nil {
		t.Fatal(err)
	}
	want := req.IDs(h, nil)
	if len(want) < 2 {
		t.Fatalf("fixture has %d identities", len(want))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				v := req.View()
				if got := v.IDs(h, nil); !slices.Equal(got, want) {
					errs <- fmt.Sprintf("%v, want %v", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
