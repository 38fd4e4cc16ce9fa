#!/usr/bin/env bash
# wrkcheck.sh — is cpafeed's load generator as lean as wrk?
#
# Serves the bare baseline handler (fixed 200-byte JSON) in its own process
# and a `cpafeed serve` (embedded default config, scratch data dir) in
# another, then loads each with wrk and with `cpafeed bench`, in alternating
# order, the same connections and duration, the same request bytes (the
# generator's first POST /v1/score request, which wrk sends from a Lua
# script; `cpafeed bench --requests 1` sends it every time), optionally also
# GET /v1/win against the bare handler. For each run it measures the CPU time
# (user + system) of each client process during its load — wrk's from its
# rusage, the generator's from /proc/PID/stat when it starts loading to its
# rusage at exit, so its start-up (generating requests) is left out — and
# prints, per target and connection count, both rates, both CPU per request
# and the ratio generator/wrk of the CPU per request (median and range over
# the rounds), then the ratio of cpafeed's rate to the bare handler's as
# each tool sees it. It fails when a median CPU ratio is over LIMIT.
#
#   bench/load/wrkcheck.sh                  # C=16,64 D=5s ROUNDS=3 THREADS=2 GET=0 LIMIT=1.3
#   C=16 D=10s ROUNDS=5 GET=1 bench/load/wrkcheck.sh
#
# All traffic goes to 127.0.0.1; each run is bounded by D. Skips (exit 0)
# when wrk is not installed (Debian: apt-get install wrk).
set -euo pipefail

C=${C:-16,64}        # connection counts, for both tools
D=${D:-5s}           # duration of each run
ROUNDS=${ROUNDS:-3}  # alternating rounds
THREADS=${THREADS:-2} # wrk threads (the generator uses GOMAXPROCS = all cores)
GET=${GET:-0}        # 1: also GET /v1/win against the bare handler
LIMIT=${LIMIT:-1.3}  # largest median CPU per request of the generator, in multiples of wrk's

if ! command -v wrk >/dev/null 2>&1; then
	echo "wrkcheck: wrk is not installed (apt-get install wrk); skipped"
	exit 0
fi
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/wrkcheck" ./bench/load/internal/wrkcheck
go build -o "$tmp/cpafeed" ./cmd/cpafeed
get=false
[ "$GET" = 1 ] && get=true
"$tmp/wrkcheck" compare -cpafeed "$tmp/cpafeed" -c "$C" -d "$D" -rounds "$ROUNDS" -threads "$THREADS" -get="$get" -limit "$LIMIT"
