"""CORS rules of a bucket (tests/browser.rs), in the phases the browser test
runs between its page loads (PHASE): `setup` (the bucket, no rules yet;
prints presigned PUT and GET URLs for the page), `allow` (rules that let
ORIGIN read and write; preflights and answers checked without a browser),
`remove` (the rules gone; what the page stored is there)."""
import os

import raw
from common import client, code

s3 = client()
ORIGIN = os.environ["ORIGIN"]
PHASE = os.environ["PHASE"]
KEY = "from-browser.txt"


def header(headers, name):
    """A response header, by name in any case."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def preflight(origin, method, requested=None, path="/web/" + KEY):
    headers = {"origin": origin, "access-control-request-method": method}
    if requested:
        headers["access-control-request-headers"] = requested
    return raw.send("OPTIONS", path, headers=headers)


if PHASE == "setup":
    s3.create_bucket(Bucket="web")
    assert code(lambda: s3.get_bucket_cors(Bucket="web")) == "NoSuchCORSConfiguration"
    status, _, body = preflight(ORIGIN, "PUT")
    assert status == 403 and b"AccessForbidden" in body and b"not enabled" in body, (status, body)
    print("PUT", s3.generate_presigned_url("put_object", Params={"Bucket": "web", "Key": KEY}, ExpiresIn=600))
    print("GET", s3.generate_presigned_url("get_object", Params={"Bucket": "web", "Key": KEY}, ExpiresIn=600))
elif PHASE == "allow":
    rules = {"CORSRules": [
        {"ID": "page", "AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 60},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
    ]}
    s3.put_bucket_cors(Bucket="web", CORSConfiguration=rules)
    assert s3.get_bucket_cors(Bucket="web")["CORSRules"] == rules["CORSRules"]
    assert code(lambda: s3.put_bucket_cors(Bucket="not-there", CORSConfiguration=rules)) == "NoSuchBucket"
    bad = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}
    assert code(lambda: s3.put_bucket_cors(Bucket="web", CORSConfiguration=bad)) == "InvalidRequest"
    assert s3.get_bucket_cors(Bucket="web")["CORSRules"] == rules["CORSRules"], "a refused PUT changes nothing"
    # Preflights: allowed, each answer header as a browser needs it.
    status, headers, body = preflight(ORIGIN, "PUT", "Content-Type, X-Amz-Date")
    assert status == 200, (status, body)
    assert header(headers, "access-control-allow-origin") == ORIGIN, headers
    assert header(headers, "access-control-allow-methods") == "GET, PUT", headers
    assert header(headers, "access-control-allow-headers") == "Content-Type, X-Amz-Date", headers
    assert header(headers, "access-control-expose-headers") == "ETag", headers
    assert header(headers, "access-control-max-age") == "60", headers
    status, headers, _ = preflight("http://elsewhere.example", "HEAD")
    assert status == 200 and header(headers, "access-control-allow-origin") == "*", headers
    # Refused: another origin, method or header; no Origin at all; no bucket.
    for origin, method, requested in [("http://elsewhere.example", "PUT", None), (ORIGIN, "DELETE", None),
                                      (ORIGIN, "PUT", "authorization")]:
        status, headers, body = preflight(origin, method, requested)
        assert status == 403 and b"AccessForbidden" in body, (origin, method, requested, status, body)
        assert header(headers, "access-control-allow-origin") is None, headers
    status, _, body = raw.send("OPTIONS", "/web/" + KEY, headers={"access-control-request-method": "GET"})
    assert status == 400 and b"Origin" in body, (status, body)
    # (A bucket that does not exist has no rules: nothing tells it apart.)
    status, _, body = preflight(ORIGIN, "GET", path="/not-there/x")
    assert status == 403 and b"not enabled" in body, (status, body)
    # An actual request from the origin carries the headers; from another, only Vary.
    s3.put_object(Bucket="web", Key="hello.txt", Body=b"hello")
    status, headers, body = raw.signed("GET", "/web/hello.txt", headers={"origin": ORIGIN})
    assert status == 200 and body == b"hello", (status, body)
    assert header(headers, "access-control-allow-origin") == ORIGIN, headers
    assert header(headers, "access-control-expose-headers") == "ETag", headers
    assert header(headers, "vary") == "Origin", headers
    status, headers, body = raw.signed("GET", "/web/missing", headers={"origin": ORIGIN})
    assert status == 404 and header(headers, "access-control-allow-origin") == ORIGIN, (status, headers)
    status, headers, _ = raw.signed("GET", "/web/hello.txt", headers={"origin": "http://elsewhere.example"})
    assert status == 200 and header(headers, "access-control-allow-origin") is None, headers
    status, headers, _ = raw.signed("GET", "/web/hello.txt")
    assert status == 200 and header(headers, "vary") is None, headers
elif PHASE == "remove":
    assert s3.get_object(Bucket="web", Key=KEY)["Body"].read() == b"from the browser"
    s3.delete_bucket_cors(Bucket="web")
    s3.delete_bucket_cors(Bucket="web")
    assert code(lambda: s3.get_bucket_cors(Bucket="web")) == "NoSuchCORSConfiguration"
    status, _, body = preflight(ORIGIN, "PUT")
    assert status == 403 and b"not enabled" in body, (status, body)
    s3.delete_objects(Bucket="web", Delete={"Objects": [{"Key": KEY}, {"Key": "hello.txt"}]})
    s3.delete_bucket(Bucket="web")
print("ok")
