#!/usr/bin/env python3
"""Open connections left uneven: 16 kept-alive connections on a 2-shard
percore, all but 2 of one shard's closed, then one client thread sends
`/ping` over the ones left in turn; prints requests per shard (from
/metrics) and busiest / mean, for each binary given.

    python3 benches/skew.py target/release/percore [OTHER_BINARY ...]

The shard serving a connection is read from /health's X-Percore-Shard (a
binary without it: from whose ping count the connection's ping raised).
Loopback only; each daemon gets a fresh temporary data directory
(under PERCORE_BENCH_DIR if set).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def request(sock, path="/ping"):
    """One GET on a kept-alive connection; returns (head, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def per_shard(port, name, label=""):
    """A metric's value on shards 0 and 1 (a connection of its own)."""
    sock = socket.create_connection(("127.0.0.1", port))
    text = request(sock, "/metrics")[1].decode()
    sock.close()
    lines = [l for l in text.splitlines() if l.startswith(name + "{") and label in l]
    return [sum(float(l.split()[-1]) for l in lines if f'shard="{s}"' in l) for s in range(2)]


def shard_of(port, sock):
    head, _ = request(sock, "/health")
    found = re.search(rb"(?i)x-percore-shard: *(\d+)", head)
    if found:
        return int(found.group(1))
    before = per_shard(port, "percore_requests_total", 'route="ping"')
    request(sock)
    after = per_shard(port, "percore_requests_total", 'route="ping"')
    return 1 if after[1] > before[1] else 0


def run(binary, port):
    data = tempfile.mkdtemp(dir=os.environ.get("PERCORE_BENCH_DIR"))
    daemon = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--cores", "2", "--log-level", "warn", "--data-dir", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                assert time.time() < deadline, "percore did not start"
                time.sleep(0.05)
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        time.sleep(0.03)
        by_shard = [[], []]
        for sock in conns:
            by_shard[shard_of(port, sock)].append(sock)
        keep, leave = sorted(by_shard, key=len, reverse=True)
        for sock in leave[2:]:
            sock.close()
        held = keep + leave[:2]
        print(f"{binary}: {len(keep)} and {len(leave[:2])} connections left")
        for phase, seconds in (("first", 0.3), ("next", 1.0)):
            before = per_shard(port, "percore_requests_total", 'route="ping"')
            start = time.time()
            while time.time() - start < seconds:
                for sock in held:
                    request(sock)
            after = per_shard(port, "percore_requests_total", 'route="ping"')
            got = [a - b for a, b in zip(after, before)]
            print(f"  {phase} {seconds} s: requests per shard {got}, busiest / mean {max(got) / (sum(got) / 2):.2f}")
    finally:
        daemon.kill()
        daemon.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    for i, binary in enumerate(sys.argv[1:]):
        run(binary, 18096 + i)
