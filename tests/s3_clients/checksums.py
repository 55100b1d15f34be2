"""Checksums as current SDKs and aws-cli send them (tests/s3.rs): CRC64NVME
(aws-cli v2's default since 2.23, which the daemon once refused), CRC32,
CRC32C, SHA-1, SHA-256, SHA-512 and MD5 on single PUTs; multipart uploads
whose object gets a COMPOSITE or FULL_OBJECT checksum made from the parts',
and whose parts are served by number (GetObject `partNumber`) and
described (GetObjectAttributes);
UploadPartCopy, CopyObject and DeleteObjects; `aws s3 cp` asked for
CRC64NVME. Every value is checked against one computed here (awscrt for the
CRCs, as botocore computes them), and botocore checks each GET's bytes
against the value returned. Wrong values are refused. Run over HTTP (the
checksum in a header) and HTTPS (in an aws-chunked body's trailer)."""
import base64
import hashlib
import io
import os
import subprocess
import sys
import zlib

import botocore
from awscrt import checksums
from boto3.s3.transfer import TransferConfig

from common import CA, ENDPOINT, client, code

BUCKET = os.environ.get("S3_BUCKET", "sums")
MiB = 1 << 20
s3 = client()
sent = []
s3.meta.events.register("before-send", lambda request, **_: sent.append(dict(request.headers)))
quiet = client(request_checksum_calculation="when_required")


def b64(raw):
    return base64.b64encode(raw).decode()


RAW = {
    "CRC64NVME": lambda b: checksums.crc64nvme(b).to_bytes(8, "big"),
    "CRC32": lambda b: zlib.crc32(b).to_bytes(4, "big"),
    "CRC32C": lambda b: checksums.crc32c(b).to_bytes(4, "big"),
    "SHA1": lambda b: hashlib.sha1(b).digest(),
    "SHA256": lambda b: hashlib.sha256(b).digest(),
    "SHA512": lambda b: hashlib.sha512(b).digest(),
    "MD5": lambda b: hashlib.md5(b).digest(),
}


def value(algorithm, data):
    return b64(RAW[algorithm](data))


def composite(algorithm, parts):
    joined = b"".join(RAW[algorithm](p) for p in parts)
    return "%s-%d" % (value(algorithm, joined), len(parts))


s3.create_bucket(Bucket=BUCKET)
body = os.urandom(70000)

# Single PUTs: botocore computes the first five itself; SHA-512 and MD5 are
# given as values.
for algorithm in ["CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256", "SHA512", "MD5"]:
    key = "single-" + algorithm
    if algorithm in ("SHA512", "MD5"):
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=body, **{"Checksum" + algorithm: value(algorithm, body)})
    else:
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=body, ChecksumAlgorithm=algorithm)
    assert put.get("Checksum" + algorithm) == value(algorithm, body), (algorithm, put)
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got.get("Checksum" + algorithm) == value(algorithm, body), (algorithm, got)
    assert got["ChecksumType"] == "FULL_OBJECT" and got["Body"].read() == body, (algorithm, got)
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head.get("Checksum" + algorithm) == value(algorithm, body), (algorithm, head)
    # A value that is not the body's is refused, and nothing replaced.
    wrong = {"Checksum" + algorithm: value(algorithm, b"other")}
    assert code(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"new", **wrong)) == "BadDigest", algorithm
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body

# Algorithms S3 knows and the daemon does not compute are refused, saying so.
assert code(lambda: s3.create_multipart_upload(Bucket=BUCKET, Key="x", ChecksumAlgorithm="XXHASH3")) == "InvalidRequest"


