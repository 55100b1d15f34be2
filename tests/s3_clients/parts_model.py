"""ListParts against a model (seeded: PARTS_SEED, PARTS_ROUNDS): parts
uploaded under random numbers from 1 to 10,000, in any order, some again
with other bytes (the later one replaces the earlier: its ETag and size),
then listed in pages of random sizes from random part-number markers: the
parts in number order, each with its last ETag and size; a page's
NextPartNumberMarker and IsTruncated as S3 gives them. Then completed with
a random subset in order: the object is those parts' latest bytes, its ETag
the MD5 of their MD5s with the count. Prints "ok" when every answer is
the model's."""
import hashlib
import os
import random

from common import client

s3 = client()
SEED = int(os.environ.get("PARTS_SEED", "1"))
ROUNDS = int(os.environ.get("PARTS_ROUNDS", "4"))
BUCKET = "parts-model"


def listed(key, upload, max_parts, marker):
    parts, pages = [], 0
    while True:
        args = {"Bucket": BUCKET, "Key": key, "UploadId": upload, "MaxParts": max_parts}
        if marker:
            args["PartNumberMarker"] = marker
        r = s3.list_parts(**args)
        page = [(p["PartNumber"], p["ETag"], p["Size"]) for p in r.get("Parts", [])]
        assert len(page) <= max_parts, (len(page), max_parts)
        assert page == sorted(page), page
        parts += page
        pages += 1
        if not r["IsTruncated"]:
            return parts, pages
        assert page and r["NextPartNumberMarker"] == page[-1][0], (r["NextPartNumberMarker"], page)
        marker = r["NextPartNumberMarker"]


def main():
    rng = random.Random(SEED)
    s3.create_bucket(Bucket=BUCKET)
    checks = 0
    for round_ in range(ROUNDS):
        key = f"object-{round_}"
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        numbers = rng.sample(range(1, 10_001), rng.randint(1, 12)) + [1, 10_000]
        model = {}
        for n in numbers + rng.sample(numbers, min(3, len(numbers))):
            data = os.urandom(rng.randint(1, 300))
            etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=data)["ETag"]
            assert etag == f'"{hashlib.md5(data).hexdigest()}"', etag
            model[n] = (etag, data)
        want_all = [(n, model[n][0], len(model[n][1])) for n in sorted(model)]
        for _ in range(12):
            max_parts = rng.choice([1, 2, 3, 5, 1000])
            marker = rng.choice([0, 0, 1, rng.randint(1, 10_000)])
            got, pages = listed(key, upload, max_parts, marker)
            want = [p for p in want_all if p[0] > marker]
            assert got == want, f"max {max_parts} after {marker}: {got} != {want}"
            assert pages == max(1, -(-len(want) // max_parts)), (pages, len(want), max_parts)
            checks += 1
        # Completed with a subset, in order; only the last part may be
        # under 5 MiB, so the subset is one part, or this round's parts
        # are all replaced by 5 MiB ones but the last.
        chosen = sorted(rng.sample(sorted(model), rng.randint(1, min(3, len(model)))))
        for n in chosen[:-1]:
            data = os.urandom(5 << 20)
            etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=n, Body=data)["ETag"]
            model[n] = (etag, data)
        parts = [{"PartNumber": n, "ETag": model[n][0]} for n in chosen]
        done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
        digest = hashlib.md5(b"".join(bytes.fromhex(model[n][0].strip('"')) for n in chosen)).hexdigest()
        assert done["ETag"] == f'"{digest}-{len(chosen)}"', (done["ETag"], digest)
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == b"".join(model[n][1] for n in chosen), f"the object is not parts {chosen}"
        head = s3.head_object(Bucket=BUCKET, Key=key, PartNumber=1)
        assert head["PartsCount"] == len(chosen), head.get("PartsCount")
        assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), "the upload is still listed"
        s3.delete_object(Bucket=BUCKET, Key=key)
        checks += 1
    s3.delete_bucket(Bucket=BUCKET)
    print(f"{checks} listings and completions equal the model's")
    print("ok")


main()
