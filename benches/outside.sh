#!/usr/bin/env bash
# Servers side by side under outside clients (issue 12: "every row of the
# comparison keeps its ratio when measured with wrk and a second outside
# client"), not `percore bench`.
#
#   benches/outside.sh ROUNDS SECONDS [CELL...]
#
# Cells: ping; get4k (GET 4 KiB over 1,000 keys: wrk picks one at random
# per request with a Lua script, h2load walks the list); get1m (one 1 MiB
# file); put1key (PUT 4 KiB to one key from every connection: durable on
# both percore and monoio, nginx's PUT is not, so it is left out there).
#
# Clients (CLIENTS, default "wrk h2load percore"): `wrk -t1` and `h2load
# --h1 -t1` (Debian packages wrk and nghttp2-client) and, for the same-run
# comparison with our own client, `percore bench --cores 1` (PERCORE_CLIENT,
# default target/release/percore), CONNS connections (64) on CLIENT_CPU (1). Servers on SERVER_CPU (0), one shard: every percore
# binary in PERCORE_BINS (default target/release/percore; a script that
# `exec`s one with settings also works), and PEERS (default "nginx monoio":
# nginx on PATH or NGINX=path; monoio and the tokio peers through
# HTTP_PEER, default target/release/http-peer). Each run starts a fresh
# server; servers rotate their order every round.
#
# One line per run: req/s, server CPU us per response (from /proc, every
# thread), the client's CPU us per response (from `time`), and for percore
# requests per io_uring_enter (from /metrics). Data lives under
# PERCORE_BENCH_DIR (default /tmp).
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER=${2:-3}
shift 2 || true
CELLS=("$@")
[ ${#CELLS[@]} -gt 0 ] || CELLS=(ping get4k get1m put1key)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CONNS=${CONNS:-64}
read -r -a BINS <<<"${PERCORE_BINS:-target/release/percore}"
read -r -a PEER_LIST <<<"${PEERS-nginx monoio}"
read -r -a CLIENT_LIST <<<"${CLIENTS:-wrk h2load percore}"
PERCORE_CLIENT=${PERCORE_CLIENT:-target/release/percore}
NGINX=${NGINX:-nginx}
HTTP_PEER=${HTTP_PEER:-target/release/http-peer}
for c in "${CLIENT_LIST[@]}"; do
    [ "$c" = percore ] && c=$PERCORE_CLIENT
    command -v "$c" >/dev/null || { echo "$c not found (Debian: wrk, nghttp2-client)" >&2; exit 1; }
done

WORK=$(mktemp -d "${PERCORE_BENCH_DIR:-/tmp}/outside-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The files every server serves: files/k/0..999 (4 KiB), files/big (1 MiB),
# files/one/key (the PUT target; its directory made up front).
mkdir -p "$WORK/data/files/k" "$WORK/data/files/one"
head -c 4096 /dev/urandom >"$WORK/4k"
for i in $(seq 0 999); do cp "$WORK/4k" "$WORK/data/files/k/$i"; done
head -c 1048576 /dev/urandom >"$WORK/data/files/big"
cp "$WORK/4k" "$WORK/data/files/one/key"
cat >"$WORK/keys.lua" <<'EOF'
request = function()
  return wrk.format("GET", "/files/k/" .. math.random(0, 999))
end
EOF
cat >"$WORK/put.lua" <<EOF
local f = io.open("$WORK/4k", "rb")
local body = f:read("*all")
f:close()
request = function()
  return wrk.format("PUT", "/files/one/key", nil, body)
end
EOF

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p
    while :; do
        p=$((10000 + RANDOM % 20000)) # below the ephemeral range (32768-)
        if port_free "$p"; then echo "$p"; return; fi
    done
}

# start SERVER PORT: starts it, sets SERVER_PID.
start() {
    local name=$1 port=$2
    case $name in
    nginx)
        cat >"$WORK/nginx.conf" <<EOF
daemon off; master_process off; user root; worker_processes 1;
pid $WORK/nginx.pid; error_log stderr error;
events { worker_connections 20000; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 10000000;
  open_file_cache max=10000 inactive=60s; open_file_cache_valid 60s;
  client_body_temp_path $WORK/.nginx-body; proxy_temp_path $WORK/.nginx-proxy;
  fastcgi_temp_path $WORK/.nginx-fastcgi; uwsgi_temp_path $WORK/.nginx-uwsgi; scgi_temp_path $WORK/.nginx-scgi;
  server { listen 127.0.0.1:$port; default_type application/octet-stream;
    location = /ping { return 200 "pong\n"; }
    location /files/ { alias $WORK/data/files/; } } }
EOF
        taskset -c "$SERVER_CPU" "$NGINX" -e stderr -p "$WORK" -c "$WORK/nginx.conf" 2>/dev/null &
        ;;
    monoio | tokio-uring | tokio-ct | tokio-mt)
        "$HTTP_PEER" "$name" "$port" "$SERVER_CPU" "$WORK/data/files" >/dev/null &
        ;;
    *)
        # `--cores 1` takes the one CPU of the affinity mask taskset sets.
        taskset -c "$SERVER_CPU" "$name" serve --listen "127.0.0.1:$port" --cores 1 \
            --log-level warn --data-dir "$WORK/data/files" >/dev/null &
        ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.05
    done
    echo "$name did not start on $port" >&2
    exit 1
}

