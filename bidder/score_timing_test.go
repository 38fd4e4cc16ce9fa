package bidder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// benchNow is the benchmarks' clock (Unix seconds).
const benchNow = int64(1_750_000_000)

var benchLevels = [][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}}

func benchCampaigns() []model.Campaign {
	return []model.Campaign{
		{ID: "demo-ctv-purchase", Advertiser: "demo", Event: "Purchase", TargetCPA: 40, FloorCPM: 1, CapCPM: 60},
		{ID: "demo-ctv-signup", Advertiser: "demo", Event: "CompleteRegistration", TargetCPA: 8, FloorCPM: 1, CapCPM: 40, BidOn: "cvr_lo"},
	}
}

// benchModel returns the rules and a model of realistic size: both
// campaigns with 20 000 leaf segments each (about 100 000 nodes), the
// request's own path among them.
func benchModel(b *testing.B, body []byte) (*bidder.Rules, *model.Model) {
	b.Helper()
	rules, err := bidder.NewRules(benchLevels, benchCampaigns())
	if err != nil {
		b.Fatal(err)
	}
	m := model.New(model.Config{Structure: model.StructureChain}, benchCampaigns())
	r := rand.New(rand.NewPCG(7, 7))
	req, err := signals.NewExtractor().Extract(body, benchNow)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range benchCampaigns() {
		root := model.RootKey(c.ID)
		for i := range 20000 {
			var imp signals.Imp
			imp.SetFeatureString("publisher", fmt.Sprintf("pub-%d", r.IntN(300)))
			imp.SetFeatureString("bundle", fmt.Sprintf("bundle-%d", r.IntN(2000)))
			imp.SetFeatureString("genre", fmt.Sprintf("genre-%d", r.IntN(12)))
			imp.SetFeatureString("metro", fmt.Sprint(500+r.IntN(210)))
			if i == 0 {
				imp = req.Imps[0]
			}
			path := rules.Chain().Keys(root, &imp, nil)
			labels := append([][]byte{nil}, rules.Chain().Labels(&imp, nil)...)
			for range 1 + r.IntN(20) {
				m.Expose(benchNow-int64(r.IntN(86400)), path, labels, 0.02)
			}
			if r.IntN(10) == 0 {
				m.Credit(benchNow-86400, benchNow-3600, path[len(path)-1], 1)
			}
		}
	}
	m.Refresh(benchNow)
	return rules, m
}

// benchScorer returns a Scorer over a chain model of realistic size: both
// campaigns with 20 000 leaf segments each (about 100 000 nodes), the
// benchmark request's own path among them, so that lookups walk a table
// far bigger than the caches.
func benchScorer(b *testing.B, body []byte) *bidder.Scorer {
	b.Helper()
	rules, m := benchModel(b, body)
	return bidder.NewScorerFromSnapshot(bidder.SnapshotOf(rules, m.Estimates()))
}

// benchCrossedScorer is benchScorer with the crossed model of the default
// effect keys (model.DefaultEffects: 12 tables over 10 features): both
// campaigns with 20 000 cells of random values (about 25 000 effect levels
// each), the request's own cell among them.
func benchCrossedScorer(b *testing.B, body []byte) *bidder.Scorer {
	b.Helper()
	cfg := model.Config{Structure: model.StructureCrossed}.WithDefaults()
	var levels [][]string
	for _, d := range cfg.Dims() {
		levels = append(levels, []string{d})
	}
	rules, err := bidder.NewRules(levels, benchCampaigns())
	if err != nil {
		b.Fatal(err)
	}
	m := model.New(cfg, benchCampaigns())
	r := rand.New(rand.NewPCG(7, 7))
	req, err := signals.NewExtractor().Extract(body, benchNow)
	if err != nil {
		b.Fatal(err)
	}
	card := map[string]int{"publisher": 300, "bundle": 2000, "genre": 12, "metro": 210, "daypart": 6, "devicetype": 3,
		"make": 8, "position": 3, "slot": 5, "podsize": 4, "livestream": 2, "contentlen": 4}
	for _, c := range benchCampaigns() {
		root := model.RootKey(c.ID)
		for i := range 20000 {
			var imp signals.Imp
			for _, d := range cfg.Dims() {
				imp.SetFeatureString(d, fmt.Sprintf("%s-%d", d, r.IntN(card[d])))
			}
			if i == 0 {
				imp = req.Imps[0]
			}
			path := rules.Chain().Keys(root, &imp, nil)
			labels := append([][]byte{nil}, rules.Chain().Labels(&imp, nil)...)
			for range 1 + r.IntN(20) {
				m.Expose(benchNow-int64(r.IntN(86400)), path, labels, 0.02)
			}
			if r.IntN(10) == 0 {
				m.Credit(benchNow-86400, benchNow-3600, path[len(path)-1], 1)
			}
		}
	}
	m.Refit(benchNow)
	sc := bidder.NewScorerFromSnapshot(bidder.SnapshotOf(rules, m.Estimates()))
	sc.SetClock(func() time.Time { return time.Unix(benchNow, 0) })
	return sc
}

