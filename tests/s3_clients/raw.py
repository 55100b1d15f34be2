"""A small SigV4 signer over http.client, for requests no SDK sends:
tampered bodies, signed aws-chunked bodies, skewed clocks, path tricks."""
import base64
import datetime
import hashlib
import hmac
import http.client
import os
import urllib.parse
import zlib

from common import CA, ENDPOINT, KEY_ID, SECRET, tls_context

EMPTY = hashlib.sha256(b"").hexdigest()


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(date, secret=SECRET):
    k = _hmac(("AWS4" + secret).encode(), date)
    for part in ("us-east-1", "s3", "aws4_request"):
        k = _hmac(k, part)
    return k


def amz_now(shift=0):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=shift)).strftime("%Y%m%dT%H%M%SZ")


def quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def sign(method, path, query, headers, payload_hash, amz_date, secret=SECRET):
    """Adds x-amz-date, x-amz-content-sha256 and Authorization to `headers`;
    returns the signature (the seed of a chunk chain)."""
    host = urllib.parse.urlparse(ENDPOINT).netloc
    headers["host"] = host
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    names = sorted(h.lower() for h in headers)
    canonical_headers = "".join("%s:%s\n" % (n, str(headers[n]).strip()) for n in names)
    canonical_query = "&".join("%s=%s" % (quote(k), quote(v)) for k, v in sorted(query))
    canonical_path = urllib.parse.quote(urllib.parse.unquote(path), safe="/-_.~")
    canonical = "\n".join([method, canonical_path, canonical_query, canonical_headers, ";".join(names), payload_hash])
    scope = "%s/us-east-1/s3/aws4_request" % amz_date[:8]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(signing_key(amz_date[:8], secret), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        KEY_ID, scope, ";".join(names), signature)
    return signature


def send(method, path, query=(), headers=None, body=b""):
    """Sends a request as given; returns (status, headers, body)."""
    parsed = urllib.parse.urlparse(ENDPOINT)
    if parsed.scheme == "https":
        conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=tls_context(), timeout=10)
    else:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    target = path + ("?" + "&".join("%s=%s" % (quote(k), quote(v)) for k, v in query) if query else "")
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def started_put(path, length, headers):
    """A PUT of `length` bytes (UNSIGNED-PAYLOAD) whose head is sent and body
    not yet: the caller sends the body (`.send`), then `finished`."""
    headers = dict(headers)
    headers["content-length"] = str(length)
    sign("PUT", path, [], headers, "UNSIGNED-PAYLOAD", amz_now())
    parsed = urllib.parse.urlparse(ENDPOINT)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


def finished(conn):
    """The (status, body) of a request sent through `started_put`."""
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def signed(method, path, query=(), body=b"", headers=None, payload_hash=None, amz_date=None, secret=SECRET):
    headers = dict(headers or {})
    sign(method, path, list(query), headers, payload_hash or hashlib.sha256(body).hexdigest(), amz_date or amz_now(), secret)
    return send(method, path, list(query), headers, body)


def presigned(method, path, params=(), expires=300, secret=SECRET):
    """A presigned URL's path and query (UNSIGNED-PAYLOAD, only `host` signed)
    with `params` (say, headers moved into the query as the AWS SDK for
    JavaScript's presigner moves them) among its parameters."""
    amz_date = amz_now()
    scope = "%s/us-east-1/s3/aws4_request" % amz_date[:8]
    query = list(params) + [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "%s/%s" % (KEY_ID, scope)),
                            ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")]
    host = urllib.parse.urlparse(ENDPOINT).netloc
    canonical_query = "&".join("%s=%s" % (quote(k), quote(v)) for k, v in sorted(query))
    canonical_path = urllib.parse.quote(urllib.parse.unquote(path), safe="/-_.~")
    canonical = "\n".join([method, canonical_path, canonical_query, "host:%s\n" % host, "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(signing_key(amz_date[:8], secret), to_sign.encode(), hashlib.sha256).hexdigest()
    return query + [("X-Amz-Signature", signature)]


def aws_chunked(path, chunks, signed=True, tamper=None, wrong_crc=False):
    """The signed headers and the body of an aws-chunked PUT of `chunks`:
    each chunk signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD; chunk `tamper`
    gets a wrong signature), or unsigned with a CRC32 in the trailer
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER; a wrong one with `wrong_crc`)."""
    amz_date = amz_now()
    data = b"".join(chunks)
    frames = list(chunks) + [b""]
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    trailer = b""
    if signed:
        lengths = [len(b"%x;chunk-signature=%s\r\n" % (len(c), b"0" * 64)) + len(c) + 2 for c in frames]
    else:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
        headers["x-amz-sdk-checksum-algorithm"] = "CRC32"
        crc = zlib.crc32(data + (b"!" if wrong_crc else b"")).to_bytes(4, "big")
        trailer = b"x-amz-checksum-crc32:%s\r\n\r\n" % base64.b64encode(crc)
        lengths = [len(b"%x\r\n" % len(c)) + len(c) + 2 for c in frames[:-1]] + [len(b"0\r\n") + len(trailer)]
    headers["content-length"] = str(sum(lengths))
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" if signed else "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    previous = sign("PUT", path, [], headers, payload, amz_date)
    key = signing_key(amz_date[:8])
    scope = "%s/us-east-1/s3/aws4_request" % amz_date[:8]
    body = b""
    for n, c in enumerate(frames):
        if signed:
            to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY, hashlib.sha256(c).hexdigest()])
            signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            previous = signature
            if n == tamper:
                signature = "0" * 64
            body += b"%x;chunk-signature=%s\r\n" % (len(c), signature.encode()) + c + b"\r\n"
        elif c:
            body += b"%x\r\n" % len(c) + c + b"\r\n"
        else:
            body += b"0\r\n" + trailer
    assert len(body) == int(headers["content-length"]), (len(body), headers["content-length"])
    return headers, body


def chunked_signed(path, chunks, tamper=None):
    """A PUT with an aws-chunked body whose chunks are signed
    (STREAMING-AWS4-HMAC-SHA256-PAYLOAD); chunk `tamper` gets a wrong signature."""
    headers, body = aws_chunked(path, chunks, tamper=tamper)
    return send("PUT", path, [], headers, body)
