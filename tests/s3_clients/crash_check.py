"""After a kill -9 (tests/s3.rs): every acknowledged object and part is
there, whole; every object that is visible at all is whole."""
import hashlib
import os

from common import client, content

s3 = client()


def expected(key):
    source = key.replace("copy/", "mp/", 1)
    return content(source + "/1", 5 << 20) + content(source + "/2", 300000)


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
    assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == expected(key), "a partial object: " + key
missing = acked_objects - set(visible)
assert not missing, "acknowledged objects lost: %s" % sorted(missing)
open_uploads = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket="crash").get("Uploads", [])}
checked = 0
for key, uid, n, tag in acked_parts:
    if key in acked_objects or key in visible:
        continue  # completed: its parts are gone, the object is checked above
    assert uid in open_uploads, "an acknowledged part's upload is gone: %s %s" % (key, uid)
    parts = {p["PartNumber"]: p["ETag"] for p in s3.list_parts(Bucket="crash", Key=key, UploadId=uid)["Parts"]}
    assert parts.get(n) == tag, "acknowledged part %d of %s lost (%s)" % (n, key, parts)
    checked += 1
print("ok", len(visible), "objects", checked, "parts of open uploads")
