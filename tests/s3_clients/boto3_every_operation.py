"""boto3 through every operation percore's S3 API serves (tests/s3.rs)."""
import concurrent.futures
import datetime
import hashlib
import os
import time
import urllib.error
import urllib.request

from common import client, code, tls_context
import raw  # the signer of tests that SDKs cannot express

s3 = client()

# Buckets.
s3.create_bucket(Bucket="photos")
assert code(lambda: s3.create_bucket(Bucket="photos")) == "BucketAlreadyOwnedByYou"
assert code(lambda: s3.create_bucket(Bucket="No_Good")) == "InvalidBucketName"
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["photos"]
s3.head_bucket(Bucket="photos")
assert code(lambda: s3.head_bucket(Bucket="not-there")) == "404"
assert s3.get_bucket_location(Bucket="photos").get("LocationConstraint") is None
# ListBuckets as current SDKs page it: by prefix, a page at a time, with
# each bucket's region.
for name in ["pre-c", "pre-a", "pre-b", "prf"]:
    s3.create_bucket(Bucket=name)
listed = s3.list_buckets(Prefix="pre-")
assert [b["Name"] for b in listed["Buckets"]] == ["pre-a", "pre-b", "pre-c"] and listed["Prefix"] == "pre-", listed
assert {b["BucketRegion"] for b in listed["Buckets"]} == {"us-east-1"}
pages = list(s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 2}))
assert [len(p["Buckets"]) for p in pages] == [2, 2, 1], [len(p["Buckets"]) for p in pages]
assert [b["Name"] for p in pages for b in p["Buckets"]] == ["photos", "pre-a", "pre-b", "pre-c", "prf"]
assert "ContinuationToken" not in pages[-1]
assert s3.list_buckets(BucketRegion="eu-west-1")["Buckets"] == []
assert code(lambda: client(parameter_validation=False).list_buckets(MaxBuckets=0)) == "InvalidArgument"
for name in ["pre-c", "pre-a", "pre-b", "prf"]:
    s3.delete_bucket(Bucket=name)

# Objects: metadata round trip, ranges, conditionals, overrides.
body = os.urandom(4096)
key = "2024/a b/ü+&.jpg"
put = s3.put_object(Bucket="photos", Key=key, Body=body, ContentType="image/jpeg",
                    Metadata={"camera": "x100", "Lens": "23mm"}, ContentDisposition="inline",
                    Expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc))