def multipart(key, algorithm, kind, datas, send_whole=True, per_part=True):
    """A multipart upload with `algorithm` (`kind`: None for S3's default),
    each part's checksum sent (or computed by the daemon), then checked."""
    asked = {"ChecksumAlgorithm": algorithm}
    if kind:
        asked["ChecksumType"] = kind
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **asked)
    kind = kind or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
    assert up["ChecksumAlgorithm"] == algorithm and up["ChecksumType"] == kind, up
    parts = []
    for number, data in enumerate(datas, 1):
        if per_part:
            done = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up["UploadId"], PartNumber=number, Body=data,
                                  ChecksumAlgorithm=algorithm)
        else:
            done = quiet.upload_part(Bucket=BUCKET, Key=key, UploadId=up["UploadId"], PartNumber=number, Body=data)
        assert done.get("Checksum" + algorithm) == value(algorithm, data), (number, done)
        part = {"PartNumber": number, "ETag": done["ETag"]}
        if per_part:
            part["Checksum" + algorithm] = done["Checksum" + algorithm]
        parts.append(part)
    listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=up["UploadId"])
    assert listed["ChecksumAlgorithm"] == algorithm and listed["ChecksumType"] == kind, listed
    assert [p["Checksum" + algorithm] for p in listed["Parts"]] == [value(algorithm, d) for d in datas], listed
    whole = b"".join(datas)
    expected = value(algorithm, whole) if kind == "FULL_OBJECT" else composite(algorithm, datas)
    extra = {"Checksum" + algorithm: expected, "MpuObjectSize": len(whole)} if send_whole else {}
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts}, **extra)
    assert done.get("Checksum" + algorithm) == expected and done["ChecksumType"] == kind, done
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got.get("Checksum" + algorithm) == expected and got["ChecksumType"] == kind, got
    assert got["Body"].read() == whole
    return up["UploadId"]


five = os.urandom(5 * MiB)
three = [five, os.urandom(5 * MiB), os.urandom(1000)]
multipart("mp-crc64", "CRC64NVME", None, three)
multipart("mp-crc32", "CRC32", None, [five, b"abc"])
multipart("mp-crc32-full", "CRC32", "FULL_OBJECT", [five, os.urandom(77)])
multipart("mp-crc32c-full", "CRC32C", "FULL_OBJECT", [five, os.urandom(2 * MiB)], send_whole=False)
multipart("mp-sha256", "SHA256", None, [five, os.urandom(10)])
multipart("mp-one-part", "CRC64NVME", None, [os.urandom(123)])
# Parts sent without a checksum get theirs from the daemon.
multipart("mp-computed", "CRC64NVME", None, [five, os.urandom(4096)], per_part=False)


# Parts served by number, as the SDKs' transfer managers download them: each
# part's bytes (206), the count of parts, no whole-object checksum.
for repeat in range(2):
    for number, data in enumerate(three, 1):
        got = s3.get_object(Bucket=BUCKET, Key="mp-crc64", PartNumber=number, ChecksumMode="ENABLED")
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206 and got["PartsCount"] == 3, got
        assert got["ContentLength"] == len(data) and "ChecksumCRC64NVME" not in got, got
        assert got["Body"].read() == data, number
        head = s3.head_object(Bucket=BUCKET, Key="mp-crc64", PartNumber=number)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206 and head["ContentLength"] == len(data), head
        assert head["PartsCount"] == 3, head
    small = s3.get_object(Bucket=BUCKET, Key="mp-one-part", PartNumber=1)
    assert small["PartsCount"] == 1 and small["ContentLength"] == 123, small
    # An object of one PUT (here served from the daemon's cache the second
    # time) is one part, all of it.
    whole = s3.get_object(Bucket=BUCKET, Key="single-CRC32", PartNumber=1)
    assert whole["Body"].read() == body and "PartsCount" not in whole, whole
assert code(lambda: s3.get_object(Bucket=BUCKET, Key="mp-crc64", PartNumber=4)) == "InvalidPartNumber"
assert code(lambda: s3.head_object(Bucket=BUCKET, Key="mp-crc64", PartNumber=4)) == "416"
assert code(lambda: s3.get_object(Bucket=BUCKET, Key="single-CRC32", PartNumber=2)) == "InvalidPartNumber"
assert code(lambda: s3.get_object(Bucket=BUCKET, Key="mp-crc64", PartNumber=1, Range="bytes=0-1")) == "InvalidRequest"
# GetObjectAttributes: the same, without the bytes; parts paged.
ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
attrs = s3.get_object_attributes(Bucket=BUCKET, Key="mp-crc64", ObjectAttributes=ALL)
head = s3.head_object(Bucket=BUCKET, Key="mp-crc64")
assert attrs["ETag"] == head["ETag"].strip('"') and attrs["ObjectSize"] == sum(map(len, three)), attrs
assert attrs["Checksum"] == {"ChecksumCRC64NVME": value("CRC64NVME", b"".join(three)), "ChecksumType": "FULL_OBJECT"}
assert attrs["StorageClass"] == "STANDARD" and attrs["LastModified"] == head["LastModified"], attrs
assert attrs["ObjectParts"]["TotalPartsCount"] == 3 and not attrs["ObjectParts"]["IsTruncated"], attrs
assert [(p["PartNumber"], p["Size"]) for p in attrs["ObjectParts"]["Parts"]] == [(1, 5 * MiB), (2, 5 * MiB), (3, 1000)]
paged = s3.get_object_attributes(Bucket=BUCKET, Key="mp-crc64", ObjectAttributes=["ObjectParts"], MaxParts=2)
assert paged["ObjectParts"]["IsTruncated"] and paged["ObjectParts"]["NextPartNumberMarker"] == 2, paged
rest = s3.get_object_attributes(Bucket=BUCKET, Key="mp-crc64", ObjectAttributes=["ObjectParts"], PartNumberMarker=2)
assert [p["PartNumber"] for p in rest["ObjectParts"]["Parts"]] == [3] and "ETag" not in rest, rest
single = s3.get_object_attributes(Bucket=BUCKET, Key="single-CRC32", ObjectAttributes=ALL)
assert single["Checksum"]["ChecksumCRC32"] == value("CRC32", body) and "ObjectParts" not in single, single
assert single["ObjectSize"] == len(body)
assert code(lambda: s3.get_object_attributes(Bucket=BUCKET, Key="nothing", ObjectAttributes=ALL)) == "NoSuchKey"

