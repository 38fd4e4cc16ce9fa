package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash workload: a few clients, each sending its own deterministic run
// of conversion and exposure batches, one at a time, retrying every batch
// until it is acknowledged.
const (
	crashClients        = 4
	crashBatchesPerClnt = 40 // alternating conversions and exposures
	crashBatchSize      = 25
	crashHouseholds     = 300
	crashKills          = 24
)

var truncatedTail = regexp.MustCompile(`msg="journal replayed" .*truncated_bytes=(\d+)`)

// wbatch is one request of a workload.
type wbatch struct {
	exposures bool
	path      string
	token     string
	body      []byte
	n         int      // events or exposures in the body (with repeats)
	keys      []string // the event ids / request ids in it
}

func householdIP(h int) string { return fmt.Sprintf("100.64.%d.%d", h/250, h%250+1) }

func householdIFA(h int) string {
	return fmt.Sprintf("6D92078A-8246-4BA4-AE5B-%012X", int64(0x76104861E000)+int64(h))
}

// crashWorkload builds the batches of every client; base is the time the
// events are stamped relative to (the same for a reference and a crash run).
// Households are shared across clients, so conversions often arrive before
// their exposures (pending, then matched late). Each conversion carries the
// identities of one match method only (IP, or IFA), so the method that
// attributes it does not depend on the order of arrival, and neither do the
// compared counts.
func crashWorkload(base int64) [][]wbatch {
	out := make([][]wbatch, crashClients)
	for c := range crashClients {
		var prevConv, prevExp []map[string]any
		var prevConvKeys, prevExpKeys []string
		for b := range crashBatchesPerClnt {
			if b%2 == 0 { // conversions
				var evs []map[string]any
				var keys []string
				// A client that is not sure what got through resends the
				// first two events of its previous batch.
				if len(prevConv) > 0 {
					evs, keys = append(evs, prevConv[:2]...), append(keys, prevConvKeys[:2]...)
				}
				cur, curKeys := []map[string]any{}, []string{}
				for i := range crashBatchSize - len(evs) {
					k := (c*crashBatchesPerClnt+b)*crashBatchSize + i
					h := k * 7919 % crashHouseholds
					id := fmt.Sprintf("ord-%d-%d-%d", c, b, i)
					var ud map[string]any
					switch k % 4 {
					case 0: // in the clear
						ud = map[string]any{"em": fmt.Sprintf("Person.%d@Example.com", k), "ph": fmt.Sprintf("+1 (650) 555-%04d", k%10000), "client_ip_address": householdIP(h)}
					case 1: // hashed email
						ud = map[string]any{"em": sha256Hex(fmt.Sprintf("person%d@example.com", k)), "client_ip_address": householdIP(h)}
					case 2: // device id and external id, no IP
						ud = map[string]any{"external_id": fmt.Sprintf("cust-%d", k), "ifa": householdIFA(h), "ifa_type": "rida"}
					default:
						ud = map[string]any{"client_ip_address": householdIP(h)}
					}
					name, value := "Purchase", float64(10+k%50)
					if k%5 == 4 {
						name, value = "CompleteRegistration", 0
					}
					cur = append(cur, conversionEvent(name, id, base-600+int64(k%500), value, ud))
					curKeys = append(curKeys, id)
				}
				evs, keys = append(evs, cur...), append(keys, curKeys...)
				prevConv, prevConvKeys = cur, curKeys
				out[c] = append(out[c], wbatch{path: "/v1/conversions?dataset=1234567890", token: advToken,
					body: mustJSON(map[string]any{"data": evs}), n: len(evs), keys: keys})
				continue
			}
			var exps []map[string]any
			var keys []string
			if len(prevExp) > 0 { // the same for exposures: one repeat
				exps, keys = append(exps, prevExp[len(prevExp)-1]), append(keys, prevExpKeys[len(prevExpKeys)-1])
			}
			cur, curKeys := []map[string]any{}, []string{}
			for i := range crashBatchSize - len(exps) {
				k := (c*crashBatchesPerClnt+b)*crashBatchSize + i
				h := k * 104729 % crashHouseholds
				rid := fmt.Sprintf("auc-%d-%d-%d", c, b, i)
				camp := "demo-ctv-purchase"
				if k%3 == 0 {
					camp = "demo-ctv-signup"
				}
				ids := map[string]any{"ip": householdIP(h)}
				if k%2 == 0 {
					ids["ifa"] = householdIFA(h)
				}
				feats := map[string]any{"publisher": "pub-" + strconv.Itoa(k%5), "bundle": "com.ctv.app" + strconv.Itoa(k%3),
					"genre": []string{"News", "Drama", "Sports"}[k%3], "metro": strconv.Itoa(500 + k%4)}
				cur = append(cur, exposure(rid, camp, 10+float64(k%7)*2.5, base-7200+int64(k%3000), feats, ids))
				curKeys = append(curKeys, rid+"|"+camp)
			}
			exps, keys = append(exps, cur...), append(keys, curKeys...)
			prevExp, prevExpKeys = cur, curKeys
			out[c] = append(out[c], wbatch{exposures: true, path: "/v1/exposures", token: bidderToken,
				body: mustJSON(map[string]any{"exposures": exps}), n: len(exps), keys: keys})
		}
	}
	return out
}