etag = '"%s"' % hashlib.md5(body).hexdigest()
assert put["ETag"] == etag, put
got = s3.get_object(Bucket="photos", Key=key)
assert got["Body"].read() == body
assert got["ContentType"] == "image/jpeg" and got["ContentDisposition"] == "inline"
assert got["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT", got["ResponseMetadata"]
assert got["Metadata"] == {"camera": "x100", "lens": "23mm"}, got["Metadata"]
assert got["ETag"] == etag and got["ContentLength"] == 4096
assert s3.get_object(Bucket="photos", Key=key, Range="bytes=10-19")["Body"].read() == body[10:20]
assert code(lambda: s3.get_object(Bucket="photos", Key=key, Range="bytes=5000-")) == "InvalidRange"
assert code(lambda: s3.get_object(Bucket="photos", Key=key, IfNoneMatch=etag)) == "304"
assert code(lambda: s3.get_object(Bucket="photos", Key=key, IfMatch='"nope"')) == "PreconditionFailed"
assert s3.get_object(Bucket="photos", Key=key, IfMatch=etag)["Body"].read() == body
over = s3.get_object(Bucket="photos", Key=key, ResponseContentType="text/plain",
                     ResponseContentDisposition="attachment; filename=x.jpg")
assert over["ContentType"] == "text/plain" and over["ContentDisposition"] == "attachment; filename=x.jpg"
head = s3.head_object(Bucket="photos", Key=key)
assert head["ContentLength"] == 4096 and head["ETag"] == etag and head["Metadata"]["camera"] == "x100"
assert code(lambda: s3.head_object(Bucket="photos", Key="missing")) == "404"
assert code(lambda: s3.get_object(Bucket="photos", Key="missing")) == "NoSuchKey"
assert code(lambda: s3.get_object(Bucket="not-there", Key="missing")) == "NoSuchBucket"
assert code(lambda: s3.put_object(Bucket="not-there", Key="k", Body=b"x")) == "NoSuchBucket"

# CopyObject: metadata copied, or replaced; onto itself only with REPLACE.
copied = s3.copy_object(Bucket="photos", Key="copy.jpg", CopySource={"Bucket": "photos", "Key": key})
assert copied["CopyObjectResult"]["ETag"] == etag
assert s3.head_object(Bucket="photos", Key="copy.jpg")["Metadata"] == {"camera": "x100", "lens": "23mm"}
s3.copy_object(Bucket="photos", Key="copy.jpg", CopySource={"Bucket": "photos", "Key": "copy.jpg"},
               MetadataDirective="REPLACE", Metadata={"k": "v"}, ContentType="text/x-copy")
head = s3.head_object(Bucket="photos", Key="copy.jpg")
assert head["Metadata"] == {"k": "v"} and head["ContentType"] == "text/x-copy", head
assert code(lambda: s3.copy_object(Bucket="photos", Key="copy.jpg",
                                   CopySource={"Bucket": "photos", "Key": "copy.jpg"})) == "InvalidRequest"
assert s3.get_object(Bucket="photos", Key="copy.jpg")["Body"].read() == body
assert code(lambda: s3.put_object(Bucket="photos", Key="copy.jpg", Body=b"x", IfNoneMatch="*")) == "PreconditionFailed"
# The copy's source conditions: each one that does not hold copies nothing
# (412); an ETag quoted or not; If-Match wins over If-Unmodified-Since and
# If-None-Match over If-Modified-Since, as RFC 9110 orders them.
src = {"Bucket": "photos", "Key": key}
modified = s3.head_object(Bucket="photos", Key=key)["LastModified"]
before, after = modified - datetime.timedelta(hours=1), modified + datetime.timedelta(hours=1)
for failing in [{"CopySourceIfMatch": '"0123"'}, {"CopySourceIfNoneMatch": etag},
                {"CopySourceIfNoneMatch": etag.strip('"')}, {"CopySourceIfNoneMatch": "*"},
                {"CopySourceIfUnmodifiedSince": before}, {"CopySourceIfModifiedSince": after},
                {"CopySourceIfModifiedSince": modified}, {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": before}]:
    assert code(lambda: s3.copy_object(Bucket="photos", Key="cond-copy", CopySource=src, **failing)) == \
        "PreconditionFailed", failing
    assert code(lambda: s3.head_object(Bucket="photos", Key="cond-copy")) == "404", failing
for holding in [{"CopySourceIfMatch": etag}, {"CopySourceIfMatch": etag.strip('"')}, {"CopySourceIfMatch": "*"},
                {"CopySourceIfNoneMatch": '"0123"'}, {"CopySourceIfUnmodifiedSince": after},
                {"CopySourceIfUnmodifiedSince": modified}, {"CopySourceIfModifiedSince": before},
                {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before}]:
    s3.copy_object(Bucket="photos", Key="cond-copy", CopySource=src, **holding)
    assert s3.get_object(Bucket="photos", Key="cond-copy")["Body"].read() == body, holding
    s3.delete_object(Bucket="photos", Key="cond-copy")
refused_copy = raw.signed("PUT", "/photos/cond-copy", headers={"x-amz-copy-source": "/photos/copy.jpg",
                                                               "x-amz-copy-source-if-modified-since": "last week"})
assert refused_copy[0] == 400 and b"InvalidArgument" in refused_copy[2], refused_copy

# The checksum an upload sent is kept and returned with whole-object answers
# (boto3 checks it against the bytes); never with a range.
summed = s3.put_object(Bucket="photos", Key="summed", Body=body, ChecksumAlgorithm="SHA256")
whole = s3.get_object(Bucket="photos", Key="summed", ChecksumMode="ENABLED")
assert whole["ChecksumSHA256"] == summed["ChecksumSHA256"] and whole["Body"].read() == body, whole
assert s3.head_object(Bucket="photos", Key="summed", ChecksumMode="ENABLED")["ChecksumSHA256"] == summed["ChecksumSHA256"]
part = s3.get_object(Bucket="photos", Key="summed", ChecksumMode="ENABLED", Range="bytes=0-99")
assert "ChecksumSHA256" not in part and part["Body"].read() == body[:100]
crc = s3.put_object(Bucket="photos", Key="crc", Body=b"crc32 by default")
assert s3.get_object(Bucket="photos", Key="crc", ChecksumMode="ENABLED").get("ChecksumCRC32") == crc.get("ChecksumCRC32")
s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "summed"}, {"Key": "crc"}]})