is_percore() { case $1 in nginx | monoio | tokio-uring | tokio-ct | tokio-mt) return 1 ;; *) return 0 ;; esac; }
# CPU ticks (user + system) of a process and all its threads.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric() { # metric PORT NAME: summed over shards
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" 'index($0, n) == 1 { s += $NF } END { printf "%d", s }'
}

# client_cmd CLIENT CELL PORT SECONDS: the client's command line.
client_cmd() {
    local client=$1 cell=$2 port=$3 secs=$4 base="http://127.0.0.1:$3"
    case $client in
    wrk)
        local w=(wrk -t1 -c"$CONNS" -d"${secs}s")
        case $cell in
        ping) echo "${w[*]} $base/ping" ;;
        get4k) echo "${w[*]} -s $WORK/keys.lua $base/" ;;
        get1m) echo "${w[*]} $base/files/big" ;;
        put1key) echo "${w[*]} -s $WORK/put.lua $base/" ;;
        esac
        ;;
    percore)
        local b=("$PERCORE_CLIENT" bench "$base" --cores 1 --connections "$CONNS" --duration "$secs" --warmup 0 --json)
        case $cell in
        ping) echo "${b[*]} --workload ping" ;;
        get4k) echo "${b[*]} --workload get --keys 1000 --size 4KiB" ;;
        get1m) echo "${b[*]} --workload get --keys 1 --size 1MiB" ;;
        put1key) echo "${b[*]} --workload put --keys 1 --size 4KiB" ;;
        esac
        ;;
    h2load)
        local h=(h2load --h1 -t1 -c"$CONNS" -D "$secs")
        case $cell in
        ping) echo "${h[*]} $base/ping" ;;
        get4k)
            [ -f "$WORK/urls" ] || for i in $(seq 0 999); do echo "/files/k/$i"; done | shuf >"$WORK/urls"
            sed -i "1s|.*|$base/files/k/0|" "$WORK/urls"
            echo "${h[*]} -i $WORK/urls"
            ;;
        get1m) echo "${h[*]} $base/files/big" ;;
        put1key) echo "${h[*]} -d $WORK/4k -H :method:PUT $base/files/one/key" ;;
        esac
        ;;
    esac
}

# parse CLIENT OUTPUT: prints "responses req/s", or fails on any error.
parse() {
    local client=$1 out=$2
    case $client in
    wrk)
        if grep -q "Non-2xx\|Socket errors" <<<"$out"; then return 1; fi
        awk '/requests in/ { n = $1 } /Requests\/sec/ { r = $2 } END { printf "%d %d", n, r }' <<<"$out"
        ;;
    percore)
        grep -m1 '^{' <<<"$out" | python3 -c 'import json, sys
d = json.load(sys.stdin)
if d["errors"]: sys.exit(1)
print(d["requests"], int(d["requests_per_second"]))'
        ;;
    h2load)
        # "requests: T total, S started, D done, K succeeded, F failed, E errored, O timeout"
        awk '/^requests:/ { ok = $8; bad = $10 + $12 + $14 } /^status codes:/ { non2xx = $5 + $7 + $9 }
             /^finished in/ { r = $4 } END { if (bad + non2xx > 0) exit 1; printf "%d %d", ok, r }' <<<"$out"
        ;;
    esac
}