// distinct counts the distinct conversions and exposures (per campaign) of
// a workload.
func distinct(w [][]wbatch) (conv int, exp map[string]int) {
	seen := map[string]bool{}
	exp = map[string]int{}
	for _, bs := range w {
		for _, b := range bs {
			for _, k := range b.keys {
				if seen[k] {
					continue
				}
				seen[k] = true
				if !b.exposures {
					conv++
					continue
				}
				_, camp, _ := strings.Cut(k, "|")
				exp[camp]++
			}
		}
	}
	return conv, exp
}

// stateStats is what must be the same after any history of crashes and
// retries: stored counts, exposures, spend, attribution; not the received
// and deduplicated counters, which count retries, nor late_matched, which
// depends on whether a conversion or its exposure arrived first.
func stateStats(c *httpc, base string) (map[string]float64, error) {
	out := map[string]float64{}
	a, err := c.send("GET", base+"/v1/stats?dataset=1234567890", "", advToken, nil)
	if err != nil || a.status != 200 {
		return nil, fmt.Errorf("stats: %v %v", a, err)
	}
	out["stored"] = num(a.json, "stored")
	out["dedup_entries"] = num(a.json, "dedup_entries")
	out["capi.stored"] = num(a.json, "by_source", "capi", "stored")
	for name := range a.json["by_event_name"].(map[string]any) {
		out[name+".stored"] = num(a.json, "by_event_name", name, "stored")
	}
	for _, camp := range []string{"demo-ctv-purchase", "demo-ctv-signup"} {
		a, err := c.send("GET", base+"/v1/campaigns/"+camp+"/stats", "", advToken, nil)
		if err != nil || a.status != 200 {
			return nil, fmt.Errorf("campaign stats: %v %v", a, err)
		}
		for _, f := range []string{"exposures", "spend", "starts", "completes"} {
			out[camp+"."+f] = num(a.json, f)
		}
		for _, f := range []string{"received", "attributed", "unattributed", "pending"} {
			out[camp+".conversions."+f] = num(a.json, "conversions", f)
		}
		for m := range a.json["conversions"].(map[string]any)["attributed_by_method"].(map[string]any) {
			out[camp+".by_method."+m] = num(a.json, "conversions", "attributed_by_method", m)
		}
	}
	return out, nil
}

// sameStats compares two stateStats; spend is a float sum whose last bits
// depend on the order exposures were added.
func sameStats(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || math.Abs(v-w) > 1e-9*math.Max(1, math.Abs(v)) {
			return false
		}
	}
	return true
}