# Conditional writes: If-Match replaces only the version with that ETag.
first = s3.put_object(Bucket="photos", Key="cas", Body=b"one")["ETag"]
second = s3.put_object(Bucket="photos", Key="cas", Body=b"two", IfMatch=first)["ETag"]
assert code(lambda: s3.put_object(Bucket="photos", Key="cas", Body=b"three", IfMatch=first)) == "PreconditionFailed"
assert s3.get_object(Bucket="photos", Key="cas")["Body"].read() == b"two"
assert code(lambda: s3.put_object(Bucket="photos", Key="never", Body=b"x", IfMatch=first)) == "NoSuchKey"
s3.put_object(Bucket="photos", Key="cas", Body=b"four", IfMatch="*")
assert code(lambda: s3.put_object(Bucket="photos", Key="never", Body=b"x", IfMatch="*")) == "PreconditionFailed"
assert code(lambda: s3.get_object(Bucket="photos", Key="never")) == "NoSuchKey"
# A write that lands while a conditional one is under way wins; the
# conditional one is refused (409), never overwriting what it did not see.
current = s3.head_object(Bucket="photos", Key="cas")["ETag"]
slow = raw.started_put("/photos/cas", 100_000, {"if-match": current})
slow.send(b"a" * 50_000)
s3.put_object(Bucket="photos", Key="cas", Body=b"in between")
slow.send(b"b" * 50_000)
status, answer = raw.finished(slow)
assert status == 409 and b"ConditionalRequestConflict" in answer, (status, answer)
assert s3.get_object(Bucket="photos", Key="cas")["Body"].read() == b"in between"

# Conditional deletes: If-Match (an ETag, or * for "it exists"), and the
# size and Last-Modified that S3's directory buckets check too. One that
# does not hold deletes nothing.
head = s3.head_object(Bucket="photos", Key="cas")
assert code(lambda: s3.delete_object(Bucket="photos", Key="cas", IfMatch=first)) == "PreconditionFailed"
assert code(lambda: s3.delete_object(Bucket="photos", Key="cas", IfMatchSize=head["ContentLength"] + 1)) == "PreconditionFailed"
earlier = head["LastModified"] - datetime.timedelta(seconds=5)
assert code(lambda: s3.delete_object(Bucket="photos", Key="cas", IfMatchLastModifiedTime=earlier)) == "PreconditionFailed"
assert code(lambda: s3.delete_object(Bucket="photos", Key="cas", IfMatch=head["ETag"], IfMatchSize=1)) == "PreconditionFailed"
assert s3.get_object(Bucket="photos", Key="cas")["Body"].read() == b"in between"
assert code(lambda: s3.delete_object(Bucket="photos", Key="never", IfMatch="*")) == "NoSuchKey"
assert code(lambda: s3.delete_object(Bucket="photos", Key="never", IfMatch=head["ETag"])) == "NoSuchKey"
s3.delete_object(Bucket="photos", Key="never", IfMatchSize=1)  # nothing there to check: 204, as on S3
s3.delete_object(Bucket="photos", Key="cas", IfMatch=head["ETag"], IfMatchSize=head["ContentLength"],
                 IfMatchLastModifiedTime=head["LastModified"])
