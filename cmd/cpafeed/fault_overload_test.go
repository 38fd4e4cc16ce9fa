package main

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultOverloadShedsIngestFirst: with http.max_inflight 2 (and
// max_inflight_score 4096), 32 clients flood ingest. Some requests are shed
// at once with 429, Retry-After and a JSON error; none hangs; what was shed
// is not stored and what was acknowledged is; bid-time requests succeed all
// through the flood; afterwards ingest is normal again.
func TestFaultOverloadShedsIngestFirst(t *testing.T) {
	p := start(t, t.TempDir(), "--config", "testdata/faults-overload.yaml")
	bid := readFixture(t, "../../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	now := time.Now().Unix()
	batch := func(w, i int) []byte {
		var evs []any
		for k := range 200 {
			evs = append(evs, conversionEvent("Purchase", fmt.Sprintf("flood-%d-%d-%d", w, i, k), now-30, 12,
				map[string]any{"em": fmt.Sprintf("flood.%d.%d.%d@example.com", w, i, k), "client_ip_address": "192.0.2.99"}))
		}
		return jsonBody(t, map[string]any{"data": evs})
	}

	stop := make(chan struct{})
	probe := make(chan struct{})
	var bidOK int
	var bidFailures []string
	var slowest time.Duration
	go func() { bidOK, bidFailures, slowest = bidTimeProbe(p.base, bid, stop); close(probe) }()

	const clients, perClient = 32, 12
	var acked, shed atomic.Int64
	var shedSlowest atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	began := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newHTTPC(20 * time.Second) // a hang fails the request
			for i := range perClient {
				start := time.Now()
				a, err := c.send("POST", p.base+"/v1/conversions?dataset=1234567890", "application/json", advToken, batch(w, i))
				took := time.Since(start)
				switch {
				case err != nil:
					errs <- err
					return
				case a.status == 200:
					acked.Add(200)
				case a.status == 429:
					if a.header.Get("Retry-After") == "" || !strings.Contains(errorMessage(a), "overloaded") {
						errs <- fmt.Errorf("429 without Retry-After or a clear error: %v %v", a.header, a)
						return
					}
					shed.Add(1)
					for {
						old := shedSlowest.Load()
						if int64(took) <= old || shedSlowest.CompareAndSwap(old, int64(took)) {
							break
						}
					}
				default:
					errs <- fmt.Errorf("flood: %v", a)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	flood := time.Since(began)
	close(stop)
	<-probe
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("flood of %d requests in %s: %d acknowledged events, %d requests shed with 429 (slowest shed answer %s)",
		clients*perClient, flood.Round(time.Millisecond), acked.Load(), shed.Load(), time.Duration(shedSlowest.Load()).Round(time.Millisecond))
	if shed.Load() == 0 {
		t.Fatal("nothing was shed with max_inflight 2 and 32 clients")
	}
	if len(bidFailures) > 0 || bidOK < 5 {
		t.Fatalf("bid-time requests during the flood: %d ok, failures %v", bidOK, bidFailures)
	}
	t.Logf("bid-time requests during the flood: %d ok, slowest %s", bidOK, slowest.Round(time.Millisecond))

	// Afterwards: normal. Shed batches were not stored, acknowledged ones
	// were, and a sequential client is never shed.
	if got := num(stats(t, p), "stored"); got != float64(acked.Load()) {
		t.Fatalf("stored %v, acknowledged %d", got, acked.Load())
	}
	for i := range 5 {
		status, _, raw := p.do("POST", "/v1/conversions?dataset=1234567890", "application/json", advToken, batch(1000, i))
		if status != 200 {
			t.Fatalf("after the flood: %d %s", status, raw)
		}
	}
	if got := num(stats(t, p), "stored"); got != float64(acked.Load()+1000) {
		t.Fatalf("stored %v after the flood, want %d", got, acked.Load()+1000)
	}
}