# A copy of a multipart object is one part.
s3.copy_object(Bucket=BUCKET, Key="mp-copy", CopySource={"Bucket": BUCKET, "Key": "mp-one-part"})
assert "PartsCount" not in s3.head_object(Bucket=BUCKET, Key="mp-copy", PartNumber=1)


def started(key, **asked):
    return s3.create_multipart_upload(Bucket=BUCKET, Key=key, **asked)["UploadId"]


# What S3 refuses at the start: CRC64NVME is whole-object only, SHA composite only.
assert code(lambda: started("x", ChecksumAlgorithm="CRC64NVME", ChecksumType="COMPOSITE")) == "InvalidRequest"
assert code(lambda: started("x", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT")) == "InvalidRequest"

# A part with another algorithm than its upload's.
upload = started("mixed", ChecksumAlgorithm="CRC64NVME")
try:
    s3.upload_part(Bucket=BUCKET, Key="mixed", UploadId=upload, PartNumber=1, Body=b"x", ChecksumAlgorithm="CRC32")
    raise AssertionError("a CRC32 part was taken into a CRC64NVME upload")
except botocore.exceptions.ClientError as e:
    error = e.response["Error"]
    assert error["Code"] == "InvalidRequest", error
    assert error["Message"].endswith("sent CRC32: send x-amz-checksum-crc64nvme or no checksum"), error

# A Complete whose checksums are not the parts': a part's, the whole's, the size.
upload = started("lies", ChecksumAlgorithm="CRC64NVME")
first = s3.upload_part(Bucket=BUCKET, Key="lies", UploadId=upload, PartNumber=1, Body=five, ChecksumAlgorithm="CRC64NVME")
last = s3.upload_part(Bucket=BUCKET, Key="lies", UploadId=upload, PartNumber=2, Body=b"end", ChecksumAlgorithm="CRC64NVME")
parts = [{"PartNumber": 1, "ETag": first["ETag"], "ChecksumCRC64NVME": first["ChecksumCRC64NVME"]},
         {"PartNumber": 2, "ETag": last["ETag"], "ChecksumCRC64NVME": value("CRC64NVME", b"not the end")}]


def complete(parts, **extra):
    return s3.complete_multipart_upload(Bucket=BUCKET, Key="lies", UploadId=upload, MultipartUpload={"Parts": parts},
                                        **extra)


assert code(lambda: complete(parts)) == "InvalidPart"
parts[1]["ChecksumCRC64NVME"] = last["ChecksumCRC64NVME"]
assert code(lambda: complete(parts, ChecksumCRC64NVME=value("CRC64NVME", b"other"))) == "BadDigest"
assert code(lambda: complete(parts, MpuObjectSize=5)) == "InvalidRequest"
assert code(lambda: s3.head_object(Bucket=BUCKET, Key="lies")) == "404"
assert complete(parts, ChecksumCRC64NVME=value("CRC64NVME", five + b"end"))["ChecksumType"] == "FULL_OBJECT"

# UploadPartCopy into an upload with a checksum: the copied part gets one.
upload = started("copied-parts", ChecksumAlgorithm="CRC64NVME")
first = s3.upload_part(Bucket=BUCKET, Key="copied-parts", UploadId=upload, PartNumber=1, Body=five,
                       ChecksumAlgorithm="CRC64NVME")
copied = s3.upload_part_copy(Bucket=BUCKET, Key="copied-parts", UploadId=upload, PartNumber=2,
                             CopySource={"Bucket": BUCKET, "Key": "single-CRC32"}, CopySourceRange="bytes=100-999")
assert copied["CopyPartResult"].get("ChecksumCRC64NVME") == value("CRC64NVME", body[100:1000]), copied
done = s3.complete_multipart_upload(Bucket=BUCKET, Key="copied-parts", UploadId=upload, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": copied["CopyPartResult"]["ETag"]}]})
assert done["ChecksumCRC64NVME"] == value("CRC64NVME", five + body[100:1000]), done

# CopyObject keeps the source's checksum, or computes the one asked for.
s3.copy_object(Bucket=BUCKET, Key="copy-kept", CopySource={"Bucket": BUCKET, "Key": "single-CRC32C"})
assert s3.head_object(Bucket=BUCKET, Key="copy-kept", ChecksumMode="ENABLED")["ChecksumCRC32C"] == value("CRC32C", body)
fresh = s3.copy_object(Bucket=BUCKET, Key="copy-fresh", CopySource={"Bucket": BUCKET, "Key": "single-CRC32"},
                       ChecksumAlgorithm="CRC64NVME")
assert fresh["CopyObjectResult"]["ChecksumCRC64NVME"] == value("CRC64NVME", body), fresh
head = s3.head_object(Bucket=BUCKET, Key="copy-fresh", ChecksumMode="ENABLED")
assert head["ChecksumCRC64NVME"] == value("CRC64NVME", body) and "ChecksumCRC32" not in head, head

# A managed transfer as aws-cli v2 makes it (CRC64NVME, 5 MiB parts), and
# boto3's own default (CRC32, composite).
big = os.urandom(11 * MiB)
config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
s3.upload_fileobj(io.BytesIO(big), BUCKET, "transfer-crc64", Config=config, ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"})
head = s3.head_object(Bucket=BUCKET, Key="transfer-crc64", ChecksumMode="ENABLED")
assert head["ChecksumCRC64NVME"] == value("CRC64NVME", big) and head["ChecksumType"] == "FULL_OBJECT", head
got = io.BytesIO()
s3.download_fileobj(BUCKET, "transfer-crc64", got)
assert got.getvalue() == big
s3.upload_fileobj(io.BytesIO(big), BUCKET, "transfer-default", Config=config)
head = s3.head_object(Bucket=BUCKET, Key="transfer-default", ChecksumMode="ENABLED")
thirds = [big[:5 * MiB], big[5 * MiB:10 * MiB], big[10 * MiB:]]
assert head["ChecksumCRC32"] == composite("CRC32", thirds) and head["ChecksumType"] == "COMPOSITE", head

# DeleteObjects with a CRC64NVME over its XML instead of Content-MD5.
deleted = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "copy-kept"}, {"Key": "copy-fresh"}]},
                            ChecksumAlgorithm="CRC64NVME")
