"""boto3 with folders: keys that end in / (tests/s3.rs). percore stores one as
the directory it names, marked; the checks below are what S3 answers for
such an object. DATA_DIR is the daemon's data directory, to check what the
store holds."""
import hashlib
import os

from common import client, code

s3 = client()
data = os.environ["DATA_DIR"]
EMPTY = '"%s"' % hashlib.md5(b"").hexdigest()

s3.create_bucket(Bucket="docs")
# A folder is an empty object: its metadata kept, its ETag the MD5 of nothing.
made = s3.put_object(Bucket="docs", Key="2024/reports/", Body=b"", ContentType="application/x-directory",
                     Metadata={"mode": "16877"})
assert made["ETag"] == EMPTY, made
assert os.path.isdir(os.path.join(data, "docs/2024/reports"))
head = s3.head_object(Bucket="docs", Key="2024/reports/")
assert head["ContentLength"] == 0 and head["ETag"] == EMPTY, head
assert head["ContentType"] == "application/x-directory" and head["Metadata"] == {"mode": "16877"}, head
got = s3.get_object(Bucket="docs", Key="2024/reports/")
assert got["Body"].read() == b"" and got["Metadata"] == {"mode": "16877"}
assert code(lambda: s3.get_object(Bucket="docs", Key="2024/reports/", IfNoneMatch=EMPTY)) == "304"
assert code(lambda: s3.get_object(Bucket="docs", Key="2024/reports/", Range="bytes=0-9")) == "InvalidRange"
# A directory that is only a prefix of other keys is no folder (as on S3).
assert code(lambda: s3.head_object(Bucket="docs", Key="2024/")) == "404"
assert code(lambda: s3.get_object(Bucket="docs", Key="2024/")) == "NoSuchKey"
assert code(lambda: s3.head_object(Bucket="docs", Key="nowhere/")) == "404"
assert code(lambda: s3.head_object(Bucket="not-there", Key="nowhere/")) == "404"
assert code(lambda: s3.get_object(Bucket="not-there", Key="nowhere/")) == "NoSuchBucket"
assert code(lambda: s3.put_object(Bucket="not-there", Key="nowhere/", Body=b"")) == "NoSuchBucket"

# A folder holds no bytes: refused, saying why, and nothing changes.
assert code(lambda: s3.put_object(Bucket="docs", Key="2024/reports/", Body=b"x")) == "InvalidRequest"
assert code(lambda: s3.put_object(Bucket="docs", Key="other/", Body=b"bytes")) == "InvalidRequest"
assert not os.path.exists(os.path.join(data, "docs/other"))
assert code(lambda: s3.create_multipart_upload(Bucket="docs", Key="parts/")) == "InvalidRequest"
try:
    s3.put_object(Bucket="docs", Key="other/", Body=b"bytes")
except Exception as e:  # noqa: BLE001
    assert "folder" in str(e), e
# Conditional writes.
assert code(lambda: s3.put_object(Bucket="docs", Key="2024/reports/", Body=b"", IfNoneMatch="*")) == "PreconditionFailed"
s3.put_object(Bucket="docs", Key="2024/reports/", Body=b"", IfMatch=EMPTY, Metadata={"mode": "16832"})
assert s3.head_object(Bucket="docs", Key="2024/reports/")["Metadata"] == {"mode": "16832"}
assert code(lambda: s3.put_object(Bucket="docs", Key="fresh/", Body=b"", IfMatch=EMPTY)) == "PreconditionFailed"
s3.put_object(Bucket="docs", Key="fresh/", Body=b"", IfNoneMatch="*")

# A file where a folder would be, and the other way round: a conflict.
s3.put_object(Bucket="docs", Key="notes", Body=b"a file")
assert code(lambda: s3.put_object(Bucket="docs", Key="notes/", Body=b"")) == "KeyConflict"
assert code(lambda: s3.put_object(Bucket="docs", Key="fresh", Body=b"x")) == "KeyConflict"
assert s3.get_object(Bucket="docs", Key="notes")["Body"].read() == b"a file"

# Listings: a folder is a key of size 0 just before the keys under it.
s3.put_object(Bucket="docs", Key="2024/reports/q1.pdf", Body=b"q1")
s3.put_object(Bucket="docs", Key="2024/reports.txt", Body=b"r")
s3.put_object(Bucket="docs", Key="2024/summary", Body=b"s")
s3.put_object(Bucket="docs", Key="2024/empty/", Body=b"")
everything = s3.list_objects_v2(Bucket="docs")["Contents"]
keys = [o["Key"] for o in everything]
assert keys == ["2024/empty/", "2024/reports.txt", "2024/reports/", "2024/reports/q1.pdf", "2024/summary", "fresh/",
                "notes"], keys
