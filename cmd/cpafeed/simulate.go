package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/bench/simulate"
	"github.com/cpafeed/cpafeed/server"
)

// memoryPerJob is the soft memory limit per simultaneous run (bytes).
const memoryPerJob = 900 << 20

// simulateCmd is `cpafeed simulate`: the strategies played on the same
// synthetic market, each through its own in-process cpafeed; with several
// scenarios or --seeds, every (scenario, seed) pair, in one table.
func simulateCmd(args []string, stdout, stderr io.Writer) int {
	c := newCommand("simulate", "cpafeed simulate [flags]", `
Plays the bidding strategies (flat, vtr, cpa_raw, cpafeed, oracle) on the same
synthetic market, each through its own in-process cpafeed, and prints a table
of their results (--out: an HTML report, --json: the figures). Several
scenarios (comma-separated) or --seeds make a matrix of every (scenario, seed)
pair in one table.`, stderr)
	fs := c.fs
	scenarioPath := fs.String("scenario", "configs/scenarios/default.yaml", "scenario file of the market; several, comma-separated, make a matrix")
	seed := fs.Uint64("seed", 1, "market seed")
	seeds := fs.String("seeds", "", "seeds of a matrix: numbers and ranges, e.g. 1-4 or 1,3,7 (instead of --seed)")
	jobs := fs.Int("jobs", 1, "matrix runs played at once (results do not depend on it; each full-size run needs up to 1 GB: the process sets a soft memory limit of 900 MiB per job unless GOMEMLIMIT is set)")
	days := fs.Int("days", 14, "simulated days")
	out := fs.String("out", "", "write the HTML report (self-contained, inline SVG) to this file")
	jsonPath := fs.String("json", "", "write the results as JSON to this file")
	configPath := fs.String("config", "", "cpafeed config the simulated instances run (default: the embedded one); its tenants and campaigns are replaced by the scenario's")
	strategies := fs.String("strategies", "", "comma-separated subset of flat,vtr,cpa_raw,cpafeed,oracle (the oracle is always played)")
	quiet := fs.Bool("quiet", false, "no progress line per day")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	holdout := fs.Float64("holdout", -1, "share of households every campaign holds out (0 = none, at most 0.5); default: the config's holdout.share (0.05)")
	credit := fs.String("credit", "", "credit of the campaigns: last_touch, linear or probabilistic; default: the config's attribution.credit")
	explore := fs.String("explore", "", "how the cpafeed strategy explores: empty (bid on the posterior mean) or thompson (bid on a posterior draw for the campaign's explore share of imps, as explore=thompson offers bidders)")
	cpaControl := fs.Bool("cpa-control", false, "play cpa_raw, cpafeed and the oracle through cpafeed's closed loop: the CPA controller on for every campaign, first-price shading, the budget pacer capped at 1 (README \"Keeping the target CPA\")")
	noShading := fs.Bool("no-shading", false, "with --cpa-control: turn first-price shading off for every campaign")
	controlCount := fs.String("control-count", "", "with --cpa-control: what the controller counts: attributed (default) or incremental (credited conversions × the share the holdout measures as caused)")
	if done, code := c.parse(args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cpafeed simulate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	var seedList []uint64
	if *seeds != "" {
		if seedSet {
			fmt.Fprintln(stderr, "cpafeed simulate: give --seed or --seeds, not both")
			return 2
		}
		var err error
		if seedList, err = simulate.ParseSeeds(*seeds); err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: --seeds: %v\n", err)
			return 2
		}
	}
	if *jobs < 1 {
		fmt.Fprintf(stderr, "cpafeed simulate: --jobs %d: want 1 or more\n", *jobs)
		return 2
	}
	var scs []market.Scenario
	for _, path := range strings.Split(*scenarioPath, ",") {
		sc, err := market.LoadScenario(strings.TrimSpace(path))
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
			return 1
		}
		scs = append(scs, sc)
	}
	matrix := len(scs) > 1 || seedList != nil
	if matrix && *out != "" {
		fmt.Fprintln(stderr, "cpafeed simulate: --out writes the page of one run: give one scenario and --seed")
		return 2
	}
	if *explore != "" && *explore != simulate.ExploreThompson {
		fmt.Fprintf(stderr, "cpafeed simulate: --explore %q: want thompson or nothing\n", *explore)
		return 2
	}
	// A run's live heap reaches about 460 MB (14 default days, two
	// strategies in memory at once, simulate.Options.Group); the default
	// GOGC would let the heap grow to twice that before collecting. A soft
	// limit keeps each run under 1 GB of RSS at a few percent more GC.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(*jobs) * memoryPerJob)
	}
	opts := simulate.Options{Scenario: scs[0], Seed: *seed, Days: *days, Explore: *explore, Credit: *credit, CPAControl: *cpaControl, NoShading: *noShading, ControlCount: *controlCount}
	if *holdout >= 0 {
		opts.Holdout = holdout
	}
	if !*quiet {
		opts.Progress = stderr
	}
	if *strategies != "" {
		opts.Strategies = strings.Split(*strategies, ",")
	}
	if *configPath != "" {
		cfg, err := server.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %s: %v\n", *configPath, err)
			return 1
		}
		opts.Config = &cfg
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	write := func(path string, fn func(io.Writer) error) bool {
		f, err := os.Create(path)
		if err == nil {
			err = fn(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %s: %v\n", path, err)
			return false
		}
		return true
	}
	if matrix {
		mo := simulate.MatrixOptions{Scenarios: scs, Seeds: seedList, Jobs: *jobs, Base: opts}
		if seedList == nil {
			mo.Seeds = []uint64{*seed}
		}
		if !*quiet {
			mo.Progress = stderr
		}
		res, err := simulate.RunMatrix(mo)
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
			return 1
		}
		if err := res.WriteTable(stdout); err != nil {
			fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
			return 1
		}
		if *jsonPath != "" && !write(*jsonPath, res.WriteJSON) {
			return 1
		}
		return 0
	}
	res, err := simulate.Run(opts)
	if err != nil {
		fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
		return 1
	}
	if err := res.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "cpafeed simulate: %v\n", err)
		return 1
	}
	if *jsonPath != "" && !write(*jsonPath, res.WriteJSON) {
		return 1
	}
	if *out != "" && !write(*out, res.WriteHTML) {
		return 1
	}
	return 0
}
