"""S3 on three nodes behind HAProxy (tests/cluster.rs): PHASE=fill writes and
checks a bucket through the S3 front end, PHASE=down runs with node b killed
(its keys in $WORK/on_b), PHASE=check after b is back checks everything and
removes it all."""
import os
import urllib.request

import boto3
from botocore.config import Config

from common import KEY_ID, SECRET, client, code, content

s3 = client()
WORK = os.environ["WORK"]
FILES = os.environ["FILES_ENDPOINT"]
PHASE = os.environ["PHASE"]
B = "spread"
N = 600
MiB = 1 << 20


def key(i):
    return f"d{i % 7}/sub{i % 3}/k{i:04}" + (" space+plus" if i % 50 == 0 else "")


KEYS = sorted(key(i) for i in range(N))
COPIES = [f"copies/c{i:03}" for i in range(40)]
FOLDER = "folder/"
# Copies of FOLDER, several of them on other nodes than FOLDER.
FOLDER_COPIES = [f"folders/f{j}/" for j in range(8)]


def listed(**kw):
    """Every key of a V2 listing, paged by `MaxKeys`, and the CommonPrefixes."""
    keys, prefixes, token = [], [], None
    while True:
        args = dict(Bucket=B, **kw)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            return keys, prefixes
        token = page["NextContinuationToken"]


def listed_v1(**kw):
    keys, marker = [], ""
    while True:
        page = s3.list_objects(Bucket=B, Marker=marker, **kw)
        got = [o["Key"] for o in page.get("Contents", [])]
        keys += got
        if not page["IsTruncated"]:
            return keys
        marker = got[-1]


def on_each_node():
    """A client of each node's own S3 listener (no front end)."""
    return [boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                         region_name="us-east-1",
                         config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
            for url in os.environ["NODES_S3"].split(",")]


def everything():
    return sorted(KEYS + COPIES + FOLDER_COPIES + [FOLDER, "parts/big", "parts/copied"])


def check_all():
    keys, _ = listed(MaxKeys=97)
    assert keys == everything(), (len(keys), len(everything()))
    for i, k in enumerate(KEYS):
        assert s3.get_object(Bucket=B, Key=k)["Body"].read() == content(k, 100 + i), k
    for i, c in enumerate(COPIES):
        got = s3.get_object(Bucket=B, Key=c)
        assert got["Body"].read() == content(KEYS[i * 7], 100 + i * 7), c
        assert tags(c) == copied_tags(i), (c, tags(c))
    for f in FOLDER_COPIES:
        assert s3.head_object(Bucket=B, Key=f)["Metadata"] == {"folder": "yes"}, f
        assert tags(f) == {"kind": "folder"}, f


def tags(key):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=B, Key=key)["TagSet"]}


def copied_tags(i):
    """The tags of COPIES[i]: its source's (odd sources have some), or the
    ones a copy with TaggingDirective=REPLACE gave the second."""
    return {"new": "1"} if i == 1 else {"src": str(i * 7)} if i % 2 else {}


