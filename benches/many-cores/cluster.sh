#!/bin/sh
# Several nodes behind HAProxy, measured (issue 16's goals): GET 4 KiB over
# 1,000 keys from `percore bench`, direct to one node, through HAProxy to
# one node, and through HAProxy to three; req/s, p99 and HAProxy's CPU.
# Runs from the kit (KIT/bin has percore and haproxy) or from a build:
#   cluster.sh PERCORE HAPROXY HAPROXY_CFG OUT_DIR
# On 16 or more CPUs: each node 2 cores (CPUs 0-1, 2-3, 4-5), HAProxy CPUs
# 6-7, the client the top half. On fewer (a trial run): every node on CPU
# 0, HAProxy and the client on the last CPU. Bounded: about a minute.
# RATE=N: open loop at N requests a second (latency from each request's
# intended send time), for p99 at a load that saturates neither HAProxy
# nor the client; CONNECTIONS (default 256).
set -u
percore=${1:?usage: cluster.sh PERCORE HAPROXY HAPROXY_CFG OUT_DIR}
haproxy=$2
shipped=$3
out=$4
mkdir -p "$out"
ncpu=$(nproc)
if [ "$ncpu" -ge 16 ]; then
    node_cpus="0-1 2-3 4-5"; node_cores=2; front_cpus=6-7; client_cpus="$((ncpu / 2))-$((ncpu - 1))"; client_cores=$((ncpu / 2))
else
    node_cpus="0 0 0"; node_cores=1; front_cpus=$((ncpu - 1)); client_cpus=$((ncpu - 1)); client_cores=1
fi
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
port=$((20000 + $$ % 20000))
ring="a=1:256,b=2:256,c=3:256"
i=0
for name in a b c; do
    i=$((i + 1))
    cpus=$(echo "$node_cpus" | cut -d' ' -f"$i")
    mkdir -p "$tmp/$name"
    taskset -c "$cpus" "$percore" serve --listen "127.0.0.1$i:$((port + i))" --data-dir "$tmp/$name" \
        --cores "$node_cores" --node-name "$name" --ring "$ring" --log-level warn >/dev/null 2>&1 &
    pids="$pids $!"
done
# A single node without a ring (on node a's CPUs; the ring's nodes idle
# while it is measured), for the one-node cells.
mkdir -p "$tmp/solo"
taskset -c "$(echo "$node_cpus" | cut -d' ' -f1)" "$percore" serve --listen "127.0.0.14:$((port + 4))" \
    --data-dir "$tmp/solo" --cores "$node_cores" --log-level warn >/dev/null 2>&1 &
pids="$pids $!"
# Two fronts: the three nodes, and the single node (the same config, its
# servers but one left out).
sed "s/10\.0\.0\.10:8080/127.0.0.10:$port/; s/10\.0\.0\.11:8080/127.0.0.11:$((port + 1))/; s/10\.0\.0\.12:8080/127.0.0.12:$((port + 2))/; s/10\.0\.0\.13:8080/127.0.0.13:$((port + 3))/" \
    "$shipped" > "$tmp/three.cfg"
sed "s/127\.0\.0\.10:$port/127.0.0.10:$((port + 10))/; s/127\.0\.0\.11:$((port + 1))/127.0.0.14:$((port + 4))/; /server b /d; /server c /d" \
    "$tmp/three.cfg" > "$tmp/one.cfg"
taskset -c "$front_cpus" "$haproxy" -db -f "$tmp/three.cfg" >/dev/null 2>&1 &
three=$!
taskset -c "$front_cpus" "$haproxy" -db -f "$tmp/one.cfg" >/dev/null 2>&1 &
one=$!
pids="$pids $three $one"
sleep 2
rate=""
[ -z "${RATE:-}" ] || rate="--rate $RATE"
bench() {
    # shellcheck disable=SC2086 # $rate is empty or two words
    taskset -c "$client_cpus" "$percore" bench "$1" --cores "$client_cores" --connections "${CONNECTIONS:-256}" \
        --duration 5 --warmup 1 --workload get --keys 1000 --json $rate
}
# The keys, through each front (the single node gets all of them through its own).
taskset -c "$client_cpus" "$percore" bench "http://127.0.0.10:$port" --populate --workload get --keys 1000 --duration 0.1 --warmup 0 >/dev/null
taskset -c "$client_cpus" "$percore" bench "http://127.0.0.10:$((port + 10))" --populate --workload get --keys 1000 --duration 0.1 --warmup 0 >/dev/null
{
    echo "host: $(uname -srm), $ncpu CPUs; nodes on CPUs $node_cpus ($node_cores cores each), HAProxy on $front_cpus, client on $client_cpus; ${CONNECTIONS:-256} connections, ${RATE:-closed loop} req/s"
    for cell in "direct-one-node http://127.0.0.14:$((port + 4)) -" "haproxy-one-node http://127.0.0.10:$((port + 10)) $one" \
        "haproxy-three-nodes http://127.0.0.10:$port $three"; do
        # shellcheck disable=SC2086 # three words
        set -- $cell
        before=0
        [ "$3" != - ] && before=$(ticks "$3")
        result=$(bench "$2")
        after=0
        [ "$3" != - ] && after=$(ticks "$3")
        echo "$1 haproxy_cpu_ticks=$((after - before)) $result"
    done
} > "$out/cluster.txt" 2>&1
cat "$out/cluster.txt"
