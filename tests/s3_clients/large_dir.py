"""Large directories listed page by page while they change (tests/s3.rs). A shard
keeps a large directory's sorted entries between a listing's pages
(`listing::kept`), so each change made between two pages (through S3, through
`/files/`, or behind the daemon's back; at once after a page, or a second
later) must show in the pages after it, in S3's listings and in `/files/`'s.
Metrics show that kept entries served pages. DATA: the data directory; FILES:
the daemon's plain HTTP address."""
import json
import os
import time
import urllib.request

from common import client

s3 = client()
DATA, FILES = os.environ["DATA"], os.environ["FILES"]
B = "large"
ROOT = os.path.join(DATA, B)
PAGE = 500


def model(prefix=""):
    """The bucket's keys as the store holds them, in byte order."""
    keys = []
    for top, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(top, ROOT)
        for f in files:
            if not f.startswith(".percore-"):
                keys.append(f if rel == "." else f"{rel}/{f}")
    return sorted((k for k in keys if k.startswith(prefix)), key=str.encode)


def metric(name):
    text = urllib.request.urlopen(f"{FILES}/metrics").read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{") or
               line.startswith(name + " "))


def s3_listing(between, prefix="", start_after=None):
    keys, token, n = [], None, 0
    while True:
        args = {"Bucket": B, "MaxKeys": PAGE, "Prefix": prefix}
        if token:
            args["ContinuationToken"] = token
        elif start_after:
            args["StartAfter"] = start_after
        page = s3.list_objects_v2(**args)
        keys += [o["Key"] for o in page.get("Contents", [])]
        between(n, keys[-1])
        n += 1
        if not page["IsTruncated"]:
            return keys
        token = page["NextContinuationToken"]


def files_listing(between):
    names, after, n = [], None, 0
    while True:
        query = f"?format=json&limit={PAGE}" + (f"&after={after}" if after else "")
        page = json.loads(urllib.request.urlopen(f"{FILES}/files/{B}/{query}").read())
        names += [e["name"] for e in page["entries"] if not e["is_dir"]]
        between(n, names[-1])
        n += 1
        if not page.get("next"):
            return names
        after = page["next"]


def put_files(key, body):
    request = urllib.request.Request(f"{FILES}/files/{B}/{key}", data=body, method="PUT")
    assert urllib.request.urlopen(request).status in (200, 201)


def delete_files(key):
    assert urllib.request.urlopen(urllib.request.Request(f"{FILES}/files/{B}/{key}", method="DELETE")).status == 204


s3.create_bucket(Bucket=B)
# 3,000 keys behind the daemon's back (even numbers: room between them), and
# a directory of keys among them.
for i in range(0, 6000, 2):
    open(os.path.join(ROOT, f"k{i:05}"), "w").write(str(i))
os.makedirs(os.path.join(ROOT, "k01001"))
for i in range(3):
    open(os.path.join(ROOT, "k01001", f"in{i}"), "w").write("in")
time.sleep(1.2)  # settled: what the next read finds is kept


def changes(n, last):
    """What happens after page `n` (its last key `last`): each change lies
    after `last`, so the pages to come must show it."""
    top = [k for k in model() if "/" not in k]
    at = int(last[1:6]) + 300
    new = next(i for i in range(at | 1, 99999, 2) if f"k{i:05}" not in top and i != 1001)
    gone = next((k for k in top if k > f"k{new + 50:05}"), None)
    if gone is None:
        return
    new = f"k{new:05}"
    if n == 0:  # at once, through S3: one key made, one removed
        s3.put_object(Bucket=B, Key=new, Body=b"new")
        s3.delete_object(Bucket=B, Key=gone)
    elif n == 1:  # at once, behind the daemon's back
        open(os.path.join(ROOT, new), "w").write("behind")
        os.unlink(os.path.join(ROOT, gone))
    elif n == 2:  # a second later (the page before was read from a settled directory), through /files/
        time.sleep(1.2)
        put_files(new, b"files")
        delete_files(gone)
    elif n == 3:  # a second later, renamed behind the daemon's back
        time.sleep(1.2)
        os.rename(os.path.join(ROOT, gone), os.path.join(ROOT, new))


before = (metric("percore_listing_dir_reads_total"), metric("percore_listing_dir_reads_spared_total"))
listed = s3_listing(changes)
assert listed == model(), (len(listed), len(model()), sorted(set(listed) ^ set(model()))[:10])
# Unchanged, settled: a second listing reads the directory once.
time.sleep(1.2)
again = s3_listing(lambda n, last: None)
assert again == model()
spared = metric("percore_listing_dir_reads_spared_total") - before[1]
assert spared >= len(again) // PAGE - 1, (spared, before)
# From a start key and a prefix deep in the directory, changing meanwhile.
deep = s3_listing(changes, prefix="k0", start_after="k03000")
assert deep == [k for k in model("k0") if k.encode() > b"k03000"], deep[:5]
# The same through /files/.
names = files_listing(changes)
assert names == [k for k in model() if "/" not in k], (len(names), sorted(set(names) ^ set(model()))[:10])
print("ok:", len(listed), "keys;", int(spared), "pages from kept entries")
