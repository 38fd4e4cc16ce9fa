#!/usr/bin/env bash
# budget.sh — how much work may a score handler do on this machine and still
# reach a given fraction of a bare fasthttp handler's rate?
#
# Loads, one after the other in each round and with the same load generator
# (package bench/load, `wrkcheck load`), connections and duration:
#   bare        the bare handler (fixed 200-byte JSON answer)
#   work=Nus    load.BudgetHandler: N µs of calibrated CPU work per request,
#               then the same 200-byte answer
#   size=1265   no work, a 1265-byte answer (a 3-imp, 2-campaign score answer)
#   cpafeed     `cpafeed serve` (embedded default config, scratch data dir)
#   cpafeed:F   `cpafeed serve --config F`, for each F in CONFIGS
# each in its own process on 127.0.0.1, all with POST /v1/score bodies of the
# default scenario. It prints, per target, the median rate, its ratio to the
# bare handler's median, and the server's CPU per request (from /proc).
#
#   bench/load/budget.sh                         # C=16 D=5s ROUNDS=3 WORK="2 4 6 8 12"
#   CONFIGS=my.yaml bench/load/budget.sh         # also a cpafeed with this config
#
# All traffic goes to 127.0.0.1; each run is bounded by D.
set -euo pipefail

C=${C:-16}
D=${D:-5s}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-"2 4 6 8 12"}
CONFIGS=${CONFIGS:-}

cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/wrkcheck" ./bench/load/internal/wrkcheck
go build -o "$tmp/cpafeed" ./cmd/cpafeed

# start NAME CMD... : starts a server, waits for its URL in $tmp/NAME.url.
start() {
	local name=$1
	shift
	"$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	echo $! >"$tmp/$name.pid"
	for _ in $(seq 100); do
		if [ "${name%%:*}" = cpafeed ]; then
			if grep -q 'msg="cpafeed ready"' "$tmp/$name.err" 2>/dev/null; then
				sed -n 's/.*msg="cpafeed listening" addr=\([^ ]*\).*/http:\/\/\1/p' "$tmp/$name.err" | head -1 >"$tmp/$name.url"
				break
			fi
		elif [ -s "$tmp/$name.out" ]; then
			head -1 "$tmp/$name.out" >"$tmp/$name.url"
			break
		fi
		sleep 0.1
	done
	case "$(cat "$tmp/$name.url" 2>/dev/null)" in
	http://127.0.0.1:*) ;;
	*) echo "budget: $name did not start" >&2; cat "$tmp/$name.err" >&2; exit 1 ;;
	esac
}

targets=(bare)
start bare "$tmp/wrkcheck" serve -for 60m
for w in $WORK; do
	targets+=("work=${w}us")
	start "work=${w}us" "$tmp/wrkcheck" serve -for 60m -work "${w}us"
done
targets+=(size=1265)
start size=1265 "$tmp/wrkcheck" serve -for 60m -size 1265
targets+=(cpafeed)
mkdir "$tmp/data"
start cpafeed "$tmp/cpafeed" serve --data "$tmp/data" --listen 127.0.0.1:0
for f in $CONFIGS; do
	name="cpafeed:$(basename "$f" .yaml)"
	targets+=("$name")
	mkdir "$tmp/data-$name"
	start "$name" "$tmp/cpafeed" serve --config "$f" --data "$tmp/data-$name" --listen 127.0.0.1:0
done

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "budget: $C connections, $D per run, $ROUNDS rounds, $(nproc) cores"
for r in $(seq "$ROUNDS"); do
	for t in "${targets[@]}"; do
		pid=$(cat "$tmp/$t.pid")
		t0=$(ticks "$pid")
		if ! line=$("$tmp/wrkcheck" load -target "$(cat "$tmp/$t.url")" -c "$C" -d "$D" -mix score=1 2>"$tmp/load.err"); then
			echo "budget: the load of $t failed:" >&2
			cat "$tmp/load.err" >&2
			exit 1
		fi
		t1=$(ticks "$pid")
		rate=$(sed -n 's/.*rate=\([0-9]*\) requests=\([0-9]*\) errors=\([0-9]*\).*/\1 \2 \3/p' <<<"$line")
		read -r rps n errs <<<"$rate"
		if [ "${errs:-1}" != 0 ]; then
			# A target answering errors (a wrong token or campaign) is fast for
			# the wrong reason: its rate means nothing.
			echo "budget: $t answered $errs errors of $n requests; its rate is not comparable" >&2
			exit 1
		fi
		us=$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
		echo "$t $rps $us" >>"$tmp/results"
		echo "round $r  $t: $rps req/s, server $us µs CPU per request"
	done
done

# median TARGET COLUMN: the median of a column of the target's rounds.
median() {
	awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$tmp/results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

bare=$(median bare 2)
echo
printf '%-16s %10s %8s %14s\n' target 'req/s' ratio 'server µs/req'
for t in "${targets[@]}"; do
	rps=$(median "$t" 2)
	printf '%-16s %10s %8s %14s\n' "$t" "$rps" "$(awk -v a="$rps" -v b="$bare" 'BEGIN { printf "%.2f", a / b }')" "$(median "$t" 3)"
done
