"""ListObjectsV2, ListObjects (v1) and ListObjectVersions against a model of
S3's rules, over random key sets (seeded: LISTING_SEED, LISTING_ROUNDS):
keys sorted by their UTF-8 bytes; a prefix; a start key (StartAfter, Marker,
KeyMarker); a delimiter of any length rolling keys up into CommonPrefixes,
each counted once against max-keys; pages followed by continuation token or
marker to the end. The names are drawn from characters that sort around
`/` ('-', '.', '0', 'é', '~', ' ') so that a key in a directory must sort
between keys that are files beside it, and folders (keys ending in `/`)
are among them. Prints "ok" when every listing equals the model's."""
import os
import random

from common import client

s3 = client()
SEED = int(os.environ.get("LISTING_SEED", "1"))
ROUNDS = int(os.environ.get("LISTING_ROUNDS", "6"))
PIECES = ["a", "a-", "a.b", "a0", "ab", "b", "é", "~", " x", "a/"]


def random_keys(rng, count):
    """Keys a directory tree can hold together: none is both an object and
    the directory of another (`a` and `a/b`), except folders (`a/`)."""
    keys = set()
    while len(keys) < count:
        depth = rng.choice([1, 1, 2, 2, 3])
        segments = [rng.choice(PIECES).rstrip("/") for _ in range(depth)]
        key = "/".join(segments)
        if rng.random() < 0.1:
            key += "/"  # a folder
        files = {k for k in keys if not k.endswith("/")}
        dirs = {k[:i] for k in keys for i in range(len(k)) if k[i] == "/"}
        own_dirs = [key[:i] for i in range(len(key)) if key[i] == "/"]
        if key.endswith("/"):
            if key[:-1] in files or any(d in files for d in own_dirs):
                continue
        elif key in dirs or any(d in files for d in own_dirs):
            continue
        keys.add(key)
    return sorted(keys, key=lambda k: k.encode())


def model(keys, prefix, delimiter, after):
    """Every entry of the full listing, in order: (key, False) for objects,
    (common prefix, True) for prefixes. The listing is the entries in byte
    order, a CommonPrefix standing at its own name, from the first one
    after the start key: a start key that is a CommonPrefix (a page ended
    on it) lists nothing under it again, and one inside a CommonPrefix
    lists neither it nor the keys of it."""
    entries = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        i = key.find(delimiter, len(prefix)) if delimiter else -1
        name = key[:i + len(delimiter)] if i >= 0 else key
        entries[name] = i >= 0
    listed = sorted(entries.items(), key=lambda e: e[0].encode())
    return [e for e in listed if after is None or e[0].encode() > after.encode()]


def listed_v2(bucket, prefix, delimiter, after, max_keys):
    entries, token, pages = [], None, 0
    while True:
        args = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            args["Delimiter"] = delimiter
        if token:
            args["ContinuationToken"] = token
        elif after is not None:
            args["StartAfter"] = after
        r = s3.list_objects_v2(**args)
        page = [(o["Key"], False) for o in r.get("Contents", [])] + [(p["Prefix"], True) for p in r.get("CommonPrefixes", [])]
        assert len(page) <= max_keys, (len(page), max_keys)
        assert r["KeyCount"] == len(page), (r["KeyCount"], len(page))
        entries += sorted(page, key=lambda e: e[0].encode())
        pages += 1
        if not r["IsTruncated"]:
            return entries
        token = r["NextContinuationToken"]
        assert pages < 10_000


def paged(call, size, listed, start, bucket, prefix, delimiter, after, max_keys):
    """Every entry of a listing by markers, page after page: `call` with
    `size` entries a page at most, `listed` the list of objects in an
    answer, `start(answer, page)` the markers of the next page."""
    entries, markers = [], {} if after is None else start(None, after)
    while True:
        args = {"Bucket": bucket, "Prefix": prefix, size: max_keys, **markers}
        if delimiter:
            args["Delimiter"] = delimiter
        r = call(**args)
        page = [(o["Key"], False) for o in r.get(listed, [])] + [(p["Prefix"], True) for p in r.get("CommonPrefixes", [])]
        assert len(page) <= max_keys, (len(page), max_keys)
        entries += sorted(page, key=lambda e: e[0].encode())
        if not r["IsTruncated"]:
            return entries
        markers = start(r, page)


def v1_marker(answer, page):
    # NextMarker is given with a delimiter; without one the last key is the marker.
    if answer is None:
        return {"Marker": page}
    marker = answer.get("NextMarker") or (page and max(e[0] for e in page))
    assert marker, answer
    return {"Marker": marker}


def key_marker(answer, page):
    return {"KeyMarker": page if answer is None else answer["NextKeyMarker"]}


def upload_markers(answer, page):
    if answer is None:
        return {"KeyMarker": page}
    return {"KeyMarker": answer["NextKeyMarker"], "UploadIdMarker": answer.get("NextUploadIdMarker", "")}


def listed_v1(*how):
    return paged(s3.list_objects, "MaxKeys", "Contents", v1_marker, *how)


def listed_versions(*how):
    return paged(s3.list_object_versions, "MaxKeys", "Versions", key_marker, *how)


def listed_uploads(*how):
    return paged(s3.list_multipart_uploads, "MaxUploads", "Uploads", upload_markers, *how)


def main():
    rng = random.Random(SEED)
    checks = 0
    for round_ in range(ROUNDS):
        bucket = f"model-{SEED}-{round_}"
        s3.create_bucket(Bucket=bucket)
        keys = random_keys(rng, rng.choice([5, 20, 60]))
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())
        # Uploads begun and not completed, for some of the keys.
        pending = [k for k in keys if not k.endswith("/") and rng.random() < 0.5]
        for key in pending:
            s3.create_multipart_upload(Bucket=bucket, Key=key)
        candidates = sorted({k[:i] for k in keys for i in range(len(k) + 1)} | {"", "a", "zz"}, key=lambda k: k.encode())
        # A start key that is a directory above the prefix (StartAfter a
        # root, Prefix a path under it), or inside it; then random ones.
        fixed = [(k[:k.rindex("/", 0, len(k) - 1) + 1], k[:k.index("/") + 1], "/") for k in keys if k.count("/") >= 2]
        fixed += [(k[:k.index("/") + 1], k[:k.index("/") + 1] + "~", "/") for k in keys if "/" in k]
        for i in range(25 + len(fixed[:5])):
            prefix = rng.choice(["", "", rng.choice(candidates)])
            delimiter = rng.choice([None, "/", "/", "-", ".", "/a", "é"])
            after = rng.choice([None, None, rng.choice(candidates)])
            if i >= 25:
                prefix, after, delimiter = fixed[i - 25]
            max_keys = rng.choice([1, 2, 3, 7, 1000])
            how = (bucket, prefix, delimiter, after, max_keys)
            listers = [("v2", listed_v2, keys), ("v1", listed_v1, keys), ("versions", listed_versions, keys),
                       ("uploads", listed_uploads, pending)]
            for name, lister, present in listers:
                want = model(present, prefix, delimiter, after)
                got = lister(bucket, prefix, delimiter, after, max_keys)
                if got != want:
                    print(f"{name} {how} keys={keys}")
                    print(f"  want {want}")
                    print(f"  got  {got}")
                    raise SystemExit(1)
                checks += 1
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for key in keys:
            s3.delete_object(Bucket=bucket, Key=key)
        s3.delete_bucket(Bucket=bucket)
    print(f"{checks} listings equal the model's")
    print("ok")


main()