// BenchmarkScoreCTVRequest1Imp2CampaignsCrossed is
// BenchmarkScoreCTVRequest1Imp2Campaigns on the crossed model.
func BenchmarkScoreCTVRequest1Imp2CampaignsCrossed(b *testing.B) {
	body := ctvRequest(b)
	sc := benchCrossedScorer(b, body)
	var res bidder.Result
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := sc.Score(body, twoCampaigns, &res); err != nil {
			b.Fatal(err)
		}
	}
	if l := res.Imps[0].Scores[0].Level; l != len(model.DefaultEffects) {
		b.Fatalf("scored with %d effect levels, want every table's (the request's own cell was fed)", l)
	}
}

// BenchmarkScorerFeaturesCrossed is BenchmarkScorerFeatures on the crossed
// model (12 effect tables: 12 probes per imp × campaign).
func BenchmarkScorerFeaturesCrossed(b *testing.B) {
	body := ctvRequest(b)
	sc := benchCrossedScorer(b, body)
	imp := featureImp()
	var res bidder.Result
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if err := sc.ScoreImp(imp, twoCampaigns, &res); err != nil {
			b.Error(err)
			return
		}
		n++
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(2*n), "ns/score")
}

func ctvRequest(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile("testdata/ctv-1imp.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

var twoCampaigns = bidder.ScoreOptions{Campaigns: []string{"demo-ctv-purchase", "demo-ctv-signup"}}

// BenchmarkScoreCTVRequest1Imp2Campaigns scores a 4 KB CTV bid request
// with one imp for two campaigns from its bytes: extraction, segment keys,
// lookups, bid rule, segment names. Compare with
// BenchmarkJSONDecodeCTVRequest (same bytes) in the same run.
func BenchmarkScoreCTVRequest1Imp2Campaigns(b *testing.B) {
	body := ctvRequest(b)
	sc := benchScorer(b, body)
	var res bidder.Result
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := sc.Score(body, twoCampaigns, &res); err != nil {
			b.Fatal(err)
		}
	}
	if res.Imps[0].Scores[0].Level != 4 {
		b.Fatalf("scored at level %d, want the request's own leaf", res.Imps[0].Scores[0].Level)
	}
}

// BenchmarkScoreCTVRequest1Imp2CampaignsJSON is the same plus writing the
// HTTP answer's JSON.
func BenchmarkScoreCTVRequest1Imp2CampaignsJSON(b *testing.B) {
	body := ctvRequest(b)
	sc := benchScorer(b, body)
	var res bidder.Result
	var out []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := sc.Score(body, twoCampaigns, &res); err != nil {
			b.Fatal(err)
		}
		out = res.AppendJSON(out[:0])
	}
}

