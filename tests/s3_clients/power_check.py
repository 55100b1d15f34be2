"""After a power cut and a restart (tests/powerloss.rs): for every round
logged under LOGS (sent<N>, acks<N>, bucket round-<N>; ROUNDS of them), each key
holds its last acknowledged version or one sent after it, never an older
one, and whole: body, Content-Type, metadata, ETag and CRC32 all of that
version (boto3 sends a CRC32 with each PutObject, multipart uploads ask
for one of the whole object, copies keep their source's).
A key with no acknowledged version may be missing. Nothing sent after the
shutdown was acknowledged, and the listing shows exactly the keys there."""
import base64
import hashlib
import json
import os
import zlib

import botocore

from common import body, client

s3 = client()
LOGS = os.environ["LOGS"]


def records(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def etag(record):
    pieces = record["pieces"]
    if record["meta"]["kind"] != "multipart":
        return '"%s"' % hashlib.md5(body(pieces)).hexdigest()
    digests = b"".join(hashlib.md5(body([piece])).digest() for piece in pieces)
    return '"%s-%d"' % (hashlib.md5(digests).hexdigest(), len(pieces))


checked, kinds, unacknowledged = 0, {}, 0
for r in range(int(os.environ["ROUNDS"])):
    bucket = "round-%d" % r
    sent = {(s["key"], s["version"]): s for s in records(os.path.join(LOGS, "sent%d" % r))}
    last = {}
    for ack in records(os.path.join(LOGS, "acks%d" % r)):
        record = sent[(ack["key"], ack["version"])]
        assert not record["after_down"], "acknowledged after the shutdown: %s" % ack
        assert ack["etag"] == etag(record), "ETag %s acknowledged for %s" % (ack["etag"], record)
        last[ack["key"]] = max(last.get(ack["key"], 0), ack["version"])
        kinds[record["meta"]["kind"]] = kinds.get(record["meta"]["kind"], 0) + 1
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed.update(o["Key"] for o in page.get("Contents", []))
    keys = {key for key, _ in sent}
    assert listed <= keys, "listed but never written: %s" % sorted(listed - keys)
    for key in sorted(keys):
        try:
            got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "NoSuchKey", e
            assert key not in last, "%s/%s: acknowledged version %d lost" % (bucket, key, last[key])
            assert key not in listed, "%s/%s: listed but not there" % (bucket, key)
            continue
        assert key in listed, "%s/%s: there but not listed" % (bucket, key)
        assert "version" in got["Metadata"], "%s/%s: metadata lost: %s" % (bucket, key, got["Metadata"])
        version = int(got["Metadata"]["version"])
        assert version >= last.get(key, 0), "%s/%s: version %d came back, %d was acknowledged" % (
            bucket, key, version, last[key])
        record = sent[(key, version)]
        assert got["Body"].read() == body(record["pieces"]), "%s/%s: the body is not version %d's" % (
            bucket, key, version)
        assert got["ContentType"] == record["type"], "%s/%s v%d: type %s" % (bucket, key, version, got["ContentType"])
        assert got["Metadata"] == record["meta"], "%s/%s v%d: metadata %s" % (bucket, key, version, got["Metadata"])
        assert got["ETag"] == etag(record), "%s/%s v%d: ETag %s, not %s" % (
            bucket, key, version, got["ETag"], etag(record))
        crc = base64.b64encode(zlib.crc32(body(record["pieces"])).to_bytes(4, "big")).decode()
        assert got.get("ChecksumCRC32") == crc, "%s/%s v%d: CRC32 %s, not %s" % (
            bucket, key, version, got.get("ChecksumCRC32"), crc)
        checked += 1
        unacknowledged += version > last.get(key, 0)
print("ok: %d objects checked (%d of them a version sent but not acknowledged); acknowledged: %s" % (
    checked, unacknowledged, ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
