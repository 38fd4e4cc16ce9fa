// Command cpafeed is the one binary of cpafeed: `cpafeed serve` runs the
// service, `cpafeed bench` loads one, `cpafeed simulate` plays bidding
// strategies on a synthetic market, `cpafeed config check` validates a
// config and prints the effective one with secrets masked, `cpafeed
// version` prints its version, and `cpafeed help [COMMAND]` the usage.
// Every command answers -h and --help with its usage (exit 0).
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
	"strings"
	"syscall"

	"github.com/cpafeed/cpafeed/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `cpafeed — conversion feedback for CTV bidders

Usage:
  cpafeed serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--repair] [--drain-delay D]
  cpafeed bench [--target URL | --spawn] [--scenario FILE] [--mix score=90,exposures=9,conversions=1]
                [--duration 30s] [--rate N | --concurrency C] [--baseline] [--json FILE]
  cpafeed simulate [--scenario FILE] [--seed N] [--days D] [--out report.html] [--json FILE]
  cpafeed simulate --scenario A.yaml,B.yaml --seeds 1-4 [--jobs N] [--days D] [--json FILE]
  cpafeed config check FILE
  cpafeed version

Run "cpafeed <command> -h" (or "cpafeed help <command>") for the flags of a command.
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
		return serve(args[1:], stdout, stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "simulate":
		return simulateCmd(args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprint(stdout, "Usage: cpafeed version\n\nPrints the version of cpafeed, the Go version it was built with, and the platform.\n")
			return 0
		}
		fmt.Fprintf(stdout, "cpafeed %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" { // cpafeed help serve
			return run(append(args[1:len(args):len(args)], "-h"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cpafeed: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// command is the flag set of one command with its usage: what -h prints.
type command struct {
	fs       *flag.FlagSet
	synopsis string // "cpafeed serve [flags]"
	about    string // what it does, a paragraph or two
	env      bool   // every flag also comes from CPAFEED_<NAME>
}

func newCommand(name, synopsis, about string, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed by parse: to stdout for -h, stderr on a mistake
	return &command{fs: fs, synopsis: synopsis, about: about}
}

// parse parses args. done says the command must return code at once: 0
// after -h/--help (usage on stdout), 2 after a mistake (the flag package's
// message and the usage on stderr).
func (c *command) parse(args []string, stdout, stderr io.Writer) (done bool, code int) {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.printUsage(stdout)
		return true, 0
	}
	if err != nil {
		c.printUsage(stderr)
		return true, 2
	}
	if c.env {
		if err := flagsFromEnv(c.fs, os.LookupEnv); err != nil {
			fmt.Fprintf(stderr, "cpafeed %s: %v\n", c.fs.Name(), err)
			return true, 2
		}
	}
	return false, 0
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.synopsis, strings.TrimSpace(c.about))
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	if c.env {
		fmt.Fprint(w, "\nFlags (each may also be given as the environment variable in brackets; a flag on the command line wins):\n")
	} else {
		fmt.Fprint(w, "\nFlags:\n")
	}
	c.fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		if c.env {
			fmt.Fprintf(w, "  [%s]", envName(f.Name))
		}
		fmt.Fprintf(w, "\n      %s", help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// envName is the environment variable of a flag: CPAFEED_ and its name in
// capitals, dashes as underscores (--drain-delay: CPAFEED_DRAIN_DELAY).
func envName(flagName string) string {
	return "CPAFEED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagsFromEnv sets every flag not given on the command line from its
// environment variable, when that is set and not empty. Every bad value is
// reported, by variable.
func flagsFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		if v, ok := lookup(name); ok && v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func serve(args []string, stdout, stderr io.Writer) int {
	c := newCommand("serve", "cpafeed serve [flags]", `
Runs the service: recovers the state from the data directory (/readyz answers
503 "recovering" meanwhile), then serves HTTP. On SIGTERM or SIGINT, /readyz
answers 503 "draining" for http.drain_delay (default 5s; a second signal cuts
it short) while requests are still served, then the listener closes, requests
in flight finish, a snapshot is taken and the process exits 0.`, stderr)
	c.env = true
	fs := c.fs
	configPath := fs.String("config", server.DefaultConfigPath, "config `FILE` (the embedded default when the default file does not exist)")
	listen := fs.String("listen", "", "`HOST:PORT` to listen on (overrides listen in the config)")
	data := fs.String("data", "", "`DIR` of the journal and snapshots (overrides data_dir in the config)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE` (for performance work)")
	repair := fs.Bool("repair", false, "start even when a journal record in the middle is corrupt: keep every intact record and report what was dropped")
	drainDelay := fs.Duration("drain-delay", 0, "after a shutdown signal, /readyz answers 503 \"draining\" for `DURATION` before the listener closes (overrides http.drain_delay, default 5s; 0s: none)")
	if done, code := c.parse(args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cpafeed serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	drainSet := false // on the command line or in the environment
	fs.Visit(func(f *flag.Flag) { drainSet = drainSet || f.Name == "drain-delay" })
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
	if drainSet {
		cfg.HTTP.DrainDelay = drainDelay
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

	// The first SIGTERM or SIGINT starts the drain, the second cuts it
	// short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hurry := make(chan struct{})
	go func() {
		<-sigs
		stop()
		<-sigs
		close(hurry)
	}()
	if err := server.Run(ctx, cfg, logger, hurry); err != nil {
		logger.Error("cpafeed failed", "err", err.Error())
		return 1
	}
	return 0
}

// configCmd is `cpafeed config check FILE`.
func configCmd(args []string, stdout, stderr io.Writer) int {
	c := newCommand("config check", "cpafeed config check FILE", `
Validates the config FILE as "cpafeed serve --config FILE" would (environment
variables expanded, defaults filled), and reports every problem at once
(exit 1), including what serve refuses at start (development credentials on an
address other than loopback). A valid config is printed as it takes effect,
every default filled in, with its secrets (tokens, identity.secret,
win_secret) shown as "`+server.Masked+`"; exit 0. The open-file limit, and so
the default of http.max_conns, is this process's.`, stderr)
	if len(args) == 0 || isHelp(args[0]) {
		w, code := stdout, 0
		if len(args) == 0 {
			w, code = stderr, 2
		}
		fmt.Fprint(w, "Usage: cpafeed config check FILE\n\nCommands:\n  check   validate a config and print the effective one (cpafeed config check -h)\n")
		return code
	}
	if args[0] != "check" {
		fmt.Fprintf(stderr, "cpafeed config: unknown command %q (want check)\n", args[0])
		return 2
	}
	if done, code := c.parse(args[1:], stdout, stderr); done {
		return code
	}
	if c.fs.NArg() != 1 {
		fmt.Fprintln(stderr, "cpafeed config check: give one config FILE")
		c.printUsage(stderr)
		return 2
	}
	path := c.fs.Arg(0)
	cfg, errs := server.CheckConfig(path)
	if len(errs) > 0 {
		for _, err := range errs {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				fmt.Fprintf(stderr, "%s: %s\n", path, line)
			}
		}
		if n := countLines(errs); n == 1 {
			fmt.Fprintf(stderr, "%s: 1 problem\n", path)
		} else {
			fmt.Fprintf(stderr, "%s: %d problems\n", path, n)
		}
		return 1
	}
	out, err := cfg.YAML(true)
	if err != nil {
		fmt.Fprintf(stderr, "cpafeed config check: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# %s: valid; the effective config, defaults filled, secrets masked\n", path)
	stdout.Write(out)
	return 0
}

// countLines counts the problems in errs (one a line: a joined error holds
// several).
func countLines(errs []error) int {
	n := 0
	for _, err := range errs {
		n += strings.Count(err.Error(), "\n") + 1
	}
	return n
}
