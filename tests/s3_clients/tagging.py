"""Object tags through boto3 (tests/s3.rs): set with PutObject, a multipart
upload, CopyObject (COPY and REPLACE) and on folders; read back with
GetObjectTagging and counted by GetObject; replaced and removed in place
without changing the object's bytes, ETag or Last-Modified; refused where
S3 refuses them. With PHASE=check (after the daemon restarted), what the
first run left is read back."""
import os
import time
import urllib.parse
import urllib.request

from common import client, code
from raw import signed

s3 = client()
B = "tags"


def tags(key):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=B, Key=key)["TagSet"]}


def tagset(mapping):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in mapping.items()]}


UNICODE = {"proj ect": "blue sky", "ключ": "значение", "path": "a/b:c=d+e@f_g.h-i", "empty": ""}

if os.environ.get("PHASE") == "check":
    assert tags("kept") == UNICODE, tags("kept")
    assert tags("cleared") == {}, tags("cleared")
    assert tags("dir/") == {"folder": "yes"}, tags("dir/")
    assert s3.get_object(Bucket=B, Key="kept")["Body"].read() == b"kept bytes"
    assert s3.get_bucket_tagging(Bucket=B)["TagSet"] == [{"Key": "owner", "Value": "tests"}]
    print("ok")
    raise SystemExit

s3.create_bucket(Bucket=B)

# PutObject with tags, in the URL query form clients send (`+` a space).
query = urllib.parse.urlencode({"project": "blue", "team": "a b", "eq": "x=y"})
put = s3.put_object(Bucket=B, Key="obj", Body=b"hello", Tagging=query)
assert tags("obj") == {"project": "blue", "team": "a b", "eq": "x=y"}, tags("obj")
got = s3.get_object(Bucket=B, Key="obj")
assert got["TagCount"] == 3 and got["Body"].read() == b"hello", got
head = s3.head_object(Bucket=B, Key="obj")
assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3", head

# PutObjectTagging replaces the set; the object is the same version.
before = s3.head_object(Bucket=B, Key="obj")
time.sleep(1.1)
s3.put_object_tagging(Bucket=B, Key="obj", Tagging=tagset(UNICODE))
assert tags("obj") == UNICODE, tags("obj")
after = s3.head_object(Bucket=B, Key="obj")
assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"]), (before, after)
got = s3.get_object(Bucket=B, Key="obj")
assert got["TagCount"] == 4 and got["Body"].read() == b"hello"
# A range, a conditional GET and the listing see the same object.
assert s3.get_object(Bucket=B, Key="obj", Range="bytes=1-2")["Body"].read() == b"el"
assert code(lambda: s3.get_object(Bucket=B, Key="obj", IfNoneMatch=before["ETag"])) == "304"
assert [o["ETag"] for o in s3.list_objects_v2(Bucket=B)["Contents"]] == [before["ETag"]]

# DeleteObjectTagging: no tags, no count; the bytes stay.
assert s3.delete_object_tagging(Bucket=B, Key="obj")["ResponseMetadata"]["HTTPStatusCode"] == 204
assert tags("obj") == {}
got = s3.get_object(Bucket=B, Key="obj")
assert "TagCount" not in got and got["Body"].read() == b"hello", got
# An empty set is no tags too.
s3.put_object_tagging(Bucket=B, Key="obj", Tagging=tagset({"a": "1"}))
s3.put_object_tagging(Bucket=B, Key="obj", Tagging={"TagSet": []})
assert tags("obj") == {}

# A new version of the key has only its own tags.
s3.put_object_tagging(Bucket=B, Key="obj", Tagging=tagset({"old": "1"}))
s3.put_object(Bucket=B, Key="obj", Body=b"v2")
assert tags("obj") == {}
s3.put_object(Bucket=B, Key="obj", Body=b"v3", Tagging="new=1")
assert tags("obj") == {"new": "1"}

# Copies: the source's tags by default, the request's with REPLACE (none
# if it sends none), whatever the metadata directive.
s3.put_object(Bucket=B, Key="src", Body=b"source", Tagging="from=src", Metadata={"m": "1"})
s3.copy_object(Bucket=B, Key="copy1", CopySource={"Bucket": B, "Key": "src"})
assert tags("copy1") == {"from": "src"}
s3.copy_object(Bucket=B, Key="copy2", CopySource={"Bucket": B, "Key": "src"}, MetadataDirective="REPLACE",
               Metadata={"m": "2"})
