#!/usr/bin/env bash
# wrkcheck.sh — is cpafeed's load generator the bottleneck?
#
# Serves the bare baseline handler (fixed 200-byte JSON) in its own process,
# then alternately loads it with wrk and with the load generator of package
# bench/load (`cpafeed bench`'s engine), same connections, same duration, for two
# request shapes:
#   get   GET  /v1/win?auction=...      (a win notice: tiny request)
#   post  POST /v1/score?campaigns=...  (a ~2.5 KB OpenRTB bid request)
# and prints each rate, each tool's CPU time per request, and the ratio of
# the rates generator/wrk. The generator passes when the median ratio of
# every shape is at least 0.90. Both tools share the machine's cores with
# the handler (and with anything else running): the CPU per request says how
# much each leaves to the server.
#
#   bench/load/wrkcheck.sh                     # C=16 D=10s ROUNDS=5 THREADS=2
#   C=64 D=5s ROUNDS=5 bench/load/wrkcheck.sh
#
# All traffic goes to 127.0.0.1. Skips (exit 0) when wrk is not installed
# (Debian: apt-get install wrk).
set -euo pipefail

C=${C:-16}             # connections, for both tools
D=${D:-10s}            # duration of each run, in seconds ("10s")
ROUNDS=${ROUNDS:-5}    # alternating rounds per shape
THREADS=${THREADS:-2}  # wrk threads (the generator uses GOMAXPROCS = all cores)

if ! command -v wrk >/dev/null 2>&1; then
	echo "wrkcheck: wrk is not installed (apt-get install wrk); skipped"
	exit 0
fi
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
srv_pid=""
cleanup() {
	if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/wrkcheck" ./bench/load/internal/wrkcheck
"$tmp/wrkcheck" serve -for 30m >"$tmp/url" &
srv_pid=$!
for _ in $(seq 50); do [ -s "$tmp/url" ] && break; sleep 0.1; done
url=$(head -1 "$tmp/url")
case "$url" in http://127.0.0.1:*) ;; *) echo "wrkcheck: bare server did not start"; exit 1 ;; esac

"$tmp/wrkcheck" request -kind score >"$tmp/score.json"
win=$("$tmp/wrkcheck" request -kind win)
cat >"$tmp/post.lua" <<EOF
wrk.method = "POST"
wrk.path = "/v1/score?campaigns=demo-ctv-purchase,demo-ctv-signup"
local f = io.open("$tmp/score.json", "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer dev-bidder-token"
EOF

echo "wrkcheck: bare handler at $url (pid $srv_pid), $C connections, $D per run, $ROUNDS rounds, wrk -t$THREADS, $(nproc) cores"
secs=$(awk -v d="$D" 'BEGIN {sub(/s$/, "", d); print d + 0}')
timer=""
[ -x /usr/bin/time ] && timer="/usr/bin/time -f %U+%S -o $tmp/cpu"

# run_wrk SHAPE prints "RATE CPU_US_PER_REQUEST" (CPU "?" without GNU time).
run_wrk() {
	local out rate cpu="?"
	if [ "$1" = get ]; then
		out=$($timer wrk -t"$THREADS" -c"$C" -d"$D" "$url$win")
	else
		out=$($timer wrk -t"$THREADS" -c"$C" -d"$D" -s "$tmp/post.lua" "$url")
	fi
	rate=$(echo "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')
	if [ -n "$timer" ]; then
		cpu=$(awk -F+ -v r="$rate" -v s="$secs" '{printf "%.1f", ($1 + $2) * 1e6 / (r * s)}' "$tmp/cpu")
	fi
	echo "$rate $cpu"
}
# run_gen SHAPE prints "RATE CPU_US_PER_REQUEST" (measured by the generator
# itself over the run, excluding its start-up).
run_gen() {
	local mix=win=1
	[ "$1" = post ] && mix=score=1
	"$tmp/wrkcheck" load -target "$url" -c "$C" -d "$D" -mix "$mix" 2>/dev/null |
		sed -n 's/^rate=\([0-9]*\).*cpu_us_per_request=\([0-9.]*\).*/\1 \2/p'
}

fail=0
for shape in get post; do
	ratios=()
	for r in $(seq "$ROUNDS"); do
		# Alternate which tool goes first, so that a drift in the
		# machine's load hits both alike.
		if [ $((r % 2)) = 1 ]; then w=$(run_wrk "$shape"); g=$(run_gen "$shape"); else g=$(run_gen "$shape"); w=$(run_wrk "$shape"); fi
		read -r wr wc <<<"$w"
		read -r gr gc <<<"$g"
		ratio=$(awk -v g="$gr" -v w="$wr" 'BEGIN {printf "%.3f", g / w}')
		ratios+=("$ratio")
		printf 'wrkcheck: %-4s round %d: wrk %7s req/s (%5s µs CPU/req)  generator %7s req/s (%5s µs CPU/req)  ratio %s\n' \
			"$shape" "$r" "$wr" "$wc" "$gr" "$gc" "$ratio"
	done
	median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	verdict=ok
	if awk -v m="$median" 'BEGIN {exit !(m < 0.90)}'; then verdict="FAIL (< 0.90)"; fail=1; fi
	printf 'wrkcheck: %-4s median ratio generator/wrk %s  %s\n' "$shape" "$median" "$verdict"
done
exit $fail
