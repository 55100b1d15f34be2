"""S3 through `percore rebalance` (tests/cluster.rs): PHASE=fill writes objects
(single-part and multipart, with Content-Type, metadata and tags) and folders into
bucket `moving` on three nodes and keeps what a HEAD of each says in
$WORK/kept.json, and gives `moving` and an empty bucket `quiet` CORS rules and
tags; PHASE=check, on four nodes after the rebalance, expects the same of every
key, every key listed once, and both buckets with their rules and tags on every
node (NODES: each node's own S3 endpoint, comma-separated), the new one too."""
import json
import os

import boto3
from botocore.config import Config

from common import KEY_ID, SECRET, client, content

s3 = client()
WORK = os.environ["WORK"]
PHASE = os.environ["PHASE"]
B = "moving"
MiB = 1 << 20
KEYS = [f"o/{i % 9}/k{i:03}" for i in range(240)]
BIG = [f"big/m{i}" for i in range(4)]
FOLDERS = [f"f{i:02}/" for i in range(24)]
QUIET = "quiet"
CORS = {b: {"CORSRules": [{"AllowedOrigins": [f"https://{b}.example"], "AllowedMethods": ["GET", "PUT"],
                            "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600}]}
        for b in (B, QUIET)}
BUCKET_TAGS = {b: [{"Key": "bucket", "Value": b}, {"Key": "team", "Value": "a b"}] for b in (B, QUIET)}


def described(key):
    head = s3.head_object(Bucket=B, Key=key)
    tags = s3.get_object_tagging(Bucket=B, Key=key)["TagSet"]
    return {"etag": head["ETag"], "type": head["ContentType"], "meta": head["Metadata"], "size": head["ContentLength"],
            "tags": tags}


def body(key):
    return content(key, 5 * MiB + 3 if key in BIG else 50 + len(key) * 7)


def settings_everywhere():
    """Each node, asked directly, holds both buckets with their rules and tags."""
    for endpoint in os.environ["NODES"].split(","):
        node = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                            region_name="us-east-1",
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))
        names = [b["Name"] for b in node.list_buckets()["Buckets"]]
        assert {B, QUIET} <= set(names), (endpoint, names)
        for b in (B, QUIET):
            node.head_bucket(Bucket=b)
            rules = node.get_bucket_cors(Bucket=b)["CORSRules"]
            assert rules == CORS[b]["CORSRules"], (endpoint, b, rules)
            tags = sorted(node.get_bucket_tagging(Bucket=b)["TagSet"], key=lambda t: t["Key"])
            assert tags == BUCKET_TAGS[b], (endpoint, b, tags)


if PHASE == "fill":
    s3.create_bucket(Bucket=B)
    s3.create_bucket(Bucket=QUIET)
    for b in (B, QUIET):
        s3.put_bucket_cors(Bucket=b, CORSConfiguration=CORS[b])
        s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": BUCKET_TAGS[b]})
    for i, k in enumerate(KEYS):
        tags = f"n={i}&name=key {i}" if i % 2 else ""
        s3.put_object(Bucket=B, Key=k, Body=body(k), ContentType=f"text/x-{i}", Metadata={"n": str(i)}, Tagging=tags)
    for k in BIG:
        data = body(k)
        up = s3.create_multipart_upload(Bucket=B, Key=k, ContentType="application/x-big", Metadata={"big": k},
                                        Tagging=f"big={k}")
        parts = []
        for n, at in enumerate(range(0, len(data), 5 * MiB), 1):
            r = s3.upload_part(Bucket=B, Key=k, UploadId=up["UploadId"], PartNumber=n, Body=data[at:at + 5 * MiB])
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        s3.complete_multipart_upload(Bucket=B, Key=k, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    for i, k in enumerate(FOLDERS):
        s3.put_object(Bucket=B, Key=k, Body=b"", Metadata={"folder": str(i)}, Tagging=f"folder={i}")
    kept = {k: described(k) for k in KEYS + BIG + FOLDERS}
    assert all(kept[k]["etag"].endswith('-2"') for k in BIG), kept[BIG[0]]
    assert kept[KEYS[1]]["tags"] == [{"Key": "n", "Value": "1"}, {"Key": "name", "Value": "key 1"}], kept[KEYS[1]]
    settings_everywhere()
    json.dump(kept, open(os.path.join(WORK, "kept.json"), "w"))
    open(os.path.join(WORK, "keys"), "w").write("\n".join(KEYS + BIG + FOLDERS))
    print("ok: filled", len(kept))

elif PHASE == "check":
    kept = json.load(open(os.path.join(WORK, "kept.json")))
    for k, was in kept.items():
        assert described(k) == was, (k, described(k), was)
        if not k.endswith("/"):
            assert s3.get_object(Bucket=B, Key=k)["Body"].read() == body(k), k
    listed, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=B, **({"ContinuationToken": token} if token else {}))
        listed += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert listed == sorted(kept), (len(listed), len(kept))
    assert s3.list_objects_v2(Bucket=QUIET)["KeyCount"] == 0
    settings_everywhere()
    print("ok: checked", len(kept))
