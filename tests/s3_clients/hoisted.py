"""Presigned URLs whose headers travel in the query (tests/s3.rs), as the
AWS SDK for JavaScript's presigner moves every `x-amz-` header there: each
is read as the header it stands for (metadata, tags, a checksum, an ACL)
and checked as that header is, as S3 does; what cannot be a header is
refused."""
import base64
import zlib

from common import client, code
from raw import presigned, send

s3 = client()
s3.create_bucket(Bucket="hoist")


def put(key, params, body=b"data", headers=None):
    return send("PUT", "/hoist/" + key, presigned("PUT", "/hoist/" + key, params), headers=headers, body=body)


crc = base64.b64encode(zlib.crc32(b"data").to_bytes(4, "big")).decode()
status, _, answer = put("kept", [("x-amz-meta-owner", "browser"), ("x-amz-tagging", "via=query"),
                                 ("x-amz-checksum-crc32", crc), ("x-amz-acl", "private")])
assert status == 200, (status, answer)
got = s3.get_object(Bucket="hoist", Key="kept", ChecksumMode="ENABLED")
assert got["Metadata"] == {"owner": "browser"} and got["Body"].read() == b"data", got
assert got["ChecksumCRC32"] == crc and got["TagCount"] == 1
assert s3.get_object_tagging(Bucket="hoist", Key="kept")["TagSet"] == [{"Key": "via", "Value": "query"}]
# Checked as the headers are: a wrong checksum, encryption, tags S3 refuses.
wrong = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
for params, status, error in [([("x-amz-checksum-crc32", wrong)], 400, b"BadDigest"),
                              ([("x-amz-server-side-encryption", "AES256")], 501, b"NotImplemented"),
                              ([("x-amz-tagging", "aws:x=1")], 400, b"InvalidTag"),
                              ([("x-amz-meta-a", "x\r\nSet-Cookie: s=1")], 400, b"InvalidArgument"),
                              ([("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")], 400, b"InvalidArgument")]:
    got_status, _, answer = put("refused", params)
    assert got_status == status and error in answer, (params, got_status, answer)
    assert code(lambda: s3.head_object(Bucket="hoist", Key="refused")) == "404", params
# A header and a query parameter that disagree: refused; that agree: taken.
status, _, answer = put("both", [("x-amz-meta-a", "1")], headers={"x-amz-meta-a": "2"})
assert status == 400 and b"given twice" in answer, (status, answer)
status, _, answer = put("both", [("x-amz-meta-a", "1")], headers={"x-amz-meta-a": "1"})
assert status == 200 and s3.head_object(Bucket="hoist", Key="both")["Metadata"] == {"a": "1"}, answer
# The parameters are signed: one changed after signing is refused.
query = presigned("PUT", "/hoist/tampered", [("x-amz-meta-a", "1")])
query = [(k, "2" if k == "x-amz-meta-a" else v) for k, v in query]
status, _, answer = send("PUT", "/hoist/tampered", query, body=b"x")
assert status == 403 and b"SignatureDoesNotMatch" in answer, (status, answer)
# A presigned GET may ask for the checksum in the query too.
status, headers, body = send("GET", "/hoist/kept", presigned("GET", "/hoist/kept", [("x-amz-checksum-mode", "ENABLED")]))
assert status == 200 and body == b"data" and headers.get("x-amz-checksum-crc32") == crc, (status, headers)
print("ok")