assert code(lambda: s3.head_object(Bucket="photos", Key="cas")) == "404"
s3.put_object(Bucket="photos", Key="cas", Body=b"five")
s3.delete_object(Bucket="photos", Key="cas", IfMatch="*")
assert code(lambda: s3.head_object(Bucket="photos", Key="cas")) == "404"
# In a batch, each Object's ETag (and Size, LastModifiedTime) is its own.
etag_a = s3.put_object(Bucket="photos", Key="cond-a", Body=b"a")["ETag"]
s3.put_object(Bucket="photos", Key="cond-b", Body=b"b")
head_b = s3.head_object(Bucket="photos", Key="cond-b")
result = s3.delete_objects(Bucket="photos", Delete={"Objects": [
    {"Key": "cond-a", "ETag": etag_a}, {"Key": "cond-b", "ETag": etag_a}, {"Key": "cond-c", "ETag": etag_a},
    {"Key": "cond-b", "Size": 2}, {"Key": "cond-b", "LastModifiedTime": earlier}]})
assert [d["Key"] for d in result["Deleted"]] == ["cond-a"], result
assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [
    ("cond-b", "PreconditionFailed"), ("cond-c", "NoSuchKey"), ("cond-b", "PreconditionFailed"),
    ("cond-b", "PreconditionFailed")], result
assert s3.get_object(Bucket="photos", Key="cond-b")["Body"].read() == b"b"
# Versions: percore keeps one, whose id is null; another id is refused,
# never taken as the current version (a DELETE would remove it).
other = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
assert code(lambda: s3.delete_object(Bucket="photos", Key="cond-b", VersionId=other)) == "InvalidArgument"
assert code(lambda: s3.get_object(Bucket="photos", Key="cond-b", VersionId=other)) == "InvalidArgument"
assert code(lambda: s3.copy_object(Bucket="photos", Key="cond-c",
                                   CopySource={"Bucket": "photos", "Key": "cond-b", "VersionId": other})) == "InvalidArgument"
result = s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "cond-b", "VersionId": other}]})
assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("cond-b", "InvalidArgument")], result
assert s3.get_object(Bucket="photos", Key="cond-b", VersionId="null")["Body"].read() == b"b"
s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "cond-b", "VersionId": "null",
                                                        "ETag": head_b["ETag"], "Size": 1,
                                                        "LastModifiedTime": head_b["LastModified"]}]})
assert code(lambda: s3.head_object(Bucket="photos", Key="cond-b")) == "404"

# Presigned GET and PUT; an expired URL is refused.
url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": key}, ExpiresIn=60)
assert urllib.request.urlopen(url, context=tls_context()).read() == body
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "photos", "Key": "up.txt"}, ExpiresIn=60)
urllib.request.urlopen(urllib.request.Request(put_url, data=b"presigned!", method="PUT"), context=tls_context())
assert s3.get_object(Bucket="photos", Key="up.txt")["Body"].read() == b"presigned!"
short = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": key}, ExpiresIn=1)
time.sleep(2.1)
try:
    urllib.request.urlopen(short, context=tls_context())
    raise AssertionError("an expired URL was served")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"<Code>AccessDenied</Code>" in e.read()

# A wrong secret: refused, nothing stored.
assert code(lambda: client(secret="wrong").list_buckets()) == "SignatureDoesNotMatch"
assert code(lambda: client(secret="wrong").put_object(Bucket="photos", Key="evil", Body=b"x")) == "SignatureDoesNotMatch"
assert code(lambda: s3.head_object(Bucket="photos", Key="evil")) == "404"

# Multipart: 5 MiB parts, the ETag clients check, errors on bad lists.
parts = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(1234)]
mpu = s3.create_multipart_upload(Bucket="photos", Key="big/video.mp4", ContentType="video/mp4", Metadata={"m": "1"})
uid = mpu["UploadId"]
listed = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="photos").get("Uploads", [])]
assert listed == [uid], listed
tags = [s3.upload_part(Bucket="photos", Key="big/video.mp4", UploadId=uid, PartNumber=n + 1, Body=p)["ETag"]
        for n, p in enumerate(parts)]