assert len(deleted["Deleted"]) == 2 and not deleted.get("Errors"), deleted

# aws s3 cp asked for CRC64NVME, as aws-cli v2 uses by default.
aws = os.path.join(os.path.dirname(sys.executable), "aws")
path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "percore-checksums-%d" % os.getpid())
with open(path, "wb") as f:
    f.write(big)
env = dict(os.environ)
if CA:
    env["AWS_CA_BUNDLE"] = CA
try:
    for size, key in [(11 * MiB, "cli-big"), (1000, "cli-small")]:
        with open(path, "r+b") as f:
            f.truncate(size)
        subprocess.run([aws, "--endpoint-url", ENDPOINT, "s3", "cp", path, "s3://%s/%s" % (BUCKET, key),
                        "--checksum-algorithm", "CRC64NVME"], check=True, env=env, capture_output=True)
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumCRC64NVME"] == value("CRC64NVME", big[:size]), head
        out = subprocess.run([aws, "--endpoint-url", ENDPOINT, "s3", "cp", "s3://%s/%s" % (BUCKET, key), "-",
                              "--checksum-mode", "ENABLED"], check=True, env=env, capture_output=True).stdout
        assert out == big[:size]
finally:
    os.unlink(path)
# Over HTTPS botocore sent the CRC64NVMEs in aws-chunked bodies' trailers.
trailers = [h.get("X-Amz-Trailer") for h in sent]
assert (b"x-amz-checksum-crc64nvme" in trailers) == ENDPOINT.startswith("https"), trailers
print("ok")
