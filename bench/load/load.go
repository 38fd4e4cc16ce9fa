package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/valyala/fasthttp"
)

// Options configures one run of the load generator (`cpafeed bench`).
type Options struct {
	// Target is the base URL of the server, e.g. http://127.0.0.1:8080. Only
	// loopback hosts are accepted. Empty when Spawn is set.
	Target string
	// Mix is the relative weight of each request kind: score, exposures,
	// conversions, win, vast, bids (see ParseMix). Default score=90,
	// exposures=9, conversions=1.
	Mix map[string]int
	// Duration of the run (and of the baseline run). Default 10s, at most
	// MaxLoadDuration.
	Duration time.Duration
	// Rate > 0 runs an open loop: Rate requests per second at fixed intended
	// times, latency measured from the intended time (corrected for
	// coordinated omission); Concurrency connections carry them. 0 runs a
	// closed loop: Concurrency workers send back to back. At most 1000000.
	Rate int
	// Concurrency is the number of connections (and workers). Default 16,
	// at most 4096.
	Concurrency int
	// Baseline also runs the same load (same connections, duration and
	// bodies) against an in-process bare fasthttp handler that returns a
	// fixed 200-byte body, and reports the ratio of the two rates.
	Baseline bool
	// JSONPath, when set, receives the report as JSON.
	JSONPath string
	// Spawn, set by the caller for --spawn, starts a server and returns its
	// base URL and a function that stops it (called when the run ends).
	Spawn func() (url string, stop func() error, err error)
	// Scenario and Seed generate the request bodies. A Scenario without
	// campaigns means DefaultScenario.
	Scenario market.Scenario
	Seed     uint64
	// Pool sizes the pre-generated requests (see PoolOptions).
	Pool PoolOptions
	// Timeout bounds each request (write and read). Default 5s.
	Timeout time.Duration
	// Out receives the progress lines (one per second) and the final table.
	// nil discards them.
	Out io.Writer
}

// MaxLoadDuration bounds Options.Duration.
const MaxLoadDuration = 10 * time.Minute

// DefaultMix is the request mix when Options.Mix is empty.
const DefaultMix = "score=90,exposures=9,conversions=1"

// ParseMix parses "score=90,exposures=9,conversions=1".
func ParseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix: %q: want kind=weight", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mix: %q: weight must be an integer ≥ 0", part)
		}
		name = strings.TrimSpace(name)
		if _, ok := kindByName(name); !ok {
			return nil, fmt.Errorf("mix: unknown kind %q (want one of %s)", name, strings.Join(kindNames[:], ", "))
		}
		mix[name] = n
	}
	if err := checkMix(mix); err != nil {
		return nil, err
	}
	return mix, nil
}

func checkMix(mix map[string]int) error {
	total := 0
	for name, w := range mix {
		if _, ok := kindByName(name); !ok {
			return fmt.Errorf("mix: unknown kind %q (want one of %s)", name, strings.Join(kindNames[:], ", "))
		}
		if w < 0 || w > 1_000_000 {
			return fmt.Errorf("mix: %s weight %d not within 0..1000000", name, w)
		}
		total += w
	}
	if total == 0 {
		return errors.New("mix: every weight is zero")
	}
	return nil
}

