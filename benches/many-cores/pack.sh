#!/usr/bin/env bash
# Packs the comparison for a many-core host that has no toolchain: release
# builds of percore, the peers (http-peer) and the compare bench, nginx and
# HAProxy from Debian, and every shared library they load (glibc and its loader too), so
# the kit runs on whatever Linux the host has. Writes KIT (default
# ./bench-kit, which .gitignore keeps out of git); then copy KIT to the host
# and run KIT/run.sh OUT_DIR there (benches/many-cores/run.sh).
#
#   benches/many-cores/pack.sh [KIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
kit="${1:-bench-kit}"
rm -rf "$kit"
mkdir -p "$kit/real" "$kit/lib" "$kit/bin"

cargo build -q --release -p percore
cargo build -q --release -p percore-benches --bin http-peer --bin echo-server --bin echo-client
compare=$(cargo bench -q -p percore-benches --bench compare --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="compare" and m.get("executable"): print(m["executable"])' | tail -1)
cores=$(cargo bench -q -p percore-benches --bench cores --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="cores" and m.get("executable"): print(m["executable"])' | tail -1)
cp target/release/percore target/release/http-peer "$kit/real/"
cp "$compare" "$kit/real/compare"
cp "$cores" "$kit/real/cores"

# nginx: the Debian package's binary, unpacked (not installed on the host).
if [ ! -x /usr/sbin/nginx ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
fi
cp /usr/sbin/nginx "$kit/real/nginx"
# HAProxy likewise, for the nodes-behind-HAProxy phase (cluster.sh).
if [ ! -x /usr/sbin/haproxy ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy
fi
cp /usr/sbin/haproxy "$kit/real/haproxy"

# Every library the binaries load, and the loader, from this machine.
for bin in "$kit"/real/*; do
    ldd "$bin" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' | while read -r lib; do
        [ -f "$lib" ] && cp -L -n "$lib" "$kit/lib/"
    done
done
loader=$(basename "$(ldd "$kit/real/percore" | awk '/ld-linux/ { print $1 }')")

# Wrappers: each binary runs under the kit's own loader and libraries. The
# loader execs in place, so a wrapper's pid is the program's (CPU and RSS
# are read per pid).
for bin in "$kit"/real/*; do
    name=$(basename "$bin")
    cat > "$kit/bin/$name" <<WRAP
#!/bin/sh
kit=\$(cd "\$(dirname "\$0")/.." && pwd)
exec "\$kit/lib/$loader" --library-path "\$kit/lib" "\$kit/real/$name" "\$@"
WRAP
    chmod +x "$kit/bin/$name"
done
cp benches/many-cores/run.sh benches/many-cores/cluster.sh benches/many-cores/per-shard.sh benches/skew.py \
    deploy/haproxy.cfg "$kit/"
chmod +x "$kit/run.sh" "$kit/cluster.sh" "$kit/per-shard.sh"
{
    echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
    echo "build host: $(uname -r), $(nproc) CPUs"
} > "$kit/BUILD"
du -sh "$kit"
