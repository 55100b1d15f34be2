"""The S3 API against hostile and broken requests (tests/s3.rs): each is
refused with the right status and code, and stores nothing."""
import base64
import datetime
import hashlib
import socket
import urllib.parse
import zlib

from common import ENDPOINT, client, code
from raw import amz_now, chunked_signed, send, sign, signed

s3 = client()
s3.create_bucket(Bucket="hostile")


def refused(result, status, error):
    got_status, _, body = result
    assert got_status == status and b"<Code>%s</Code>" % error.encode() in body, (status, error, got_status, body[:300])


def absent(key):
    assert code(lambda: s3.head_object(Bucket="hostile", Key=key)) == "404", key


# No signature, a v2 signature, a skewed clock, an unknown key.
refused(send("PUT", "/hostile/anon", body=b"x"), 403, "AccessDenied")
refused(send("GET", "/", headers={"authorization": "AWS AKIDTEST:c2lnbmF0dXJl"}), 400, "InvalidRequest")
refused(signed("GET", "/", amz_date=amz_now(-20 * 60)), 403, "RequestTimeTooSkewed")
refused(signed("GET", "/", secret="not-the-secret"), 403, "SignatureDoesNotMatch")
absent("anon")

# A body that is not the one signed; a checksum or Content-MD5 that does not match.
refused(signed("PUT", "/hostile/tampered", body=b"evil", payload_hash=hashlib.sha256(b"good").hexdigest()),
        400, "XAmzContentSHA256Mismatch")
absent("tampered")
crc = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
refused(signed("PUT", "/hostile/crc", body=b"data", headers={"x-amz-checksum-crc32": crc}), 400, "BadDigest")
absent("crc")
md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
refused(signed("PUT", "/hostile/md5", body=b"data", headers={"content-md5": md5}), 400, "BadDigest")
absent("md5")
good_crc = base64.b64encode(zlib.crc32(b"data").to_bytes(4, "big")).decode()
assert signed("PUT", "/hostile/crc-ok", body=b"data", headers={"x-amz-checksum-crc32": good_crc})[0] == 200
# Server-side encryption is asked for and not done: refused, never
# stored as if encrypted (with SSE-C the client would believe the object
# readable only with its key).
for sse in [{"ServerSideEncryption": "AES256"}, {"ServerSideEncryption": "aws:kms"},
            {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}]:
    assert code(lambda: s3.put_object(Bucket="hostile", Key="sse", Body=b"secret", **sse)) == "NotImplemented", sse
    assert code(lambda: s3.create_multipart_upload(Bucket="hostile", Key="sse", **sse)) == "NotImplemented", sse
    assert code(lambda: s3.copy_object(Bucket="hostile", Key="sse", CopySource="hostile/crc-ok", **sse)) == "NotImplemented"
absent("sse")
# Object Lock, appends and ACLs that would not hold are asked for and not
# done: refused, never dropped in silence (the client would believe the
# object undeletable, appended to, or public).
for lock in [{"ObjectLockMode": "COMPLIANCE",
              "ObjectLockRetainUntilDate": datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)},
             {"ObjectLockLegalHoldStatus": "ON"}]:
    assert code(lambda: s3.put_object(Bucket="hostile", Key="locked", Body=b"x", **lock)) == "InvalidRequest", lock
    assert code(lambda: s3.create_multipart_upload(Bucket="hostile", Key="locked", **lock)) == "InvalidRequest", lock
    assert code(lambda: s3.copy_object(Bucket="hostile", Key="locked", CopySource="hostile/crc-ok", **lock)) == "InvalidRequest"
absent("locked")
assert code(lambda: s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)) == "NotImplemented"
refused(signed("PUT", "/hostile/crc-ok", body=b"more", headers={"x-amz-write-offset-bytes": "4"}), 501, "NotImplemented")
assert s3.get_object(Bucket="hostile", Key="crc-ok")["Body"].read() == b"data"
for acl in ["public-read", "public-read-write", "aws-exec-read"]:
    assert code(lambda: s3.put_object(Bucket="hostile", Key="public", Body=b"x", ACL=acl)) == "AccessControlListNotSupported"
    assert code(lambda: s3.create_bucket(Bucket="public", ACL=acl)) == "AccessControlListNotSupported"
