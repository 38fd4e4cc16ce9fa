package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/cpafeed/cpafeed/bench/load"
	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/server"
)

// benchCmd is `cpafeed bench`: load against a running server (--target) or
// one started in this process (--spawn), optionally beside a bare handler
// (--baseline).
func benchCmd(args []string, stdout, stderr io.Writer) int {
	c := newCommand("bench", "cpafeed bench (--target URL | --spawn) [flags]", `
Sends load to a cpafeed on loopback (--target) or to one started in this
process with a scratch data directory (--spawn), from request bodies generated
from a scenario, and reports throughput, latency and the server's own figures;
--baseline runs the same load against a bare fasthttp handler and prints the
ratio.`, stderr)
	fs := c.fs
	target := fs.String("target", "", "base URL of a running cpafeed on loopback, e.g. http://127.0.0.1:8080")
	spawn := fs.Bool("spawn", false, "start a cpafeed in this process on a free loopback port with a scratch data dir")
	configPath := fs.String("config", server.DefaultConfigPath, "config of the spawned server")
	scenarioPath := fs.String("scenario", "configs/scenarios/default.yaml", "scenario file the request bodies are generated from")
	seed := fs.Uint64("seed", 1, "generator seed")
	mix := fs.String("mix", load.DefaultMix, "request kinds and weights: score (POST), score_get (GET with features), exposures, conversions, win, vast, bids")
	duration := fs.Duration("duration", 30*time.Second, "length of the run (and of the baseline run)")
	rate := fs.Int("rate", 0, "open loop at N requests/s (latency corrected for coordinated omission); 0 = closed loop")
	concurrency := fs.Int("concurrency", 16, "connections (closed loop: workers)")
	baseline := fs.Bool("baseline", false, "also run the same load against a bare fasthttp handler and print the ratio")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	exposed := fs.Int("exposed", 0, "bid requests that get exposures, win notices, VAST events and conversions in the request pool (default 256)")
	perBatch := fs.Int("exposures-per-batch", 0, "exposures per POST /v1/exposures (default 10)")
	form := fs.String("exposure-form", load.FormRequest, "what each exposure carries: request (its whole bid request) or features (extracted features, ids and privacy)")
	requests := fs.Int("requests", 0, "distinct bid requests in the pool (default 1024; raised to --exposed)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (with --spawn: server and load generator) to this file")
	if done, code := c.parse(args, stdout, stderr); done {
		return code
	}
	if (*target == "") == !*spawn {
		fmt.Fprintln(stderr, "cpafeed bench: give --target URL or --spawn")
		return 2
	}
	sc, err := market.LoadScenario(*scenarioPath)
	if err != nil {
		fmt.Fprintf(stderr, "cpafeed bench: %v\n", err)
		return 1
	}
	m, err := load.ParseMix(*mix)
	if err != nil {
		fmt.Fprintf(stderr, "cpafeed bench: --mix: %v\n", err)
		return 2
	}
	opts := load.Options{
		Target: *target, Mix: m, Duration: *duration, Rate: *rate, Concurrency: *concurrency,
		Baseline: *baseline, JSONPath: *jsonPath, Scenario: sc, Seed: *seed, Out: stdout,
		Pool: load.PoolOptions{Requests: max(*requests, *exposed), Exposed: *exposed, ExposuresPerBatch: *perBatch, ExposureForm: *form},
	}
	if *spawn {
		cfg, err := server.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed bench: %s: %v\n", *configPath, err)
			return 1
		}
		opts.Spawn = func() (string, func() error, error) {
			dir, err := os.MkdirTemp("", "cpafeed-bench-")
			if err != nil {
				return "", nil, err
			}
			cfg.DataDir = dir
			cfg = cfg.WithDefaults()
			logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			url, stop, err := server.Spawn(cfg, logger)
			if err != nil {
				os.RemoveAll(dir)
				return "", nil, err
			}
			return url, func() error { err := stop(); os.RemoveAll(dir); return err }, nil
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cpafeed bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if _, err := load.Run(ctx, opts); err != nil {
		fmt.Fprintf(stderr, "cpafeed bench: %v\n", err)
		return 1
	}
	return 0
}
