"""GetObject and HeadObject under every combination of If-Match,
If-None-Match, If-Modified-Since, If-Unmodified-Since and Range, against
RFC 9110's order of evaluation (as S3 documents it: If-Match true wins over
If-Unmodified-Since false, If-None-Match false wins over If-Modified-Since
true), then the range: 412, 304, 416 InvalidRange, 206 or 200; for an
object the daemon caches (4 KiB) and one it reads from its file each time
(256 KiB + 1). Prints "ok" when every answer is the model's."""
import datetime
import itertools

import botocore

from common import client

s3 = client()
BUCKET = "conditions"
s3.create_bucket(Bucket=BUCKET)
hour = datetime.timedelta(hours=1)
CACHED = 4096


def ranges(size):
    """Range headers, each with the span it asks for (None: the whole)."""
    return {
        None: None,
        "bytes=0-9": (0, 9),
        "bytes=-5": (size - 5, size - 1),
        "bytes=100-": (100, size - 1),
        f"bytes={size - 96}-{size + 9999}": (size - 96, size - 1),
        f"bytes={size}-": "unsatisfiable",
        "bytes=9-0": None,  # not a valid range: ignored
    }


def check(size):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    key = f"k{size}"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"]
    modified = s3.head_object(Bucket=BUCKET, Key=key)["LastModified"]
    now = datetime.datetime.now(datetime.timezone.utc)
    spans = ranges(size)

    def matches(value):
        return value == "*" or etag in [v.strip() for v in value.split(",")]

    def model(if_match, if_none_match, since, unmodified_since, range_):
        """The status RFC 9110 (section 13.2.2) gives, then the range's."""
        if if_match is not None:
            if not matches(if_match):
                return 412, None
        elif unmodified_since is not None and modified > unmodified_since:
            return 412, None
        if if_none_match is not None:
            if matches(if_none_match):
                return 304, None
        elif since is not None and modified <= since:
            return 304, None
        wanted = spans[range_]
        if wanted == "unsatisfiable":
            return 416, None
        if wanted is None:
            return 200, (0, size - 1)
        return 206, wanted

    def answer(method, args):
        try:
            r = method(Bucket=BUCKET, Key=key, **args)
        except botocore.exceptions.ClientError as e:
            return int(e.response["ResponseMetadata"]["HTTPStatusCode"]), None, None
        status = r["ResponseMetadata"]["HTTPStatusCode"]
        data = r["Body"].read() if "Body" in r else None
        return status, r, data

    matches_ = [None, etag, '"0123"', "*", f'"0123", {etag}']
    dates = [None, modified - hour, modified, now]
    checks = 0
    for if_match, if_none_match, since, unmodified, range_ in itertools.product(matches_, matches_, dates, dates, spans):
        args = {}
        for name, value in (("IfMatch", if_match), ("IfNoneMatch", if_none_match), ("IfModifiedSince", since),
                            ("IfUnmodifiedSince", unmodified), ("Range", range_)):
            if value is not None:
                args[name] = value
        want, span = model(if_match, if_none_match, since, unmodified, range_)
        for method in (s3.get_object, s3.head_object):
            status, r, data = answer(method, args)
            # S3 answers a HEAD's range as a GET's, without the body.
            assert status == want, f"{method.__name__} of {size} bytes {args}: {status}, the model says {want}"
            if status in (200, 206):
                first, last = span
                assert r["ContentLength"] == last - first + 1, (args, r["ContentLength"])
                assert r["ETag"] == etag
                if status == 206:
                    assert r["ContentRange"] == f"bytes {first}-{last}/{size}", (args, r["ContentRange"])
                if data is not None:
                    assert data == body[first:last + 1], args
            checks += 1
    s3.delete_object(Bucket=BUCKET, Key=key)
    return checks


checks = check(CACHED) + check(256 * 1024 + 1)
s3.delete_bucket(Bucket=BUCKET)
print(f"{checks} answers equal the model's")
print("ok")
