#!/usr/bin/env bash
# Server CPU per request at every shard count under the same load per
# shard (issue 12: "server CPU per request at 4 shards within 10% of 1
# shard's"). One client's fixed total spreads thinner over more shards, and
# a shard that sees fewer requests per tick pays more for each (BENCHMARKS,
# session 14), so the shard counts are compared here at PER_SHARD requests
# a second each (open loop: `percore bench --rate`), `/ping` and GET 4 KiB.
#   per-shard.sh PERCORE OUT_DIR COUNTS CLIENT_CPUS CLIENT_CORES
# COUNTS: shard counts, comma-separated (1,2,4,8); shards on CPUs 0..n-1.
# PER_SHARD (default 50000), SECONDS_EACH (default 4).
set -u
percore=${1:?usage: per-shard.sh PERCORE OUT_DIR COUNTS CLIENT_CPUS CLIENT_CORES}
out=$2
counts=$3
client_cpus=$4
client_cores=$5
per=${PER_SHARD:-50000}
secs=${SECONDS_EACH:-4}
mkdir -p "$out"
tmp=$(mktemp -d)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
port=$((20000 + $$ % 20000))
{
    echo "host: $(uname -srm), $(nproc) CPUs; client on $client_cpus; $per req/s per shard, $secs s each"
    for n in $(echo "$counts" | tr ',' ' '); do
        for workload in ping get; do
            port=$((port + 1))
            rm -rf "$tmp/data"
            taskset -c "0-$((n - 1))" "$percore" serve --listen "127.0.0.1:$port" --cores "$n" --data-dir "$tmp/data" \
                --log-level warn --connections-max-per-shard 100000 >/dev/null 2>&1 &
            server=$!
            for _ in $(seq 100); do
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
                sleep 0.05
            done
            extra=""
            if [ "$workload" = get ]; then
                extra="--workload get --keys 1000"
                # shellcheck disable=SC2086 # $extra is words
                taskset -c "$client_cpus" "$percore" bench "http://127.0.0.1:$port" --populate $extra \
                    --duration 0.1 --warmup 0 >/dev/null
            fi
            before=$(ticks "$server")
            # shellcheck disable=SC2086 # $extra is words
            result=$(taskset -c "$client_cpus" "$percore" bench "http://127.0.0.1:$port" --cores "$client_cores" \
                --connections $((64 * n)) --rate $((per * n)) --duration "$secs" --warmup 0 --json $extra)
            after=$(ticks "$server")
            requests=$(grep -o '"requests":[0-9]*' <<<"$result" | cut -d: -f2)
            p99=$(grep -o '"p99":[0-9]*' <<<"$result" | cut -d: -f2)
            us=$(awk -v t=$((after - before)) -v hz="$hz" -v r="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
            echo "shards=$n workload=$workload offered=$((per * n)) requests=$requests server_us_per_req=$us p99_us=$p99"
            kill "$server"
            wait "$server" 2>/dev/null
            server=""
        done
    done
} > "$out/per-shard.txt" 2>&1
cat "$out/per-shard.txt"