folder = everything[keys.index("2024/reports/")]
assert folder["Size"] == 0 and folder["ETag"] == EMPTY, folder
top = s3.list_objects_v2(Bucket="docs", Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["2024/", "fresh/"], top
assert [o["Key"] for o in top["Contents"]] == ["notes"], top
inside = s3.list_objects_v2(Bucket="docs", Prefix="2024/", Delimiter="/")
assert [p["Prefix"] for p in inside["CommonPrefixes"]] == ["2024/empty/", "2024/reports/"], inside
assert [o["Key"] for o in inside["Contents"]] == ["2024/reports.txt", "2024/summary"], inside
own = s3.list_objects_v2(Bucket="docs", Prefix="2024/reports/", Delimiter="/")
assert [o["Key"] for o in own["Contents"]] == ["2024/reports/", "2024/reports/q1.pdf"], own
paged = list(s3.get_paginator("list_objects_v2").paginate(Bucket="docs", PaginationConfig={"PageSize": 2}))
assert [o["Key"] for page in paged for o in page.get("Contents", [])] == keys
after = s3.list_objects_v2(Bucket="docs", StartAfter="2024/reports/")["Contents"]
assert [o["Key"] for o in after] == keys[3:], after
v1 = s3.list_objects(Bucket="docs", Prefix="2024/", Delimiter="/")
assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["2024/empty/", "2024/reports/"], v1

# Copies: a folder onto itself with new metadata (s3fs's chmod of a
# directory), to another folder; an object is no folder's source.
s3.copy_object(Bucket="docs", Key="2024/reports/", CopySource={"Bucket": "docs", "Key": "2024/reports/"},
               MetadataDirective="REPLACE", Metadata={"mode": "16877", "mtime": "1700000000"})
assert s3.head_object(Bucket="docs", Key="2024/reports/")["Metadata"] == {"mode": "16877", "mtime": "1700000000"}
assert code(lambda: s3.copy_object(Bucket="docs", Key="2024/reports/",
                                   CopySource={"Bucket": "docs", "Key": "2024/reports/"})) == "InvalidRequest"
copied = s3.copy_object(Bucket="docs", Key="2025/", CopySource={"Bucket": "docs", "Key": "2024/reports/"})
assert copied["CopyObjectResult"]["ETag"] == EMPTY
assert s3.head_object(Bucket="docs", Key="2025/")["Metadata"] == {"mode": "16877", "mtime": "1700000000"}
assert code(lambda: s3.copy_object(Bucket="docs", Key="2025/", CopySource={"Bucket": "docs", "Key": "notes"})) == "InvalidRequest"
assert code(lambda: s3.copy_object(Bucket="docs", Key="copy", CopySource={"Bucket": "docs", "Key": "2025/"})) == "InvalidRequest"
assert code(lambda: s3.copy_object(Bucket="docs", Key="2026/", CopySource={"Bucket": "docs", "Key": "gone/"})) == "NoSuchKey"

# Deleting a folder leaves what is under it (as on S3); a bucket that holds
# only a folder is not empty.
s3.delete_object(Bucket="docs", Key="2024/reports/")
assert code(lambda: s3.head_object(Bucket="docs", Key="2024/reports/")) == "404"
assert s3.get_object(Bucket="docs", Key="2024/reports/q1.pdf")["Body"].read() == b"q1"
s3.delete_object(Bucket="docs", Key="never/")
gone = s3.delete_objects(Bucket="docs", Delete={"Objects": [{"Key": k} for k in
                         ("2024/empty/", "2024/reports/q1.pdf", "2024/reports.txt", "2024/summary", "fresh/", "notes")]})
assert gone.get("Errors", []) == [] and len(gone["Deleted"]) == 6, gone
assert [o["Key"] for o in s3.list_objects_v2(Bucket="docs").get("Contents", [])] == ["2025/"]
assert s3.list_objects_v2(Bucket="docs", Delimiter="/").get("CommonPrefixes") == [{"Prefix": "2025/"}]
assert code(lambda: s3.delete_bucket(Bucket="docs")) == "BucketNotEmpty"
s3.delete_object(Bucket="docs", Key="2025/")
assert s3.list_objects_v2(Bucket="docs")["KeyCount"] == 0
s3.delete_bucket(Bucket="docs")
print("ok")