assert tags == ['"%s"' % hashlib.md5(p).hexdigest() for p in parts]
stored = s3.list_parts(Bucket="photos", Key="big/video.mp4", UploadId=uid)["Parts"]
assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in stored] == [(n + 1, len(p), tags[n]) for n, p in enumerate(parts)]
complete = lambda order: s3.complete_multipart_upload(
    Bucket="photos", Key="big/video.mp4", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": tags[n - 1]} for n in order]})
assert code(lambda: complete([2, 1, 3])) == "InvalidPartOrder"
assert code(lambda: s3.complete_multipart_upload(Bucket="photos", Key="big/video.mp4", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": tags[1]}]})) == "InvalidPart"
assert code(lambda: s3.head_object(Bucket="photos", Key="big/video.mp4")) == "404"
done = complete([1, 2, 3])
expected = '"%s-3"' % hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
assert done["ETag"] == expected, (done["ETag"], expected)
whole = s3.get_object(Bucket="photos", Key="big/video.mp4")
assert whole["Body"].read() == b"".join(parts)
assert whole["ETag"] == expected and whole["ContentType"] == "video/mp4" and whole["Metadata"] == {"m": "1"}
assert s3.list_multipart_uploads(Bucket="photos").get("Uploads", []) == []
assert code(lambda: s3.list_parts(Bucket="photos", Key="big/video.mp4", UploadId=uid)) == "NoSuchUpload"
# ListMultipartUploads in pages: five uploads (two of one key) two at a
# time, each once, in key order; the paginator follows the markers.
started = sorted((k, s3.create_multipart_upload(Bucket="photos", Key=k)["UploadId"])
                 for k in ["pending/a", "pending/b", "pending/b", "pending/c", "pending/d"])
pages = list(s3.get_paginator("list_multipart_uploads").paginate(Bucket="photos", PaginationConfig={"PageSize": 2}))
assert [len(p.get("Uploads", [])) for p in pages] == [2, 2, 1], pages
seen = [(u["Key"], u["UploadId"]) for p in pages for u in p["Uploads"]]
assert sorted(seen) == started and [k for k, _ in seen] == sorted(k for k, _ in started), seen
assert pages[0]["IsTruncated"] and pages[0]["NextKeyMarker"] == seen[1][0], pages[0]
assert pages[0]["NextUploadIdMarker"] == seen[1][1] and not pages[-1]["IsTruncated"]
# With a delimiter, the keys with it after the prefix roll up into
# CommonPrefixes, each one entry of a page, listed once across pages.
started += [(k, s3.create_multipart_upload(Bucket="photos", Key=k)["UploadId"]) for k in ["pending/deeper/e", "top one"]]
listed = s3.list_multipart_uploads(Bucket="photos", Delimiter="/")
assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["pending/"], listed
assert [u["Key"] for u in listed["Uploads"]] == ["top one"], listed
listed = s3.list_multipart_uploads(Bucket="photos", Prefix="pending/", Delimiter="/")
assert [u["Key"] for u in listed["Uploads"]] == ["pending/a", "pending/b", "pending/b", "pending/c", "pending/d"]
assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["pending/deeper/"], listed
for size, prefix in [(1, ""), (2, "pending/"), (5, "pending/")]:
    pages = list(s3.get_paginator("list_multipart_uploads").paginate(
        Bucket="photos", Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": size}))
    seen = [u["Key"] for p in pages for u in p.get("Uploads", [])] + \
        [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    expected = ["top one", "pending/"] if prefix == "" else \
        ["pending/a", "pending/b", "pending/b", "pending/c", "pending/d", "pending/deeper/"]
    assert sorted(seen) == sorted(expected) and all(len(p.get("Uploads", [])) + len(p.get("CommonPrefixes", [])) <= size
                                                    for p in pages), (size, prefix, pages)
status, _, answer = raw.signed("GET", "/photos", query=[("uploads", ""), ("encoding-type", "url"), ("prefix", "top")])
assert status == 200 and b"<Key>top%20one</Key>" in answer and b"<EncodingType>url</EncodingType>" in answer, answer
for pending, upload in started:
    s3.abort_multipart_upload(Bucket="photos", Key=pending, UploadId=upload)
# UploadPartCopy: parts copied from ranges of an object.
cp = s3.create_multipart_upload(Bucket="photos", Key="copied.mp4")["UploadId"]
source = {"Bucket": "photos", "Key": "big/video.mp4"}
cp_tags = [s3.upload_part_copy(Bucket="photos", Key="copied.mp4", UploadId=cp, PartNumber=1, CopySource=source,
                               CopySourceRange="bytes=0-5242879")["CopyPartResult"]["ETag"],
           s3.upload_part_copy(Bucket="photos", Key="copied.mp4", UploadId=cp, PartNumber=2, CopySource=source,
                               CopySourceRange="bytes=5242880-%d" % (len(b"".join(parts)) - 1))["CopyPartResult"]["ETag"]]
assert cp_tags[0] == tags[0], cp_tags
assert code(lambda: s3.upload_part_copy(Bucket="photos", Key="copied.mp4", UploadId=cp, PartNumber=3, CopySource=source,
                                        CopySourceRange="bytes=0-99999999")) == "InvalidArgument"
assert code(lambda: s3.upload_part_copy(Bucket="photos", Key="copied.mp4", UploadId=cp, PartNumber=3, CopySource=source,
                                        CopySourceIfMatch='"0123"')) == "PreconditionFailed"
s3.complete_multipart_upload(Bucket="photos", Key="copied.mp4", UploadId=cp, MultipartUpload={
    "Parts": [{"PartNumber": n + 1, "ETag": t} for n, t in enumerate(cp_tags)]})
assert s3.get_object(Bucket="photos", Key="copied.mp4")["Body"].read() == b"".join(parts)
small = s3.create_multipart_upload(Bucket="photos", Key="small")["UploadId"]
small_tags = [s3.upload_part(Bucket="photos", Key="small", UploadId=small, PartNumber=n, Body=b"tiny")["ETag"]
              for n in (1, 2)]
assert code(lambda: s3.complete_multipart_upload(Bucket="photos", Key="small", UploadId=small, MultipartUpload={
    "Parts": [{"PartNumber": n, "ETag": small_tags[n - 1]} for n in (1, 2)]})) == "EntityTooSmall"
s3.abort_multipart_upload(Bucket="photos", Key="small", UploadId=small)
assert code(lambda: s3.list_parts(Bucket="photos", Key="small", UploadId=small)) == "NoSuchUpload"

# DeleteObjects, and a bucket that is not empty.
assert code(lambda: s3.delete_bucket(Bucket="photos")) == "BucketNotEmpty"
deleted = s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": k} for k in
                            ("copy.jpg", "up.txt", "never-was", key, "big/video.mp4", "copied.mp4")]})
assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(["copy.jpg", "up.txt", "never-was", key, "big/video.mp4", "copied.mp4"])
assert deleted.get("Errors", []) == []
assert s3.list_objects_v2(Bucket="photos")["KeyCount"] == 0
s3.delete_bucket(Bucket="photos")
assert code(lambda: s3.head_bucket(Bucket="photos")) == "404"

# Pagination over 2,500 keys, v2 and v1, in byte order; prefixes.
s3.create_bucket(Bucket="many")
keys = ["p%d/%05d" % (i % 5, i) for i in range(2500)] + ["p1-x", "p10"]
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda k: s3.put_object(Bucket="many", Key=k, Body=k.encode()), keys))
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="many", PaginationConfig={"PageSize": 1000}))
seen = [o["Key"] for page in pages for o in page.get("Contents", [])]
assert len(pages) == 3 and seen == sorted(keys, key=lambda k: k.encode()), (len(pages), seen[:5])
v1 = [o["Key"] for page in s3.get_paginator("list_objects").paginate(Bucket="many", PaginationConfig={"PageSize": 700})
      for o in page.get("Contents", [])]
