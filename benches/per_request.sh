#!/usr/bin/env bash
# CPU time, instructions and cycles per request at several shard counts,
# from `perf stat` on the daemon's threads while `percore bench` drives it:
# what rises per request when a shard is added. Unlike
# instructions.sh (callgrind, one shard only) any number of shards; the
# counts cover user space and the kernel apart.
#
#   benches/per_request.sh [SHARDS...]     (default: 1 2)
#
# Environment: SECONDS_EACH (default 5), ROUNDS (default 3; rounds
# interleave the shard counts), CONNECTIONS (default 64), BINARY (default
# target/release/percore, built if it is the default), WORKLOADS (default
# "ping get": /ping and GET 4 KiB over 1,000 keys). Medians of the rounds.
#
# Shards are pinned to CPUs 0..N-1; the client runs on the last CPU when
# the host has more CPUs than shards, else unpinned beside them (then the
# cycles include contention with the client; the instruction counts do not
# depend on it). Needs perf (linux-perf) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
shard_counts=("$@")
[ ${#shard_counts[@]} -gt 0 ] || shard_counts=(1 2)
secs=${SECONDS_EACH:-5}
rounds=${ROUNDS:-3}
connections=${CONNECTIONS:-64}
bin=${BINARY:-target/release/percore}
[ "$bin" != target/release/percore ] || cargo build -q --release -p percore
command -v perf >/dev/null || { echo "per_request.sh: needs perf" >&2; exit 2; }
cpus=$(nproc)
work=$(mktemp -d "${PERCORE_BENCH_DIR:-/tmp}/per-request.XXXX")
server=
trap '[ -z "$server" ] || kill -KILL $server 2>/dev/null; rm -rf "$work"' EXIT
requests_total() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^percore_requests_total/ {s += $2} END {printf "%d", s}'
}
results="$work/results"
for round in $(seq 1 "$rounds"); do
    for shards in "${shard_counts[@]}"; do
        for workload in ${WORKLOADS:-ping get}; do
            port=$((30000 + RANDOM % 20000))
            rm -rf "$work/data"
            taskset -c "0-$((shards - 1))" "$bin" serve --listen "127.0.0.1:$port" --cores "$shards" \
                --data-dir "$work/data" --log-level warn --connections-max-per-shard 100000 >/dev/null &
            server=$!
            for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/ping" && break; sleep 0.05; done
            target="http://127.0.0.1:$port/ping"
            extra=()
            if [ "$workload" = get ]; then
                target="http://127.0.0.1:$port"
                extra=(--workload get --keys 1000)
                "$bin" bench "$target" --cores 1 --connections 1 --duration 0.3 --populate "${extra[@]}" >/dev/null
            fi
            client=()
            [ "$cpus" -gt "$shards" ] && client=(taskset -c "$((cpus - 1))")
            "${client[@]}" "$bin" bench "$target" --cores 1 --connections "$connections" \
                --duration $((secs + 2)) --warmup 0 "${extra[@]}" >/dev/null &
            bench=$!
            sleep 1
            before=$(requests_total "$port")
            perf stat -x, -e task-clock,instructions:u,instructions:k,cycles:u,cycles:k -p "$server" -o "$work/stat" -- sleep "$secs"
            after=$(requests_total "$port")
            wait $bench
            kill $server
            wait $server 2>/dev/null || true
            server=
            n=$((after - before - 1))
            # Counters a VM does not expose read "<not supported>": -1.
            awk -F, -v n="$n" -v s="$shards" -v w="$workload" -v r="$round" '
                function v(x) { return x ~ /^[0-9.]+$/ ? x : -n }
                /task-clock/ {tc = v($1)}
                /instructions:u/ {iu = v($1)} /instructions:k/ {ik = v($1)}
                /cycles:u/ {cu = v($1)} /cycles:k/ {ck = v($1)}
                END {printf "%s %s %d %d %.3f %.0f %.0f %.0f %.0f\n", s, w, r, n, tc * 1000 / n, iu / n, ik / n, cu / n, ck / n}' \
                "$work/stat" | tee -a "$results" | awk '{printf "  round %s: %s shard(s) %-4s %8d requests: %.2f us CPU, %d user + %d kernel instructions, %d + %d cycles per request\n", $3, $1, $2, $4, $5, $6, $7, $8, $9}'
        done
    done
done
echo
echo "medians over $rounds rounds (per request):"
echo "(-1: the counter is not available here, as in most VMs)"
printf "%-7s %-5s %8s %12s %12s %12s %12s\n" shards load "CPU us" "user instr" "kernel instr" "user cycles" "kernel cycles"
for shards in "${shard_counts[@]}"; do
    for workload in ${WORKLOADS:-ping get}; do
        awk -v s="$shards" -v w="$workload" '$1 == s && $2 == w' "$results" |
            python3 -c '
import sys, statistics
rows = [list(map(float, l.split()[4:9])) for l in sys.stdin if l.strip()]
cols = [statistics.median(c) for c in zip(*rows)]
print("%-7s %-5s %8.2f %12.0f %12.0f %12.0f %12.0f" % (sys.argv[1], sys.argv[2], *cols))' "$shards" "$workload"
    done
done
