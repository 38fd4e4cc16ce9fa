// Command wrkcheck is the helper of bench/load/wrkcheck.sh, which checks that the
// load generator of package bench/load is not the bottleneck: it serves the bare
// baseline handler in its own process, runs the load generator against a URL,
// and prints the request wrk should send.
//
//	wrkcheck serve [-for 10m] [-work 4us -size 1265]
//	                                          print the URL, serve until killed or -for
//	                                          (-work/-size: load.BudgetHandler instead of the bare one)
//	wrkcheck load -target URL -c 16 -d 10s -mix win=1
//	wrkcheck request -kind score|win          print a score body or a win URL
//	wrkcheck compare -cpafeed bin/cpafeed [-c 16,64 -d 5s -rounds 3 -server -get]
//	                                          CPU per request of `cpafeed bench` vs wrk (see compare)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cpafeed/cpafeed/bench/load"
	"github.com/cpafeed/cpafeed/bench/market"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wrkcheck serve|load|request [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var err error
	switch os.Args[1] {
	case "serve":
		d := fs.Duration("for", 10*time.Minute, "serve at most this long")
		work := fs.Duration("work", 0, "CPU work per request (load.BudgetHandler)")
		size := fs.Int("size", 0, "answer size in bytes (load.BudgetHandler; 0: the bare handler's 200-byte answer)")
		fs.Parse(os.Args[2:])
		err = serve(*d, *work, *size)
	case "load":
		target := fs.String("target", "", "base URL of the server (loopback)")
		c := fs.Int("c", 16, "connections")
		d := fs.Duration("d", 10*time.Second, "duration")
		mix := fs.String("mix", "win=1", "request mix")
		seed := fs.Uint64("seed", 1, "scenario seed")
		prof := fs.String("cpuprofile", "", "write a CPU profile of the generator to this file")
		fs.Parse(os.Args[2:])
		err = runLoad(*target, *c, *d, *mix, *seed, *prof)
	case "compare":
		var o compareOpts
		fs.StringVar(&o.cpafeed, "cpafeed", "", "the cpafeed binary (the generator, `cpafeed bench`, and with -server a target)")
		conns := fs.String("c", "16,64", "connection counts, comma-separated")
		fs.DurationVar(&o.d, "d", 5*time.Second, "length of each run")
		fs.IntVar(&o.rounds, "rounds", 3, "alternating rounds")
		fs.IntVar(&o.threads, "threads", 2, "wrk threads")
		fs.IntVar(&o.requests, "requests", 1, "distinct requests in the generator's pool (1: the bytes wrk sends)")
		fs.BoolVar(&o.server, "server", true, "also load `cpafeed serve` (POST /v1/score)")
		fs.BoolVar(&o.get, "get", false, "also GET /v1/win against the bare handler")
		fs.Float64Var(&o.limit, "limit", 1.3, "fail when the median CPU per request of the generator is over this multiple of wrk's")
		fs.Parse(os.Args[2:])
		for _, c := range strings.Split(*conns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			if err != nil || n < 1 || n > 4096 {
				fmt.Fprintf(os.Stderr, "wrkcheck: -c: %q is not a connection count\n", c)
				os.Exit(2)
			}
			o.conns = append(o.conns, n)
		}
		if o.rounds < 1 || o.d <= 0 || o.d > 10*time.Minute {
			fmt.Fprintln(os.Stderr, "wrkcheck: -rounds must be ≥ 1 and -d within 0..10m")
			os.Exit(2)
		}
		err = compare(o)
	case "request":
		kind := fs.String("kind", "score", "score (print a bid request body) or win (print a win notice path)")
		fs.Parse(os.Args[2:])
		err = request(*kind)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wrkcheck:", err)
		os.Exit(1)
	}
}

func serve(d, work time.Duration, size int) error {
	h := load.BareHandler
	if work > 0 || size > 0 {
		h = load.BudgetHandler(work, size)
	}
	u, stop, err := load.StartServer(h)
	if err != nil {
		return err
	}
	fmt.Println(u)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return stop()
}

func runLoad(target string, c int, d time.Duration, mixs string, seed uint64, prof string) error {
	mix, err := load.ParseMix(mixs)
	if err != nil {
		return err
	}
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := load.Run(context.Background(), load.Options{
		Target: target, Mix: mix, Duration: d, Concurrency: c, Seed: seed, Out: os.Stderr,
	})
	if err != nil {
		return err
	}
	var errs uint64
	for _, n := range rep.Total.Errors {
		errs += n
	}
	fmt.Printf("rate=%.0f requests=%d errors=%d p99_ms=%.3f cpu_us_per_request=%.2f\n", rep.Total.Throughput, rep.Total.Requests, errs,
		rep.Total.Latency.P99, rep.ClientCPUSeconds*1e6/float64(max(rep.Total.Requests, 1)))
	return nil
}

func request(kind string) error {
	m, err := market.NewMarket(market.DefaultScenario(), 1)
	if err != nil {
		return err
	}
	o := m.Day(0).Next()
	switch kind {
	case "score":
		os.Stdout.Write(m.AppendBidRequest(nil, o))
	case "win":
		os.Stdout.Write(m.AppendWinURL(nil, o, 0, 0, 0, o.Slots[0].CompetingCPM))
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	return nil
}

// compareOpts configures `wrkcheck compare`.
type compareOpts struct {
	cpafeed  string        // the cpafeed binary: the generator (`cpafeed bench`) and, with server, a target
	conns    []int         // connection counts, each run by both tools
	d        time.Duration // length of each run
	rounds   int
	threads  int  // wrk threads
	requests int  // distinct requests in the generator's pool (1: the bytes wrk sends)
	server   bool // also load `cpafeed serve`
	get      bool // also GET /v1/win against the bare handler
	limit    float64
}