assert code(lambda: s3.put_object(Bucket="hostile", Key="public", Body=b"x",
                                  GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"')) == "AccessControlListNotSupported"
absent("public")
assert code(lambda: s3.head_bucket(Bucket="public")) == "404"
# What holds here is taken: only the keys' holders reach objects. ACLs read
# as they hold (the owner, full control), and are set only to that.
for acl in ["private", "bucket-owner-full-control"]:
    s3.put_object(Bucket="hostile", Key="private", Body=b"p", ACL=acl)
owner_only = [{"Grantee": {"Type": "CanonicalUser", "ID": "percore", "DisplayName": "percore"},
               "Permission": "FULL_CONTROL"}]
assert s3.get_bucket_acl(Bucket="hostile")["Grants"] == owner_only
assert s3.get_object_acl(Bucket="hostile", Key="private")["Grants"] == owner_only
assert code(lambda: s3.get_object_acl(Bucket="hostile", Key="no-such")) == "NoSuchKey"
s3.put_object_acl(Bucket="hostile", Key="private", ACL="private")
s3.put_bucket_acl(Bucket="hostile", ACL="bucket-owner-full-control")
owner = {"ID": "percore", "DisplayName": "percore"}
s3.put_object_acl(Bucket="hostile", Key="private", AccessControlPolicy={"Owner": owner, "Grants": owner_only})
everyone = {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}
assert code(lambda: s3.put_object_acl(Bucket="hostile", Key="private", ACL="public-read")) == "AccessControlListNotSupported"
assert code(lambda: s3.put_bucket_acl(Bucket="hostile", ACL="public-read")) == "AccessControlListNotSupported"
assert code(lambda: s3.put_object_acl(Bucket="hostile", Key="private", AccessControlPolicy={
    "Owner": owner, "Grants": owner_only + [everyone]})) == "AccessControlListNotSupported"
assert code(lambda: s3.put_object_acl(Bucket="hostile", Key="private", GrantRead='id="someone"')) == \
    "AccessControlListNotSupported"
assert code(lambda: s3.put_object_acl(Bucket="hostile", Key="no-such", ACL="private")) == "NoSuchKey"
assert s3.get_object_acl(Bucket="hostile", Key="private")["Grants"] == owner_only
s3.delete_object(Bucket="hostile", Key="private")
# A bucket expected to be another account's: refused, as S3 refuses it when
# the bucket's owner is not the one expected (taken without the check, the
# client would believe it made); percore's one owner is taken.
other = {"ExpectedBucketOwner": "123456789012"}
assert code(lambda: s3.put_object(Bucket="hostile", Key="owned", Body=b"x", **other)) == "AccessDenied"
assert code(lambda: s3.get_object(Bucket="hostile", Key="crc-ok", **other)) == "AccessDenied"
assert code(lambda: s3.list_objects_v2(Bucket="hostile", **other)) == "AccessDenied"
assert code(lambda: s3.copy_object(Bucket="hostile", Key="owned", CopySource="hostile/crc-ok",
                                   ExpectedSourceBucketOwner="123456789012")) == "AccessDenied"
absent("owned")
assert s3.get_object(Bucket="hostile", Key="crc-ok", ExpectedBucketOwner="percore")["Body"].read() == b"data"
# Tags that S3 would refuse are refused before anything is stored: a
# character tags may not hold, a tag set that is no query string, a
# directive that is neither COPY nor REPLACE, a Tagging document that is
# not one (or too large to be one).
for bad in ["project=a,b", "k=%FF", "aws:system=1", "a=1&a=2", "=novalue"]:
    assert code(lambda: s3.put_object(Bucket="hostile", Key="tagged", Body=b"x", Tagging=bad)) == "InvalidTag", bad
    assert code(lambda: s3.create_multipart_upload(Bucket="hostile", Key="tagged", Tagging=bad)) == "InvalidTag"
    assert code(lambda: s3.copy_object(Bucket="hostile", Key="tagged", CopySource="hostile/crc-ok",
                                       TaggingDirective="REPLACE", Tagging=bad)) == "InvalidTag"
assert code(lambda: s3.copy_object(Bucket="hostile", Key="tagged", CopySource="hostile/crc-ok",
                                   TaggingDirective="copy")) == "InvalidArgument"
absent("tagged")
for document, error in [(b"<Tagging><TagSet><Tag><Key>a</Key><Key>b</Key></Tag></TagSet></Tagging>", "MalformedXML"),
                        (b"<!DOCTYPE t [<!ENTITY e \"x\">]><Tagging/>", "MalformedXML"),
                        (b"<Tagging><TagSet>" + b"<Tag><Key>k</Key></Tag>" * 4000 + b"</TagSet></Tagging>",
                         "EntityTooLarge")]:
    refused(signed("PUT", "/hostile/crc-ok", query=[("tagging", "")], body=document), 400, error)
assert s3.get_object_tagging(Bucket="hostile", Key="crc-ok")["TagSet"] == []
assert s3.get_object(Bucket="hostile", Key="crc-ok")["Body"].read() == b"data"
assert code(lambda: s3.get_object_tagging(Bucket="hostile", Key="no-such")) == "NoSuchKey"
assert code(lambda: s3.delete_object_tagging(Bucket="hostile", Key="no-such")) == "NoSuchKey"
# Tags on a key that names a directory of other keys: no such object.
assert signed("PUT", "/hostile/d/inner", body=b"i")[0] == 200
assert code(lambda: s3.put_object_tagging(Bucket="hostile", Key="d", Tagging={"TagSet": []})) == "NoSuchKey"
s3.delete_object(Bucket="hostile", Key="d/inner")
# No tags (an empty header, as some clients send) is no refusal.
assert signed("PUT", "/hostile/untagged", body=b"u", headers={"x-amz-tagging": ""})[0] == 200
s3.delete_object(Bucket="hostile", Key="untagged")
# Checksums that are no checksum: an unknown algorithm, a value of another
# width or not base64, a part layout smuggled in as a header; an upload
# asked for a checksum kind S3 does not allow.
refused(signed("PUT", "/hostile/alg", body=b"data", headers={"x-amz-checksum-foo": good_crc}), 400, "InvalidRequest")
absent("alg")
for value in [good_crc, "not base64!", ""]:
    refused(signed("PUT", "/hostile/crc64", body=b"data", headers={"x-amz-checksum-crc64nvme": value}), 400, "BadDigest")
absent("crc64")
assert signed("PUT", "/hostile/layout", body=b"data", headers={"x-percore-parts": "1*4"})[0] == 200
got = s3.get_object(Bucket="hostile", Key="layout", PartNumber=1)
assert got["Body"].read() == b"data" and "PartsCount" not in got, got
s3.delete_object(Bucket="hostile", Key="layout")
refused(signed("POST", "/hostile/kind", query=[("uploads", "")], headers={"x-amz-checksum-algorithm": "CRC64NVME",
                                                              "x-amz-checksum-type": "COMPOSITE"}),
        400, "InvalidRequest")

# Signed aws-chunked bodies: stored when every chunk's signature holds.
chunks = [b"a" * 70000, b"b" * 1000]
status, _, body = chunked_signed("/hostile/chunked", chunks)
assert status == 200, body
assert s3.get_object(Bucket="hostile", Key="chunked")["Body"].read() == b"".join(chunks)
refused(chunked_signed("/hostile/chunked-bad", chunks, tamper=1), 403, "SignatureDoesNotMatch")
absent("chunked-bad")
# Unsigned chunks with a trailing checksum that does not match.
trailer_body = b"4\r\ndata\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % crc.encode()
refused(signed("PUT", "/hostile/trailer", body=trailer_body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
               headers={"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                        "x-amz-decoded-content-length": "4"}), 400, "BadDigest")
absent("trailer")

# Keys the store cannot hold as they are: refused, never changed.
for path in ["/hostile/a/../../etc/passwd", "/hostile/%2E%2E/x", "/hostile/a//b", "/hostile/.percore-1-0-1",
             "/hostile/a%00b", "/hostile/a\\b", "/hostile/a/..//", "/hostile/a//", "/hostile/.percore-x/"]:
    for data in (b"x", b""):
        status, _, body = signed("PUT", path, body=data)
        assert status == 400 and (b"InvalidArgument" in body or b"InvalidURI" in body), (path, status, body[:200])
# A key that ends in / is a folder (a marked directory): it takes no bytes.
status, _, body = signed("PUT", "/hostile/dir/", body=b"x")
assert status == 400 and b"InvalidRequest" in body and b"folder" in body, (status, body[:200])
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="hostile").get("Contents", [])]
assert keys == ["chunked", "crc-ok"], keys

# XML: malformed, entity tricks, oversized.
for doc in [b"<Delete><Object><Key>x</Key>", b"not xml", b"<Other/>",
            b'<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Delete><Object><Key>&b;</Key></Object></Delete>']:
    refused(signed("POST", "/hostile", query=[("delete", "")], body=doc), 400, "MalformedXML")
huge = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 100000 + b"</Delete>"
refused(signed("POST", "/hostile", query=[("delete", "")], body=huge), 400, "EntityTooLarge")
refused(signed("POST", "/hostile/k", query=[("uploadId", "0" * 32)], body=b"<CompleteMultipartUpload/>"), 404, "NoSuchUpload")
refused(signed("POST", "/hostile/k", query=[("uploadId", "../../x")], body=b"<CompleteMultipartUpload/>"), 404, "NoSuchUpload")
refused(signed("PUT", "/hostile", query=[("policy", "")], body=b"{}"), 501, "NotImplemented")
# What is not served is named, for buckets and objects.
status, _, body = signed("PUT", "/hostile", query=[("policy", "")], body=b"{}")
assert b"PUT ?policy on a bucket is not implemented" in body, body
status, _, body = signed("PUT", "/hostile/chunked", query=[("retention", "")], body=b"<Retention/>")
assert status == 501 and b"PUT ?retention on an object is not implemented" in body, (status, body)
assert [o["Key"] for o in s3.list_objects_v2(Bucket="hostile")["Contents"]] == ["chunked", "crc-ok"]


def expecting(length, secret):
    """A PUT of `length` bytes signed with `secret`, waiting for `100
    Continue`: what comes back before the body is sent, then (if 100 came)
    what comes back after it, and whether the connection still serves."""
    headers = {"content-length": str(length), "expect": "100-continue"}
    sign("PUT", "/hostile/expect", [], headers, "UNSIGNED-PAYLOAD", amz_now(), secret)
    parsed = urllib.parse.urlparse(ENDPOINT)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        head = "PUT /hostile/expect HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        first = sock.recv(65536)
        if not first.startswith(b"HTTP/1.1 100"):
            return first, b"", False
        sock.sendall(b"x" * length)
        answer = b""
        while b"</Error>" not in answer:
            answer += sock.recv(65536)
        host = parsed.netloc
        # (Unsigned: answered 403 AccessDenied, on the same connection.)
        sock.sendall(f"GET /hostile HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        return first, answer, b"AccessDenied" in sock.recv(65536)


# Refused before its body, a small upload is read first (after 100
# Continue), so the connection stays in step (behind HAProxy, which waits
# for the body, that matters); a large one with a signature that does not
# hold is refused at once, its body never asked for.
first, answer, alive = expecting(1000, "not-the-secret")
assert b"403" in answer and b"SignatureDoesNotMatch" in answer and alive, (first, answer)
first, answer, alive = expecting(2 << 20, "not-the-secret")
assert first.startswith(b"HTTP/1.1 403") and b"SignatureDoesNotMatch" in first, first[:200]
absent("expect")
print("ok")