// BenchmarkJSONDecodeCTVRequest is the baseline: encoding/json decoding
// the same bytes into openrtb2.BidRequest (no scoring at all).
func BenchmarkJSONDecodeCTVRequest(b *testing.B) {
	body := ctvRequest(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var br openrtb2.BidRequest
		if err := json.Unmarshal(body, &br); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScorerFeatures scores one imp given by its features for two
// campaigns with the embedded Scorer; ns/score is per imp × campaign.
func BenchmarkScorerFeatures(b *testing.B) {
	body := ctvRequest(b)
	sc := benchScorer(b, body)
	imp := featureImp()
	var res bidder.Result
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if err := sc.ScoreImp(imp, twoCampaigns, &res); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(2*n), "ns/score")
}

// BenchmarkScorerFeaturesParallel is BenchmarkScorerFeatures from every
// core at once (the Scorer is shared; each goroutine has its Result).
func BenchmarkScorerFeaturesParallel(b *testing.B) {
	body := ctvRequest(b)
	sc := benchScorer(b, body)
	imp := featureImp()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var res bidder.Result
		for pb.Next() {
			if err := sc.ScoreImp(imp, twoCampaigns, &res); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func featureImp() *signals.Imp {
	imp := &signals.Imp{}
	imp.SetFeatureString("publisher", "pub-88231")
	imp.SetFeatureString("bundle", "com.example.sportslive.tizen")
	imp.SetFeatureString("genre", "Sports")
	imp.SetFeatureString("metro", "501")
	return imp
}

// BenchmarkHandleScore is the POST /v1/score handler alone on a reused
// fasthttp.RequestCtx for the 4 KB CTV request and 2 campaigns, without
// (NoRemember) and with (Remember) keeping the request for its win notice
// as the server does: the server-side cost of scoring, without HTTP.
func BenchmarkHandleScore(b *testing.B) {
	body := ctvRequest(b)
	rules, err := bidder.NewRules(benchLevels, benchCampaigns())
	if err != nil {
		b.Fatal(err)
	}
	m := model.New(model.Config{Structure: model.StructureChain}, benchCampaigns())
	m.Refresh(benchNow)
	x, err := signals.NewExposures(signals.ExposureConfig{}, signals.ExposureDeps{
		Chain: rules.Chain(), Hasher: signals.NewHasher([]byte("bench-secret")),
		Index: signals.NewIndex(signals.IndexConfig{}), Counter: m, Campaigns: benchCampaigns(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	var who signals.Bidder = benchBidder{}
	for _, mode := range []string{"NoRemember", "Remember"} {
		b.Run(mode, func(b *testing.B) {
			svc := bidder.NewService(bidder.Config{}, rules, m, nil)
			if mode == "Remember" {
				svc = bidder.NewService(bidder.Config{}, rules, m, x)
			}
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/v1/score?campaigns=demo-ctv-purchase,demo-ctv-signup")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				if err := svc.HandleScore(&ctx, body, who); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchBidder struct{}

func (benchBidder) BidderName() string { return "bench-bidder" }
func (benchBidder) MayUse(string) bool { return true }
func (benchBidder) SendsWins() bool    { return true }

// BenchmarkSnapshotBuild100k builds (encodes and compresses) the snapshot
// of a model of about 100 000 nodes, as the first poll of a version does,
// and decodes it as a Scorer does; bytes/node is the compressed size.
func BenchmarkSnapshotBuild100k(b *testing.B) {
	rules, m := benchModel(b, ctvRequest(b))
	var who signals.Bidder = benchBidder{}
	var data []byte
	b.Run("Build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			svc := bidder.NewService(bidder.Config{}, rules, m, nil) // an empty cache: build
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/v1/model/snapshot")
			if err := svc.HandleSnapshot(&ctx, who); err != nil {
				b.Fatal(err)
			}
			data = append(data[:0], ctx.Response.Body()...)
		}
		b.SetBytes(int64(len(data)))
		b.ReportMetric(float64(len(data))/float64(m.Estimates().Len()), "bytes/node")
		b.ReportMetric(float64(m.Estimates().Len()), "nodes")
	})
	b.Run("Parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bidder.ParseSnapshot(data, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHTTPLoopback drives, from one closed-loop fasthttp load
// generator with the same concurrency, a bare fasthttp handler answering
// a fixed 200-byte JSON body and a whole cpafeed server answering POST
// /v1/score (auth, routing, metrics, extraction, scoring of 2 campaigns,
// remembering the request for its win notice) for the 4 KB CTV request.
// Interleaved alternates blocks of both and reports the rates and their
// ratio (score/bare); Bare and Score run each alone. Then both are driven
// open loop at half of Bare's interleaved rate, and Score at half of its
// own, with p50/p99/p99.9 latency.
func BenchmarkHTTPLoopback(b *testing.B) {
	body := ctvRequest(b)
	bare := startBare(b)
	base := startServer(b, 2*time.Second)
	const parallelism = 16 // × GOMAXPROCS goroutines, one connection each
	hc := &fasthttp.HostClient{Addr: bare, MaxConns: 1024, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	sc := &fasthttp.HostClient{Addr: base[len("http://"):], MaxConns: 1024, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	// Both get the same request: the bid request posted with its token.
	request := func(url string) func(*fasthttp.Request) {
		return func(req *fasthttp.Request) {
			req.SetRequestURI(url + "/v1/score?campaigns=demo-ctv-purchase,demo-ctv-signup")
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer "+bidderToken)
			req.Header.SetContentType("application/json")
			req.SetBodyRaw(body)
		}
	}
	bareReq, scoreReq := request("http://"+bare), request(base)
	workers := parallelism * runtime.GOMAXPROCS(0)
	var bareRate, scoreRate float64
	b.Run("Interleaved", func(b *testing.B) {
		// Blocks of 256 requests, bare then score, so that both see the
		// same machine load (other processes come and go).
		b.ReportAllocs()
		var tBare, tScore, cBare, cScore time.Duration
		nBare, nScore := 0, 0
		for n := 0; n < b.N; {
			k := min(256, b.N-n)
			c0 := cpuTime()
			tBare += burst(b, hc, workers, k, bareReq)
			c1 := cpuTime()
			tScore += burst(b, sc, workers, k, scoreReq)
			c2 := cpuTime()
			cBare += c1 - c0
			cScore += c2 - c1
			nBare += k
			nScore += k
			n += k
		}
		bareRate = float64(nBare) / tBare.Seconds()
		scoreRate = float64(nScore) / tScore.Seconds()
		b.ReportMetric(bareRate, "bare-req/s")
		b.ReportMetric(scoreRate, "score-req/s")
		b.ReportMetric(scoreRate/bareRate, "score/bare")
		// CPU time of this process (load generator, server and their
		// kernel work) per request: what bounds the rate when the cores
		// are not shared with other processes.
		bc := float64(cBare.Microseconds()) / float64(nBare)
		scpu := float64(cScore.Microseconds()) / float64(nScore)
		b.ReportMetric(bc, "bare-cpu-µs/req")
		b.ReportMetric(scpu, "score-cpu-µs/req")
		b.ReportMetric(bc/scpu, "cpu-score/bare")
	})
	b.Run("Bare", func(b *testing.B) { closedLoop(b, hc, parallelism, bareReq) })
	b.Run("Score", func(b *testing.B) { closedLoop(b, sc, parallelism, scoreReq) })
	if bareRate == 0 {
		return
	}
	b.Run("BareOpenLoopHalfBareRate", func(b *testing.B) { openLoop(b, hc, bareRate/2, bareReq) })
	b.Run("ScoreOpenLoopHalfBareRate", func(b *testing.B) { openLoop(b, sc, bareRate/2, scoreReq) })
	b.Run("ScoreOpenLoopHalfScoreRate", func(b *testing.B) { openLoop(b, sc, scoreRate/2, scoreReq) })
}

// startBare serves a fixed 200-byte JSON answer on a free loopback port.
func startBare(b *testing.B) string {
	answer := []byte(`{"id":"b2c7e1d4-5a0f-4c3e-9f1a-ctv-1imp","imp":[{"id":"1","campaigns":[{"campaign":"demo-ctv-purchase","cvr":0.0012,"bid_cpm":48.0,"segment":"demo-ctv-purchase/pub-88231"}]}],"model_version":1}`)
	for len(answer) < 200 {
		answer = append(answer[:len(answer)-1], ' ', '}')
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(answer)
	}, NoDefaultServerHeader: true, NoDefaultDate: true}
	go s.Serve(ln)
	b.Cleanup(func() { s.Shutdown() })
	return ln.Addr().String()
}

// closedLoop sends b.N requests from parallelism × GOMAXPROCS goroutines,
// each waiting for its answer before sending the next, and returns the
// requests per second.
func closedLoop(b *testing.B, hc *fasthttp.HostClient, parallelism int, build func(*fasthttp.Request)) float64 {
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		build(req)
		for pb.Next() {
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d %s", err, resp.StatusCode(), resp.Body())
				return
			}
		}
	})
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "req/s")
	return rate
}

// cpuTime returns the user and system CPU time used by this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// burst sends n requests from workers goroutines in a closed loop and
// returns the time it took.
func burst(b *testing.B, hc *fasthttp.HostClient, workers, n int, build func(*fasthttp.Request)) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			build(req)
			for next.Add(1) <= int64(n) {
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Errorf("%v %d %s", err, resp.StatusCode(), resp.Body())
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// openLoop sends b.N requests at a fixed rate from 64 goroutines,
// regardless of answers: a request sent late because every goroutine was
// waiting for an answer is counted from its slot (no coordinated omission),
// one sent on time from its send. It reports latency percentiles in
// microseconds.
func openLoop(b *testing.B, hc *fasthttp.HostClient, rate float64, build func(*fasthttp.Request)) {
	b.ReportAllocs()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			build(req)
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(lat)) {
					return
				}
				from := start.Add(time.Duration(i) * interval)
				if d := time.Until(from); d > 0 {
					// On time: count from the send, not from the slot,
					// so that the timer's oversleep is not charged to the
					// server.
					time.Sleep(d)
					from = time.Now()
				}
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Errorf("%v %d", err, resp.StatusCode())
					cancel()
					return
				}
				lat[i] = time.Since(from)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)].Microseconds()) }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p99.9-µs")
}
