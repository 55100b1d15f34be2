#!/usr/bin/env bash
# User-space instructions per request: the daemon under callgrind (counts
# instructions, not time: the same binary repeats within 0.5% whatever the
# host is doing), driven by `percore bench` for SECONDS after a warm-up.
#
#   benches/instructions.sh [SHARDS] [SECONDS] [BINARY]
#
# Prints one line per workload (/ping, GET 4 KiB over 1,000 keys; with
# WORKLOADS="ping get mixed s3get", also 90% GET / 10% PUT of 4 KiB and the
# S3 GET of 4 KiB, signed as boto3 signs it, at RATE requests a second,
# 3000 unless set: the client signs each request, and under callgrind the
# server could not keep up with it closed-loop): requests answered while
# counting and instructions per request; for s3get also the share of them
# in SHA-256's compression, which valgrind runs in portable code (the
# daemon uses SHA-NI where the CPU has it). Needs valgrind (installed from
# Debian if missing). Compare plain and S3 at one rate: RATE=3000
# WORKLOADS="get s3get".
#
# One shard only: valgrind (3.19 here) runs one thread at a time and does not
# let go while a thread waits in io_uring_enter, so a parked shard is never
# woken by another and a daemon of two shards under it stops answering
# (2 of 6 /pings answered, the binary of before this script too).
set -euo pipefail
cd "$(dirname "$0")/.."
shards=${1:-1}
secs=${2:-5}
bin=${3:-target/release/percore}
if [ "$shards" -ne 1 ]; then
    echo "instructions.sh: one shard only (see the comment at the top)" >&2
    exit 2
fi
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
[ "$bin" != target/release/percore ] || cargo build -q --release -p percore
work=$(mktemp -d)
trap 'kill -KILL $server $client 2>/dev/null; rm -rf "$work"' EXIT
server=
client=
port=$((30000 + RANDOM % 20000))
s3port=$((port + 1))
printf 'AKIDBENCH bench-secret\n' > "$work/credentials"
# Requests answered so far, summed over shards.
requests_total() {
    curl -s "http://127.0.0.1:$port/metrics" | awk '/^percore_requests_total/ {s += $2} END {printf "%d", s}'
}
for workload in ${WORKLOADS:-ping get}; do
    rm -rf "$work/data" "$work"/callgrind.*
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" \
        "$bin" serve --listen "127.0.0.1:$port" --cores "$shards" --data-dir "$work/data" --log-level warn \
        --s3-listen "127.0.0.1:$s3port" --s3-credentials "$work/credentials" \
        > "$work/serve.out" 2> "$work/valgrind.err" &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break; sleep 0.2; done
    args=(--workload ping)
    [ "$workload" = get ] && args=(--workload get --keys 1000 --size 4KiB)
    [ "$workload" = mixed ] && args=(--workload mixed --read-percent 90 --keys 1000 --size 4KiB)
    [ "$workload" = s3get ] && args=(--workload get --keys 1000 --size 4KiB --s3 AKIDBENCH:bench-secret)
    target="http://127.0.0.1:$port"
    [ "$workload" = s3get ] && target="http://127.0.0.1:$s3port"
    [ -n "${RATE:-}" ] || [ "$workload" = s3get ] && args+=(--rate "${RATE:-3000}")
    [ "$workload" = s3get ] && "$bin" bench "$target" --populate --keys 1000 --size 4KiB --workload get \
        --s3 AKIDBENCH:bench-secret --duration 0.5 --warmup 0 >/dev/null
    [ "$workload" != ping ] && [ "$workload" != s3get ] && "$bin" bench "$target" --populate --keys 1000 --size 4KiB --workload ping --duration 0.5 --warmup 0 >/dev/null
    # Counted from a moment into the run to a moment before its end, while
    # every shard is busy (an idle shard, parked in the kernel, would not
    # take callgrind's commands), against the requests /metrics counted
    # between the same moments.
    "$bin" bench "$target" "${args[@]}" --duration $((secs + 4)) --warmup 0 --connections 64 >/dev/null &
    client=$!
    sleep 2
    r0=$(requests_total)
    callgrind_control --zero $server >/dev/null
    sleep "$secs"
    callgrind_control --dump=counted $server >/dev/null
    r1=$(requests_total)
    wait $client
    kill -KILL $server; wait $server 2>/dev/null || true
    # The dump taken after the zeroing (all threads in one file).
    total=$(grep -h '^summary:' "$work"/callgrind.*.1 | awk '{s += $2} END {print s + 0}')
    requests=$((r1 - r0))
    # KEEP=DIR keeps each workload's counts for callgrind_annotate.
    [ -z "${KEEP:-}" ] || cp "$work"/callgrind.*.1 "$KEEP/$workload.callgrind"
    sha=$(callgrind_annotate --threshold=100 "$work"/callgrind.*.1 2>/dev/null \
        | awk '/sha2::sha256::compress256/ {gsub(",", "", $1); s += $1} END {print s + 0}')
    echo "$workload shards=$shards requests=$requests instructions/request=$(python3 -c "print(round($total / max($requests, 1)))")" \
        "of which SHA-256 compression=$(python3 -c "print(round($sha / max($requests, 1)))")"
done
