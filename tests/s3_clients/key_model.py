"""Random keys (seeded: KEYS_SEED, KEYS_COUNT) drawn from characters that
need encoding in a URL, in XML or in a signature (space, `+ % ? # & = ; :
@ ! $ ' ( ) * , [ ] { } ~ ^ | < > "`, non-ASCII letters, emoji, combining
marks) and from what the store cannot hold (a backslash, control
characters, `.` and `..` segments, doubled slashes, the reserved
`.percore-` prefix, segments over 255 bytes). A key the store can hold
goes through PutObject, HeadObject, GetObject, a presigned GET, a listing
(boto3 asks for url encoding), CopyObject, a multipart upload and
DeleteObjects, and comes back as it was sent; any other is refused with a
400 that says why and stores nothing. Prints "ok" when every key does."""
import os
import random
import urllib.request

import botocore

from common import client, code

s3 = client()
SEED = int(os.environ.get("KEYS_SEED", "1"))
COUNT = int(os.environ.get("KEYS_COUNT", "150"))
BUCKET = "keys"

SAFE = list("abcXYZ019-_.") + list(" +%?#&=;:@!$'()*,[]{}~^|<>\"`") + ["é", "日本", "😀", "e\u0301", "\u05d0", "ß"]
BAD = ["\\", "\t", "\x7f", "\x01", "/./", "/../", "//", "/.percore-x", "\n"]


def random_key(rng):
    """A key, and whether the store can hold it."""
    segments = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        segments.append("".join(rng.choice(SAFE) for _ in range(rng.randint(1, 12))))
    key = "/".join(segments)
    if rng.random() < 0.03:
        key += "/" + "a" * 256  # a segment over 255 bytes
        return key, False
    if rng.random() < 0.25:
        at = rng.randint(0, len(key))
        key = key[:at] + rng.choice(BAD) + key[at:]
    storable = not (any(b in key for b in ("\\", "\t", "\x7f", "\x01", "\n", "//"))
                    or any(seg in (".", "..") or seg.startswith(".percore-") for seg in key.split("/"))
                    or key.startswith("/") or key.endswith("/") or not key)
    return key, storable


def main():
    rng = random.Random(SEED)
    s3.create_bucket(Bucket=BUCKET)
    keys = {}
    while len(keys) < COUNT:
        key, storable = random_key(rng)
        # A key whose directories would be another key of the set cannot be both.
        if any(k.startswith(key + "/") or key.startswith(k + "/") for k in keys):
            continue
        keys[key] = storable
    held = sorted((k for k, ok in keys.items() if ok), key=lambda k: k.encode())
    for key, storable in keys.items():
        body = key.encode("utf-8", "surrogatepass") * 3
        try:
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        except botocore.exceptions.ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert not storable, f"{key!r} was refused: {e} {e.response}"
            assert status == 400 and e.response["Error"].get("Message"), (repr(key), e.response)
            continue
        assert storable, f"{key!r} was taken, but the store cannot hold it as it is"
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body, repr(key)
        assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(body), repr(key)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
        with urllib.request.urlopen(url) as got:
            assert got.read() == body, repr(key)
    # Listed as sent, in byte order, one at a time and all at once.
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 7})
              for o in page.get("Contents", [])]
    assert listed == held, f"listed {len(listed)}, held {len(held)}: {set(listed) ^ set(held)}"
    listed_v1 = [o["Key"] for page in s3.get_paginator("list_objects").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 11})
                 for o in page.get("Contents", [])]
    assert listed_v1 == held
    for key in held[:20]:
        got = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])]
        assert got == [k for k in held if k.startswith(key)], (repr(key), got)
    # Copies (the source in a header, URL-encoded) and multipart uploads.
    for key in held[:30]:
        copy = f"copies/{key}"
        s3.copy_object(Bucket=BUCKET, Key=copy, CopySource={"Bucket": BUCKET, "Key": key})
        assert s3.get_object(Bucket=BUCKET, Key=copy)["Body"].read() == key.encode() * 3, repr(key)
        s3.delete_object(Bucket=BUCKET, Key=copy)
    for key in held[:10]:
        up = s3.create_multipart_upload(Bucket=BUCKET, Key=f"parts/{key}")
        part = s3.upload_part(Bucket=BUCKET, Key=f"parts/{key}", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
        s3.complete_multipart_upload(Bucket=BUCKET, Key=f"parts/{key}", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        assert s3.get_object(Bucket=BUCKET, Key=f"parts/{key}")["Body"].read() == b"p"
        s3.delete_object(Bucket=BUCKET, Key=f"parts/{key}")
    # Deleted in batches: every key named in the XML document as sent.
    for at in range(0, len(held), 50):
        r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in held[at:at + 50]]})
        assert not r.get("Errors") and sorted(d["Key"] for d in r["Deleted"]) == sorted(held[at:at + 50]), r.get("Errors")
    # Keys that differ only in spaces beside an entity, or at their ends:
    # deleting one leaves the other.
    for gone, kept in (("Tom & Jerry", "Tom&Jerry"), (" padded ", "padded")):
        for key in (gone, kept):
            s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
        r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": gone}]})
        assert [d["Key"] for d in r.get("Deleted", [])] == [gone], r
        assert s3.get_object(Bucket=BUCKET, Key=kept)["Body"].read() == kept.encode(), f"{kept!r} was deleted"
        assert code(lambda: s3.head_object(Bucket=BUCKET, Key=gone)) == "404", f"{gone!r} is still there"
        s3.delete_object(Bucket=BUCKET, Key=kept)
    left = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert left == [], [o["Key"] for o in left]
    s3.delete_bucket(Bucket=BUCKET)
    print(f"{len(held)} keys round trip, {len(keys) - len(held)} refused")
    print("ok")


main()