// loopbackAddr checks that target is an http URL on a loopback host and
// returns its host:port.
func loopbackAddr(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", target, err)
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("target %q: only http:// is supported", target)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("target %q: only loopback hosts (127.0.0.1, ::1, localhost) may be loaded", target)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Run runs the load described by opts and returns its report (also
// printed to opts.Out and written to opts.JSONPath). All traffic goes to a
// loopback address, for opts.Duration (plus at most a few request timeouts).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if len(opts.Mix) == 0 {
		opts.Mix, _ = ParseMix(DefaultMix)
	}
	if err := checkMix(opts.Mix); err != nil {
		return nil, err
	}
	if opts.Duration == 0 {
		opts.Duration = 10 * time.Second
	}
	if opts.Duration < 0 || opts.Duration > MaxLoadDuration {
		return nil, fmt.Errorf("duration %v not within 0..%v", opts.Duration, MaxLoadDuration)
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 16
	}
	if opts.Concurrency < 1 || opts.Concurrency > 4096 {
		return nil, fmt.Errorf("concurrency %d not within 1..4096", opts.Concurrency)
	}
	if opts.Rate < 0 || opts.Rate > 1_000_000 {
		return nil, fmt.Errorf("rate %d not within 0..1000000", opts.Rate)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if len(opts.Scenario.Campaigns) == 0 {
		opts.Scenario = market.DefaultScenario()
	}
	if opts.Spawn != nil {
		if opts.Target != "" {
			return nil, errors.New("set either Target or Spawn, not both")
		}
		u, stop, err := opts.Spawn()
		if err != nil {
			return nil, fmt.Errorf("cannot spawn the server: %w", err)
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(opts.Out, "stopping the spawned server: %v\n", err)
			}
		}()
		opts.Target = u
	}
	addr, err := loopbackAddr(opts.Target)
	if err != nil {
		return nil, err
	}
	pool, err := buildPool(opts.Scenario, opts.Seed, opts.Pool)
	if err != nil {
		return nil, fmt.Errorf("cannot generate requests: %w", err)
	}

	hc := newLoadClient(addr, opts.Concurrency, opts.Timeout)
	rep := newReport(opts, opts.Target)
	if opts.Mix["win"] > 0 || opts.Mix["vast"] > 0 {
		rep.PrimeErrors = prime(ctx, hc, addr, pool, opts.Concurrency)
	}
	before, errBefore := scrapeMetrics(hc, addr)
	fmt.Fprintf(opts.Out, "%s against %s\n", rep.describe(), opts.Target)
	res := runPhase(ctx, hc, addr, pool, opts)
	rep.fill(res)
	after, errAfter := scrapeMetrics(hc, addr)
	switch {
	case errBefore != nil:
		rep.Server = &ServerMetrics{Error: errBefore.Error()}
	case errAfter != nil:
		rep.Server = &ServerMetrics{Error: errAfter.Error()}
	default:
		rep.Server = summarizeServer(before, after)
	}
	hc.CloseIdleConnections()

	if opts.Baseline && ctx.Err() == nil {
		u, stop, err := StartBareServer()
		if err != nil {
			return nil, fmt.Errorf("cannot start the baseline handler: %w", err)
		}
		baddr, _ := loopbackAddr(u)
		fmt.Fprintf(opts.Out, "baseline: same load against a bare fasthttp handler at %s\n", u)
		bhc := newLoadClient(baddr, opts.Concurrency, opts.Timeout)
		bres := runPhase(ctx, bhc, baddr, pool, opts)
		bhc.CloseIdleConnections()
		if err := stop(); err != nil {
			return nil, fmt.Errorf("cannot stop the baseline handler: %w", err)
		}
		b := newReport(opts, u)
		b.fill(bres)
		rep.Baseline = b
		if b.Total.Throughput > 0 {
			rep.Ratio = rep.Total.Throughput / b.Total.Throughput
		}
	}
	rep.write(opts.Out)
	if opts.JSONPath != "" {
		if err := rep.writeJSONFile(opts.JSONPath); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

func newLoadClient(addr string, conns int, timeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		Name:                          "cpafeed-bench",
		MaxConns:                      conns,
		MaxIdleConnDuration:           time.Minute,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		MaxConnWaitTimeout:            timeout,
		MaxIdemponentCallAttempts:     1, // a failed request is one error, never silently retried
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true, // generated paths are already normal
	}
}

// prime posts the exposed bid requests to /v1/bids so that win notices and
// VAST events can find their auctions; it returns the number of failures.
func prime(ctx context.Context, hc *fasthttp.HostClient, addr string, pool *requestPool, conc int) int {
	var failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	kp := &pool.kinds[KindBids]
	for range min(conc, 8) {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			prepareHeaders(req, addr, kp)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(pool.prime) {
					return
				}
				req.SetRequestURIBytes(pool.prime[i].uri)
				req.SetBodyRaw(pool.prime[i].body)
				if err := hc.Do(req, resp); err != nil || resp.StatusCode()/100 != 2 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

func prepareHeaders(req *fasthttp.Request, addr string, kp *kindPool) {
	req.Header.SetHost(addr)
	if kp.get {
		req.Header.SetMethod(fasthttp.MethodGet)
		if kp.auth != nil {
			req.Header.SetBytesV("Authorization", kp.auth)
		}
		return
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if kp.auth != nil {
		req.Header.SetBytesV("Authorization", kp.auth)
	}
	if kp.encoding != "" {
		req.Header.Set("Content-Encoding", kp.encoding)
	}
}

// scrapeMetrics reads and parses GET /metrics.
func scrapeMetrics(hc *fasthttp.HostClient, addr string) ([]MetricSample, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetHost(addr)
	req.SetRequestURI("/metrics")
	if err := hc.Do(req, resp); err != nil {
		return nil, fmt.Errorf("cannot scrape /metrics: %w", err)
	}
	if resp.StatusCode() != 200 {
		return nil, fmt.Errorf("cannot scrape /metrics: status %d", resp.StatusCode())
	}
	return ParseMetrics(resp.Body())
}

// kindStats are one worker's counts for one request kind. The worker writes
// them; hist, requests and errors may be read concurrently (progress).
type kindStats struct {
	hist      histogram
	requests  atomic.Uint64
	errors    atomic.Uint64
	status    [600]uint64 // by HTTP status; read after the worker stopped
	transport [numTransport]uint64
}

// Transport error classes.
const (
	transportTimeout = iota
	transportClosed
	transportRefused
	transportOther
	numTransport
)

var transportNames = [numTransport]string{"timeout", "conn_closed", "conn_refused", "transport"}

func transportClass(err error) int {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return transportTimeout
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return transportClosed
	case strings.Contains(err.Error(), "connection refused"):
		return transportRefused
	}
	return transportOther
}

// phaseResult is what one run against one address measured.
type phaseResult struct {
	stats   [][numKinds]*kindStats // per worker
	elapsed time.Duration
	cpu     time.Duration // CPU time of this process during the run
	missed  uint64
}

// schedule interleaves the kinds of the mix in proportion to their weights
// (smooth weighted round robin), so that every stretch of a worker's traffic
// has the mix.
func schedule(mix map[string]int) []Kind {
	var w [numKinds]int
	g, total := 0, 0
	for name, x := range mix {
		k, _ := kindByName(name)
		w[k] = x
		g, total = gcd(g, x), total+x
	}
	n := total / g
	for k := range w {
		w[k] /= g
	}
	var cur [numKinds]int
	out := make([]Kind, 0, n)
	for range n {
		best := -1
		for k := range w {
			if w[k] == 0 {
				continue
			}
			cur[k] += w[k]
			if best < 0 || cur[k] > cur[best] {
				best = k
			}
		}
		cur[best] -= n
		out = append(out, Kind(best))
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type loadWorker struct {
	id    int
	hc    *fasthttp.HostClient
	pool  *requestPool
	reqs  [numKinds]*fasthttp.Request
	resp  *fasthttp.Response
	stats [numKinds]*kindStats
	next  [numKinds]int
	sched []Kind
	j     int
	// convSeq counts conversion and exposure requests over all workers: a
	// request's count gives its pool element (count mod pool size) and the
	// pass number patched into its ids (count / pool size), unique pairs.
	convSeq *atomic.Uint64
	nonce   uint32
}

func newLoadWorker(id, workers int, hc *fasthttp.HostClient, addr string, pool *requestPool, sched []Kind, convSeq *atomic.Uint64, nonce uint32) *loadWorker {
	w := &loadWorker{id: id, hc: hc, pool: pool, resp: &fasthttp.Response{}, sched: sched, convSeq: convSeq, nonce: nonce}
	w.j = id * len(sched) / workers
	used := [numKinds]bool{}
	for _, k := range sched {
		used[k] = true
	}
	for k := range numKinds {
		if !used[k] {
			continue
		}
		kp := &pool.kinds[k]
		w.reqs[k] = &fasthttp.Request{}
		prepareHeaders(w.reqs[k], addr, kp)
		if kp.fixedURI {
			w.reqs[k].SetRequestURIBytes(kp.reqs[0].uri)
		}
		w.stats[k] = &kindStats{}
		w.next[k] = id * len(kp.reqs) / workers
	}
	return w
}

// prepare sets the next pooled request of kind k into its request object.
func (w *loadWorker) prepare(k Kind) *fasthttp.Request {
	kp := &w.pool.kinds[k]
	req := w.reqs[k]
	const hexDigits = "0123456789abcdef"
	var pr *pooledRequest
	if k == KindConversions || k == KindExposures {
		n := w.convSeq.Add(1) - 1
		pr = &kp.reqs[n%uint64(len(kp.reqs))]
		if !kp.fixedURI {
			req.SetRequestURIBytes(pr.uri)
		}
		if len(pr.patch) > 0 {
			req.SetBody(pr.body)
			b := req.Body()
			pass := w.nonce + uint32(n/uint64(len(kp.reqs)))
			for _, off := range pr.patch {
				for i := 7; i >= 0; i-- {
					b[off+7-i] = hexDigits[(pass>>(4*uint(i)))&0xf]
				}
			}
			return req
		}
	} else {
		i := w.next[k]
		pr = &kp.reqs[i]
		if i++; i == len(kp.reqs) {
			i = 0
		}
		w.next[k] = i
		if !kp.fixedURI {
			req.SetRequestURIBytes(pr.uri)
		}
	}
	if !kp.get {
		req.SetBodyRaw(pr.body)
	}
	return req
}

// send does one request of kind k and records it, latency measured from
// `from`. It returns the time the answer arrived.
func (w *loadWorker) send(k Kind, from time.Time) time.Time {
	req := w.prepare(k)
	err := w.hc.Do(req, w.resp)
	end := time.Now()
	lat := end.Sub(from)
	st := w.stats[k]
	st.hist.record(lat)
	st.requests.Add(1)
	if err != nil {
		st.transport[transportClass(err)]++
		st.errors.Add(1)
		return end
	}
	code := w.resp.StatusCode()
	if code < 0 || code >= len(st.status) {
		code = 0
	}
	st.status[code]++
	if code/100 != 2 {
		st.errors.Add(1)
	}
	return end
}

// runClosed sends back to back; a request's latency runs from the end of the
// previous one (one clock read per request).
func (w *loadWorker) runClosed(stop *atomic.Bool, start time.Time, d time.Duration) {
	now := time.Now()
	for !stop.Load() && now.Sub(start) < d {
		k := w.sched[w.j]
		if w.j++; w.j == len(w.sched) {
			w.j = 0
		}
		now = w.send(k, now)
	}
}

// runOpen sends the requests whose intended times it claims from next. A
// request found behind schedule is measured from its intended time (so a
// stalled server is charged for every request it delayed); one the worker
// had to wait for is measured from when it was sent (the sleep's lateness is
// the generator's, not the server's).
func (w *loadWorker) runOpen(stop *atomic.Bool, next *atomic.Int64, start time.Time, d, hard time.Duration, rate int) {
	for !stop.Load() {
		i := next.Add(1) - 1
		off := time.Duration(i * int64(time.Second) / int64(rate))
		if off >= d {
			return
		}
		from := start.Add(off)
		if now := time.Since(start); off > now {
			time.Sleep(off - now)
			from = time.Now()
		} else if now > hard {
			return // hopelessly behind: the rest counts as missed
		}
		w.send(w.sched[int(i%int64(len(w.sched)))], from)
	}
}

// runPhase runs the load of opts against addr and returns what it measured.
func runPhase(ctx context.Context, hc *fasthttp.HostClient, addr string, pool *requestPool, opts Options) *phaseResult {
	sched := schedule(opts.Mix)
	var convSeq atomic.Uint64
	nonce := uint32(time.Now().UnixMilli())
	workers := make([]*loadWorker, opts.Concurrency)
	for i := range workers {
		workers[i] = newLoadWorker(i, len(workers), hc, addr, pool, sched, &convSeq, nonce)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()

	var wg sync.WaitGroup
	var next atomic.Int64
	cpu0 := processCPU()
	start := time.Now()
	hard := opts.Duration + min(opts.Duration, 5*time.Second)
	for _, w := range workers {
		if opts.Rate > 0 {
			wg.Go(func() { w.runOpen(&stop, &next, start, opts.Duration, hard, opts.Rate) })
		} else {
			wg.Go(func() { w.runClosed(&stop, start, opts.Duration) })
		}
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(opts.Out, workers, start, done)
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(done)
	<-progressDone

	res := &phaseResult{elapsed: elapsed, cpu: processCPU() - cpu0}
	var sent uint64
	for _, w := range workers {
		res.stats = append(res.stats, w.stats)
		for _, st := range w.stats {
			if st != nil {
				sent += st.requests.Load()
			}
		}
	}
	if opts.Rate > 0 {
		intended := uint64((opts.Duration.Nanoseconds()*int64(opts.Rate) + int64(time.Second) - 1) / int64(time.Second))
		if intended > sent {
			res.missed = intended - sent
		}
	}
	return res
}

// progress prints one line per second: rate over the last second, errors
// and p99 so far.
func progress(out io.Writer, workers []*loadWorker, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	lastT := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			var all histogram
			var n, errs uint64
			for _, w := range workers {
				for _, st := range w.stats {
					if st != nil {
						all.merge(&st.hist)
						n += st.requests.Load()
						errs += st.errors.Load()
					}
				}
			}
			rate := float64(n-last) / now.Sub(lastT).Seconds()
			last, lastT = n, now
			fmt.Fprintf(out, "%6.0fs  %9.0f req/s  %9d requests  %6d errors  p99 %s\n",
				now.Sub(start).Seconds(), rate, n, errs, fmtDuration(all.quantile(0.99)))
		}
	}
}

// sortedKinds returns the names of the kinds in the mix, in kind order.
func sortedKinds(mix map[string]int) []string {
	var names []string
	for name, w := range mix {
		if w > 0 {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, _ := kindByName(names[i])
		b, _ := kindByName(names[j])
		return a < b
	})
	return names
}
