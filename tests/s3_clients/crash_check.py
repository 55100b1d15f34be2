"""After a kill -9 (tests/s3.rs): every acknowledged object and part is
there, whole, with its checksum; every object that is visible at all is
whole."""
import base64
import hashlib
import os
import zlib

from common import client, content

s3 = client()


def expected(key):
    source = key.replace("copy/", "mp/", 1)
    return content(source + "/1", 5 << 20) + content(source + "/2", 300000)


def crc32(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


acked_objects, acked_parts, completed = set(), [], set()
for line in open(os.environ["ACKS"]):
    kind, rest = line.split(" ", 1)
    if kind == "object":
        acked_objects.add(rest.strip())
    else:
        key, uid, n, tag = rest.split()
        acked_parts.append((key, uid, int(n), tag))
visible = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash") for o in page.get("Contents", [])]
for key in visible:
    got = s3.get_object(Bucket="crash", Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == expected(key), "a partial object: " + key
    assert got.get("ChecksumCRC32") == crc32(expected(key)), "%s: checksum %s" % (key, got.get("ChecksumCRC32"))
missing = acked_objects - set(visible)
assert not missing, "acknowledged objects lost: %s" % sorted(missing)
open_uploads = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket="crash").get("Uploads", [])}
checked = 0
for key, uid, n, tag in acked_parts:
    if key in acked_objects or key in visible:
        continue  # completed: its parts are gone, the object is checked above
    assert uid in open_uploads, "an acknowledged part's upload is gone: %s %s" % (key, uid)
    listed = s3.list_parts(Bucket="crash", Key=key, UploadId=uid)["Parts"]
    parts = {p["PartNumber"]: (p["ETag"], p.get("ChecksumCRC32")) for p in listed}
    size = 5 << 20 if n == 1 else 300000
    kept = (tag, crc32(content("%s/%d" % (key, n), size)))
    assert parts.get(n) == kept, "acknowledged part %d of %s lost (%s)" % (n, key, parts)
    checked += 1
print("ok", len(visible), "objects", checked, "parts of open uploads")