assert tags("copy2") == {"from": "src"} and s3.head_object(Bucket=B, Key="copy2")["Metadata"] == {"m": "2"}
s3.copy_object(Bucket=B, Key="copy3", CopySource={"Bucket": B, "Key": "src"}, TaggingDirective="REPLACE",
               Tagging="to=copy3")
assert tags("copy3") == {"to": "copy3"} and s3.head_object(Bucket=B, Key="copy3")["Metadata"] == {"m": "1"}
s3.copy_object(Bucket=B, Key="copy4", CopySource={"Bucket": B, "Key": "src"}, TaggingDirective="REPLACE")
assert tags("copy4") == {}
# Onto itself with new metadata: the tags stay (COPY).
s3.copy_object(Bucket=B, Key="src", CopySource={"Bucket": B, "Key": "src"}, MetadataDirective="REPLACE",
               Metadata={"m": "3"})
assert tags("src") == {"from": "src"}
assert code(lambda: s3.copy_object(Bucket=B, Key="copy5", CopySource={"Bucket": B, "Key": "src"},
                                   TaggingDirective="MERGE")) == "InvalidArgument"

# A multipart upload keeps the tags of its start.
uid = s3.create_multipart_upload(Bucket=B, Key="big", Tagging="parts=2")["UploadId"]
parts = []
for n, size in ((1, 5 << 20), (2, 1000)):
    etag = s3.upload_part(Bucket=B, Key="big", UploadId=uid, PartNumber=n, Body=b"p" * size)["ETag"]
    parts.append({"PartNumber": n, "ETag": etag})
s3.complete_multipart_upload(Bucket=B, Key="big", UploadId=uid, MultipartUpload={"Parts": parts})
assert tags("big") == {"parts": "2"}
assert s3.get_object(Bucket=B, Key="big", PartNumber=2)["TagCount"] == 1

# Folders (keys that end in /) keep tags too.
s3.put_object(Bucket=B, Key="dir/", Body=b"", Tagging="folder=no")
assert tags("dir/") == {"folder": "no"}
s3.put_object_tagging(Bucket=B, Key="dir/", Tagging=tagset({"folder": "yes"}))
assert tags("dir/") == {"folder": "yes"}
assert s3.get_object(Bucket=B, Key="dir/")["TagCount"] == 1
s3.put_object(Bucket=B, Key="dir/inside", Body=b"i")
assert tags("dir/inside") == {}

# Refused as S3 refuses them, and nothing changes (sent by a client that
# does not check them first).
unchecked = client(parameter_validation=False)
s3.put_object(Bucket=B, Key="kept", Body=b"kept bytes", Tagging=urllib.parse.urlencode(UNICODE))
bad_sets = [
    ({"aws:reserved": "x"}, "InvalidTag"),
    ({"k" * 129: "x"}, "InvalidTag"),
    ({"k": "v" * 257}, "InvalidTag"),
    ({"k": "comma,"}, "InvalidTag"),
    ({"k": "star*"}, "InvalidTag"),
    ({"": "empty key"}, "InvalidTag"),
    ({"t%d" % i: "v" for i in range(11)}, "BadRequest"),
]
for bad, error in bad_sets:
    assert code(lambda: unchecked.put_object_tagging(Bucket=B, Key="kept", Tagging=tagset(bad))) == error, bad
    assert code(lambda: unchecked.put_object(Bucket=B, Key="refused", Body=b"x",
                                             Tagging=urllib.parse.urlencode(bad))) == error, bad
    assert code(lambda: unchecked.create_multipart_upload(Bucket=B, Key="refused",
                                                          Tagging=urllib.parse.urlencode(bad))) == error, bad
