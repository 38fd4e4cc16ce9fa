package signals

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/model"
	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fastjson"
)

// BenchmarkBidRequest runs, for every request fixture, Extract<Fixture>
// beside its baseline JSONDecode<Fixture> (encoding/json into
// openrtb2.BidRequest) and FastjsonValidateParse<Fixture> (what reading the
// same bytes with fastjson costs before any field is read: a strict
// validation, which fastjson's parser does not do, plus the parse), one
// right after the other so that all see the same machine load. Besides
// ns/op each reports cpu-ns/op, the CPU time of the benchmark's thread per
// op, which stays meaningful on a loaded machine.
func BenchmarkBidRequest(b *testing.B) {
	all := fixtures(b)
	for _, name := range sortedNames(all) {
		body := all[name]
		b.Run("Extract"+camel(name), func(b *testing.B) {
			x := NewExtractor()
			cpuBench(b, len(body), func() {
				if _, err := x.Extract(body, testNow); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run("JSONDecode"+camel(name), func(b *testing.B) {
			cpuBench(b, len(body), func() {
				var br openrtb2.BidRequest
				if err := json.Unmarshal(body, &br); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run("FastjsonValidateParse"+camel(name), func(b *testing.B) {
			var p fastjson.Parser
			cpuBench(b, len(body), func() {
				if err := fastjson.ValidateBytes(body); err != nil {
					b.Fatal(err)
				}
				if _, err := p.ParseBytes(body); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkExtractVsJSON measures the speed-up of Extract over the
// encoding/json decode on a loaded machine: every iteration runs Extract 8
// times and then the decode once, on a locked thread, each timed with the
// thread's CPU clock, so that both see the same moments of the machine's
// load. The cost of reading the clock (a system call, measured first) is
// taken out of each window. It reports extract-cpu-ns/op, json-cpu-ns/op
// and speedup (their ratio); ns/op, B/op and allocs/op are for the whole
// iteration (the allocations are the decode's). Linux only (elsewhere it
// skips).
func BenchmarkExtractVsJSON(b *testing.B) {
	if _, ok := threadCPUTime(); !ok {
		b.Skip("no thread CPU clock")
	}
	all := fixtures(b)
	for _, name := range sortedNames(all) {
		body := all[name]
		b.Run(camel(name), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			const batch = 8
			x := NewExtractor()
			// Reading the clock is a system call whose cost lands in the
			// window it closes: measure it and take it out of both.
			var clock int64
			for range 1000 {
				a, _ := threadCPUTime()
				b, _ := threadCPUTime()
				clock += b - a
			}
			clock /= 1000
			var ext, dec int64
			b.ReportAllocs()
			for b.Loop() {
				t0, _ := threadCPUTime()
				for range batch {
					if _, err := x.Extract(body, testNow); err != nil {
						b.Fatal(err)
					}
				}
				t1, _ := threadCPUTime()
				var br openrtb2.BidRequest
				if err := json.Unmarshal(body, &br); err != nil {
					b.Fatal(err)
				}
				t2, _ := threadCPUTime()
				ext += t1 - t0 - clock
				dec += t2 - t1 - clock
			}
			extOp := float64(ext) / float64(b.N*batch)
			decOp := float64(dec) / float64(b.N)
			b.ReportMetric(extOp, "extract-cpu-ns/op")
			b.ReportMetric(decOp, "json-cpu-ns/op")
			b.ReportMetric(decOp/extOp, "speedup")
		})
	}
}

// cpuBench runs op b.N times on a locked OS thread and reports its thread
// CPU time per op as cpu-ns/op.
func cpuBench(b *testing.B, size int, op func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	start, ok := threadCPUTime()
	n := 0
	for b.Loop() {
		op()
		n++
	}
	if end, ok2 := threadCPUTime(); ok && ok2 && n > 0 {
		b.ReportMetric(float64(end-start)/float64(n), "cpu-ns/op")
	}
}

// camel turns "roku-ctv-pod-gpp" into "RokuCtvPodGpp".
func camel(s string) string {
	var out []byte
	up := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == '.' || c == '_':
			up = true
			continue
		case up && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		up = false
		out = append(out, c)
	}
	return string(out)
}

// BenchmarkExtractParallel is Extract with one Extractor per goroutine, as
// a server pools them.
func BenchmarkExtractParallel(b *testing.B) {
	body := fixtures(b)["roku-ctv-pod-gpp"]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		x := NewExtractor()
		for pb.Next() {
			if _, err := x.Extract(body, testNow); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkChainKeys is the key path of one imp for one campaign through a
// four-level chain (one level of two features).
func BenchmarkChainKeys(b *testing.B) {
	c, err := NewChain([][]string{{"publisher"}, {"bundle"}, {"genre", "language"}, {"metro"}})
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewExtractor().Extract(fixtures(b)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		b.Fatal(err)
	}
	root := model.RootKey("demo-ctv-purchase")
	dst := make([]model.Key, 0, c.Depth()+1)
	b.ReportAllocs()
	for b.Loop() {
		dst = c.Keys(root, &r.Imps[0], dst[:0])
	}
}

// BenchmarkRequestIDs hashes the identities of a request with an IFA, an IP,
// two eids and a user id.
func BenchmarkRequestIDs(b *testing.B) {
	r, err := NewExtractor().Extract(fixtures(b)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		b.Fatal(err)
	}
	h := NewHasher([]byte("bench-secret"))
	dst := r.IDs(h, nil)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.IDs(h, dst[:0])
	}
}

// BenchmarkGate runs every gate on a GDPR request with TCF, US privacy and
// GPP strings.
func BenchmarkGate(b *testing.B) {
	p := Privacy{GDPR: 1, Consent: []byte(tcfAllGranted), USPrivacy: []byte("1YNN"), GPP: []byte("DBABzw~1YNN~CUQiAAAAAACA.QA")}
	b.ReportAllocs()
	for b.Loop() {
		Gate(p, 1234)
	}
}

// BenchmarkRemember keeps a scored CTV pod request (three imps, an IFA, an
// IP, eids) for its win notices, each time under a new auction id: what
// remembering adds to POST /v1/score for a bidder that sends wins. The
// default memory fills after about 600 000 bids; from there on its oldest
// generations are pushed out as it goes (logged once).
func BenchmarkRemember(b *testing.B) {
	x, r := benchRemember(b)
	id := []byte("auction-0000000000")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		for k, n := len(id)-1, i; n > 0; k, n = k-1, n/10 {
			id[k] = byte('0' + n%10)
		}
		r.ID = id
		x.Remember(r, "bench-bidder", testNow)
	}
	b.ReportMetric(float64(len(appendRemembered(nil, r.ID, "bench-bidder", testNow, true, r.IDs(x.hasher, nil), r.Imps))), "record-B")
}

// BenchmarkRememberParallel is BenchmarkRemember from every P at once (the
// score handler's goroutines), each with its own view of the request.
func BenchmarkRememberParallel(b *testing.B) {
	x, req := benchRemember(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := req.View()
		r := &v
		id := fmt.Appendf(nil, "auction-%02d-0000000000", next.Add(1))
		for i := 1; pb.Next(); i++ {
			for k, n := len(id)-1, i; n > 0; k, n = k-1, n/10 {
				id[k] = byte('0' + n%10)
			}
			r.ID = id
			x.Remember(r, "bench-bidder", testNow)
		}
	})
}

// BenchmarkLookupBid finds a remembered bid by its auction id among 100 000
// remembered over bid_ttl, as a win notice does.
func BenchmarkLookupBid(b *testing.B) {
	x, r := benchRemember(b)
	const n = 100_000
	ttl := int64(x.cfg.BidTTL / time.Second)
	for i := range n {
		r.ID = fmt.Appendf(nil, "auction-%010d", i)
		x.Remember(r, "bench-bidder", testNow-ttl+1+int64(i)*(ttl-1)/n)
	}
	x.SetClock(func() time.Time { return time.Unix(testNow, 0) })
	ids := make([][]byte, 1024)
	for i := range ids {
		ids[i] = fmt.Appendf(nil, "auction-%010d", (i*7919)%n)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := x.lookupBid(ids[i%len(ids)], "bench-bidder"); !ok {
			b.Fatal("not found")
		}
		i++
	}
}

// benchRemember is an exposure side with the default config and the Roku
// pod request to remember.
func benchRemember(b *testing.B) (*Exposures, *Request) {
	r, err := NewExtractor().Extract(fixtures(b)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		b.Fatal(err)
	}
	chain, _ := NewChain([][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}})
	camps := []model.Campaign{{ID: "c", Advertiser: "a", Event: "Purchase", TargetCPA: 50}}
	x, err := NewExposures(ExposureConfig{}, ExposureDeps{
		Chain: chain, Hasher: NewHasher([]byte("bench-secret")), Index: NewIndex(IndexConfig{}),
		Counter: model.New(model.Config{}, camps), Campaigns: camps,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(x.Close)
	return x, r
}
