"""Writes until killed (tests/powerloss.rs, a power cut under S3 writes):
each of three workers overwrites its own four keys of BUCKET in turn, by
PutObject, by a server-side copy of another of its keys with new metadata,
or by a multipart upload (with a CRC32 of the whole object), and now and
then its folder (a key that ends in
/, an empty object kept as a marked directory) with new metadata. Every version's Content-Type, metadata and tags name it
(`version`), so power_check.py can tell which version came back and check
that its body, type, metadata, tags and ETag all belong to it. Now and then
a worker replaces the tags of one of its keys' current version in place
(PutObjectTagging: `version` and `retag`, the number of that request).

Each write is logged to SENT (a JSON record: key, version, the body's
pieces, type, metadata, and whether the file DOWN, written by the test once
the file system is shut down, already existed) before it is sent, and to
ACKS with its ETag once the daemon has answered. A worker stops at its
first failure: once the file system is down every write fails."""
import json
import os
import random
import threading

from common import body, client, content

BUCKET, SENT, ACKS, DOWN = (os.environ[name] for name in ("BUCKET", "SENT", "ACKS", "DOWN"))
lock = threading.Lock()


def log(path, record):
    with lock, open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def worker(w):
    s3 = client()
    rng = random.Random(w)
    keys = ["w%d/k%d" % (w, j) for j in range(4)]
    # The pieces of each key's last acknowledged version (what a copy reads),
    # and that version's number.
    current, versions = {}, {}
    v = 0
    while True:
        v += 1
        key = keys[v % len(keys)]
        kind = rng.choice(["put"] * 6 + ["copy"] * 2 + ["multipart", "folder", "tag", "tag"])
        if kind == "tag" and not versions:
            kind = "put"
        if kind == "tag":
            key = rng.choice(sorted(versions))
            tagged = {"version": str(versions[key]), "retag": str(v)}
            log(SENT, {"key": key, "version": v, "tag_of": versions[key], "meta": {"kind": "tag"},
                       "after_down": os.path.exists(DOWN)})
            try:
                s3.put_object_tagging(Bucket=BUCKET, Key=key,
                                      Tagging={"TagSet": [{"Key": k, "Value": t} for k, t in tagged.items()]})
            except Exception:  # noqa: the file system is down; nothing more to do
                return
            log(ACKS, {"key": key, "version": v, "tag_of": versions[key]})
            continue
        if kind == "folder":
            key = "w%d/folder/" % w
        sources = [k for k in current if k != key and not k.endswith("/")]
        if kind == "copy" and not sources:
            kind = "put"
        ctype = "application/x-%s-%d" % (kind, v)
        meta = {"version": str(v), "kind": kind}
        if kind == "put":
            pieces = [["%s/%d" % (key, v), rng.choice([0, 1, 4096, 65536, 200000])]]
        elif kind == "copy":
            source = rng.choice(sources)
            pieces = current[source]
            meta["from"] = source
        elif kind == "folder":
            pieces = []
        else:
            pieces = [["%s/%d/1" % (key, v), 5 << 20], ["%s/%d/2" % (key, v), rng.choice([1, 100000])]]
        log(SENT, {"key": key, "version": v, "pieces": pieces, "type": ctype, "meta": meta,
                   "after_down": os.path.exists(DOWN)})
        tags = "version=%d" % v
        try:
            if kind in ("put", "folder"):
                etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body(pieces), ContentType=ctype,
                                     Metadata=meta, Tagging=tags)["ETag"]
            elif kind == "copy":
                etag = s3.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": source},
                                      MetadataDirective="REPLACE", ContentType=ctype, Metadata=meta,
                                      TaggingDirective="REPLACE", Tagging=tags)["CopyObjectResult"]["ETag"]
            else:
                uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType=ctype, Metadata=meta,
                                                 ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT",
                                                 Tagging=tags)["UploadId"]
                parts = []
                for n, (name, size) in enumerate(pieces, 1):
                    tag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n,
                                         ChecksumAlgorithm="CRC32", Body=content(name, size))["ETag"]
                    parts.append({"PartNumber": n, "ETag": tag})
                etag = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                                    MultipartUpload={"Parts": parts})["ETag"]
        except Exception:  # noqa: the file system is down; nothing more to do
            return
        log(ACKS, {"key": key, "version": v, "etag": etag})
        current[key] = pieces
        versions[key] = v


if __name__ == "__main__":
    client().create_bucket(Bucket=BUCKET)
    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