# At the limits: ten tags of the longest keys and values.
longest = {("%d" % i) + "k" * 127: "v" * 256 for i in range(10)}
s3.put_object(Bucket=B, Key="longest", Body=b"l", Tagging=urllib.parse.urlencode(longest))
assert tags("longest") == longest
s3.put_object_tagging(Bucket=B, Key="longest", Tagging=tagset(longest))
assert tags("longest") == longest
duplicate = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
assert code(lambda: unchecked.put_object_tagging(Bucket=B, Key="kept", Tagging=duplicate)) == "InvalidTag"
assert code(lambda: s3.put_object(Bucket=B, Key="refused", Body=b"x", Tagging="a=1&a=2")) == "InvalidTag"
assert code(lambda: s3.head_object(Bucket=B, Key="refused")) == "404"
assert tags("kept") == UNICODE
assert code(lambda: s3.put_object_tagging(Bucket=B, Key="no-such", Tagging=tagset({"a": "1"}))) == "NoSuchKey"
assert code(lambda: s3.get_object_tagging(Bucket=B, Key="no-such")) == "NoSuchKey"
assert code(lambda: s3.delete_object_tagging(Bucket=B, Key="no-such")) == "NoSuchKey"
assert code(lambda: s3.put_object_tagging(Bucket="no-such-bucket", Key="k", Tagging=tagset({}))) == "NoSuchBucket"
status, _, body = signed("PUT", "/%s/kept" % B, query=[("tagging", "")], body=b"<Tagging><TagSet><Tag>")
assert status == 400 and b"MalformedXML" in body, (status, body)
status, _, body = signed("PUT", "/%s/kept" % B, query=[("tagging", "")], body=b"<Tagging>" + b" " * (65 << 10))
assert status == 400 and b"EntityTooLarge" in body, (status, body[:300])
assert tags("kept") == UNICODE

# A bucket's tags: none at first (NoSuchTagSet, as on S3), set, replaced,
# removed; refused as S3 refuses them.
assert code(lambda: s3.get_bucket_tagging(Bucket=B)) == "NoSuchTagSet"
s3.put_bucket_tagging(Bucket=B, Tagging=tagset({"a": "1", "b": "2"}))
assert s3.get_bucket_tagging(Bucket=B)["TagSet"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
s3.put_bucket_tagging(Bucket=B, Tagging=tagset({"t%02d" % i: "v" for i in range(50)}))
assert len(s3.get_bucket_tagging(Bucket=B)["TagSet"]) == 50
assert code(lambda: unchecked.put_bucket_tagging(
    Bucket=B, Tagging=tagset({"t%02d" % i: "v" for i in range(51)}))) == "InvalidTag"
assert code(lambda: unchecked.put_bucket_tagging(Bucket=B, Tagging=tagset({"aws:x": "1"}))) == "InvalidTag"
assert code(lambda: s3.put_bucket_tagging(
    Bucket=B, Tagging=tagset({"k%02d" % i + "k" * 100: "v" * 200 for i in range(20)}))) == "InvalidTag"
assert len(s3.get_bucket_tagging(Bucket=B)["TagSet"]) == 50
assert s3.delete_bucket_tagging(Bucket=B)["ResponseMetadata"]["HTTPStatusCode"] == 204
assert code(lambda: s3.get_bucket_tagging(Bucket=B)) == "NoSuchTagSet"
assert code(lambda: s3.get_bucket_tagging(Bucket="no-such-bucket")) == "NoSuchBucket"
s3.put_bucket_tagging(Bucket=B, Tagging=tagset({"owner": "tests"}))

# A file written through /files/ (FILES, the daemon's HTTP address) has no
# S3 metadata: tags are set on it, and its ETag stays the store's own.
request = urllib.request.Request(os.environ["FILES"] + "/files/%s/plain" % B, data=b"plain", method="PUT")
files_etag = urllib.request.urlopen(request).headers["ETag"]
assert s3.head_object(Bucket=B, Key="plain")["ETag"] == files_etag
s3.put_object_tagging(Bucket=B, Key="plain", Tagging=tagset({"via": "files"}))
assert tags("plain") == {"via": "files"}
got = s3.get_object(Bucket=B, Key="plain")
assert (got["ETag"], got["TagCount"], got["Body"].read()) == (files_etag, 1, b"plain"), got
s3.put_object(Bucket=B, Key="cleared", Body=b"c", Tagging="gone=soon")
s3.delete_object_tagging(Bucket=B, Key="cleared")
print("ok")
