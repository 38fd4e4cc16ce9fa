// Command cpafeed is the one binary of cpafeed: `cpafeed serve` runs the
// service, `cpafeed version` prints its version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/cpafeed/cpafeed/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `cpafeed — conversion feedback for CTV bidders

Usage:
  cpafeed serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--repair]
  cpafeed bench [--target URL | --spawn] [--scenario FILE] [--mix score=90,exposures=9,conversions=1]
                [--duration 30s] [--rate N | --concurrency C] [--baseline] [--json FILE]
  cpafeed simulate [--scenario FILE] [--seed N] [--days D] [--out report.html] [--json FILE]
  cpafeed simulate --scenario A.yaml,B.yaml --seeds 1-4 [--jobs N] [--days D] [--json FILE]
  cpafeed version

Run "cpafeed <command> -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "simulate":
		return simulateCmd(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "cpafeed %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cpafeed: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", server.DefaultConfigPath, "config file (the embedded default when the file does not exist)")
	listen := fs.String("listen", "", "HOST:PORT to listen on (overrides the config)")
	data := fs.String("data", "", "data directory (overrides the config)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for performance work)")
	repair := fs.Bool("repair", false, "start even when a journal record in the middle is corrupt: keep every intact record and report what was dropped")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := server.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "cpafeed: %s: %v\n", *configPath, err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *data != "" {
		cfg.DataDir = *data
	}
	if *repair {
		cfg.Journal.Repair = true
	}
	cfg = cfg.WithDefaults() // settings derived from the overridden ones
	if errs := cfg.Validate(); len(errs) > 0 {
		fmt.Fprintf(stderr, "cpafeed: %v\n", errors.Join(errs...))
		return 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "cpafeed: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "cpafeed: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	logger := server.NewLogger(cfg.Log, stderr)
	logger.Info("cpafeed starting", "version", version, "config", *configPath)
	server.RegisterBuildInfo(version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, logger); err != nil {
		logger.Error("cpafeed failed", "err", err.Error())
		return 1
	}
	return 0
}
