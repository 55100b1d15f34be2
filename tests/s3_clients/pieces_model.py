"""Uploads whose bytes arrive in random pieces (seeded: PIECES_SEED,
PIECES_ROUNDS): aws-chunked bodies with signed chunks, and unsigned ones
with a CRC32 in the trailer, of random chunk sizes (from 1 byte to 70 KB,
chunk extensions as clients write them), and plain bodies with their
SHA-256 signed; each request's head and body written to the socket in
random cuts (1 byte to 9 KB, now and then after a pause), so that a chunk
header, a signature or a trailer line is split anywhere. Over plain HTTP, or HTTPS
(each cut a TLS record). Each is stored whole with its CRC32; a copy with one wrong byte, or a wrong chunk
signature, or a wrong trailer checksum, is refused and stores nothing.
Prints "ok" when every upload is as the model says."""
import base64
import hashlib
import os
import random
import socket
import time
import urllib.parse
import zlib

from common import ENDPOINT, client, code, tls_context
from raw import amz_now, aws_chunked, sign

SEED = int(os.environ.get("PIECES_SEED", "1"))
ROUNDS = int(os.environ.get("PIECES_ROUNDS", "40"))
BUCKET = "pieces"
s3 = client()


def crc32(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def chunked(path, chunks, signed, tamper=None, wrong_crc=False):
    """The head and body of an aws-chunked PUT of `chunks`."""
    headers, body = aws_chunked(path, chunks, signed, tamper, wrong_crc)
    return head("PUT", path, headers) + body


def plain(path, data, sent=None):
    """The head and body of a PUT of `data` whose SHA-256 is signed (and
    `sent` sent instead, if given)."""
    headers = {"content-length": str(len(data))}
    sign("PUT", path, [], headers, hashlib.sha256(data).hexdigest(), amz_now())
    return head("PUT", path, headers) + (data if sent is None else sent)


def head(method, path, headers):
    lines = ["%s %s HTTP/1.1" % (method, path)] + ["%s: %s" % (k, v) for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_in_pieces(rng, request):
    """Writes `request` in random cuts; returns the answer's status."""
    parsed = urllib.parse.urlparse(ENDPOINT)
    raw = socket.create_connection((parsed.hostname, parsed.port), timeout=20)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Over HTTPS each cut is a TLS record of its own.
    secure = parsed.scheme == "https"
    with tls_context().wrap_socket(raw, server_hostname=parsed.hostname) if secure else raw as sock:
        at = 0
        while at < len(request):
            cut = rng.choice([1, 2, 3, 7, 64, 500, 1400, 9000])
            sock.sendall(request[at:at + cut])
            at += cut
            if rng.random() < 0.02:
                time.sleep(0.002)
        answer = b""
        while b"\r\n\r\n" not in answer:
            got = sock.recv(65536)
            if not got:
                break
            answer += got
    return int(answer.split(b" ", 2)[1])


def random_chunks(rng, data):
    chunks, at = [], 0
    while at < len(data):
        size = rng.choice([1, 2, 5, 100, 8192, 65536, rng.randint(1, 70_000)])
        chunks.append(data[at:at + size])
        at += size
    return chunks


def main():
    rng = random.Random(SEED)
    s3.create_bucket(Bucket=BUCKET)
    for round_ in range(ROUNDS):
        data = os.urandom(rng.choice([0, 1, 100, 4096, 70_000, rng.randint(1, 300_000)]))
        kind = rng.choice(["signed-chunks", "trailer", "plain"])
        path = f"/{BUCKET}/{kind}-{round_}"
        chunks = random_chunks(rng, data) if data else []
        bad = rng.random() < 0.3 and data
        if kind == "signed-chunks":
            request = chunked(path, chunks, True, tamper=rng.randrange(len(chunks) + 1) if bad else None)
        elif kind == "trailer":
            request = chunked(path, chunks, False, wrong_crc=bool(bad))
        else:
            flipped = bytearray(data)
            if bad:
                flipped[rng.randrange(len(data))] ^= 1
            request = plain(path, data, bytes(flipped))
        status = send_in_pieces(rng, request)
        key = path.split("/", 2)[2]
        if bad:
            assert status in (400, 403), f"{kind} {len(data)} bytes in {len(chunks)} chunks, spoiled: {status}"
            assert code(lambda: s3.head_object(Bucket=BUCKET, Key=key)) == "404", f"{key} was stored"
            continue
        assert status == 200, f"{kind} {len(data)} bytes in {len(chunks)} chunks: {status}"
        got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == data, f"{kind} {len(data)} bytes in {len(chunks)} chunks: other bytes stored"
        if kind == "trailer":
            assert got.get("ChecksumCRC32") == crc32(data), (got.get("ChecksumCRC32"), crc32(data))
        s3.delete_object(Bucket=BUCKET, Key=key)
    s3.delete_bucket(Bucket=BUCKET)
    print(f"{ROUNDS} uploads in pieces as the model says")
    print("ok")


main()
