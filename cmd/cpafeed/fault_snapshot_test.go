package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const snapshotsConfig = "testdata/faults-snapshots.yaml"

// TestFaultKill9AfterSnapshotsUnderLoad: many connections post batches of
// unique conversions and exposures while the server writes a snapshot every
// 100ms; the server is killed with SIGKILL in the middle of the load and
// restarted from its newest snapshot and the journal after it. Every
// acknowledged conversion must be stored, counted and handed to attribution
// once, every acknowledged exposure counted once, and a retry of every
// acknowledged batch must store nothing new. Before the snapshot left out
// the dedup keys of batches in flight at its checkpoint, a few hundred
// acknowledged conversions per kill were replayed as "duplicates" of
// themselves and lost (issue 18, defect 1). Both fsync modes.
func TestFaultKill9AfterSnapshotsUnderLoad(t *testing.T) {
	for _, mode := range []string{"always", "interval"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("CPAFEED_TEST_FSYNC", mode)
			killAfterSnapshotsUnderLoad(t)
		})
	}
}

// ackedBatch is a batch the server acknowledged.
type ackedBatch struct {
	exposures bool
	body      []byte
	n         int
}

func killAfterSnapshotsUnderLoad(t *testing.T) {
	const (
		conns    = 32
		perBatch = 10
		cycles   = 3
	)
	dir := t.TempDir()
	c := newHTTPC(10 * time.Second)
	var (
		mu    sync.Mutex
		acked []ackedBatch
		seq   atomic.Int64
		cur   atomic.Pointer[string]
	)
	base := time.Now().Unix()
	// batch builds the k-th batch: a quarter of them exposures.
	batch := func(k int) (b ackedBatch, path, token string) {
		if k%4 == 3 {
			var exps []map[string]any
			for i := range perBatch {
				exps = append(exps, exposure(fmt.Sprintf("snap-auc-%d-%d", k, i), "demo-ctv-purchase", 20, base-600,
					map[string]any{"publisher": "pub-1", "bundle": "com.ctv.app", "genre": "News", "metro": "501"},
					map[string]any{"ip": householdIP((k*perBatch + i) % 60000)}))
			}
			return ackedBatch{exposures: true, body: mustJSON(map[string]any{"exposures": exps}), n: perBatch}, "/v1/exposures", bidderToken
		}
		var evs []map[string]any
		for i := range perBatch {
			evs = append(evs, conversionEvent("Purchase", fmt.Sprintf("snap-ord-%d-%d", k, i), base-60, 25,
				map[string]any{"client_ip_address": householdIP((k*perBatch + i) % 60000)}))
		}
		return ackedBatch{body: mustJSON(map[string]any{"data": evs}), n: perBatch}, "/v1/conversions?dataset=1234567890", advToken
	}

	p := start(t, dir, "--config", snapshotsConfig)
	cur.Store(&p.base)
	stop := make(chan struct{})
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := newHTTPC(5 * time.Second)
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, path, token := batch(int(seq.Add(1)))
				// As a client does: retry until acknowledged, across the
				// kills and restarts.
				deadline := time.Now().Add(time.Minute)
				for {
					a, err := hc.send("POST", *cur.Load()+path, "application/json", token, b.body)
					if err == nil && a.status == 200 {
						break
					}
					if err == nil && a.status != 503 && a.status != 429 {
						errs <- fmt.Errorf("%s: unexpected answer %v", path, a)
						return
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("%s: not acknowledged within a minute: %v %v", path, a, err)
						return
					}
					time.Sleep(15 * time.Millisecond)
				}
				mu.Lock()
				acked = append(acked, b)
				mu.Unlock()
			}
		}()
	}
	for cycle := range cycles {
		// Load long enough for several snapshots under it, then kill.
		before := strings.Count(p.Logs(), `msg="snapshot written"`)
		if !eventually(20*time.Second, func() bool {
			return strings.Count(p.Logs(), `msg="snapshot written"`) >= before+5
		}) {
			t.Fatalf("cycle %d: fewer than 5 snapshots under load\n%s", cycle, p.Logs())
		}
		p.kill9()
		p = start(t, dir, "--config", snapshotsConfig)
		cur.Store(&p.base)
	}
	close(stop)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	defer p.stop()

	wantConv, wantExp := 0, 0
	for _, b := range acked {
		if b.exposures {
			wantExp += b.n
		} else {
			wantConv += b.n
		}
	}
	if wantConv == 0 || wantExp == 0 {
		t.Fatalf("no load acknowledged: %d conversions, %d exposures", wantConv, wantExp)
	}
	// Every batch was acknowledged in the end, each exactly once: the
	// counts are exact.
	st := c.mustSend(t, "GET", p.base+"/v1/stats?dataset=1234567890", "", advToken, nil)
	camp := c.mustSend(t, "GET", p.base+"/v1/campaigns/demo-ctv-purchase/stats", "", advToken, nil)
	stored, received, exps := num(st.json, "stored"), num(camp.json, "conversions", "received"), num(camp.json, "exposures")
	t.Logf("%d kills after snapshots under load: %d conversions and %d exposures acknowledged; %v stored, %v attributed or pending, %v exposures",
		cycles, wantConv, wantExp, stored, received, exps)
	if stored != float64(wantConv) || received != stored {
		t.Fatalf("%d conversions acknowledged, %v stored, %v reached attribution: %s\n%s", wantConv, stored, received, st.raw, camp.raw)
	}
	if exps != float64(wantExp) {
		t.Fatalf("%d exposures acknowledged, %v counted: %s", wantExp, exps, camp.raw)
	}

	// Retrying acknowledged batches (up to 400, spread over the run) stores
	// nothing new.
	step := max(len(acked)/400, 1)
	for i := 0; i < len(acked); i += step {
		b := acked[i]
		if b.exposures {
			a := c.mustSend(t, "POST", p.base+"/v1/exposures", "application/json", bidderToken, b.body)
			if a.status != 200 || num(a.json, "exposures_stored") != 0 {
				t.Fatalf("a retried exposure batch: %v", a)
			}
			continue
		}
		a := c.mustSend(t, "POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, b.body)
		if a.status != 200 || num(a.json, "events_deduplicated") != float64(b.n) {
			t.Fatalf("a retried conversion batch: %v", a)
		}
	}
}
