"""Writes until killed (tests/s3.rs): multipart uploads (with a CRC32 of
the whole object, combined from the parts') and copies, each acknowledged
object or part appended to ACKS once the daemon has answered."""
import os
import sys
import threading

from common import client, content

ACKS = os.environ["ACKS"]
lock = threading.Lock()


def ack(line):
    with lock, open(ACKS, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def worker(w):
    s3 = client()
    i = 0
    while True:
        i += 1
        key = "mp/%d-%d" % (w, i)
        uid = s3.create_multipart_upload(Bucket="crash", Key=key, ChecksumAlgorithm="CRC32",
                                         ChecksumType="FULL_OBJECT")["UploadId"]
        parts = []
        for n, size in ((1, 5 << 20), (2, 300000)):
            tag = s3.upload_part(Bucket="crash", Key=key, UploadId=uid, PartNumber=n, ChecksumAlgorithm="CRC32",
                                 Body=content("%s/%d" % (key, n), size))["ETag"]
            parts.append({"PartNumber": n, "ETag": tag})
            ack("part %s %s %d %s" % (key, uid, n, tag))
        s3.complete_multipart_upload(Bucket="crash", Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
        ack("object %s" % key)
        copy = "copy/%d-%d" % (w, i)
        s3.copy_object(Bucket="crash", Key=copy, CopySource={"Bucket": "crash", "Key": key})
        ack("object %s" % copy)


if __name__ == "__main__":
    client().create_bucket(Bucket="crash")
    print("ready", flush=True)
    for w in range(3):
        threading.Thread(target=worker, args=(w,), daemon=True).start()
    threading.Event().wait()
