#!/usr/bin/env bash
# The hot-file cache against plain reads from the page cache: GET of a 4 KiB
# file, server pinned to CPU 0 (one shard), wrk pinned to CPU 1 with 64
# connections, interleaved rounds. Prints req/s and server CPU per request.
# Usage: benches/cache.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-5}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build -q --release
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
head -c 4096 /dev/urandom > "$data/4k.bin"
run() { # $1 = cache bytes
  local out="$data/out.$1" pid url c0 c1 rps
  taskset -c 0 target/release/percore serve --listen 127.0.0.1:0 --data-dir "$data" --cores 0, \
    --cache-bytes-max "$1" --log-level warn > "$out" 2>/dev/null &
  pid=$!
  until grep -q http "$out" 2>/dev/null; do sleep 0.05; done
  url=$(grep -o 'http://[0-9.:]*' "$out")
  taskset -c 1 wrk -t1 -c64 -d1s "$url/files/4k.bin" > /dev/null   # warm-up
  c0=$(awk '{print $14+$15}' /proc/$pid/stat)
  rps=$(taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "$url/files/4k.bin" | awk '/Requests\/sec/ {print $2}')
  c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill -TERM $pid; wait $pid || true
  python3 -c "print(f'{$rps:.0f} req/s, server {($c1-$c0)*1e6/100/($rps*$seconds):.2f} us/req')"
}
for round in $(seq 1 "$rounds"); do
  echo "round $round: cache on  (64 MiB): $(run $((64 << 20)))"
  echo "round $round: cache off (page cache reads): $(run 0)"
done
