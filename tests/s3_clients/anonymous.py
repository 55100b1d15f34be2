"""A daemon started with --s3-anonymous-reads (tests/s3.rs): unsigned GET
and HEAD are served, nothing unsigned writes, and a public-read ACL, which
holds there, is taken and read back (public-read-write and a grant of
WRITE to everyone, which do not, are refused)."""
from common import client, code
from raw import send

s3 = client()
s3.create_bucket(Bucket="open")
s3.put_object(Bucket="open", Key="page.html", Body=b"<p>hello</p>", ACL="public-read", ContentType="text/html")
s3.put_object(Bucket="open", Key="note.txt", Body=b"note", ACL="private")
assert code(lambda: s3.put_object(Bucket="open", Key="both", Body=b"x", ACL="public-read-write")) == \
    "AccessControlListNotSupported"

# ACLs read as they hold: the owner, and everyone with READ.
everyone = {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}
assert everyone in s3.get_object_acl(Bucket="open", Key="note.txt")["Grants"]
assert everyone in s3.get_bucket_acl(Bucket="open")["Grants"]
s3.put_object_acl(Bucket="open", Key="note.txt", ACL="public-read")
owner = {"ID": "percore", "DisplayName": "percore"}
writers = {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "WRITE"}
assert code(lambda: s3.put_bucket_acl(Bucket="open", AccessControlPolicy={"Owner": owner, "Grants": [writers]})) == \
    "AccessControlListNotSupported"

status, headers, body = send("GET", "/open/page.html")
assert status == 200 and body == b"<p>hello</p>", (status, body)
assert {k.lower(): v for k, v in headers.items()}.get("content-type") == "text/html", headers
status, _, body = send("HEAD", "/open/note.txt")
assert status == 200 and body == b"", status
status, _, body = send("GET", "/open", query=[("list-type", "2")])
assert status == 200 and b"<Key>note.txt</Key>" in body and b"<Key>page.html</Key>" in body, body
assert send("GET", "/open/missing")[0] == 404

for method, path in [("PUT", "/open/anon"), ("DELETE", "/open/page.html"), ("POST", "/open?delete")]:
    status, _, body = send(method, path, body=b"x" if method == "PUT" else b"")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body, (method, path, status, body)
assert code(lambda: s3.head_object(Bucket="open", Key="anon")) == "404"
assert s3.get_object(Bucket="open", Key="page.html")["Body"].read() == b"<p>hello</p>"
print("ok")
