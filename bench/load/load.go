package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
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
	// Timeout bounds each request (write and read): one taking longer
	// fails, one taking more than 3/4 of it may (the connection's deadline
	// is moved only every quarter Timeout). Default 5s.
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

	rep := newReport(opts, opts.Target)
	if opts.Mix["win"] > 0 || opts.Mix["vast"] > 0 {
		rep.PrimeErrors = prime(ctx, addr, pool, opts.Concurrency, opts.Timeout)
	}
	before, errBefore := scrapeMetrics(addr, opts.Timeout)
	fmt.Fprintf(opts.Out, "%s against %s\n", rep.describe(), opts.Target)
	res := runPhase(ctx, addr, pool, opts)
	rep.fill(res)
	after, errAfter := scrapeMetrics(addr, opts.Timeout)
	switch {
	case errBefore != nil:
		rep.Server = &ServerMetrics{Error: errBefore.Error()}
	case errAfter != nil:
		rep.Server = &ServerMetrics{Error: errAfter.Error()}
	default:
		rep.Server = summarizeServer(before, after)
	}

	if opts.Baseline && ctx.Err() == nil {
		u, stop, err := StartBareServer()
		if err != nil {
			return nil, fmt.Errorf("cannot start the baseline handler: %w", err)
		}
		baddr, _ := loopbackAddr(u)
		fmt.Fprintf(opts.Out, "baseline: same load against a bare fasthttp handler at %s\n", u)
		bres := runPhase(ctx, baddr, pool, opts)
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

// wireRequest is a pooled request as it goes on the wire: its head (request
// line and headers, Content-Length included) and its body, sent in one
// write.
type wireRequest struct {
	head  []byte
	body  []byte // the pool's body, shared and never written; nil for GET
	patch []int  // offsets in body the sender patches (see pooledRequest)
}

// appendHead appends the head of a request of kind kp to host with this
// path and query and a body of bodyLen bytes.
func appendHead(dst []byte, kp *kindPool, host string, uri []byte, bodyLen int) []byte {
	if kp.get {
		dst = append(dst, "GET "...)
	} else {
		dst = append(dst, "POST "...)
	}
	dst = append(dst, uri...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUser-Agent: cpafeed-bench\r\n"...)
	if kp.auth != nil {
		dst = append(dst, "Authorization: "...)
		dst = append(dst, kp.auth...)
		dst = append(dst, "\r\n"...)
	}
	if !kp.get {
		dst = append(dst, "Content-Type: application/json\r\n"...)
		if kp.encoding != "" {
			dst = append(dst, "Content-Encoding: "...)
			dst = append(dst, kp.encoding...)
			dst = append(dst, "\r\n"...)
		}
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(bodyLen), 10)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// renderRequests renders the requests reqs of kind kp for host, their
// heads packed in 64 KB blocks.
func renderRequests(kp *kindPool, host string, reqs []pooledRequest) []wireRequest {
	out := make([]wireRequest, len(reqs))
	var block []byte
	for i := range reqs {
		// A bound on the head's size (a head over it still renders: append
		// moves the block).
		size := 256 + len(reqs[i].uri) + len(host) + len(kp.auth) + len(kp.encoding)
		if cap(block)-len(block) < size {
			block = make([]byte, 0, max(64<<10, size))
		}
		at := len(block)
		block = appendHead(block, kp, host, reqs[i].uri, len(reqs[i].body))
		out[i] = wireRequest{head: block[at:len(block):len(block)], body: reqs[i].body, patch: reqs[i].patch}
	}
	return out
}

// prime posts the exposed bid requests to /v1/bids so that win notices and
// VAST events can find their auctions; it returns the number of failures.
func prime(ctx context.Context, addr string, pool *requestPool, conc int, timeout time.Duration) int {
	var failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	reqs := renderRequests(&pool.kinds[KindBids], addr, pool.prime)
	for range min(conc, 8) {
		wg.Go(func() {
			c := newHTTPConn(addr, timeout)
			defer c.close()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				if code, err := c.do(reqs[i].head, reqs[i].body, time.Now()); err != nil || code/100 != 2 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// scrapeMetrics reads and parses GET /metrics.
func scrapeMetrics(addr string, timeout time.Duration) ([]MetricSample, error) {
	c := newHTTPConn(addr, timeout)
	defer c.close()
	head := appendHead(nil, &kindPool{get: true}, addr, []byte("/metrics"), 0)
	code, err := c.do(head, nil, time.Now())
	if err != nil {
		return nil, fmt.Errorf("cannot scrape /metrics: %w", err)
	}
	if code != 200 {
		return nil, fmt.Errorf("cannot scrape /metrics: status %d", code)
	}
	return ParseMetrics(c.respBody())
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
	conn  *httpConn
	reqs  [numKinds][]wireRequest // rendered for this phase's address, shared
	stats [numKinds]*kindStats
	next  [numKinds]int
	sched []Kind
	j     int
	// convSeq counts conversion and exposure requests over all workers: a
	// request's count gives its pool element (count mod pool size) and the
	// pass number patched into its ids (count / pool size), unique pairs.
	convSeq *atomic.Uint64
	nonce   uint32
	patched []byte    // this worker's copy of a body it patches
	last    time.Time // when the previous answer arrived
}

func newLoadWorker(id, workers int, conn *httpConn, reqs *[numKinds][]wireRequest, sched []Kind, convSeq *atomic.Uint64, nonce uint32) *loadWorker {
	w := &loadWorker{id: id, conn: conn, reqs: *reqs, sched: sched, convSeq: convSeq, nonce: nonce}
	w.j = id * len(sched) / workers
	for _, k := range sched {
		if w.stats[k] == nil {
			w.stats[k] = &kindStats{}
			w.next[k] = id * len(w.reqs[k]) / workers
		}
	}
	return w
}

// renderPhase renders the requests of the kinds in sched for addr.
func renderPhase(pool *requestPool, addr string, sched []Kind) *[numKinds][]wireRequest {
	var reqs [numKinds][]wireRequest
	for _, k := range sched {
		if reqs[k] == nil {
			reqs[k] = renderRequests(&pool.kinds[k], addr, pool.kinds[k].reqs)
		}
	}
	return &reqs
}

// prepare picks the next request of kind k: its head and body.
func (w *loadWorker) prepare(k Kind) (head, body []byte) {
	reqs := w.reqs[k]
	if k == KindConversions || k == KindExposures {
		n := w.convSeq.Add(1) - 1
		r := &reqs[n%uint64(len(reqs))]
		if len(r.patch) == 0 {
			return r.head, r.body
		}
		const hexDigits = "0123456789abcdef"
		b := append(w.patched[:0], r.body...)
		w.patched = b
		pass := w.nonce + uint32(n/uint64(len(reqs)))
		for _, off := range r.patch {
			for i := 7; i >= 0; i-- {
				b[off+7-i] = hexDigits[(pass>>(4*uint(i)))&0xf]
			}
		}
		return r.head, b
	}
	i := w.next[k]
	r := &reqs[i]
	if i++; i == len(reqs) {
		i = 0
	}
	w.next[k] = i
	return r.head, r.body
}

// send does one request of kind k and records it, latency measured from
// `from` (monotonic clock). It returns the time the answer arrived.
func (w *loadWorker) send(k Kind, from time.Time) time.Time {
	head, body := w.prepare(k)
	now := from // a reading of the clock not later than now, for the deadline
	if w.last.After(now) {
		now = w.last
	}
	code, err := w.conn.do(head, body, now)
	end := time.Now()
	w.last = end
	st := w.stats[k]
	st.hist.record(end.Sub(from))
	st.requests.Add(1)
	if err != nil {
		st.transport[transportClass(err)]++
		st.errors.Add(1)
		return end
	}
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
func runPhase(ctx context.Context, addr string, pool *requestPool, opts Options) *phaseResult {
	sched := schedule(opts.Mix)
	reqs := renderPhase(pool, addr, sched)
	var convSeq atomic.Uint64
	nonce := uint32(time.Now().UnixMilli())
	workers := make([]*loadWorker, opts.Concurrency)
	for i := range workers {
		workers[i] = newLoadWorker(i, len(workers), newHTTPConn(addr, opts.Timeout), reqs, sched, &convSeq, nonce)
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
		w.conn.close()
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

// SampleRequest returns the first request of kind (a name of the mix) that
// a run against target would send, as it goes on the wire (head and body):
// for a tool that must send the same bytes (wrkcheck's wrk script).
func SampleRequest(target, kind string, sc market.Scenario, seed uint64, po PoolOptions) ([]byte, error) {
	k, ok := kindByName(kind)
	if !ok {
		return nil, fmt.Errorf("unknown kind %q (want one of %s)", kind, strings.Join(kindNames[:], ", "))
	}
	addr, err := loopbackAddr(target)
	if err != nil {
		return nil, err
	}
	if len(sc.Campaigns) == 0 {
		sc = market.DefaultScenario()
	}
	pool, err := buildPool(sc, seed, po)
	if err != nil {
		return nil, err
	}
	r := renderRequests(&pool.kinds[k], addr, pool.kinds[k].reqs[:1])[0]
	return append(append([]byte(nil), r.head...), r.body...), nil
}