if PHASE == "fill":
    s3.create_bucket(Bucket=B)
    assert code(lambda: s3.create_bucket(Bucket=B)) == "BucketAlreadyOwnedByYou"
    for i, k in enumerate(KEYS):
        s3.put_object(Bucket=B, Key=k, Body=content(k, 100 + i), Metadata={"n": str(i)}, ContentType="text/x-n")
    s3.put_object(Bucket=B, Key=FOLDER, Body=b"", Metadata={"folder": "yes"}, Tagging="kind=folder")
    with open(os.path.join(WORK, "keys"), "w") as f:
        f.write("\n".join(KEYS))
    # The /files/ front end finds each object on the same node.
    for k in KEYS[::25]:
        path = urllib.request.quote(f"/files/{B}/{k}")
        with urllib.request.urlopen(FILES + path) as r:
            assert r.read() == content(k, 100 + KEYS.index(k)), k
    # Listings gathered from every node: complete, ordered, paged.
    keys, _ = listed(MaxKeys=100)
    assert keys == sorted(KEYS + [FOLDER]), len(keys)
    # So are the versions (each key's one, null) that bucket-emptying scripts list.
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=B, PaginationConfig={"PageSize": 150})
    versions = [v for page in pages for v in page.get("Versions", [])]
    assert [v["Key"] for v in versions] == sorted(KEYS + [FOLDER]), len(versions)
    assert {v["VersionId"] for v in versions} == {"null"}
    assert listed_v1(MaxKeys=73) == sorted(KEYS + [FOLDER])
    _, prefixes = listed(Delimiter="/")
    assert prefixes == ["d0/", "d1/", "d2/", "d3/", "d4/", "d5/", "d6/", FOLDER], prefixes
    keys, prefixes = listed(Prefix="d1/", Delimiter="/", MaxKeys=2)
    assert (keys, prefixes) == ([], ["d1/sub0/", "d1/sub1/", "d1/sub2/"]), (keys, prefixes)
    keys, _ = listed(StartAfter=KEYS[300])
    assert keys == sorted(KEYS + [FOLDER])[sorted(KEYS + [FOLDER]).index(KEYS[300]) + 1:]
    # Copies between nodes keep bytes, metadata and tags; REPLACE replaces them.
    for i in range(1, len(COPIES), 2):
        s3.put_object_tagging(Bucket=B, Key=KEYS[i * 7], Tagging={"TagSet": [{"Key": "src", "Value": str(i * 7)}]})
    for i, c in enumerate(COPIES):
        s3.copy_object(Bucket=B, Key=c, CopySource={"Bucket": B, "Key": KEYS[i * 7]})
        got = s3.get_object(Bucket=B, Key=c)
        assert got["Body"].read() == content(KEYS[i * 7], 100 + i * 7), c
        assert got["Metadata"] == {"n": str(i * 7)} and got["ContentType"] == "text/x-n", got
    s3.copy_object(Bucket=B, Key=COPIES[0], CopySource={"Bucket": B, "Key": KEYS[0]},
                   MetadataDirective="REPLACE", Metadata={"new": "1"})
    assert s3.head_object(Bucket=B, Key=COPIES[0])["Metadata"] == {"new": "1"}
    s3.copy_object(Bucket=B, Key=COPIES[1], CopySource={"Bucket": B, "Key": KEYS[7]}, TaggingDirective="REPLACE",
                   Tagging="new=1")
    assert code(lambda: s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "missing"})) == "NoSuchKey"
    # A folder copied to folders on every node, with its metadata and tags.
    for f in FOLDER_COPIES:
        s3.copy_object(Bucket=B, Key=f, CopySource={"Bucket": B, "Key": FOLDER})
    assert code(lambda: s3.copy_object(Bucket=B, Key="folders/none/", CopySource={"Bucket": B, "Key": "no-such/"})) \
        == "NoSuchKey"
    # In parts, one copied from another node's object by ranges.
    big = content("big", 6 * MiB + 5)
    s3.put_object(Bucket=B, Key="parts/big", Body=big)
    up = s3.create_multipart_upload(Bucket=B, Key="parts/copied")["UploadId"]
    parts = []
    for n, (first, last) in enumerate([(0, 5 * MiB - 1), (5 * MiB, 6 * MiB + 4)], 1):
        r = s3.upload_part_copy(Bucket=B, Key="parts/copied", UploadId=up, PartNumber=n,
                                CopySource={"Bucket": B, "Key": "parts/big"}, CopySourceRange=f"bytes={first}-{last}")
        parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
    bad = lambda: s3.upload_part_copy(Bucket=B, Key="parts/copied", UploadId=up, PartNumber=3,
                                      CopySource={"Bucket": B, "Key": "parts/big"}, CopySourceRange="bytes=0-99999999")
    assert code(bad) == "InvalidArgument", code(bad)
    # Unfinished uploads on several nodes, listed together.
    pending = {f"pending/u{i}": s3.create_multipart_upload(Bucket=B, Key=f"pending/u{i}")["UploadId"] for i in range(6)}
    uploads = s3.list_multipart_uploads(Bucket=B)["Uploads"]
    assert sorted((u["Key"], u["UploadId"]) for u in uploads) == sorted(list(pending.items()) + [("parts/copied", up)])
    for k, u in pending.items():
        s3.abort_multipart_upload(Bucket=B, Key=k, UploadId=u)
    s3.complete_multipart_upload(Bucket=B, Key="parts/copied", UploadId=up, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=B, Key="parts/copied")["Body"].read() == big
    # CORS rules on every node: a preflight for any key is answered.
    s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["http://page.test"], "AllowedMethods": ["GET"]}]})
    for k in KEYS[:30]:
        req = urllib.request.Request(os.environ["S3_ENDPOINT"] + urllib.request.quote(f"/{B}/{k}"), method="OPTIONS",
                                     headers={"Origin": "http://page.test", "Access-Control-Request-Method": "GET"})
        with urllib.request.urlopen(req) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "http://page.test", k
    # A bucket's tags are kept on every node, so any node answers; removed
    # from every node too.
    bucket_tags = [{"Key": "team", "Value": "storage"}, {"Key": "cost centre", "Value": "42"}]
    s3.put_bucket_tagging(Bucket=B, Tagging={"TagSet": bucket_tags})
    for node in on_each_node():
        assert node.get_bucket_tagging(Bucket=B)["TagSet"] == bucket_tags
    s3.delete_bucket_tagging(Bucket=B)
    for node in on_each_node():
        assert code(lambda: node.get_bucket_tagging(Bucket=B)) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=B, Tagging={"TagSet": bucket_tags})
    check_all()
    print("ok: filled", len(everything()))

