"""boto3 with virtual-host-style addressing (tests/s3.rs): the daemon runs with
--s3-domain S3_DOMAIN; the bucket travels in the host, BUCKET.S3_DOMAIN, which
this script resolves to the daemon's loopback address itself (no DNS, no
other address). Path-style requests to the same daemon keep working."""
import hashlib
import os
import socket
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

from common import KEY_ID, SECRET, client, code

DOMAIN = os.environ["S3_DOMAIN"]
port = urllib.parse.urlsplit(os.environ["S3_ENDPOINT"]).port

resolve = socket.getaddrinfo


def loopback_for_the_domain(host, *args, **kwargs):
    if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
        host = "127.0.0.1"
    return resolve(host, *args, **kwargs)


socket.getaddrinfo = loopback_for_the_domain

s3 = boto3.client(
    "s3",
    endpoint_url=f"http://{DOMAIN}:{port}",
    aws_access_key_id=KEY_ID,
    aws_secret_access_key=SECRET,
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
)
seen = []
s3.meta.events.register("before-send", lambda request, **_: seen.append(urllib.parse.urlsplit(request.url).netloc))

s3.create_bucket(Bucket="hosted")
assert seen[-1] == f"hosted.{DOMAIN}:{port}", seen
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["hosted"]
body = os.urandom(5000)
put = s3.put_object(Bucket="hosted", Key="dir/a b.txt", Body=body, ContentType="text/plain", Metadata={"m": "1"})
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
got = s3.get_object(Bucket="hosted", Key="dir/a b.txt")
assert got["Body"].read() == body and got["Metadata"] == {"m": "1"}
assert s3.get_object(Bucket="hosted", Key="dir/a b.txt", Range="bytes=0-9")["Body"].read() == body[:10]
assert [o["Key"] for o in s3.list_objects_v2(Bucket="hosted")["Contents"]] == ["dir/a b.txt"]
listed = s3.list_objects_v2(Bucket="hosted", Delimiter="/")
assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/"], listed
s3.copy_object(Bucket="hosted", Key="copy", CopySource={"Bucket": "hosted", "Key": "dir/a b.txt"})
assert s3.get_object(Bucket="hosted", Key="copy")["Body"].read() == body
assert code(lambda: s3.get_object(Bucket="hosted", Key="missing")) == "NoSuchKey"
assert code(lambda: s3.get_object(Bucket="absent", Key="k")) == "NoSuchBucket"

# Multipart, virtual-host style.
upload = s3.create_multipart_upload(Bucket="hosted", Key="big")["UploadId"]
parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
etags = [s3.upload_part(Bucket="hosted", Key="big", UploadId=upload, PartNumber=i + 1, Body=p)["ETag"]
         for i, p in enumerate(parts)]
s3.complete_multipart_upload(Bucket="hosted", Key="big", UploadId=upload, MultipartUpload={
    "Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]})
assert s3.get_object(Bucket="hosted", Key="big")["Body"].read() == b"".join(parts)

# A presigned URL names the bucket in its host too; tampering with the host
# (another bucket) breaks the signature.
url = s3.generate_presigned_url("get_object", Params={"Bucket": "hosted", "Key": "copy"}, ExpiresIn=60)
assert urllib.parse.urlsplit(url).netloc == f"hosted.{DOMAIN}:{port}", url
assert urllib.request.urlopen(url).read() == body
s3.create_bucket(Bucket="other")
s3.put_object(Bucket="other", Key="copy", Body=b"someone else's")
forged = url.replace("hosted.", "other.", 1)
try:
    urllib.request.urlopen(forged)
    raise AssertionError("a URL signed for one bucket read another")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"SignatureDoesNotMatch" in e.read()

# The same objects, path-style, on the same daemon.
path_style = client()
assert path_style.get_object(Bucket="hosted", Key="dir/a b.txt")["Body"].read() == body

for key in ["dir/a b.txt", "copy", "big"]:
    s3.delete_object(Bucket="hosted", Key=key)
s3.delete_object(Bucket="other", Key="copy")
s3.delete_bucket(Bucket="hosted")
s3.delete_bucket(Bucket="other")
assert s3.list_buckets()["Buckets"] == []
print("ok")
