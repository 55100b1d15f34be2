#!/bin/sh
# Runs on a many-core host from a kit made by pack.sh (no toolchain needed):
#   KIT/run.sh OUT_DIR [quick]
# Writes under OUT_DIR: host.txt (kernel, CPUs, method), one directory per
# phase with the compare table (stdout), compare.json and compare.svg, and
# the mesh bench's output. Servers take CPUs 0..n-1, the client the top half.
# Bounded: about 10 minutes on 16 CPUs (quick: about 3.5); the phases write
# their results as they go, the least needed last. ONLY="PHASE ..." runs
# those phases alone (scaling scaling-get balance scaling-mixed cluster
# skew cores cores-mean cores-payload per-shard cluster-rate), so that the
# whole can be split over two device calls of under 10 minutes each.
set -u
kit=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run.sh OUT_DIR [quick]}
mode=${2:-full}
mkdir -p "$out"
export PATH="$kit/bin:$PATH"
ncpu=$(nproc)
half=$((ncpu / 2))
client="$half-$((ncpu - 1))"
{
    echo "date: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -srvm)"
    echo "cpus: $ncpu ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-))"
    echo "io_uring_disabled: $(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo n/a)"
    echo "client CPUs: $client; servers on CPUs 0..n-1"
    cat "$kit/BUILD"
} > "$out/host.txt"
# Server core counts: 1, 2, 4, ... up to the CPUs below the client's.
counts=1
n=2
while [ $n -le $half ]; do counts="$counts,$n"; n=$((n * 2)); done
if [ "$mode" = quick ]; then rounds=1; secs=2; else rounds=3; secs=3; fi
# want PHASE: whether ONLY (if set) names it.
want() {
    [ -z "${ONLY:-}" ] && return 0
    case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
cmp() {
    name=$1
    shift
    want "$name" || return 0
    mkdir -p "$out/$name"
    timeout 420 "$kit/bin/compare" "$@" --percore "$kit/bin/percore" --http-peer "$kit/bin/http-peer" \
        --nginx "$kit/bin/nginx" --client-cpus "$client" --tmp "${TMPDIR:-/tmp}" --out "$out/$name" \
        > "$out/$name/table.txt" 2>&1
    echo "$name: exit $?" >> "$out/host.txt"
}
# The goals' table: /ping and GET 4 KiB at 1, 2, 4, 8 server cores, 256
# connections, percore against its best peers.
cmp scaling $rounds $secs --only "ping" --servers percore,monoio,nginx --server-cores $counts --connections 256
cmp scaling-get $rounds $secs --only "get 4" --servers percore,monoio,nginx --server-cores $counts --connections 256
# Balance: connections = 2x shards on the most shards.
most=${counts##*,}
cmp balance $rounds $secs --only "ping" --servers percore --server-cores "$most" --connections $((2 * most))
# Writes across shards: 90/10 GET/PUT at every core count, percore alone
# (each commit invalidates its path on every shard: this shows what that
# costs per added core). One round, to stay within the device's time.
cmp scaling-mixed 1 $secs --only "mixed" --servers percore --server-cores $counts --connections 256
# Several nodes behind HAProxy (issue 16's goals): one node direct, one and
# three through HAProxy.
if want cluster; then
    timeout 120 "$kit/cluster.sh" "$kit/bin/percore" "$kit/bin/haproxy" "$kit/haproxy.cfg" "$out/cluster" > /dev/null 2>&1
    echo "cluster: exit $?" >> "$out/host.txt"
fi
# Open connections left uneven (2 shards): moves level them (needs python3).
if want skew && command -v python3 > /dev/null; then
    timeout 60 python3 "$kit/skew.py" "$kit/bin/percore" > "$out/skew.txt" 2>&1
    echo "skew: exit $?" >> "$out/host.txt"
fi
# The mesh: busy round trips against crossbeam alone, parked wake-ups.
if want cores; then
    timeout 120 "$kit/bin/cores" 3 > "$out/cores.txt" 2>&1
    echo "cores: exit $?" >> "$out/host.txt"
fi
# The same, timed as a whole loop, with the event loop alone beside it.
if want cores-mean; then
    CORES_BENCH_ONLY=mean timeout 60 "$kit/bin/cores" 3 > "$out/cores-mean.txt" 2>&1
    echo "cores-mean: exit $?" >> "$out/host.txt"
fi
# What a message's size costs (8 to 56 bytes, crossbeam alone and the
# runtime alone), beside the mesh.
if want cores-payload; then
    CORES_BENCH_ONLY=payload timeout 60 "$kit/bin/cores" 3 > "$out/cores-payload.txt" 2>&1
    echo "cores-payload: exit $?" >> "$out/host.txt"
fi
# Server CPU per request at every shard count under the same load per
# shard (50,000 requests a second each, open loop).
if want per-shard; then
    timeout 120 "$kit/per-shard.sh" "$kit/bin/percore" "$out/per-shard" "$counts" "$client" "$half" > /dev/null 2>&1
    echo "per-shard: exit $?" >> "$out/host.txt"
fi
# Last, so that a device call that runs out of time loses only this: p99
# behind HAProxy at a load below every part's limit (open loop, 30,000
# requests a second), against one node direct.
if want cluster-rate; then
    RATE=30000 timeout 90 "$kit/cluster.sh" "$kit/bin/percore" "$kit/bin/haproxy" "$kit/haproxy.cfg" \
        "$out/cluster-rate" > /dev/null 2>&1
    echo "cluster-rate: exit $?" >> "$out/host.txt"
fi
