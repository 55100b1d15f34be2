"""Browser forms (PostObject) as boto3's generate_presigned_post makes them
(tests/s3.rs): the form's fields and file sent as multipart/form-data, the
way a browser sends an HTML form."""
import hashlib
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from common import ENDPOINT, client, code, tls_context

s3 = client()
s3.create_bucket(Bucket="forms")


def send(fields, filename, data, chunk=None):
    """POSTs `fields` then the file as a form; (status, headers, body)."""
    boundary = "----percoreForm%s" % os.urandom(8).hex()
    out = b""
    for name, value in fields.items():
        out += b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (
            boundary.encode(), name.encode(), value.encode())
    out += b'--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n' % (
        boundary.encode(), filename.encode())
    out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--%s--\r\n" % boundary.encode()
    request = urllib.request.Request(ENDPOINT + "/forms", data=out, method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=" + boundary})

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None
    opener = urllib.request.build_opener(Stay, urllib.request.HTTPSHandler(context=tls_context()))
    try:
        with opener.open(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def presigned(key="uploads/${filename}", fields=None, conditions=None, expires=300):
    return s3.generate_presigned_post("forms", key, Fields=fields, Conditions=conditions, ExpiresIn=expires)


def absent(key):
    assert code(lambda: s3.head_object(Bucket="forms", Key=key)) == "404", key


# A form with metadata, a size range and a key prefix: stored as sent.
form = presigned(fields={"Content-Type": "text/plain", "x-amz-meta-who": "a form"},
                 conditions=[{"Content-Type": "text/plain"}, {"x-amz-meta-who": "a form"},
                             ["starts-with", "$key", "uploads/"], ["content-length-range", 1, 1 << 20]])
body = b"sent from a form\n" * 100
status, headers, _ = send(form["fields"], "note.txt", body)
assert status == 204, (status, headers)
etag = '"%s"' % hashlib.md5(body).hexdigest()
assert headers["ETag"] == etag and headers["Location"] == "/forms/uploads/note.txt", headers
got = s3.get_object(Bucket="forms", Key="uploads/note.txt")
assert got["Body"].read() == body and got["ETag"] == etag
assert got["ContentType"] == "text/plain" and got["Metadata"] == {"who": "a form"}, got

# A large file crosses many of the body's pieces (and delimiter-like bytes).
big = (b"\r\n------percoreForm" + os.urandom(4093)) * 768
status, _, _ = send(presigned(key="big.bin")["fields"], "big.bin", big)
assert status == 204, status
assert s3.get_object(Bucket="forms", Key="big.bin")["Body"].read() == big

# success_action_status 201: S3's PostResponse document.
form = presigned(key="created.txt", fields={"success_action_status": "201"},
                 conditions=[{"success_action_status": "201"}])
status, _, answer = send(form["fields"], "x", b"created")
assert status == 201 and b"<Key>created.txt</Key>" in answer and b"<Bucket>forms</Bucket>" in answer, answer
# success_action_redirect: a 303 back to the page, naming what was stored.
form = presigned(key="redirected.txt", fields={"success_action_redirect": "http://127.0.0.1:9/done?x=1"},
                 conditions=[{"success_action_redirect": "http://127.0.0.1:9/done?x=1"}])
status, headers, _ = send(form["fields"], "x", b"redirected")
location = urllib.parse.urlparse(headers["Location"])
assert status == 303 and location.path == "/done", (status, headers)
query = urllib.parse.parse_qs(location.query)
assert query["key"] == ["redirected.txt"] and query["bucket"] == ["forms"] and query["x"] == ["1"], query
assert query["etag"] == ['"%s"' % hashlib.md5(b"redirected").hexdigest()], query

# Refused, storing nothing: a field the policy does not allow, one it does
# not name, a file too large or too small, a tampered policy, an expired
# one, no policy at all, a version 2 form.
form = presigned(conditions=[["starts-with", "$key", "uploads/"]])
fields = dict(form["fields"], key="elsewhere/${filename}")
status, _, answer = send(fields, "evil.txt", b"x")
assert status == 403 and b"Policy Condition failed" in answer, (status, answer)
absent("elsewhere/evil.txt")
status, _, answer = send(dict(form["fields"], **{"x-amz-meta-extra": "1"}), "extra.txt", b"x")
assert status == 403 and b"Extra input fields: x-amz-meta-extra" in answer, (status, answer)
absent("uploads/extra.txt")
# A form that asks for server-side encryption (signed for it): refused.
sse = presigned(key="sse.txt", fields={"x-amz-server-side-encryption": "AES256"},
                conditions=[{"x-amz-server-side-encryption": "AES256"}])["fields"]
status, _, answer = send(sse, "sse.txt", b"secret")
assert status == 501 and b"server-side encryption" in answer, (status, answer)
absent("sse.txt")
# A form that sends tags (signed for them): kept; tags S3 would refuse:
# refused, nothing stored.
tag_set = "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"
tagged = presigned(key="tagged.txt", fields={"tagging": tag_set}, conditions=[{"tagging": tag_set}])["fields"]
status, _, answer = send(tagged, "tagged.txt", b"x")
assert status in (200, 204), (status, answer)
assert s3.get_object_tagging(Bucket="forms", Key="tagged.txt")["TagSet"] == [{"Key": "a", "Value": "b"}]
s3.delete_object(Bucket="forms", Key="tagged.txt")
bad_set = "<Tagging><TagSet><Tag><Key>aws:x</Key><Value>b</Value></Tag></TagSet></Tagging>"
tagged = presigned(key="tagged.txt", fields={"tagging": bad_set}, conditions=[{"tagging": bad_set}])["fields"]
status, _, answer = send(tagged, "tagged.txt", b"x")
assert status == 400 and b"InvalidTag" in answer, (status, answer)
absent("tagged.txt")
sized = presigned(key="sized", conditions=[["content-length-range", 10, 100]])["fields"]
status, _, answer = send(sized, "x", b"y" * 101)
assert status == 400 and b"EntityTooLarge" in answer, (status, answer)
status, _, answer = send(sized, "x", b"y" * 9)
assert status == 400 and b"EntityTooSmall" in answer, (status, answer)
absent("sized")
tampered = dict(form["fields"])
tampered["policy"] = tampered["policy"][:-4] + ("AAAA" if not tampered["policy"].endswith("AAAA") else "BBBB")
status, _, answer = send(tampered, "t.txt", b"x")
assert status == 403 and b"SignatureDoesNotMatch" in answer, (status, answer)
short = presigned(key="late", expires=1)["fields"]
time.sleep(2.1)
status, _, answer = send(short, "x", b"late")
assert status == 403 and b"Policy expired" in answer, (status, answer)
absent("late")
status, _, answer = send({"key": "anonymous"}, "x", b"x")
assert status == 403 and b"AccessDenied" in answer, (status, answer)
status, _, answer = send({"key": "v2", "AWSAccessKeyId": "AKIDTEST", "policy": "e30=", "signature": "x"}, "x", b"x")
assert status == 400 and b"version 2" in answer, (status, answer)
absent("anonymous")
absent("v2")
# A header that could not be sent back is no metadata.
bad = presigned(key="bad", fields={"Content-Type": "text/plain\r\nX-Evil: 1"},
                conditions=[{"Content-Type": "text/plain\r\nX-Evil: 1"}])["fields"]
status, _, answer = send(bad, "x", b"x")
assert status == 400 and b"control characters" in answer, (status, answer)
absent("bad")
# Malformed forms: refused with 400, storing nothing.
def raw_form(payload, boundary="b0undary"):
    request = urllib.request.Request(ENDPOINT + "/forms", data=payload, method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    try:
        with urllib.request.urlopen(request, context=tls_context()) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


fields = presigned(key="malformed")["fields"]
head = b"".join(b'--b0undary\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (n.encode(), v.encode())
                for n, v in fields.items())
file_head = b'--b0undary\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
for payload, expected in [
    (head + file_head + b"no closing boundary", b"MalformedPOSTRequest"),
    (head + b"--b0undary--\r\n", b"no file field"),
    (b'--b0undary\r\nContent-Disposition: form-data; name="key"\r\n\r\n' + b"k" * 70000, b"MaxPostPreDataLength"),
    (b"--b0undary\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0undary--\r\n", b"Content-Disposition"),
    (b"--b0undaryX\r\n", b"MalformedPOSTRequest"),
]:
    status, answer = raw_form(payload)
    assert status == 400 and expected in answer, (payload[:60], status, answer)
absent("malformed")
print("ok")
