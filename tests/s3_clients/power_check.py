"""After a power cut and a restart (tests/powerloss.rs): for every round
logged under LOGS (sent<N>, acks<N>, bucket round-<N>; ROUNDS of them), each key
holds its last acknowledged version or one sent after it, never an older
one, and whole: body, Content-Type, metadata, tags, ETag and CRC32 all of
that version (boto3 sends a CRC32 with each PutObject, multipart uploads
ask for one of the whole object, copies keep their source's). A version
whose tags were replaced in place holds its own first tags or a
replacement sent for it, never an older one than the last acknowledged.
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


checked, kinds, unacknowledged, retagged = 0, {}, 0, 0
for r in range(int(os.environ["ROUNDS"])):
    bucket = "round-%d" % r
    sent = {(s["key"], s["version"]): s for s in records(os.path.join(LOGS, "sent%d" % r))}
    last = {}
    # The last acknowledged replacement of each version's tags.
    last_retag = {}
    for ack in records(os.path.join(LOGS, "acks%d" % r)):
        record = sent[(ack["key"], ack["version"])]
        assert not record["after_down"], "acknowledged after the shutdown: %s" % ack
        kinds[record["meta"]["kind"]] = kinds.get(record["meta"]["kind"], 0) + 1
        if "tag_of" in record:
            at = (ack["key"], record["tag_of"])
            last_retag[at] = max(last_retag.get(at, 0), ack["version"])
            continue
        assert ack["etag"] == etag(record), "ETag %s acknowledged for %s" % (ack["etag"], record)
        last[ack["key"]] = max(last.get(ack["key"], 0), ack["version"])
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
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        assert tags.get("version") == str(version), "%s/%s v%d: tags %s" % (bucket, key, version, tags)
        if "retag" in tags:
            replacement = sent.get((key, int(tags["retag"])), {})
            assert replacement.get("tag_of") == version, "%s/%s v%d: tags %s were never sent for it" % (
                bucket, key, version, tags)
            retagged += 1
        acked_retag = last_retag.get((key, version), 0)
        assert int(tags.get("retag", 0)) >= acked_retag, "%s/%s v%d: tags %s, replacement %d was acknowledged" % (
            bucket, key, version, tags, acked_retag)
        crc = base64.b64encode(zlib.crc32(body(record["pieces"])).to_bytes(4, "big")).decode()
        assert got.get("ChecksumCRC32") == crc, "%s/%s v%d: CRC32 %s, not %s" % (
            bucket, key, version, got.get("ChecksumCRC32"), crc)
        checked += 1
        unacknowledged += version > last.get(key, 0)
print("ok: %d objects checked (%d of them a version sent but not acknowledged, %d with tags replaced); "
      "acknowledged: %s" % (checked, unacknowledged, retagged, ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