elif PHASE == "down":
    on_b = set(open(os.path.join(WORK, "on_b")).read().split("\n"))
    assert len(on_b) > 100, len(on_b)
    served = 0
    unavailable = ("ServiceUnavailable", "503")
    for i, k in enumerate(KEYS):
        if k in on_b:
            assert code(lambda: s3.get_object(Bucket=B, Key=k)) in unavailable, k
            # Nor written, copied over or deleted elsewhere.
            if i % 10 == 0:
                put = code(lambda: s3.put_object(Bucket=B, Key=k, Body=b"elsewhere"))
                assert put in unavailable, (k, put)
                assert code(lambda: s3.head_object(Bucket=B, Key=k)) in unavailable, k
                assert code(lambda: s3.delete_object(Bucket=B, Key=k)) in unavailable, k
                copy = lambda: s3.copy_object(Bucket=B, Key=k, CopySource={"Bucket": B, "Key": COPIES[2]})
                assert code(copy) in unavailable, k
        else:
            assert s3.get_object(Bucket=B, Key=k)["Body"].read() == content(k, 100 + i), k
            served += 1
    # A listing without b's keys would read as their deletion: refused.
    assert code(lambda: s3.list_objects_v2(Bucket=B)) in ("ServiceUnavailable", "503")
    assert code(lambda: s3.list_multipart_uploads(Bucket=B)) in ("ServiceUnavailable", "503")
    assert code(lambda: s3.create_bucket(Bucket="another")) in ("ServiceUnavailable", "503")
    # A batch delete reports b's keys as failed (they come back with b).
    victims = [k for k in KEYS if k in on_b][:3]
    result = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in victims]})
    assert sorted(e["Key"] for e in result["Errors"]) == victims and not result.get("Deleted"), result
    print("ok: with b down", served, "served,", len(on_b), "refused")

elif PHASE == "check":
    check_all()
    assert s3.get_bucket_tagging(Bucket=B)["TagSet"] == [{"Key": "team", "Value": "storage"},
                                                       {"Key": "cost centre", "Value": "42"}]
    # The bucket made while b was down is made on b too by making it again,
    # then removed from every node.
    try:
        s3.create_bucket(Bucket="another")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.delete_bucket(Bucket="another")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [B]
    assert code(lambda: s3.delete_bucket(Bucket=B)) == "BucketNotEmpty"
    # A batch whose ETags do not match deletes nothing, whichever node holds
    # each key (its ETag goes with it there); with the right ones it does.
    sample = KEYS[:30]
    wrong = '"00000000000000000000000000000000"'
    result = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k, "ETag": wrong} for k in sample]})
    assert not result.get("Deleted") and sorted(e["Key"] for e in result["Errors"]) == sample, result
    assert {e["Code"] for e in result["Errors"]} == {"PreconditionFailed"}, result
    etags = {k: s3.head_object(Bucket=B, Key=k)["ETag"] for k in sample}
    result = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k, "ETag": etags[k]} for k in sample]})
    assert not result.get("Errors") and sorted(d["Key"] for d in result["Deleted"]) == sample, result
    gone = everything()
    for at in range(0, len(gone), 250):
        result = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in gone[at:at + 250]]})
        assert not result.get("Errors") and len(result["Deleted"]) == len(gone[at:at + 250]), result
    assert listed() == ([], [])
    s3.delete_bucket(Bucket=B)
    assert code(lambda: s3.head_bucket(Bucket=B)) in ("404", "NoSuchBucket")
    print("ok: checked and removed", len(gone))