// sendAll runs every client's batches concurrently against the server at
// *base, retrying each batch until it is acknowledged; acked counts
// acknowledged batches, inflight the requests under way. It returns the
// first error a client met (a wrong answer, or no progress for a minute).
func sendAll(w [][]wbatch, base *atomic.Pointer[string], acked, inflight *atomic.Int64) error {
	errs := make(chan error, len(w))
	var wg sync.WaitGroup
	for _, bs := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newHTTPC(10 * time.Second)
			for _, b := range bs {
				if err := sendUntilAcked(c, b, base, inflight); err != nil {
					errs <- err
					return
				}
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func sendUntilAcked(c *httpc, b wbatch, base *atomic.Pointer[string], inflight *atomic.Int64) error {
	deadline := time.Now().Add(time.Minute)
	for {
		inflight.Add(1)
		a, err := c.send("POST", *base.Load()+b.path, "application/json", b.token, b.body)
		inflight.Add(-1)
		switch {
		case err == nil && a.status == 200:
			received, what := num(a.json, "events_received"), "events_received"
			if b.exposures {
				received, what = num(a.json, "exposures_received"), "exposures_received"
			}
			if received != float64(b.n) {
				return fmt.Errorf("%s: %s %v, want %d: %s", b.path, what, received, b.n, a.raw)
			}
			return nil
		case err == nil && a.status != 503 && a.status != 429:
			return fmt.Errorf("%s: unexpected answer %v", b.path, a)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not acknowledged within a minute: last %v %v", b.path, a, err)
		}
		time.Sleep(15 * time.Millisecond) // the server is down or restarting
	}
}

// TestFaultKill9DuringMixedIngest: clients send conversion and exposure
// batches concurrently, retrying whatever is not acknowledged, while the
// server is killed with SIGKILL at random moments (random amounts of
// acknowledged progress plus a random delay) and restarted on the same data
// dir. At the end every event is stored exactly once, a retry of every batch
// stores nothing, and the stats equal those of a run without crashes.
// CPAFEED_FAULT_SEED=<n> replays a given seed.
func TestFaultKill9DuringMixedIngest(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CPAFEED_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with CPAFEED_FAULT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))

	base := time.Now().Unix()
	w := crashWorkload(base)
	wantConv, wantExp := distinct(w)
	total := int64(0)
	for _, bs := range w {
		total += int64(len(bs))
	}
	c := newHTTPC(10 * time.Second)

	// The reference: the same workload, no crash.
	refStart := time.Now()
	ref := start(t, t.TempDir())
	var refBase atomic.Pointer[string]
	refBase.Store(&ref.base)
	var refAcked, refInflight atomic.Int64
	if err := sendAll(w, &refBase, &refAcked, &refInflight); err != nil {
		t.Fatalf("reference run: %v\n%s", err, ref.Logs())
	}
	want, err := stateStats(c, ref.base)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.stop(); err != nil {
		t.Fatal(err)
	}
	if want["stored"] != float64(wantConv) || want["demo-ctv-purchase.exposures"] != float64(wantExp["demo-ctv-purchase"]) ||
		want["demo-ctv-signup.exposures"] != float64(wantExp["demo-ctv-signup"]) || want["demo-ctv-purchase.conversions.attributed"] == 0 {
		t.Fatalf("reference run: %v, want %d conversions and exposures %v", want, wantConv, wantExp)
	}
	t.Logf("reference run: %d batches, %d conversions, exposures %v in %s", total, wantConv, wantExp, time.Since(refStart).Round(time.Millisecond))

	// Kill points: distinct amounts of acknowledged batches, each followed
	// by a random delay of up to 40ms.
	points := map[int64]bool{}
	for len(points) < crashKills {
		points[1+rng.Int64N(total-1)] = true
	}
	thresholds := make([]int64, 0, len(points))
	for p := range points {
		thresholds = append(thresholds, p)
	}
	slices.Sort(thresholds)

	dir := t.TempDir()
	p := start(t, dir)
	var cur atomic.Pointer[string]
	cur.Store(&p.base)
	var acked, inflight atomic.Int64
	done := make(chan error, 1)
	go func() { done <- sendAll(w, &cur, &acked, &inflight) }()
	kills, killsInFlight, tornTails := 0, 0, 0
	for _, th := range thresholds {
		deadline := time.Now().Add(time.Minute)
		for acked.Load() < th {
			if time.Now().After(deadline) {
				t.Fatalf("no progress to %d acknowledged batches (at %d)\n%s", th, acked.Load(), p.Logs())
			}
			select {
			case err := <-done:
				t.Fatalf("clients stopped at %d of %d batches: %v\n%s", acked.Load(), total, err, p.Logs())
			default:
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(40 * time.Millisecond))))
		if inflight.Load() > 0 {
			killsInFlight++
		}
		p.kill9()
		kills++
		p = start(t, dir)
		cur.Store(&p.base)
		if m := truncatedTail.FindStringSubmatch(p.Logs()); m != nil && m[1] != "0" {
			tornTails++
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("clients: %v\n%s", err, p.Logs())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("clients did not finish\n%s", p.Logs())
	}
	t.Logf("%d kills (%d with requests in flight, %d left a torn journal tail), %d batches acknowledged", kills, killsInFlight, tornTails, acked.Load())
	if kills < 20 {
		t.Fatalf("only %d kills", kills)
	}

	check := func(when string) {
		t.Helper()
		got, err := stateStats(c, p.base)
		if err != nil {
			t.Fatal(err)
		}
		if !sameStats(got, want) {
			t.Fatalf("%s: stats differ from the run without crashes (seed %d)\n got  %v\n want %v", when, seed, got, want)
		}
	}
	check("after the crashes")

	// Retrying every batch once more stores nothing new.
	for _, bs := range w {
		for _, b := range bs {
			a := c.mustSend(t, "POST", p.base+b.path, "application/json", b.token, b.body)
			if a.status != 200 {
				t.Fatalf("retry: %v", a)
			}
			if !b.exposures && num(a.json, "events_deduplicated") != float64(b.n) {
				t.Fatalf("a retried conversion batch stored events: %s", a.raw)
			}
			if b.exposures && num(a.json, "exposures_stored") != 0 {
				t.Fatalf("a retried exposure batch stored exposures: %s", a.raw)
			}
		}
	}
	check("after retrying every batch")

	// And the state rebuilt from the journal alone is the same again.
	p.kill9()
	p = start(t, dir)
	check("after a last restart")
	if err := p.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Logs())
	}
}
