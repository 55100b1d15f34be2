"""boto3 over HTTPS (tests/s3.rs): there it sends bodies aws-chunked,
unsigned, with a CRC32 in the trailer, which the daemon checks."""
import hashlib
import io
import os

from boto3.s3.transfer import TransferConfig

from common import client

s3 = client()
sent = []
s3.meta.events.register("before-send", lambda request, **_: sent.append(dict(request.headers)))
s3.create_bucket(Bucket="secure")
body = os.urandom(100000)
assert s3.put_object(Bucket="secure", Key="one", Body=body)["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
assert any(h.get("X-Amz-Content-SHA256") == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" for h in sent), sent[-1]
big = os.urandom(11 << 20)
s3.upload_fileobj(io.BytesIO(big), "secure", "big", Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
got = s3.get_object(Bucket="secure", Key="big")
assert got["Body"].read() == big and got["ETag"].endswith('-3"'), got["ETag"]
assert "Content-Encoding" not in got["ResponseMetadata"]["HTTPHeaders"], got["ResponseMetadata"]["HTTPHeaders"]
print("ok")