assert v1 == seen
top = s3.list_objects_v2(Bucket="many", Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["p0/", "p1/", "p2/", "p3/", "p4/"], top
assert [o["Key"] for o in top["Contents"]] == ["p1-x", "p10"]
some = s3.list_objects_v2(Bucket="many", Prefix="p3/", StartAfter="p3/01000", MaxKeys=3)
assert [o["Key"] for o in some["Contents"]] == ["p3/01003", "p3/01008", "p3/01013"] and some["IsTruncated"]
paged = list(s3.get_paginator("list_objects_v2").paginate(Bucket="many", Delimiter="/", PaginationConfig={"PageSize": 2}))
assert [p["Prefix"] for page in paged for p in page.get("CommonPrefixes", [])] == ["p0/", "p1/", "p2/", "p3/", "p4/"]
# ListObjectVersions: each key as its one version, null, paged by key; the
# idiom that empties a bucket (list the versions, delete each by its id).
assert s3.get_bucket_versioning(Bucket="many").get("Status") is None
# The bucket settings percore does not keep read as unset, as S3 answers for
# a bucket without them (what Terraform reads of every bucket); removing
# one removes nothing; setting one is refused.
for read, error in [(s3.get_bucket_policy, "NoSuchBucketPolicy"), (s3.get_bucket_policy_status, "NoSuchBucketPolicy"),
                    (s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration"),
                    (s3.get_bucket_website, "NoSuchWebsiteConfiguration"),
                    (s3.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError"),
                    (s3.get_bucket_replication, "ReplicationConfigurationNotFoundError"),
                    (s3.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError"),
                    (s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration")]:
    assert code(lambda: read(Bucket="many")) == error, (read, code(lambda: read(Bucket="many")))
    assert code(lambda: read(Bucket="no-such-bucket")) == "NoSuchBucket", read
assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="many")
assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket="many")
assert s3.get_bucket_request_payment(Bucket="many")["Payer"] == "BucketOwner"
notification = s3.get_bucket_notification_configuration(Bucket="many")
assert not any(notification.get(k) for k in ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations"))
for remove in [s3.delete_bucket_policy, s3.delete_bucket_lifecycle, s3.delete_bucket_website, s3.delete_bucket_encryption,
               s3.delete_bucket_replication, s3.delete_public_access_block]:
    assert remove(Bucket="many")["ResponseMetadata"]["HTTPStatusCode"] == 204, remove
assert code(lambda: s3.put_bucket_policy(Bucket="many", Policy="{}")) == "NotImplemented"
assert code(lambda: s3.put_bucket_lifecycle_configuration(Bucket="many", LifecycleConfiguration={"Rules": [
    {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]})) == "NotImplemented"
pages = list(s3.get_paginator("list_object_versions").paginate(Bucket="many", PaginationConfig={"PageSize": 900}))
versions = [v for page in pages for v in page.get("Versions", [])]
assert len(pages) == 3 and [v["Key"] for v in versions] == seen, len(pages)
assert all(v["VersionId"] == "null" and v["IsLatest"] and v["Size"] == len(v["Key"]) for v in versions)
assert pages[0]["NextKeyMarker"] == seen[899] and pages[0]["NextVersionIdMarker"] == "null", pages[0]["NextKeyMarker"]
top = s3.list_object_versions(Bucket="many", Delimiter="/", Prefix="p")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["p0/", "p1/", "p2/", "p3/", "p4/"], top
assert [v["Key"] for v in top["Versions"]] == ["p1-x", "p10"]
for page in pages:
    ids = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page["Versions"]]
    assert not s3.delete_objects(Bucket="many", Delete={"Objects": ids, "Quiet": True}).get("Errors")
assert s3.list_objects_v2(Bucket="many")["KeyCount"] == 0
assert s3.list_object_versions(Bucket="many").get("Versions", []) == []
s3.delete_bucket(Bucket="many")
print("ok")