# `percore bench` checks every byte it reads against its own contents: its
# 1,000 keys (/files/bench/XX/key-N) are written by its --populate through
# a percore server; key-0 is kept in both sizes and put back per cell (1 MiB
# for get1m, 4 KiB otherwise).
if [[ " ${CLIENT_LIST[*]} " == *" percore "* ]]; then
    port=$(pick_port)
    start "${BINS[0]}" "$port"
    base="http://127.0.0.1:$port"
    "$PERCORE_CLIENT" bench "$base" --cores 1 --workload get --keys 1000 --size 4KiB --populate --duration 0.2 --warmup 0 >/dev/null
    cp "$WORK/data/files/bench/00/key-0" "$WORK/key0-4k"
    "$PERCORE_CLIENT" bench "$base" --cores 1 --workload get --keys 1 --size 1MiB --populate --duration 0.2 --warmup 0 >/dev/null
    cp "$WORK/data/files/bench/00/key-0" "$WORK/key0-1m"
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
fi

HZ=$(getconf CLK_TCK)
run_cell() { # run_cell SERVER CLIENT CELL
    local name=$1 client=$2 cell=$3 port
    port=$(pick_port)
    # percore bench's key-0: 1 MiB for get1m, 4 KiB otherwise.
    if [ -f "$WORK/key0-4k" ]; then
        local size=4k
        [ "$cell" = get1m ] && size=1m
        cp "$WORK/key0-$size" "$WORK/data/files/bench/00/key-0"
    fi
    start "$name" "$port"
    # Warm the caches (percore's, nginx's open-file cache, the page cache).
    # shellcheck disable=SC2046
    taskset -c "$CLIENT_CPU" $(client_cmd "$client" "$cell" "$port" 1) >/dev/null 2>&1
    local enters0=0 req0=0
    if is_percore "$name"; then
        enters0=$(metric "$port" percore_io_ring_enters_total)
        req0=$(metric "$port" percore_requests_total)
    fi
    local t0 t1 out result
    t0=$(ticks "$SERVER_PID")
    # shellcheck disable=SC2046
    out=$( { /usr/bin/time -f "CLIENTCPU %U %S" taskset -c "$CLIENT_CPU" $(client_cmd "$client" "$cell" "$port" "$SECONDS_PER"); } 2>&1)
    t1=$(ticks "$SERVER_PID")
    if ! result=$(parse "$client" "$out"); then
        echo "$name $cell with $client: errors or statuses other than 2xx:" >&2
        echo "$out" >&2
        exit 1
    fi
    local n rps ccpu per_enter="-"
    read -r n rps <<<"$result"
    ccpu=$(awk '/CLIENTCPU/ { print $2 + $3 }' <<<"$out")
    if is_percore "$name"; then
        local enters1 req1
        enters1=$(metric "$port" percore_io_ring_enters_total)
        req1=$(metric "$port" percore_requests_total)
        per_enter=$(awk -v r=$((req1 - req0)) -v e=$((enters1 - enters0)) 'BEGIN { printf "%.2f", r / e }')
    fi
    awk -v s="$name" -v cl="$client" -v c="$cell" -v rps="$rps" -v n="$n" -v t=$((t1 - t0)) -v hz="$HZ" -v w="$ccpu" -v pe="$per_enter" \
        'BEGIN { printf "%-7s %-8s %-28s %9d req/s  server %8.2f us/resp  client %8.2f us/resp  req/enter %s\n", cl, c, s, rps, t / hz * 1e6 / n, w * 1e6 / n, pe }'
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
}

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs; servers on CPU $SERVER_CPU, clients (-t1, $CONNS connections) on CPU $CLIENT_CPU, ${SECONDS_PER}s per run"
for round in $(seq "$ROUNDS"); do
    for client in "${CLIENT_LIST[@]}"; do
        for cell in "${CELLS[@]}"; do
            servers=("${BINS[@]}")
            for p in "${PEER_LIST[@]}"; do
                # nginx's PUT does not flush: no peer for a durable write.
                [ "$cell" = put1key ] && [ "$p" = nginx ] && continue
                servers+=("$p")
            done
            n=${#servers[@]}
            for i in $(seq 0 $((n - 1))); do
                run_cell "${servers[$(((i + round) % n))]}" "$client" "$cell"
            done
        done
    done
done
